"""Score and validator-reliability metrics over tidy ORO frames.

Pure pandas/numpy/scipy: no I/O, no wall clock, and every random draw comes from
``numpy.random.default_rng(seed)``. Inputs are the long frames of ``oro_graph.analytics``:

- runs: run_id, agent_version_id, validator_hotkey, suite_id, status, claimed_at, completed_at,
  last_heartbeat_at, lease_expires_at, validator_score, is_included
- results (one row per problem of a run): run_id, agent_version_id, validator_hotkey, problem_id,
  category, difficulty, status, score, execution_time
- leaderboard: agent_version_id, agent_name, miner_hotkey, rank, final_score, eligible_at

Each function names the columns it needs and raises ``ValueError`` listing any that are missing.
An empty input gives an empty frame that still has every output column. Statuses may be strings
or categoricals; they are compared by upper-case name.
"""

from __future__ import annotations

from oro_graph.analytics.metrics.activity import (
    freshness,
)
from oro_graph.analytics.metrics.agreement import (
    consensus_agreement,
    icc2_1,
    krippendorff_alpha,
    leave_one_out_alpha,
    pairwise_agreement,
    validators_needed,
)
from oro_graph.analytics.metrics.common import (
    FINISHED_RUN_STATUSES,
    FLAG_COLUMNS,
    OPEN_STATUSES,
    RESULT_STATUSES,
    RUN_STATUSES,
    FloatArray,
    Frame,
    wilson_interval,
)
from oro_graph.analytics.metrics.flags import (
    validator_flags,
)
from oro_graph.analytics.metrics.scores import (
    bootstrap_scores,
    category_profile,
    item_analysis,
    top_margin,
)
from oro_graph.analytics.metrics.statuses import (
    duration_stats,
    excess_timeouts,
    lease_health,
    run_outcomes,
    status_mix,
    timeout_loss,
)
from oro_graph.analytics.metrics.variance import (
    consensus_trust,
    pair_spread,
    peer_deltas,
    score_matrix,
    validator_deltas,
    validator_scores,
)

__all__ = [
    "FINISHED_RUN_STATUSES",
    "FLAG_COLUMNS",
    "FloatArray",
    "Frame",
    "OPEN_STATUSES",
    "RESULT_STATUSES",
    "RUN_STATUSES",
    "bootstrap_scores",
    "category_profile",
    "consensus_agreement",
    "consensus_trust",
    "duration_stats",
    "excess_timeouts",
    "freshness",
    "icc2_1",
    "item_analysis",
    "krippendorff_alpha",
    "lease_health",
    "leave_one_out_alpha",
    "pair_spread",
    "pairwise_agreement",
    "peer_deltas",
    "run_outcomes",
    "score_matrix",
    "status_mix",
    "timeout_loss",
    "top_margin",
    "validator_deltas",
    "validator_flags",
    "validator_scores",
    "validators_needed",
    "wilson_interval",
]
