"""The status vocabularies on the enums: every status is either live or ended, never both."""

from oro_graph.models import AgentVersionState, ProblemStatus, RunStatus


def test_run_statuses_split_into_live_and_ended():
    assert set(RunStatus.live()) | set(RunStatus.ended()) == set(RunStatus)
    assert not set(RunStatus.live()) & set(RunStatus.ended())
    assert set(RunStatus.failed()) < set(RunStatus.finished()) < set(RunStatus.ended())
    assert [s for s in RunStatus if s.is_live] == [RunStatus.CLAIMED, RunStatus.RUNNING]
    assert RunStatus.STALE.is_ended and not RunStatus.STALE.is_live


def test_problem_and_version_sets():
    assert [s for s in ProblemStatus if not s.is_finished] == [ProblemStatus.PENDING, ProblemStatus.RUNNING]
    assert not set(AgentVersionState.evaluating()) & set(AgentVersionState.settled())
