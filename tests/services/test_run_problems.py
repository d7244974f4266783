"""A run's whole problems: kept by the import, read only by the validator holding the run (both databases)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import delete

from oro_graph.errors import EvalRunNotFound
from oro_graph.models import ProblemSource, Role, utcnow
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, suites
from tests.factories import claim, complete, register, submit

ITEMS = [
    {
        "query": "a waist bag under 500",
        "title": "Product 1",
        "category": "Product",
        "difficulty": "easy",
        "reward": {"product_id": "5035687794", "title": ["Waist Bag"]},
        "reward_title_embeddings": {"Waist Bag": [0.25, -0.5]},
    },
    {
        "query": "cheese with a 10% voucher",
        "title": "Voucher 1",
        "category": "Voucher",
        "voucher": {"voucher_type": "platform", "discount": 0.1, "price_after_voucher": 74.0},
        "reward": [{"product_id": "1586232491"}],
        "extra_hint": {"budget": 82},
    },
]
RAW = json.dumps(ITEMS).encode()


def _world(rt: Runtime) -> tuple[str, str]:
    rt.db.call(suites.import_suite, RAW, activate=True)
    miner = register(rt, "Alice")
    validators = [register(rt, name, Role.VALIDATOR) for name in ("Charlie", "Dave")]
    submit(rt, miner, "alpha")
    return validators[0], validators[1]


def _problems(rt: Runtime, run_id: object, validator: str, **kw: object) -> list[evaluations.RunProblem]:
    return rt.db.call(evaluations.run_problems, run_id=run_id, validator_hotkey=validator, **kw)


def test_the_holder_reads_each_problem_whole_and_public_metadata_hides_the_answers(runtime: Runtime) -> None:
    charlie, _ = _world(runtime)
    run = claim(runtime, charlie).run

    found = _problems(runtime, run.id, charlie)

    assert [p.metadata for p in found] == ITEMS
    assert [p.problem.position for p in found] == [0, 1]
    public = [suites.served_metadata(p.problem) for p in found]
    assert public == [None, {"extra_hint": {"budget": 82}}]


def test_everyone_else_is_told_not_found(runtime: Runtime) -> None:
    charlie, dave = _world(runtime)
    t0 = utcnow()
    run = claim(runtime, charlie, now=t0).run

    with pytest.raises(EvalRunNotFound, match="another validator"):
        _problems(runtime, run.id, dave)
    with pytest.raises(EvalRunNotFound, match="lapsed"):
        _problems(runtime, run.id, charlie, now=t0 + timedelta(seconds=runtime.settings.lease_seconds + 1))
    complete(runtime, run.id, charlie, score=0.5)
    with pytest.raises(EvalRunNotFound, match="complete"):
        _problems(runtime, run.id, charlie)


def test_importing_the_file_again_restores_whole_problems_kept_before_they_were(runtime: Runtime) -> None:
    charlie, _ = _world(runtime)
    run = claim(runtime, charlie).run
    runtime.db.call(lambda s: s.exec(delete(ProblemSource)))  # a suite imported before the table existed

    rebuilt = _problems(runtime, run.id, charlie)
    again = runtime.db.call(suites.import_suite, RAW)
    restored = _problems(runtime, run.id, charlie)

    # rebuilt from the columns: everything but the title embeddings, which were dropped then
    assert rebuilt[0].metadata == {k: v for k, v in ITEMS[0].items() if k != "reward_title_embeddings"}
    assert rebuilt[1].metadata == ITEMS[1]
    assert again.created is False
    assert [p.metadata for p in restored] == ITEMS
