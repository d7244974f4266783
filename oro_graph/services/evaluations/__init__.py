"""The evaluation lifecycle: claim, heartbeat, progress, complete, and lease expiry.

One module per concept; everything is re-exported here, so callers write ``evaluations.claim_work``.
"""

from oro_graph.services.evaluations.claim import Claim, claim_work
from oro_graph.services.evaluations.completion import Completion, complete_run
from oro_graph.services.evaluations.lease import (
    TERMINAL_STATUSES,
    ExpiryReport,
    Metrics,
    expire_leases,
    heartbeat,
    live_run_for_upload,
    release_run,
)
from oro_graph.services.evaluations.progress import (
    MAX_PROBLEMS_PER_UPDATE,
    ProblemUpdate,
    RunProblem,
    run_problems,
    update_progress,
)
from oro_graph.services.evaluations.reads import (
    ProblemMatrix,
    RunView,
    VersionRuns,
    get_run,
    liveness_by_run_ids,
    problem_matrix,
    results_by_ids,
    results_by_run_ids,
    run_view,
    runs_by_ids,
    runs_by_version_ids,
    runs_of_version,
    version_runs,
)

__all__ = [
    "MAX_PROBLEMS_PER_UPDATE",
    "TERMINAL_STATUSES",
    "Claim",
    "Completion",
    "ExpiryReport",
    "Metrics",
    "ProblemMatrix",
    "ProblemUpdate",
    "RunProblem",
    "RunView",
    "VersionRuns",
    "claim_work",
    "complete_run",
    "expire_leases",
    "get_run",
    "heartbeat",
    "live_run_for_upload",
    "liveness_by_run_ids",
    "problem_matrix",
    "release_run",
    "results_by_ids",
    "results_by_run_ids",
    "run_problems",
    "run_view",
    "runs_by_ids",
    "runs_by_version_ids",
    "runs_of_version",
    "update_progress",
    "version_runs",
]
