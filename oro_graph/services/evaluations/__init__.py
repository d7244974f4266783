"""The evaluation lifecycle: claim, heartbeat, progress, complete, and lease expiry.

One module per concept (``claim``, ``lease``, ``progress``, ``completion``, ``reads``); everything is
re-exported here, so callers write ``evaluations.claim_work``. The four validator calls check the
signer's validator permit themselves, in their own transaction (``registry.role_columns`` read in
their first statement), so every adapter gets the rule; each is one transaction of a few Core
statements (``tests/services/test_validator_statements.py`` pins how many), except the claim's sweep
of lapsed leases, committed on its own (``claim.sweep_lapsed_leases`` says why).
"""

from oro_graph.services.evaluations.claim import Claim, claim_work
from oro_graph.services.evaluations.completion import Completion, complete_run
from oro_graph.services.evaluations.lease import (
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
