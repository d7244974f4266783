from datetime import timedelta

import pytest
from sqlmodel import select

from oro_graph.errors import (
    AgentNotFound,
    AgentVersionNotFound,
    CooldownActive,
    FileTooLarge,
    Forbidden,
    InvalidAgentName,
    InvalidFile,
    NoActiveSuite,
    RateLimitExceeded,
)
from oro_graph.models import AgentVersion, AgentVersionState, Role, WorkItem, utcnow
from oro_graph.services import agents, registry
from tests.factories import make_suite, make_world, register, submit


def _count(rt, model):
    with rt.db.session() as s:
        return len(s.exec(select(model)).all())


def test_submit_accepted_creates_version_and_work_item(runtime):
    # given
    world = make_world(runtime)
    now = utcnow()
    # when
    admission = submit(runtime, world.miners[0], "alpha", now=now)
    # then
    assert admission.status == "ACCEPTED"
    assert admission.version_number == 1
    assert admission.next_allowed_at == now + timedelta(seconds=runtime.settings.submission_cooldown_seconds)
    view = runtime.db.call(agents.version_view, admission.agent_version_id)
    assert view.version.state == AgentVersionState.QUEUED
    assert view.version.suite_id == world.suite.id
    assert view.work_item.required_successes == runtime.settings.required_successes
    assert runtime.storage.get(view.version.code_key).startswith(b"def solve")


def test_submit_same_name_makes_next_version_of_same_agent(runtime):
    world = make_world(runtime)
    t0 = utcnow()
    first = submit(runtime, world.miners[0], "alpha", now=t0)
    second = submit(runtime, world.miners[0], "alpha", now=t0 + timedelta(hours=2))
    assert second.agent_id == first.agent_id
    assert (first.version_number, second.version_number) == (1, 2)


def test_submit_cooldown_reports_remaining_seconds(runtime):
    world = make_world(runtime)
    t0 = utcnow()
    submit(runtime, world.miners[0], "alpha", now=t0)
    with pytest.raises(CooldownActive) as err:
        submit(runtime, world.miners[0], "beta", now=t0 + timedelta(seconds=600))
    assert err.value.extra["remaining_seconds"] == 3000
    assert _count(runtime, AgentVersion) == 1


def test_over_the_submit_limit_the_cooldown_answer_wins(runtime):
    # given: a miner over its submission request budget (the edge says retry in 7 s)
    world = make_world(runtime)
    miner, t0 = world.miners[0], utcnow()
    # when / then: before any submission there is no cooldown, so the budget answers
    with pytest.raises(RateLimitExceeded) as limited:
        runtime.db.call(agents.refuse_over_limit, miner, retry_in=7, settings=runtime.settings, now=t0)
    assert limited.value.extra["remaining_seconds"] == 7
    # when / then: inside a cooldown, the cooldown answers (it says when a submission is accepted)
    submit(runtime, miner, "alpha", now=t0)
    with pytest.raises(CooldownActive) as cooling:
        runtime.db.call(
            agents.refuse_over_limit,
            miner,
            retry_in=7,
            settings=runtime.settings,
            now=t0 + timedelta(seconds=600),
        )
    assert cooling.value.extra["remaining_seconds"] == 3000


@pytest.mark.parametrize(
    ("content", "error", "needle"),
    [
        (b"x" * 2_000_000, FileTooLarge, "limit"),
        (b"\xff\xfe not utf8", InvalidFile, "UTF-8"),
        (b"def broken(:\n    pass\n", InvalidFile, "line 1"),
        (b"ok = 1\n\x00", InvalidFile, "NUL"),
        (b"   \n", InvalidFile, "empty"),
    ],
)
def test_submit_rejects_bad_files_and_writes_nothing(runtime, content, error, needle):
    world = make_world(runtime)
    with pytest.raises(error) as err:
        submit(runtime, world.miners[0], "alpha", content=content)
    assert needle in err.value.detail
    assert _count(runtime, AgentVersion) == 0
    assert _count(runtime, WorkItem) == 0


@pytest.mark.parametrize("name", ["", "has space", "-leading", "x" * 65, "semi;colon", "ünï"])
def test_submit_rejects_bad_agent_names(runtime, name):
    world = make_world(runtime)
    with pytest.raises(InvalidAgentName) as err:
        submit(runtime, world.miners[0], name)
    assert "letters, digits" in err.value.detail


def test_submit_without_active_suite(runtime):
    make_suite(runtime, activate=False)
    miner = register(runtime, "Alice")
    with pytest.raises(NoActiveSuite):
        submit(runtime, miner, "alpha")


def test_submit_unregistered_and_banned_are_rejected_admissions(runtime):
    make_world(runtime)
    from tests.factories import keypair

    stranger = keypair("Ferdie").ss58_address
    assert submit(runtime, stranger, "alpha").reason == "NOT_REGISTERED_ONCHAIN"
    banned = register(runtime, "Ferdie")
    runtime.db.call(registry.set_banned, banned)
    rejected = submit(runtime, banned, "alpha")
    assert (rejected.status, rejected.reason, rejected.agent_version_id) == ("REJECTED", "BANNED", None)
    assert _count(runtime, AgentVersion) == 0


def test_submit_by_validator_is_forbidden(runtime):
    world = make_world(runtime)
    with pytest.raises(Forbidden):
        submit(runtime, world.validators[0], "alpha")


def test_owner_scoped_reads_hide_other_miners(runtime):
    world = make_world(runtime)
    admission = submit(runtime, world.miners[0], "alpha")
    with pytest.raises(AgentVersionNotFound):
        runtime.db.call(agents.get_version, admission.agent_version_id, owner=world.miners[1])
    with pytest.raises(AgentNotFound):
        runtime.db.call(agents.get_agent, admission.agent_id, owner=world.miners[1])
    assert runtime.db.call(agents.get_version, admission.agent_version_id, owner=world.miners[0]).id == (
        admission.agent_version_id
    )


def test_registry_roles(runtime):
    world = make_world(runtime)
    runtime.db.call(registry.require_role, world.validators[0], Role.VALIDATOR)
    with pytest.raises(Forbidden, match="validator permit"):
        runtime.db.call(registry.require_role, world.miners[0], Role.VALIDATOR)
    with pytest.raises(Forbidden, match="for miners"):
        runtime.db.call(registry.require_role, world.validators[0], Role.MINER)
    runtime.db.call(registry.set_banned, world.miners[0])
    with pytest.raises(Forbidden, match="banned"):
        runtime.db.call(registry.require_role, world.miners[0], Role.MINER)
    from tests.factories import keypair

    with pytest.raises(Forbidden, match="not registered"):
        runtime.db.call(registry.require_role, keypair("Ferdie").ss58_address, Role.MINER)
