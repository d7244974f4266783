"""Every frame's columns and their dtypes, in a fixed order."""

from __future__ import annotations

from typing import Final

from oro_graph.analytics.frames.common import RUN_STATUSES

SUITE_COLUMNS: Final = {
    "suite_id": "int",
    "version": "int",
    "is_active": "bool",
    "execution_kind": "category",
    "benchmark_name": "str",
    "benchmark_number": "int",
    "created_at": "datetime",
}
PROBLEM_COLUMNS: Final = {
    "suite_id": "int",
    "problem_id": "str",
    "position": "int",
    "title": "str",
    "category": "category",
    "difficulty": "category",
    "query": "str",
}
AGENT_VERSION_COLUMNS: Final = {
    "agent_version_id": "str",
    "agent_id": "str",
    "agent_name": "str",
    "miner_hotkey": "str",
    "version_number": "int",
    "suite_id": "int",
    "state": "category",
    "release_state": "category",
    "submitted_at": "datetime",
    "eligible_at": "datetime",
    "discarded_at": "datetime",
    "final_score": "float",
    "code_sha256": "str",
    "code_size": "int",
}
RUN_COLUMNS: Final = {
    "run_id": "str",
    "agent_version_id": "str",
    "work_item_id": "str",
    "suite_id": "int",
    "validator_hotkey": "str",
    "status": "category",
    "claimed_at": "datetime",
    "lease_expires_at": "datetime",
    "last_heartbeat_at": "datetime",
    "completed_at": "datetime",
    "validator_score": "float",
    "is_included": "bool",
    "failure_reason": "str",
    "inference_failure_count": "int",
    "inference_total": "int",
    "race_id": "str",  # a race run's race (it evaluates the race's drawn problems); null: qualifying
}
PROBLEM_RESULT_COLUMNS: Final = {
    "run_id": "str",
    "agent_version_id": "str",
    "validator_hotkey": "str",
    "suite_id": "int",
    "run_status": "category",
    "run_is_included": "bool",
    "problem_id": "str",
    "position": "int",
    "category": "category",
    "difficulty": "category",
    "status": "category",
    "score": "float",
    "reasoning_score": "float",
    "execution_time": "float",
    "inference_failure_count": "int",
    "inference_total": "int",
    "updated_at": "datetime",
    "race_id": "str",  # its run's race; null for qualifying runs
}
LEADERBOARD_COLUMNS: Final = {
    "suite_id": "int",
    "rank": "int",
    "agent_version_id": "str",
    "agent_name": "str",
    "miner_hotkey": "str",
    "version_number": "int",
    "final_score": "float",
    "eligible_at": "datetime",
    "is_current_top": "bool",
    "was_top": "bool",
    "top_at": "datetime",
}
TOP_AGENT_COLUMNS: Final = {
    "suite_id": "int",
    "computed_at": "datetime",
    "top_agent_version_id": "str",
    "top_miner_hotkey": "str",
    "top_score": "float",
    "top_at": "datetime",
    "challenge_threshold": "float",
}
TOP_HISTORY_COLUMNS: Final = {
    "suite_id": "int",
    "agent_version_id": "str",
    "score": "float",
    "top_at": "datetime",
    "replaced_at": "datetime",
}
VALIDATOR_COLUMNS: Final = {
    "hotkey": "str",
    "name": "str",
    "status": "category",
    "registered_at": "datetime",
    "last_claim_at": "datetime",
    "last_seen_at": "datetime",
    "cpu_pct": "float",
    "ram_pct": "float",
    "disk_pct": "float",
    "docker_container_count": "int",
    "metrics_reported_at": "datetime",
    "current_run_id": "str",
}
PROBLEM_STATS_COLUMNS: Final = {
    "problem_id": "str",
    "position": "int",
    "attempts": "int",
    "passes": "int",
    "timeouts": "int",
    "versions": "int",
    "pass_rate": "float",
    "timeout_rate": "float",
    "mean_score": "float",
    "median_score": "float",
    "mean_duration_seconds": "float",
    "discrimination": "float",
}
RELIABILITY_COLUMNS: Final = {
    "hotkey": "str",
    "runs": "int",
    **{f"n_{s.lower()}": "int" for s in RUN_STATUSES},
    "success_rate": "float",
    "failed_rate": "float",
    "timed_out_rate": "float",
    "stale_rate": "float",
    "duration_p50_seconds": "float",
    "duration_p95_seconds": "float",
    "mean_delta_vs_peers": "float",
    "delta_sd": "float",
    "versions_compared": "int",
    "pairs_evaluated": "int",
    "last_activity_at": "datetime",
}
VARIANCE_COLUMNS: Final = {
    "suite_id": "int",
    "versions": "int",
    "mean_spread": "float",
    "max_spread": "float",
}
SPREAD_BUCKET_COLUMNS: Final = {"label": "str", "versions": "int"}
VALIDATOR_DELTA_COLUMNS: Final = {
    "hotkey": "str",
    "mean_delta": "float",
    "delta_sd": "float",
    "versions_compared": "int",
    "pairs_evaluated": "int",
}
SCORE_INTERVAL_COLUMNS: Final = {
    "agent_version_id": "str",
    "mean": "float",
    "lower": "float",
    "upper": "float",
    "n_problems": "int",
    "n_draws": "int",
}
