"""`oro-graph mirror` copies a server's public data through the official client, idempotently."""

from pathlib import Path

from sqlalchemy import func
from sqlmodel import select

from oro_graph import mirror_client as mirroring
from oro_graph.db import Database
from oro_graph.migrations import upgrade
from oro_graph.models import (
    Agent,
    AgentVersion,
    EvaluationRun,
    Hotkey,
    Problem,
    ProblemResult,
    Suite,
    TopAgentHistory,
)
from oro_graph.services import invariants
from oro_graph.settings import Settings
from tests.rest.seed import seed

TABLES = {
    "suites": Suite,
    "problems": Problem,
    "agents": Agent,
    "versions": AgentVersion,
    "runs": EvaluationRun,
    "problem_results": ProblemResult,
    "top": TopAgentHistory,
}


def _counts(db: Database) -> dict[str, int]:
    with db.session() as s:
        return {name: s.exec(select(func.count()).select_from(model)).one() for name, model in TABLES.items()}


def _target(tmp_path: Path) -> Database:
    url = f"sqlite:///{tmp_path / 'mirror.db'}"
    upgrade(url)
    return Database(Settings(database_url=url, data_dir=tmp_path / "mirror-state", secret_key="m"))


def test_mirror_copies_public_data_and_is_idempotent(runtime, server, tmp_path):
    # given a source with an eligible version, a running one, runs and per-problem results
    seeded = seed(runtime)
    target = _target(tmp_path)
    # when
    first = mirroring.mirror(target, server.base_url)
    # then every public row arrived with its id, and counts match the source
    source_counts = _counts(runtime.db)
    assert _counts(target) == source_counts
    assert first.added["versions"] == 2 and first.added["runs"] == 3
    with target.session() as s:
        alpha = s.get(AgentVersion, seeded.alpha)
        assert (alpha.state, round(alpha.final_score, 6)) == ("ELIGIBLE", 0.7)
        assert s.get(Hotkey, seeded.charlie).role == "validator"
        assert s.exec(select(TopAgentHistory.agent_version_id)).one() == seeded.alpha
        scores = sorted(r.score for r in s.exec(select(ProblemResult)))
    assert scores == [0.6, 0.8]
    broken = target.call(invariants.check_invariants, max_active_runs_per_validator=1)
    assert not any(broken.values()), broken
    # and a second run adds nothing
    second = mirroring.mirror(target, server.base_url)
    assert second.added == {}
    assert _counts(target) == source_counts


def test_mirror_picks_up_what_is_new(runtime, server, tmp_path):
    seeded = seed(runtime)
    target = _target(tmp_path)
    mirroring.mirror(target, server.base_url)
    # when the running version finishes on the source
    from tests.factories import claim, complete

    complete(runtime, seeded.beta_run, seeded.eve, score=0.9)
    c = claim(runtime, seeded.charlie)
    complete(runtime, c.run.id, seeded.charlie, score=0.8)
    again = mirroring.mirror(target, server.base_url)
    # then the second pass brings the new run and the new state
    assert again.added.get("runs") == 1
    with target.session() as s:
        beta = s.get(AgentVersion, seeded.beta)
    assert beta.state == "ELIGIBLE" and round(beta.final_score, 6) == 0.85
    assert _counts(target) == _counts(runtime.db)


def test_mirror_command(runtime, server, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from oro_graph.cli import app

    seed(runtime)
    monkeypatch.setenv("ORO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli-mirror.db'}")
    monkeypatch.setenv("ORO_DATA_DIR", str(tmp_path / "cli-state"))
    result = CliRunner().invoke(app, ["mirror", "--from", server.base_url])
    assert result.exit_code == 0, result.output
    assert '"versions": 2' in result.output
    # One retry, not the eight of a real run: each waits longer than the last (over a minute in all),
    # and what is checked here is the command's answer once the retries are spent.
    monkeypatch.setattr(mirroring, "MAX_RETRIES", 1)
    unreachable = CliRunner().invoke(app, ["mirror", "--from", "http://127.0.0.1:1"])
    assert unreachable.exit_code == 1 and "could not reach" in unreachable.output
