"""The typed frames on a database of their own, served as in test_frames.py: an empty graph (every
column, typed) and a race cycle built through the services (the races' parquet tables)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from oro_graph import demo
from oro_graph.analytics import frames
from oro_graph.analytics.client import Client
from oro_graph.runtime import Runtime
from oro_graph.services import suites
from oro_graph.settings import Settings
from tests.analytics.test_frames import _all, _assert_typed


def test_an_empty_graph_gives_typed_frames_with_every_column(runtime: Runtime, client: Client) -> None:
    # given: an active suite and nothing else
    with runtime.db.session(write=True) as session:
        suites.import_suite(session, demo.suite_json(), activate=True)

    # when
    loaded = {
        "agent_versions": (frames.agent_versions(client), frames.AGENT_VERSION_COLUMNS),
        "runs": (frames.runs(client), frames.RUN_COLUMNS),
        "problem_results": (frames.problem_results(client), frames.PROBLEM_RESULT_COLUMNS),
        "leaderboard": (frames.leaderboard(client), frames.LEADERBOARD_COLUMNS),
        "top_history": (frames.top_history(client), frames.TOP_HISTORY_COLUMNS),
        "validators": (frames.validators(client), frames.VALIDATOR_COLUMNS),
        "validator_reliability": (frames.validator_reliability(client), frames.RELIABILITY_COLUMNS),
    }

    # then
    for name, (df, columns) in loaded.items():
        assert df.empty, name
        assert list(df.columns) == list(columns), name
        _assert_typed(df, columns)
    assert list(loaded["runs"][0]["status"].cat.categories) == list(frames.RUN_STATUSES)
    assert list(loaded["problem_results"][0]["status"].cat.categories) == list(frames.PROBLEM_STATUSES)
    assert list(loaded["agent_versions"][0]["state"].cat.categories) == list(frames.VERSION_STATES)
    assert frames.newest_claim(client) is None


def _race_cycle(runtime: Runtime) -> dict[str, Any]:
    """Race 1 complete (Bob wins, low enough for both to qualify again), race 2 running with one
    qualifier finished: through the services."""
    from oro_graph.models import RunStatus, utcnow
    from oro_graph.services import races
    from tests.factories import claim, complete, make_eligible, make_world

    settings = Settings(**{**runtime.settings.model_dump(), "race_problems": 3, "race_max_attempts": 3})
    world = make_world(runtime)
    base = utcnow() - timedelta(hours=12)
    versions = {
        make_eligible(runtime, world, world.miners[0], "a", [0.8, 0.8], now=base): 0.2,
        make_eligible(runtime, world, world.miners[1], "b", [0.7, 0.7], now=base): 0.3,
    }

    done = 0
    for round_ in range(2):
        runtime.db.call(races.open_race, settings=settings)
        runtime.db.call(races.close_qualifying, settings=settings)
        # The second race stops after three runs: one of its two qualifiers has its two, one not.
        budget = 99 if round_ == 0 else 3
        for _ in range(10):
            for validator in world.validators:
                if done >= budget:
                    break
                c = claim(runtime, validator)
                if c is None:
                    continue
                complete(
                    runtime,
                    c.run.id,
                    validator,
                    score=versions[c.run.agent_version_id],
                    status=RunStatus.SUCCESS,
                )
                done += 1
        done = 0
    return {"world": world, "versions": versions}


def test_to_parquet_writes_races_and_their_fields(runtime: Runtime, client: Client, tmp_path: Path) -> None:
    # given a completed race and a running one
    from oro_graph.models import Race, RaceQualifier

    _race_cycle(runtime)
    stored = {r.race_number: r for r in _all(runtime, Race)}
    assert stored[1].status == "RACE_COMPLETE" and stored[2].status == "RACE_RUNNING"
    entries = _all(runtime, RaceQualifier)
    assert any(q.race_id == stored[2].id and q.race_score is not None for q in entries)

    # when the analysts' client writes the graph's tables
    written = client.to_parquet(tmp_path)

    # then races and their fields are there, typed, with the running race's results embargoed
    assert {"races", "race_qualifiers"} <= set(written)
    raced = pd.read_parquet(written["races"])
    assert raced["race_number"].tolist() == [2, 1]
    assert raced["seed_commitment"].tolist() == [stored[2].seed_commitment, stored[1].seed_commitment]
    assert raced["revealed_secret"].isna().tolist() == [True, False]
    assert raced["revealed_secret"].iloc[1] == stored[1].secret
    assert raced["winner_agent_version_id"].iloc[1] == str(stored[1].winner_agent_version_id)
    assert raced["status"].astype(str).tolist() == ["RACE_RUNNING", "RACE_COMPLETE"]
    field = pd.read_parquet(written["race_qualifiers"])
    assert len(field) == len(entries) == 4
    first = field[field["race_number"] == 1]
    by_id = {str(q.agent_version_id): q for q in entries if q.race_id == stored[1].id}
    assert first["race_rank"].tolist() == [1, 2]
    assert [by_id[v].race_score for v in first["agent_version_id"]] == first["race_score"].tolist()
    assert field[field["race_number"] == 2]["race_score"].isna().all()  # embargoed while it runs
    assert str(field["race_score"].dtype) == "Float64" and str(field["entered_at"].dt.tz) == "UTC"
