"""The benchmark's reading of where the machine's CPU goes (``benchmarks.machinecpu``)."""

from __future__ import annotations

import os

import pytest

from benchmarks import machinecpu


def test_each_group_counts_the_processes_both_readings_saw() -> None:
    first = (10.0, 100.0, {1: ("servers", 5.0), 2: ("postgres", 1.0), 3: ("postgres", 2.0)})
    # 2 s later: pid 3 has gone, pid 4 came; the machine was busy 3.5 s in all
    second = (12.0, 103.5, {1: ("servers", 7.0), 2: ("postgres", 1.5), 4: ("load", 0.2)})
    cores = machinecpu.cores_between(first, second)
    assert cores is not None
    assert cores["servers"] == 1.0 and cores["postgres"] == 0.25 and cores["load"] == 0.0
    assert cores["other"] == 0.5  # 3.5 busy - 2.5 counted, over 2 s: what came or went, the kernel
    assert cores["busy"] == 1.75 and cores["cores"] == float(os.cpu_count() or 1)


@pytest.mark.postgres
def test_a_reading_finds_this_process_and_postgresql() -> None:
    _wall, busy, found = machinecpu.reading(frozenset({os.getpid()}))
    assert busy > 0
    assert found[os.getpid()][0] == "servers"
    assert "postgres" in {group for group, _seconds in found.values()}
