import uuid
from datetime import timedelta

import pytest
from sqlalchemy import text

from oro_graph.errors import (
    ArtifactNotFound,
    ArtifactNotReleased,
    EvalRunNotFound,
    FileTooLarge,
    InvalidArtifactType,
    MissingParameter,
    NotRunOwner,
    ProblemNotFound,
    ValidationFailed,
)
from oro_graph.models import utcnow
from oro_graph.services import artifacts, credentials, evaluations, suites
from tests.factories import claim, make_eligible, make_world, submit


def _download(rt, **kw):
    kw.setdefault("eval_run_id", None)
    kw.setdefault("problem_id", None)
    return rt.db.call(artifacts.download_url, settings=rt.settings, storage=rt.storage, **kw)


def test_code_download_only_after_release(runtime):
    world = make_world(runtime)
    pending = submit(runtime, world.miners[0], "a")
    with pytest.raises(ArtifactNotReleased, match="once the version is eligible"):
        _download(runtime, artifact_type="AGENT_CODE", agent_version_id=pending.agent_version_id)
    vid = make_eligible(runtime, world, world.miners[1], "b", [0.5, 0.5], now=utcnow() - timedelta(hours=3))
    url = _download(runtime, artifact_type="AGENT_CODE", agent_version_id=vid)
    assert url.url.startswith("http://testserver/artifacts/agents/")


def test_download_parameter_errors(runtime):
    world = make_world(runtime)
    vid = make_eligible(runtime, world, world.miners[0], "a", [0.5, 0.5])
    with pytest.raises(InvalidArtifactType, match="AGENT_CODE"):
        _download(runtime, artifact_type="SOURCE", agent_version_id=vid)
    with pytest.raises(MissingParameter, match="eval_run_id"):
        _download(runtime, artifact_type="EVAL_LOGS_BUNDLE", agent_version_id=vid)
    with pytest.raises(EvalRunNotFound):
        _download(runtime, artifact_type="EVAL_LOGS_BUNDLE", agent_version_id=vid, eval_run_id=uuid.uuid4())
    with pytest.raises(ArtifactNotFound, match="EVAL_LOGS_BUNDLE"):  # the run exists but uploaded no bundle
        run_id = runtime.db.call(evaluations.runs_of_version, vid)[0].id
        _download(runtime, artifact_type="EVAL_LOGS_BUNDLE", agent_version_id=vid, eval_run_id=run_id)


def test_presign_upload_rules(runtime):
    world = make_world(runtime)
    submit(runtime, world.miners[0], "a")
    c = claim(runtime, world.validators[0])
    problem = runtime.db.call(suites.problems_for_suite, world.suite.id)[0]

    def presign(**kw):
        args = dict(
            validator_hotkey=world.validators[0],
            eval_run_id=c.run.id,
            problem_id=problem.id,
            content_length=100,
            content_type="application/gzip",
        )
        args.update(kw)
        return runtime.db.call(
            artifacts.presign_upload, settings=runtime.settings, storage=runtime.storage, **args
        )

    grant = presign()
    assert grant.key.startswith(f"runs/{c.run.id}/{problem.id}/") and grant.url.method == "PUT"
    with pytest.raises(NotRunOwner):
        presign(validator_hotkey=world.validators[1])
    with pytest.raises(ProblemNotFound):
        presign(problem_id=uuid.uuid4())
    with pytest.raises(FileTooLarge):
        presign(content_length=runtime.settings.max_upload_bytes + 1)
    with pytest.raises(ValidationFailed):
        presign(content_length=0)


def test_credentials_are_encrypted_at_rest(runtime):
    world = make_world(runtime)
    token = "chutes-refresh-token-SECRET-123"
    status = runtime.db.call(
        credentials.store_credential, hotkey=world.miners[0], token=token, secret=runtime.settings.secret
    )
    assert status.connected
    with runtime.db.engine.connect() as conn:
        raw = conn.execute(text("SELECT ciphertext FROM inferencecredential")).scalar_one()
    assert token.encode() not in bytes(raw)
    assert runtime.db.call(credentials.credential_status, hotkey=world.miners[1]).connected is False
    revealed = runtime.db.call(
        credentials.reveal_credential, hotkey=world.miners[0], secret=runtime.settings.secret
    )
    assert revealed == token
