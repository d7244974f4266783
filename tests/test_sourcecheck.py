"""The agent-file parser pool: hostile files are INVALID_FILE, and no file can take it down."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from oro_graph.errors import InvalidFile, ServiceUnavailable
from oro_graph.services import agents
from oro_graph.sourcecheck import SourceParser

MEMORY_BOMB = "-" * 100_000 + "1"  # ast.parse: MemoryError
RECURSION_BOMB = "x" + "[0]" * 300_000  # ast.parse: RecursionError


@pytest.fixture
def pool() -> Iterator[SourceParser]:
    parser = SourceParser(workers=2, memory_mb=512, cpu_seconds=10)
    try:
        yield parser
    finally:
        parser.close()


def test_valid_python_passes_and_syntax_errors_name_the_line(pool: SourceParser) -> None:
    pool.check("def solve(x):\n    return x\n")
    with pytest.raises(InvalidFile, match="not valid Python: .* at line 2"):
        pool.check("x = 1\ndef broken(:\n")


@pytest.mark.parametrize("bomb", [MEMORY_BOMB, RECURSION_BOMB], ids=["memory", "recursion"])
def test_parser_bombs_are_invalid_file_and_the_worker_is_replaced(pool: SourceParser, bomb: str) -> None:
    pool.check("x = 1\n")
    before = pool.pids()

    with pytest.raises(InvalidFile, match="parse"):
        pool.check(bomb)

    assert pool.restarts == 1
    assert set(pool.pids()).isdisjoint(before)  # the worker that met the bomb is gone
    pool.check("y = 2\n")  # and a fresh one serves the next file


def test_a_killed_worker_is_replaced(pool: SourceParser) -> None:
    pool.check("x = 1\n")
    (pid,) = pool.pids()
    os.kill(pid, signal.SIGKILL)

    pool.check("x = 2\n")  # the file is parsed by a fresh worker all the same

    assert pid not in pool.pids()
    assert pool.restarts == 1


def test_a_parse_over_its_cpu_time_is_invalid_and_its_worker_replaced() -> None:
    parser = SourceParser(workers=1, memory_mb=2048, cpu_seconds=1)
    parser.timeout = 300  # the wall-clock backstop out of the way: a loaded machine must not decide
    try:
        parser.check("x = 1\n")
        with pytest.raises(InvalidFile, match=r"more than 1 s of CPU to parse"):
            parser.check("x = [" + "1, " * 1_000_000 + "]\n")  # several seconds of CPU
        assert parser.pids() == [] and parser.restarts == 1
        parser.check("y = 2\n")  # a fresh worker, with a fresh CPU budget
    finally:
        parser.close()


def test_a_worker_that_does_not_answer_in_time_is_killed() -> None:
    parser = SourceParser(workers=1, memory_mb=512, cpu_seconds=5)
    parser.timeout = 0.01  # the wall-clock backstop, for a worker that is stuck or starved
    try:
        with pytest.raises(InvalidFile, match=r"longer than 0.01 s to parse"):
            parser.check("x = [" + "1, " * 300_000 + "]\n")
        assert parser.pids() == [] and parser.restarts == 1
    finally:
        parser.close()


def test_a_saturated_pool_answers_service_unavailable() -> None:
    parser = SourceParser(workers=1, memory_mb=512, cpu_seconds=0.02)  # a backstop of 1 s
    slot = parser._idle.get()  # the only slot, held as a parse in progress would hold it
    try:
        with pytest.raises(ServiceUnavailable, match="busy"):
            parser.check("x = 1\n")
    finally:
        parser._idle.put(slot)
        parser.close()


def test_concurrent_bombs_and_files_each_get_their_own_answer(pool: SourceParser) -> None:
    sources = [MEMORY_BOMB, "a = 1\n", RECURSION_BOMB, "b = 2\n", "def (:\n", "c = 3\n"]
    answers: dict[int, str] = {}

    def one(i: int) -> None:
        try:
            pool.check(sources[i])
            answers[i] = "ok"
        except InvalidFile as exc:
            answers[i] = str(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(sources))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [answers[i] == "ok" for i in range(len(sources))] == [False, True, False, True, False, True]
    assert "not valid Python" in answers[4]


def test_the_in_process_parse_of_trusted_callers_refuses_bombs_too() -> None:
    for bomb in (MEMORY_BOMB, RECURSION_BOMB):
        with pytest.raises(InvalidFile, match="too complex"):
            agents.parse_in_process(bomb)
