"""Deterministic builders for test data: real keys, real services, explicit values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from substrateinterface import Keypair

from oro_graph.models import Role, RunStatus, Suite
from oro_graph.runtime import Runtime
from oro_graph.services import agents, evaluations, registry, suites
from oro_graph.services.agents import Admission

AGENT_SOURCE = b"def solve(problem):\n    return {'answer': problem['query']}\n"


@cache
def keypair(name: str) -> Keypair:
    """A real SR25519 keypair from a dev URI, e.g. keypair('Alice') is //Alice."""
    return Keypair.create_from_uri(f"//{name}")


def suite_json(n: int = 6, *, seed: str = "s") -> bytes:
    categories = ["Product", "Shop", "Voucher"]
    return json.dumps(
        [
            {
                "query": f"{seed} query {i}",
                "title": f"Problem {i + 1}",
                "category": categories[i % 3],
                "difficulty": "easy" if i % 2 == 0 else "medium",
                "reward": {"product_id": str(1000 + i)},
            }
            for i in range(n)
        ]
    ).encode()


def make_suite(rt: Runtime, *, problems: int = 6, activate: bool = True, seed: str = "s") -> Suite:
    return rt.db.call(suites.import_suite, suite_json(problems, seed=seed), activate=activate).suite


def register(rt: Runtime, name: str, role: Role = Role.MINER) -> str:
    kp = keypair(name)
    rt.db.call(registry.add_hotkey, kp.ss58_address, role=role, name=name)
    return kp.ss58_address


def submit(
    rt: Runtime,
    hotkey: str,
    agent_name: str = "agent",
    *,
    content: bytes = AGENT_SOURCE,
    now: datetime | None = None,
) -> Admission:
    return rt.db.call(
        agents.submit_agent,
        hotkey=hotkey,
        agent_name=agent_name,
        content=content,
        settings=rt.settings,
        storage=rt.storage,
        now=now,
    )


def claim(rt: Runtime, validator: str, *, now: datetime | None = None) -> evaluations.Claim | None:
    return rt.db.call(
        evaluations.claim_work, validator_hotkey=validator, settings=rt.settings, storage=rt.storage, now=now
    )


def complete(
    rt: Runtime,
    run_id: object,
    validator: str,
    *,
    score: float | None = 0.5,
    status: RunStatus = RunStatus.SUCCESS,
    now: datetime | None = None,
) -> evaluations.Completion:
    return rt.db.call(
        evaluations.complete_run,
        run_id=run_id,
        validator_hotkey=validator,
        terminal_status=status,
        validator_score=score,
        settings=rt.settings,
        now=now,
    )


@dataclass
class World:
    """A suite, two miners and three validators, all registered."""

    suite: Suite
    miners: list[str]
    validators: list[str]


def make_world(rt: Runtime) -> World:
    suite = make_suite(rt)
    miners = [register(rt, n) for n in ("Alice", "Bob")]
    validators = [register(rt, n, Role.VALIDATOR) for n in ("Charlie", "Dave", "Eve")]
    return World(suite, miners, validators)


def world_with_a_version(rt: Runtime, name: str = "a") -> World:
    """``make_world`` and one version, submitted by the first miner, waiting for its runs."""
    world = make_world(rt)
    submit(rt, world.miners[0], name)
    return world


def make_eligible(
    rt: Runtime, world: World, miner: str, name: str, scores: list[float], *, now: datetime | None = None
) -> object:
    """Submit a version and drive it to ELIGIBLE with one successful run per score."""
    admission = submit(rt, miner, name, now=now)
    for validator, score in zip(world.validators, scores, strict=False):
        c = claim(rt, validator, now=now)
        assert c is not None and c.run.agent_version_id == admission.agent_version_id
        complete(rt, c.run.id, validator, score=score, now=now)
    return admission.agent_version_id
