"""The miner's writes: submitting an agent, storing an inference credential; artifact downloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

import strawberry
from strawberry.file_uploads import Upload

from oro_graph.graphql import error_types as e
from oro_graph.graphql import refs
from oro_graph.graphql.context import Info
from oro_graph.graphql.enums import ArtifactType
from oro_graph.graphql.permissions import IsMinerStoringCredentials
from oro_graph.services import agents, artifacts, credentials


@strawberry.type(description="The answer to a submission: ACCEPTED creates a version, REJECTED says why not.")
class SubmitAgentSuccess:
    admission_status: str = strawberry.field(description="ACCEPTED or REJECTED.")
    admission_reason: str | None = strawberry.field(
        description="Why a submission was REJECTED: NOT_REGISTERED_ONCHAIN or BANNED."
    )
    hotkey: str = strawberry.field(description="The submitting hotkey.")
    agent_id: uuid.UUID | None = strawberry.field(description="The agent, when accepted.")
    agent_version_id: uuid.UUID | None = strawberry.field(description="The new version, when accepted.")
    next_allowed_at: datetime | None = strawberry.field(
        description="When this hotkey may submit again (UTC)."
    )
    message: str = strawberry.field(description="A sentence for people.")

    @strawberry.field(description="The new version, when accepted.")
    async def agent_version(self, info: Info) -> refs.AgentVersion | None:
        if self.agent_version_id is None:
            return None
        row = await info.context.loaders.agent_version_by_id.load(self.agent_version_id)
        return refs.shown_version(info, row)


SubmitAgentResult = Annotated[
    SubmitAgentSuccess
    | e.CooldownActiveError
    | e.FileTooLargeError
    | e.InvalidAgentNameError
    | e.InvalidFileError
    | e.NoActiveSuiteError
    | e.RateLimitExceededError
    | e.ServiceUnavailableError,
    strawberry.union("SubmitAgentResult", description="A submission's admission or why it was refused."),
]


@strawberry.type(description="The caller's inference credential is stored (encrypted; it is never returned).")
class StoreInferenceCredentialSuccess:
    connected: bool = strawberry.field(description="Always true after a store.")
    updated_at: datetime | None = strawberry.field(description="When it was stored (UTC).")
    provider: str = strawberry.field(description="The provider it is for: chutes or openrouter.")
    is_default: bool = strawberry.field(description="Whether claims mint from this provider first.")


StoreInferenceCredentialResult = Annotated[
    StoreInferenceCredentialSuccess | e.ValidationError | e.RateLimitExceededError,
    strawberry.union(
        "StoreInferenceCredentialResult", description="The stored credential's status or why not."
    ),
]


@strawberry.type(description="A short-lived URL to download an artifact.")
class ArtifactDownloadSuccess:
    download_url: str = strawberry.field(description="GET this URL before it expires.")
    expires_at: datetime = strawberry.field(description="When the URL stops working (UTC).")


RequestArtifactDownloadResult = Annotated[
    ArtifactDownloadSuccess
    | e.AgentVersionNotFoundError
    | e.ArtifactNotFoundError
    | e.ArtifactNotReleasedError
    | e.EvalRunNotFoundError
    | e.InvalidArtifactTypeError
    | e.MissingParameterError,
    strawberry.union("RequestArtifactDownloadResult", description="A download URL or why there is none."),
]


@strawberry.type
class AgentMutation:
    @strawberry.mutation(
        description="Submit an agent file (multipart upload) as a new version of `agentName`. Signed by the "
        "miner (X-Hotkey, X-Timestamp, X-Nonce, X-Signature); the file must be UTF-8 Python named *.py "
        "under the size limit."
    )
    async def submit_agent(
        self,
        info: Info,
        agent_name: Annotated[
            str, strawberry.argument(description="Unique per miner; 1-64 of [A-Za-z0-9_.-].")
        ],
        file: Annotated[
            Upload,
            strawberry.argument(description="The agent's Python source file; its name must end in .py."),
        ],
    ) -> SubmitAgentResult:
        hotkey = await info.context.signer()
        runtime = info.context.runtime
        wait = await runtime.rate_limits.hit_submitter(hotkey) if runtime.rate_limits else None
        content = await file.read(runtime.settings.max_agent_bytes + 1)  # one byte over is enough to refuse
        admission = await agents.submit(
            runtime.db,
            runtime.parser,
            hotkey=hotkey,
            agent_name=agent_name,
            content=content,
            file_name=file.filename or "",
            settings=runtime.settings,
            storage=runtime.storage,
            over_limit=wait,
        )
        if admission.agent_version_id is not None:
            info.context.own_versions.add(admission.agent_version_id)  # the signed owner sees it
        return SubmitAgentSuccess(
            admission_status=admission.status,
            admission_reason=admission.reason,
            hotkey=admission.hotkey,
            agent_id=admission.agent_id,
            agent_version_id=admission.agent_version_id,
            next_allowed_at=admission.next_allowed_at,
            message=admission.message,
        )

    @strawberry.mutation(
        description="Store the calling miner's inference credential (encrypted at rest; it replaces the one "
        "stored for that provider and clears a refusal of it). The same store as the REST "
        "`/v1/miner/chutes-auth` and `/v1/miner/inference-auth/{provider}`. Signed, miners only.",
        permission_classes=[IsMinerStoringCredentials],
    )
    async def store_inference_credential(
        self,
        info: Info,
        token: Annotated[
            str,
            strawberry.argument(
                description="A Chutes OAuth refresh token or an OpenRouter API key, 1-8192 characters."
            ),
        ],
        provider: Annotated[
            str, strawberry.argument(description="The inference provider: chutes or openrouter.")
        ] = "chutes",
    ) -> StoreInferenceCredentialResult:
        hotkey = await info.context.signer()
        runtime = info.context.runtime
        status = await runtime.db.run(
            credentials.store_credential,
            hotkey=hotkey,
            token=token,
            secret=runtime.settings.secret,
            provider=provider,
        )
        return StoreInferenceCredentialSuccess(
            connected=status.connected,
            updated_at=status.updated_at,
            provider=status.provider,
            is_default=status.is_default,
        )

    @strawberry.mutation(
        description="A short-lived download URL for a released version's code or its run logs. Public."
    )
    async def request_artifact_download(
        self,
        info: Info,
        artifact_type: Annotated[ArtifactType, strawberry.argument(description="What to download.")],
        agent_version_id: Annotated[uuid.UUID, strawberry.argument(description="The released version.")],
        eval_run_id: Annotated[
            uuid.UUID | None,
            strawberry.argument(description="Needed for EVAL_LOGS_BUNDLE and EVAL_PROBLEM_LOGS."),
        ] = None,
        problem_id: Annotated[
            uuid.UUID | None, strawberry.argument(description="Needed for EVAL_PROBLEM_LOGS.")
        ] = None,
    ) -> RequestArtifactDownloadResult:
        runtime = info.context.runtime
        url = await runtime.db.run(
            artifacts.download_url,
            artifact_type=artifact_type.value,
            agent_version_id=agent_version_id,
            eval_run_id=eval_run_id,
            problem_id=problem_id,
            settings=runtime.settings,
            storage=runtime.storage,
        )
        return ArtifactDownloadSuccess(download_url=url.url, expires_at=url.expires_at)
