"""A whole race through oro-sdk 7.0.2 alone: miners qualify and pin, qualifying closes, validators
claim race work and complete it, the race completes with ranks and a winner whom the top names.

The operator's part (suite, registry, opening and closing qualifying) goes through the services, as
the scheduler or `oro-graph races ...` would do it.
"""

from __future__ import annotations

import time

import httpx
import pytest
from oro_sdk.api.miner import clear_race_selection, set_race_selection, submit_agent
from oro_sdk.api.public import (
    get_agent_version_problems,
    get_agent_version_runs,
    get_current_race,
    get_evaluation_run,
    get_leaderboard,
    get_race_detail,
    get_race_history,
    get_race_validator_variance,
    get_top_agent,
    get_top_history,
    get_top_miner_payout,
    list_suites,
)
from oro_sdk.api.validator import claim_work, complete_run, update_progress
from oro_sdk.models import (
    ClaimWorkRequest,
    ClaimWorkResponse,
    CompleteRunRequest,
    MinerRaceSelectionRequest,
    NoSelectionError,
    NotVersionOwnerError,
    ProblemProgressUpdate,
    ProblemStatus,
    ProgressUpdateRequest,
    ProgressUpdateResponse,
    RaceCurrentResponse,
    RaceDetailResponse,
    RaceHistoryResponse,
    RaceLockedError,
    RaceNotFoundError,
    TerminalStatus,
)
from oro_sdk.types import Unset

from oro_graph.models import Role
from oro_graph.services import races, suites
from oro_graph.settings import Settings
from tests.factories import make_suite, register
from tests.graphql.test_races import _expected_weights
from tests.rest.live import LiveServer, wallet
from tests.rest.seed import agent_file

VALIDATORS = ("Charlie", "Dave", "Eve")
# Per miner: its qualifying score, then the race score every validator reports for it.
MINERS = {"Alice": (0.8, 0.55), "Bob": (0.7, 0.9), "Ferdie": (0.6, 0.7)}


def _evaluate(server: LiveServer, score_of) -> list[ClaimWorkResponse]:
    """Validators claim and complete whatever they are given until no work is left."""
    done = []
    for _ in range(30):
        progressed = False
        for validator in VALIDATORS:
            client = server.signed(validator)
            claim = claim_work.sync(client=client, body=ClaimWorkRequest(cpu_pct=10.0))
            if not isinstance(claim, ClaimWorkResponse):
                continue
            body = CompleteRunRequest(terminal_status=TerminalStatus.SUCCESS, validator_score=score_of(claim))
            complete_run.sync(claim.eval_run_id, client=client, body=body)
            done.append(claim)
            progressed = True
        if not progressed:
            return done
    raise AssertionError("work never ran out")


@pytest.fixture
def race_server(serve):
    return serve(race_required_successes=2, race_max_attempts=3, race_problems=3, required_successes=2)


def test_a_whole_race_through_the_official_client(race_server: LiveServer) -> None:
    server = race_server
    rt = server.runtime
    settings: Settings = rt.settings
    suite = make_suite(rt, problems=5)
    for name in ("Alice", "Bob", "Ferdie"):
        register(rt, name)
    for name in VALIDATORS:
        register(rt, name, Role.VALIDATOR)
    public = server.public()

    # given three miners on the board
    versions = {}
    for miner in MINERS:
        versions[miner] = submit_agent.sync(
            client=server.signed(miner), body=agent_file(miner.lower())
        ).agent_version_id
    qualifying = {v: MINERS[a][0] for a, v in versions.items()}
    _evaluate(server, lambda c: qualifying[c.agent_version_id])
    assert get_current_race.sync(client=public).race is None

    # when a race opens: one entry per miner, best qualifying score first
    rt.db.call(races.open_race, settings=settings)
    current = get_current_race.sync(client=public)
    assert isinstance(current, RaceCurrentResponse) and current.race.status == "QUALIFYING_OPEN"
    assert [q.agent_version_id for q in current.qualifiers] == [
        versions["Alice"],
        versions["Bob"],
        versions["Ferdie"],
    ]
    assert all(q.race_score is None and q.qualification_type == "SCORED" for q in current.qualifiers)
    commitment = current.race.additional_properties["seed_commitment"]

    # and a miner pins, unpins and pins again; another miner's version is not its to pin
    alice = server.signed("Alice")
    pin = MinerRaceSelectionRequest(agent_version_id=versions["Alice"])
    assert set_race_selection.sync_detailed(client=alice, body=pin).status_code == 204
    assert clear_race_selection.sync_detailed(client=alice).status_code == 204
    assert isinstance(clear_race_selection.sync(client=alice), NoSelectionError)
    other = MinerRaceSelectionRequest(agent_version_id=versions["Bob"])
    assert isinstance(set_race_selection.sync(client=alice, body=other), NotVersionOwnerError)
    assert set_race_selection.sync_detailed(client=alice, body=pin).status_code == 204

    # and qualifying closes: selections lock, the drawn problems are public
    race = rt.db.call(races.close_qualifying, settings=settings)
    locked = set_race_selection.sync(client=alice, body=pin)
    assert isinstance(locked, RaceLockedError) and "closed" in locked.detail
    assert isinstance(clear_race_selection.sync(client=alice), RaceLockedError)
    running = get_current_race.sync(client=public).race
    assert running.status == "RACE_RUNNING" and len(running.additional_properties["problem_ids"]) == 3

    # then validators claim race work (race_id set), scores stay embargoed until the end
    race_scores = {v: MINERS[a][1] for a, v in versions.items()}
    claims = _evaluate(server, lambda c: race_scores[c.agent_version_id])
    assert len(claims) == 6 and {c.race_id for c in claims} == {race.id}
    detail = get_race_detail.sync(race.id, client=public)
    assert isinstance(detail, RaceDetailResponse) and detail.race.status == "RACE_COMPLETE"

    # and the race completed with ranks and a winner
    ranked = [(q.race_rank, q.agent_version_id, q.race_score, q.miner_hotkey) for q in detail.qualifiers]
    hotkeys = {a: wallet(a).hotkey.ss58_address for a in versions}
    assert ranked == [
        (1, versions["Bob"], pytest.approx(0.9), hotkeys["Bob"]),
        (2, versions["Ferdie"], pytest.approx(0.7), hotkeys["Ferdie"]),
        (3, versions["Alice"], pytest.approx(0.55), hotkeys["Alice"]),
    ]
    assert (detail.race.winner_agent_version_id, detail.race.winner_agent_name) == (versions["Bob"], "bob")
    assert (detail.race.scored_count, detail.race.qualifier_count) == (3, 3)
    history = get_race_history.sync(client=public, limit=5)
    assert isinstance(history, RaceHistoryResponse) and [r.race_id for r in history.races] == [race.id]

    # and the weights computed from the detail by the validator's rule (written out independently)
    # are the graph's, and the services'
    finishers = [(q.miner_hotkey, str(q.agent_version_id), q.race_score) for q in detail.qualifiers]
    from_detail = [(hotkey, units) for hotkey, _, units in _expected_weights(finishers, 0.25, 0.75)]
    with server.http() as http:
        answer = http.post(
            "/graphql",
            json={
                "query": "query($id: ID!) { race(id: $id) { weights { minerHotkey units } } }",
                "variables": {"id": str(race.id)},
            },
        ).json()
    graph = [(w["minerHotkey"], w["units"]) for w in answer["data"]["race"]["weights"]]
    served = races.weights_of(rt.db.call(races.race_view, race.id), settings)
    assert from_detail == graph == [(w.miner_hotkey, w.units) for w in served]
    assert dict(graph) == {None: 65535, hotkeys["Bob"]: round(0.25 * 65535 / 0.75)}

    # and the top agent, its history and the race board name the winner
    top = get_top_agent.sync(client=public)
    assert (top.top_agent_version_id, top.top_miner_hotkey) == (versions["Bob"], hotkeys["Bob"])
    reigns = get_top_history.sync(client=public).entries
    assert [(e.agent_version_id, e.is_current_top) for e in reigns][:2] == [
        (versions["Bob"], True),
        (versions["Alice"], False),
    ]
    board = get_leaderboard.sync(client=public, score_type="race")
    assert [(e.rank, e.agent_version_id, e.race_score) for e in board.entries] == [
        (1, versions["Bob"], pytest.approx(0.9)),
        (2, versions["Ferdie"], pytest.approx(0.7)),
        (3, versions["Alice"], pytest.approx(0.55)),
    ]
    payout = get_top_miner_payout.sync(client=public)
    assert payout.miner_hotkey == hotkeys["Bob"] and payout.tao_per_day is None and payout.usd_per_day is None

    # and the revealed secret reproduces the draw
    revealed = detail.race.additional_properties["revealed_secret"]
    assert races.commitment_of(revealed) == commitment
    problems = [p.id for p in rt.db.call(suites.problems_for_suite, suite.id)]
    seed = races.draw_seed(revealed, [q.agent_version_id for q in detail.qualifiers])
    assert races.draw_problems(seed, problems, 3) == detail.race.additional_properties["problem_ids"]

    # and every validator scored every qualifier the same: no spread
    variance = get_race_validator_variance.sync(race.id, client=public)
    assert variance.n_pairs == 3 and variance.max_spread == 0.0
    assert [s.suite_id for s in list_suites.sync(client=public)] == [suite.id]


def test_an_unknown_race_is_the_declared_404(server: LiveServer) -> None:
    import uuid

    missing = get_race_detail.sync(uuid.uuid4(), client=server.public())
    assert isinstance(missing, RaceNotFoundError)
    assert isinstance(
        get_race_validator_variance.sync(uuid.uuid4(), client=server.public()), RaceNotFoundError
    )
    # history of an unknown suite: the client declares 200/422 only
    response = httpx.get(f"{server.base_url}/v1/public/races/history", params={"suite_id": 999})
    assert response.status_code in (200, 422), response.text


def test_the_scheduler_opens_a_race_and_deep_health_says_who_drives_it(serve) -> None:
    import time

    from tests.factories import make_suite

    server = serve(race_scheduler=True, race_scheduler_seconds=0.1)
    make_suite(server.runtime, problems=3)
    deadline = time.monotonic() + 120  # a loaded machine: the first tick comes late, never wrong
    while (race := get_current_race.sync(client=server.public()).race) is None:
        assert time.monotonic() < deadline, "the scheduler opened no race"
        time.sleep(0.1)
    assert race.status == "QUALIFYING_OPEN" and race.race_number == 1
    with server.http() as http:
        deep = http.get("/health/deep")
    assert deep.status_code == 200, deep.text
    checks = deep.json()["checks"]
    assert checks["scheduler"]["status"] == "ok" and ":" in checks["scheduler"]["holder"]
    assert checks["database"]["status"] == checks["storage"]["status"] == "ok"


def test_deep_health_names_what_failed(serve, tmp_path) -> None:
    server = serve(race_scheduler=True, race_scheduler_seconds=3600)  # ticks once at start, then sleeps
    # that first tick runs beside the server's start: until it has taken the scheduler's lease, the
    # deep check rightly says no process drives the scheduler
    deadline = time.monotonic() + 60  # a loaded machine: the first tick comes late
    while server.runtime.db.call(races.scheduler_lease) is None:  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, "the scheduler never took its lease"
        time.sleep(0.05)
    with server.http() as http:
        assert http.get("/health/deep").status_code == 200
    # the storage directory becomes a file: storage fails, and the answer says so
    import shutil

    root = server.runtime.storage.root  # type: ignore[attr-defined]
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    root.write_text("not a directory")
    with server.http() as http:
        deep = http.get("/health/deep")
    assert deep.status_code == 503 and deep.headers["retry-after"]
    assert deep.json()["checks"]["storage"]["status"] == "fail" and "storage" in deep.json()["detail"]


def test_paths_the_client_knows_but_this_server_does_not_serve(server: LiveServer) -> None:
    """Every unserved path answers 404 with the model the client declares there, saying why."""
    import uuid

    from oro_sdk.api.public import get_episode_feedback, get_race_seed_commitment
    from oro_sdk.models import ArtifactNotFoundError

    from rest_compat.unserved import UNSERVED

    feedback = get_episode_feedback.sync(uuid.uuid4(), client=server.public())
    assert isinstance(feedback, ArtifactNotFoundError) and "not served by this server" in feedback.detail
    seed = get_race_seed_commitment.sync(uuid.uuid4(), client=server.public())
    assert isinstance(seed, RaceNotFoundError) and "not served by this server" in seed.detail
    with server.http() as http:
        for method, path, error, _ in UNSERVED:
            for name, value in (
                ("episode_result_id", uuid.uuid4()),
                ("race_id", uuid.uuid4()),
                ("pack_sha256", "ab" * 32),
            ):
                path = path.replace("{" + name + "}", str(value))
            answer = http.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            body = answer.json()
            assert body["error_code"] == error.code.value and "not served by this server" in body["detail"]


def test_top_history_and_payout_answer_what_their_clients_declare(server: LiveServer) -> None:
    """top/history declares 200/422 and top-miner-payout 200 only: no suite is no 404."""
    with server.http() as http:
        history = http.get("/v1/public/top/history", params={"suite_id": 999})
        payout = http.get("/v1/public/top-miner-payout")
    assert history.status_code == 422 and history.json()["error_code"] == "SUITE_NOT_FOUND"
    assert payout.status_code == 200 and payout.json()["miner_hotkey"] is None
    assert isinstance(get_top_history.sync_detailed(client=server.public(), suite_id=999).parsed, object)


def _public_scores(server: LiveServer, version_id, run_id) -> dict[str, object]:
    """What the public REST paths show of one race run's scores."""
    public = server.public()
    listed = next(
        r for r in get_agent_version_runs.sync(version_id, client=public) if r.eval_run_id == run_id
    )
    detail = get_evaluation_run.sync(run_id, client=public)
    matrix = get_agent_version_problems.sync(version_id, client=public)
    results = [r for p in matrix.problems for r in p.validator_results if r.eval_run_id == run_id]
    assert len(results) == 2

    def value(v: object) -> object:
        return None if isinstance(v, Unset) or v is None else (v.to_dict() if hasattr(v, "to_dict") else v)

    return {
        "listed": (value(listed.validator_score), value(listed.score_components_summary)),
        "detail": (value(detail.score), value(detail.additional_properties.get("score_components_summary"))),
        "results": [(value(r.score), value(r.reasoning_score), value(r.score_components)) for r in results],
    }


def test_race_run_scores_are_embargoed_on_the_rest_paths_until_the_race_completes(
    race_server: LiveServer,
) -> None:
    # given two miners on the board and a race running on their versions
    server = race_server
    rt = server.runtime
    settings: Settings = rt.settings
    make_suite(rt, problems=5)
    for name in ("Alice", "Bob"):
        register(rt, name)
    for name in VALIDATORS:
        register(rt, name, Role.VALIDATOR)
    versions = {
        miner: submit_agent.sync(client=server.signed(miner), body=agent_file(miner.lower())).agent_version_id
        for miner in ("Alice", "Bob")
    }
    _evaluate(server, lambda c: 0.8 if c.agent_version_id == versions["Alice"] else 0.7)
    race = rt.db.call(races.open_race, settings=settings)
    drawn = rt.db.call(races.close_qualifying, settings=settings).problem_ids

    # when a validator works a race run through the official client: progress, then completion
    charlie = server.signed("Charlie")
    claim = claim_work.sync(client=charlie, body=ClaimWorkRequest(cpu_pct=10.0))
    assert isinstance(claim, ClaimWorkResponse) and claim.race_id == race.id
    report = ProgressUpdateRequest(
        problems=[
            ProblemProgressUpdate(problem_id=p, status=ProblemStatus.SUCCESS, score=0.9, reasoning_score=0.8)
            for p in drawn[:2]
        ]
    )
    progressed = update_progress.sync(claim.eval_run_id, client=charlie, body=report)
    body = CompleteRunRequest(terminal_status=TerminalStatus.SUCCESS, validator_score=0.66)
    completed = complete_run.sync_detailed(claim.eval_run_id, client=charlie, body=body)
    hidden = _public_scores(server, claim.agent_version_id, claim.eval_run_id)
    variance = get_race_validator_variance.sync(race.id, client=server.public())

    # then the lease holder's calls work as ever, and no public path shows the run's scores
    assert isinstance(progressed, ProgressUpdateResponse) and completed.status_code == 200
    assert hidden == {"listed": (None, None), "detail": (None, None), "results": [(None, None, None)] * 2}
    assert variance.n_pairs == 0 and variance.validators == [] and variance.max_spread is None
    # and a qualifying run's score still shows; each run says which race it is race work for
    runs = get_agent_version_runs.sync(versions["Alice"], client=server.public())
    assert any(r.validator_score == 0.8 for r in runs)
    raced = get_agent_version_runs.sync(claim.agent_version_id, client=server.public())
    assert {r.eval_run_id: r.race_id for r in raced}[claim.eval_run_id] == race.id
    assert {r.race_id for r in runs if r.validator_score == 0.8} == {None}

    # when the rest of the race work is done, the race completes and publishes them
    _evaluate(server, lambda c: 0.5)
    assert get_race_detail.sync(race.id, client=server.public()).race.status == "RACE_COMPLETE"
    shown = _public_scores(server, claim.agent_version_id, claim.eval_run_id)
    assert shown == {"listed": (0.66, None), "detail": (0.66, None), "results": [(0.9, 0.8, None)] * 2}
    assert get_race_validator_variance.sync(race.id, client=server.public()).n_pairs == 2
