"""Invariants of the lifecycle, checked with SQL over the whole database.

Used after race and crash tests, by benchmarks (over-claims) and by ``oro-graph db check``.
Each query counts violations; a healthy database answers zero for every one.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlmodel import Session

INVARIANTS: dict[str, str] = {
    "over_claimed_work_items": (
        "SELECT count(*) FROM workitem WHERE included_successes + active_runs > required_successes"
    ),
    "active_runs_mismatch": (
        "SELECT count(*) FROM workitem w WHERE active_runs <> (SELECT count(*) FROM evaluationrun r "
        "WHERE r.work_item_id = w.id AND r.status IN ('CLAIMED', 'RUNNING'))"
    ),
    "included_successes_mismatch": (
        "SELECT count(*) FROM workitem w WHERE included_successes <> (SELECT count(*) FROM evaluationrun r "
        "WHERE r.work_item_id = w.id AND r.is_included)"
    ),
    "included_runs_not_successful": (
        "SELECT count(*) FROM evaluationrun WHERE is_included AND status <> 'SUCCESS'"
    ),
    "duplicate_validator_runs": (
        # A run released for want of an inference token (CANCELLED) counts as no attempt.
        "SELECT count(*) FROM (SELECT work_item_id, validator_hotkey FROM evaluationrun "
        "WHERE status <> 'CANCELLED' "
        "GROUP BY work_item_id, validator_hotkey HAVING count(*) > 1) d"
    ),
    "eligible_score_not_mean_of_included": (
        "SELECT count(*) FROM agentversion v WHERE v.state = 'ELIGIBLE' AND (v.final_score IS NULL OR "
        "abs(v.final_score - (SELECT avg(r.validator_score) FROM evaluationrun r "
        "WHERE r.agent_version_id = v.id AND r.is_included AND r.race_id IS NULL)) > 1e-9)"
    ),
    "eligible_without_closed_work_item": (
        "SELECT count(*) FROM agentversion v JOIN workitem w ON w.agent_version_id = v.id "
        "WHERE v.state = 'ELIGIBLE' AND NOT w.is_closed AND w.race_id IS NULL"
    ),
    "several_current_top_agents": (
        "SELECT count(*) FROM (SELECT suite_id FROM topagenthistory WHERE replaced_at IS NULL "
        "GROUP BY suite_id HAVING count(*) > 1) t"
    ),
    "validators_over_capacity": (
        "SELECT count(*) FROM (SELECT validator_hotkey FROM evaluationrun "
        "WHERE status IN ('CLAIMED', 'RUNNING') "
        "GROUP BY validator_hotkey HAVING count(*) > :max_active) c"
    ),
}


def check_invariants(session: Session, *, max_active_runs_per_validator: int) -> dict[str, int]:
    """Violations per invariant (all zero when the lifecycle held)."""
    params = {"max_active": max_active_runs_per_validator}
    return {name: int(session.execute(text(sql), params).scalar_one()) for name, sql in INVARIANTS.items()}
