"""Which artifact may be fetched or uploaded by whom, and the signed URLs for it."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, select

from oro_graph.errors import (
    ArtifactNotFound,
    ArtifactNotReleased,
    FileTooLarge,
    InvalidArtifactType,
    MissingParameter,
    ProblemNotFound,
    ValidationFailed,
)
from oro_graph.models import AgentVersion, Problem, ProblemResult, utcnow
from oro_graph.services import agents, evaluations
from oro_graph.settings import Settings
from oro_graph.storage import SignedUrl, Storage


class ArtifactType(StrEnum):
    AGENT_CODE = "AGENT_CODE"
    EVAL_LOGS_BUNDLE = "EVAL_LOGS_BUNDLE"
    EVAL_PROBLEM_LOGS = "EVAL_PROBLEM_LOGS"
    REASONING_DETAILS = "REASONING_DETAILS"


def _require_released(version: AgentVersion, settings: Settings) -> None:
    if not agents.discloses(version, settings):  # the public rule for unreleased versions
        available = agents.code_available_at(version, settings)
        when = f"at {available.isoformat()}" if available else "once the version is eligible"
        raise ArtifactNotReleased(
            f"artifacts of agent version {version.id} are not released yet; they will be {when}"
        )


def download_url(
    session: Session,
    *,
    artifact_type: str,
    agent_version_id: uuid.UUID,
    eval_run_id: uuid.UUID | None,
    problem_id: uuid.UUID | None,
    settings: Settings,
    storage: Storage,
) -> SignedUrl:
    """A public download of a released version's code or its evaluation logs."""
    try:
        kind = ArtifactType(artifact_type)
    except ValueError:
        raise InvalidArtifactType(
            f"artifact_type must be one of {', '.join(t.value for t in ArtifactType)}"
        ) from None
    version = agents.get_version(session, agent_version_id)
    _require_released(version, settings)
    if kind == ArtifactType.AGENT_CODE:
        key: str | None = version.code_key
    elif kind == ArtifactType.REASONING_DETAILS:
        raise ArtifactNotFound("this server keeps no reasoning details")
    else:
        if eval_run_id is None:
            raise MissingParameter(f"{kind.value} needs eval_run_id")
        run = evaluations.get_run(session, eval_run_id)
        if run.agent_version_id != version.id:
            raise ArtifactNotFound(f"run {eval_run_id} did not evaluate agent version {agent_version_id}")
        if kind == ArtifactType.EVAL_LOGS_BUNDLE:
            key = run.results_key
        else:
            if problem_id is None:
                raise MissingParameter("EVAL_PROBLEM_LOGS needs problem_id")
            result = session.exec(
                select(ProblemResult).where(
                    ProblemResult.run_id == run.id, ProblemResult.problem_id == problem_id
                )
            ).first()
            key = result.logs_key if result else None
    if not key or not storage.exists(key):
        raise ArtifactNotFound(f"no {kind.value} artifact was stored for this request")
    return storage.download_url(key, seconds=settings.signed_url_seconds)


# type/subtype with optional parameters; S3 signs it into a header, so no control characters.
_MEDIA_TYPE = re.compile(r"^[\w!#$&^.+-]+/[\w!#$&^.+-]+(\s*;\s*[\w!#$&^.+-]+=[\w!#$&^.+\-\"]+)*\Z", re.ASCII)


@dataclass(frozen=True)
class UploadGrant:
    url: SignedUrl
    key: str


def presign_upload(
    session: Session,
    *,
    validator_hotkey: str,
    eval_run_id: uuid.UUID,
    problem_id: uuid.UUID,
    content_length: int,
    content_type: str,
    settings: Settings,
    storage: Storage,
    now: datetime | None = None,
) -> UploadGrant:
    """A signed PUT for a validator's logs of one problem of a run it holds (owned and still leased)."""
    run = evaluations.live_run_for_upload(session, eval_run_id, validator_hotkey, now or utcnow())
    problem = session.get(Problem, problem_id)
    if problem is None or problem.suite_id != run.suite_id:
        raise ProblemNotFound(f"problem {problem_id} is not in suite {run.suite_id}")
    if content_length <= 0:
        raise ValidationFailed("content_length must be a positive number of bytes")
    if len(content_type) > 255 or not _MEDIA_TYPE.match(content_type):
        raise ValidationFailed(
            f"content_type {content_type[:80]!r} is not a media type like application/json"
        )
    if content_length > settings.max_upload_bytes:
        raise FileTooLarge(
            f"content_length {content_length} exceeds the upload limit of {settings.max_upload_bytes} bytes"
        )
    stamp = (now or utcnow()).strftime("%Y%m%dT%H%M%S")
    key = f"runs/{run.id}/{problem.id}/logs-{stamp}-{uuid.uuid4().hex[:8]}"
    url = storage.upload_url(
        key, seconds=settings.signed_url_seconds, max_bytes=content_length, content_type=content_type
    )
    return UploadGrant(url=url, key=key)
