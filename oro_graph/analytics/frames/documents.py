"""The GraphQL documents the frames are read with (an analyst can read or reuse them)."""

from __future__ import annotations

from typing import Final

SUITES_QUERY: Final = """
query Suites($first: Int, $after: String) {
  suites(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      suiteId version isActive executionKind benchmarkName benchmarkNumber createdAt
    } }
  }
}
"""

PROBLEMS_QUERY: Final = """
query Problems($suite: ID!, $first: Int, $after: String) {
  suite(id: $suite) {
    problems(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node { suiteId problemId position title category difficulty query } }
    }
  }
}
"""

AGENT_VERSIONS_QUERY: Final = """
query AgentVersions($suite: ID!, $first: Int, $after: String) {
  suite(id: $suite) {
    versions(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node {
        agentVersionId agentId agent { name minerHotkey } versionNumber suiteId state releaseState
        submittedAt eligibleAt discardedAt finalScore codeSha256 codeSize
      } }
    }
  }
}
"""

RUN_FIELDS: Final = """
        evalRunId agentVersionId workItemId suiteId validatorHotkey status
        claimedAt leaseExpiresAt lastHeartbeatAt completedAt
        validatorScore isIncluded failureReason inferenceFailureCount inferenceTotal raceId
"""

RUNS_QUERY: Final = f"""
query Runs($filter: EvaluationRunFilter, $first: Int, $after: String) {{
  evaluationRuns(
    filter: $filter, orderBy: {{field: CLAIMED_AT, direction: ASC}}, first: $first, after: $after
  ) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{ {RUN_FIELDS} }} }}
  }}
}}
"""

RESULT_FIELDS: Final = """
problemId status score reasoningScore executionTime inferenceFailureCount inferenceTotal updatedAt
"""

# A page of runs with the first page of each run's results (a suite has 30 problems, a page 100).
PROBLEM_RESULTS_QUERY: Final = f"""
query ProblemResults($filter: EvaluationRunFilter, $first: Int, $after: String, $results: Int) {{
  evaluationRuns(
    filter: $filter, orderBy: {{field: CLAIMED_AT, direction: ASC}}, first: $first, after: $after
  ) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{ node {{
      evalRunId agentVersionId validatorHotkey suiteId status isIncluded raceId
      problemResults(first: $results) {{
        pageInfo {{ hasNextPage endCursor }}
        edges {{ node {{ {RESULT_FIELDS} }} }}
      }}
    }} }}
  }}
}}
"""

# The rest of one run's results, for a run with more than a page of them.
RUN_RESULTS_QUERY: Final = f"""
query RunResults($run: ID!, $first: Int, $after: String) {{
  evaluationRun(id: $run) {{
    problemResults(first: $first, after: $after) {{
      pageInfo {{ hasNextPage endCursor }}
      edges {{ node {{ {RESULT_FIELDS} }} }}
    }}
  }}
}}
"""

LEADERBOARD_QUERY: Final = """
query Leaderboard($suite: Int, $asOf: DateTime, $first: Int, $after: String) {
  leaderboard(suiteId: $suite, asOf: $asOf, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      rank agentVersionId agentName minerHotkey versionNumber finalScore eligibleAt
      isCurrentTop wasTop topAt
    } }
  }
}
"""

TOP_AGENT_QUERY: Final = """
query TopAgent($suite: Int, $asOf: DateTime) {
  topAgent(suiteId: $suite, asOf: $asOf) {
    suiteId computedAt topAgentVersionId topMinerHotkey topScore topAt challengeThreshold
  }
}
"""

TOP_HISTORY_QUERY: Final = """
query TopHistory($suite: Int, $first: Int, $after: String) {
  topHistory(suiteId: $suite, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node { suiteId agentVersionId score topAt replacedAt } }
  }
}
"""

VALIDATORS_QUERY: Final = """
query Validators($first: Int, $after: String) {
  validators(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      hotkey name status registeredAt lastClaimAt lastSeenAt cpuPct ramPct diskPct
      dockerContainerCount metricsReportedAt currentRun { evalRunId }
    } }
  }
}
"""

NEWEST_CLAIM_QUERY: Final = """
query NewestClaim($filter: EvaluationRunFilter) {
  evaluationRuns(filter: $filter, orderBy: {field: CLAIMED_AT, direction: DESC}, first: 1) {
    edges { node { claimedAt } }
  }
}
"""

FIELDS_QUERY: Final = """
query Fields($type: String!) { __type(name: $type) { fields { name } } }
"""

VALIDATOR_RELIABILITY_QUERY: Final = """
query ValidatorReliability($window: TimeWindow, $first: Int, $after: String) {
  validators(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      hotkey
      reliability(window: $window) {
        runs statuses { status count } successRate failedRate timedOutRate staleRate
        durationP50Seconds durationP95Seconds meanDeltaVsPeers deltaSd versionsCompared
        pairsEvaluated lastActivityAt
      }
    } }
  }
}
"""

VALIDATOR_VARIANCE_QUERY: Final = """
query ValidatorVariance($suite: ID!, $window: TimeWindow) {
  suite(id: $suite) {
    suiteId
    validatorVariance(window: $window) {
      versions meanSpread maxSpread
      buckets { label versions }
      validators { hotkey meanDelta deltaSd versionsCompared pairsEvaluated }
    }
  }
}
"""

SCORE_INTERVAL_FIELDS: Final = "agentVersionId scoreInterval { mean lower upper problems draws }"

PROBLEM_STATS_QUERY: Final = """
query ProblemStats($suite: ID!, $scope: ProblemStatsScope, $first: Int, $after: String) {
  suite(id: $suite) {
    problemStats(scope: $scope, first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      edges { node {
        problemId position attempts passes timeouts versions passRate timeoutRate meanScore medianScore
        meanDurationSeconds discrimination
      } }
    }
  }
}
"""
