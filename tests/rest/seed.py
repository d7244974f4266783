"""A small, fully known state built through the services, so REST tests can assert exact values.

Alice's "alpha" v1 is ELIGIBLE (Charlie scored 0.6, Dave 0.8: final 0.7), with per-problem results
for the suite's first problem; Bob's "beta" v1 is RUNNING under Eve's lease. Charlie and Dave are idle.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass

from oro_sdk.models import BodySubmitAgent
from oro_sdk.types import File

from oro_graph.models import Problem, ProblemStatus
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, suites
from tests.factories import AGENT_SOURCE, World, claim, complete, make_world, submit


@dataclass
class Seeded:
    world: World
    problems: list[Problem]
    alice: str
    bob: str
    charlie: str
    dave: str
    eve: str
    alpha_agent: uuid.UUID
    alpha: uuid.UUID  # ELIGIBLE, final score 0.7
    alpha_runs: list[uuid.UUID]  # Charlie's, then Dave's
    beta_agent: uuid.UUID
    beta: uuid.UUID  # RUNNING
    beta_run: uuid.UUID  # Eve's, CLAIMED


def progress(rt: Runtime, run_id: uuid.UUID, validator: str, problem: Problem, score: float) -> None:
    update = evaluations.ProblemUpdate(
        problem_id=problem.id, status=ProblemStatus.SUCCESS, score=score, execution_time=1.5, logs_key=None
    )
    rt.db.call(evaluations.update_progress, run_id=run_id, validator_hotkey=validator, problems=[update])


def seed(rt: Runtime) -> Seeded:
    world = make_world(rt)
    problems = rt.db.call(suites.problems_for_suite, world.suite.id or 0)
    alice, bob = world.miners
    charlie, dave, eve = world.validators
    alpha = submit(rt, alice, "alpha")
    runs = []
    for validator, score in ((charlie, 0.6), (dave, 0.8)):
        c = claim(rt, validator)
        assert c is not None and c.run.agent_version_id == alpha.agent_version_id
        progress(rt, c.run.id, validator, problems[0], score)
        complete(rt, c.run.id, validator, score=score)
        runs.append(c.run.id)
    beta = submit(rt, bob, "beta")
    c = claim(rt, eve)
    assert c is not None and c.run.agent_version_id == beta.agent_version_id
    assert alpha.agent_id and alpha.agent_version_id and beta.agent_id and beta.agent_version_id
    return Seeded(
        world, problems, alice, bob, charlie, dave, eve,
        alpha.agent_id, alpha.agent_version_id, runs,
        beta.agent_id, beta.agent_version_id, c.run.id,
    )  # fmt: skip


def agent_file(agent_name: str = "agent", content: bytes = AGENT_SOURCE) -> BodySubmitAgent:
    """A submission body as the client builds it (multipart, with its fixed boundary)."""
    payload = File(payload=io.BytesIO(content), file_name="agent.py", mime_type="text/x-python")
    return BodySubmitAgent(agent_name=agent_name, file=payload)
