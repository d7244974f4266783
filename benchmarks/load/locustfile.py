"""Mixed realistic traffic for ``python -m benchmarks load`` (locust, headless, its own process).

Three kinds of user, spread over the servers in ``ORO_LOAD_HOSTS`` (comma-separated base URLs):

- ``Validator`` (``fixed_count`` = ``ORO_LOAD_VALIDATORS``): each owns one registered key
  (``ORO_LOAD_KEY_PREFIX`` + its index, an SR25519 dev URI) and loops through the signed REST
  protocol: claim, heartbeat, progress in two batches, heartbeat, complete (mostly SUCCESS, some
  FAILED or TIMED_OUT). A 204 on claim (no work) and a 409 AT_CAPACITY are the protocol, not failures.
- ``Analyst`` (weight 1): GraphQL: the leaderboard with edges and nested runs, paged; evaluation runs
  paged by cursor under a filter; every validator's reliability; one validator's window and runs.
- ``PublicReader`` (weight 3): ``GET /v1/public/leaderboard`` (pages, searches), ``/top``,
  ``/suites/current`` and the suite's problems.

Any other status, a GraphQL ``errors`` entry, or an answer missing what was asked is a failure.
When locust quits, the figures (per request: count, failures, p50/p99, statuses) are written as
JSON to ``ORO_LOAD_SUMMARY`` for the harness (``benchmarks/load/runner.py``).
"""

from __future__ import annotations

import itertools
import json
import os
import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import gevent
from locust import FastHttpUser, between, events, task
from locust.contrib.fasthttp import FastResponse, ResponseContextManager
from substrateinterface import Keypair

from oro_graph.auth import sign_headers

HOSTS = [h for h in os.environ.get("ORO_LOAD_HOSTS", "").split(",") if h]
VALIDATORS = int(os.environ.get("ORO_LOAD_VALIDATORS", "4"))
KEY_PREFIX = os.environ.get("ORO_LOAD_KEY_PREFIX", "//load")
SUMMARY = os.environ.get("ORO_LOAD_SUMMARY")

_next_user = itertools.count()
_next_key = itertools.count()
statuses: defaultdict[str, Counter[int]] = defaultdict(Counter)
outcomes: Counter[str] = Counter()  # what the validators' cycles came to
started: Counter[str] = Counter()  # users started, per class


def _host(index: int) -> str:
    return HOSTS[index % len(HOSTS)] if HOSTS else ""


@events.request.add_listener
def _count_status(name: str, response: Any = None, **_: Any) -> None:
    statuses[name][getattr(response, "status_code", 0) or 0] += 1


@events.quitting.add_listener
def _write_summary(environment: Any, **_: Any) -> None:
    if not SUMMARY:
        return
    stats = environment.stats
    requests = {}
    for entry in sorted(stats.entries.values(), key=lambda e: e.name):
        requests[entry.name] = {
            "method": entry.method,
            "requests": entry.num_requests,
            "failures": entry.num_failures,
            "p50_ms": entry.get_response_time_percentile(0.5) if entry.num_requests else None,
            "p99_ms": entry.get_response_time_percentile(0.99) if entry.num_requests else None,
            "max_ms": round(entry.max_response_time, 1) if entry.num_requests else None,
            "rps": round(entry.total_rps, 2),
            "statuses": {str(code): n for code, n in sorted(statuses[entry.name].items())},
        }
    total = stats.total
    summary = {
        "requests": requests,
        "total": {
            "requests": total.num_requests,
            "failures": total.num_failures,
            "p50_ms": total.get_response_time_percentile(0.5) if total.num_requests else None,
            "p99_ms": total.get_response_time_percentile(0.99) if total.num_requests else None,
            "rps": round(total.total_rps, 2),
        },
        "errors": [
            {"name": e.name, "method": e.method, "error": str(e.error)[:300], "occurrences": e.occurrences}
            for e in stats.errors.values()
        ],
        "exceptions": [
            {"count": e["count"], "msg": str(e["msg"])[:300], "traceback": e["traceback"][-1500:]}
            for e in environment.runner.exceptions.values()
        ],
        "outcomes": dict(outcomes),
        "users": dict(started),
    }
    with open(SUMMARY, "w") as handle:
        json.dump(summary, handle, indent=2)


def _json(response: FastResponse | ResponseContextManager) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class _User(FastHttpUser):
    abstract = True
    host = _host(0)

    def on_start(self) -> None:
        self.base = _host(next(_next_user))
        self.rng = random.Random()
        started[type(self).__name__] += 1

    def get(self, path: str, name: str, check: Any = None) -> Any:
        """GET one public path; a non-200 or an answer ``check`` refuses is a failure."""
        with self.client.get(self.base + path, name=name, catch_response=True) as r:
            body = _json(r)
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}: {r.text[:200] if r.text else ''}")
                return None
            if body is None or (check is not None and not check(body)):
                r.failure(f"unexpected answer: {(r.text or '')[:200]}")
                return None
            return body


# ------------------------------------------------------------------------------------------------


class Validator(_User):
    """One registered validator running the evaluation protocol with real signatures."""

    fixed_count = VALIDATORS
    wait_time = between(0.5, 1.5)  # polling for work between cycles

    def on_start(self) -> None:
        super().on_start()
        index = next(_next_key)
        self.keypair = Keypair.create_from_uri(f"{KEY_PREFIX}{index}")
        self.base = _host(index)
        self.problems: dict[int, list[str]] = {}

    def suite_problems(self, suite_id: int) -> list[str]:
        if suite_id not in self.problems:
            body = self.get(
                f"/v1/public/suites/{suite_id}/problems",
                "GET /v1/public/suites/{id}/problems",
                check=lambda b: bool(b.get("problems")),
            )
            self.problems[suite_id] = [p["problem_id"] for p in (body or {}).get("problems", [])]
        return self.problems[suite_id]

    def signed(self, path: str, name: str, body: dict[str, Any], ok: tuple[int, ...] = (200,)) -> Any:
        """POST with fresh signed headers; the status (and JSON body) when it is one of ``ok``."""
        with self.client.post(
            self.base + path, name=name, json=body, headers=sign_headers(self.keypair), catch_response=True
        ) as r:
            data = _json(r) if r.status_code not in (204,) else None
            code = (data or {}).get("error_code") if isinstance(data, dict) else None
            if r.status_code == 409 and code == "AT_CAPACITY" and 409 in ok:
                r.success()  # the protocol: finish or let a run expire before claiming again
                return 409, data
            if r.status_code not in ok or r.status_code == 409:
                r.failure(f"HTTP {r.status_code} {code or ''}: {(r.text or '')[:200]}")
                return None
            return r.status_code, data

    def metrics(self) -> dict[str, Any]:
        return {
            "cpu_pct": round(self.rng.uniform(5, 95), 1),
            "ram_pct": round(self.rng.uniform(20, 80), 1),
            "docker_container_count": self.rng.randint(0, 4),
        }

    @task
    def evaluate(self) -> None:
        claimed = self.signed("/v1/validator/work/claim", "POST claim", self.metrics(), ok=(200, 204, 409))
        if claimed is None:
            outcomes["claim_failed"] += 1
            return
        status, claim = claimed
        if status != 200:
            outcomes["no_work" if status == 204 else "at_capacity"] += 1
            return
        run, suite_id = claim["eval_run_id"], claim["suite_id"]
        problems = self.suite_problems(suite_id)
        base = f"/v1/validator/evaluation-runs/{run}"
        scores = [round(self.rng.betavariate(4, 3), 4) for _ in problems]
        half = len(problems) // 2
        steps: list[tuple[str, str, dict[str, Any]]] = [
            (f"{base}/heartbeat", "POST heartbeat", self.metrics()),
            (f"{base}/progress", "POST progress", self.progress(problems[:half], scores[:half])),
            (f"{base}/heartbeat", "POST heartbeat", self.metrics()),
            (f"{base}/progress", "POST progress", self.progress(problems[half:], scores[half:])),
        ]
        for path, name, body in steps:
            gevent.sleep(self.rng.uniform(0.2, 0.8))  # the agent runs between reports
            if self.signed(path, name, body) is None:
                outcomes["cycle_broken"] += 1
                return
        roll = self.rng.random()
        if roll < 0.05:
            end: dict[str, Any] = {"terminal_status": "FAILED", "failure_reason": "agent crashed (load test)"}
        elif roll < 0.07:
            end = {"terminal_status": "TIMED_OUT", "failure_reason": "sandbox timeout (load test)"}
        else:
            end = {
                "terminal_status": "SUCCESS",
                "validator_score": round(sum(scores) / max(len(scores), 1), 4),
            }
        done = self.signed(f"{base}/complete", "POST complete", end)
        if done is None:
            outcomes["cycle_broken"] += 1
            return
        outcomes[f"completed_{end['terminal_status'].lower()}"] += 1
        if (done[1] or {}).get("agent_version_became_eligible"):
            outcomes["versions_made_eligible"] += 1

    @staticmethod
    def progress(problems: list[str], scores: list[float]) -> dict[str, Any]:
        return {
            "problems": [
                {
                    "problem_id": p,
                    "status": "SUCCESS",
                    "score": s,
                    "execution_time": 12.5,
                    "inference_total": 8,
                }
                for p, s in zip(problems, scores, strict=True)
            ]
        }


# ------------------------------------------------------------------------------------------------

LEADERBOARD = """
query Board($first: Int!, $after: String) {
  leaderboard(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        rank agentName minerHotkey versionNumber finalScore eligibleAt isCurrentTop
        agentVersion {
          state submittedAt
          runs(first: 5) { edges { node { status validatorScore validator { name hotkey } } } }
        }
      }
    }
  }
}
"""

RUNS = """
query Runs($first: Int!, $after: String, $filter: EvaluationRunFilter) {
  evaluationRuns(first: $first, after: $after, filter: $filter) {
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        evalRunId status validatorScore claimedAt completedAt failureReason
        validator { hotkey name }
        agentVersion { versionNumber agent { name } }
        problemResults(first: 30) { edges { node { status score problem { id } } } }
      }
    }
  }
}
"""

RELIABILITY = """
query Reliability {
  validators(first: 50) {
    edges {
      node {
        hotkey name status lastSeenAt
        reliability {
          runs successRate failedRate timedOutRate staleRate durationP50Seconds durationP95Seconds
          meanDeltaVsPeers deltaSd versionsCompared
        }
      }
    }
  }
}
"""

VALIDATOR = """
query Validator($hotkey: String!, $since: DateTime) {
  validator(hotkey: $hotkey) {
    hotkey name status cpuPct lastClaimAt
    reliability(window: {since: $since}) { runs successRate staleRate meanDeltaVsPeers }
    runs(first: 20) { edges { node { evalRunId status validatorScore claimedAt } } }
  }
}
"""


class Analyst(_User):
    """Someone studying the subnet through the graph: boards, run histories, validator reliability."""

    weight = 1
    wait_time = between(1, 4)

    def on_start(self) -> None:
        super().on_start()
        self.hotkeys: list[str] = []
        self.reliability()  # opening the dashboard: the validators, then the board
        self.walk("gql leaderboard", LEADERBOARD, "leaderboard", {"first": 25}, pages=1)

    def graphql(self, name: str, query: str, variables: dict[str, Any], path: str) -> Any:
        """POST /graphql; the object at ``path`` under ``data``, or None (a failure) when absent."""
        with self.client.post(
            self.base + "/graphql",
            name=name,
            json={"query": query, "variables": variables},
            catch_response=True,
        ) as r:
            body = _json(r)
            if r.status_code != 200 or not isinstance(body, dict) or body.get("errors"):
                errors = (body.get("errors") if isinstance(body, dict) else None) or []
                codes = [(e.get("extensions") or {}).get("code") for e in errors if isinstance(e, dict)]
                if "INTERNAL_SERVER_ERROR" in codes:  # an unexpected exception, inside an HTTP 200
                    outcomes["graphql_internal_errors"] += codes.count("INTERNAL_SERVER_ERROR")
                r.failure(f"HTTP {r.status_code}: {(r.text or '')[:300]}")
                return None
            found = (body.get("data") or {}).get(path)
            if found is None:
                r.failure(f"no {path} in the answer: {(r.text or '')[:300]}")
            return found

    def walk(self, name: str, query: str, path: str, variables: dict[str, Any], pages: int) -> int:
        """Follow ``endCursor`` for up to ``pages`` pages; how many edges were read."""
        after, seen = None, 0
        for _ in range(pages):
            found = self.graphql(name, query, {**variables, "after": after}, path)
            if found is None:
                break
            seen += len(found["edges"])
            info = found["pageInfo"]
            if not info["hasNextPage"]:
                break
            after = info["endCursor"]
            gevent.sleep(self.rng.uniform(0.1, 0.5))
        return seen

    @task(3)
    def leaderboard(self) -> None:
        self.walk("gql leaderboard", LEADERBOARD, "leaderboard", {"first": 25}, pages=self.rng.randint(1, 3))

    @task(3)
    def runs(self) -> None:
        choice = self.rng.random()
        if choice < 0.4 and self.hotkeys:
            run_filter: dict[str, Any] | None = {"validatorHotkey": self.rng.choice(self.hotkeys)}
        elif choice < 0.6:
            run_filter = {"status": ["FAILED", "TIMED_OUT", "STALE"]}
        else:
            run_filter = None
        variables = {"first": 50, "filter": run_filter}
        self.walk("gql evaluationRuns page", RUNS, "evaluationRuns", variables, pages=self.rng.randint(2, 5))

    @task(2)
    def reliability(self) -> None:
        found = self.graphql("gql validators reliability", RELIABILITY, {}, "validators")
        if found is not None:
            self.hotkeys = [e["node"]["hotkey"] for e in found["edges"]]

    @task(1)
    def validator(self) -> None:
        if not self.hotkeys:
            return
        since = (datetime.now(UTC) - timedelta(days=self.rng.choice([1, 7, 30]))).isoformat()
        self.graphql(
            "gql validator window",
            VALIDATOR,
            {"hotkey": self.rng.choice(self.hotkeys), "since": since},
            "validator",
        )


# ------------------------------------------------------------------------------------------------


class PublicReader(_User):
    """A dashboard or a curious visitor reading the public REST paths."""

    weight = 3
    wait_time = between(0.5, 2.5)

    @task(6)
    def leaderboard(self) -> None:
        roll = self.rng.random()
        if roll < 0.6:
            path = "/v1/public/leaderboard?limit=50"
        elif roll < 0.9:
            path = f"/v1/public/leaderboard?limit=50&offset={self.rng.choice([50, 100, 150, 500])}"
        else:
            path = f"/v1/public/leaderboard?limit=20&q={self.rng.choice(['a', 'agent', '5F', 'x'])}"
        self.get(path, "GET /v1/public/leaderboard", check=lambda b: "entries" in b)

    @task(3)
    def top(self) -> None:
        self.get("/v1/public/top", "GET /v1/public/top")

    @task(1)
    def suites(self) -> None:
        suite = self.get("/v1/public/suites/current", "GET /v1/public/suites/current")
        if suite:
            self.get(
                f"/v1/public/suites/{suite['suite_id']}/problems",
                "GET /v1/public/suites/{id}/problems",
                check=lambda b: bool(b.get("problems")),
            )
