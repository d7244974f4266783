"""The documents and statements the workloads send: one question asked of every server.

The question (issue 6, workload 1): the top 100 eligible versions of the active suite by final
score, each with its agent's name, the miner's hotkey, and its first 10 runs (by claim time)
with status, validator score and the validator's name and hotkey.
"""

from __future__ import annotations

# Our graph (schema.graphql at the repository top). The leaderboard answers the active suite.
DEEP_LEADERBOARD = """
query DeepLeaderboard {
  leaderboard(first: 100) {
    edges {
      node {
        rank
        agentVersion {
          finalScore
          agent { name miner { hotkey } }
          runs(first: 10) {
            edges { node { status validatorScore validator { name hotkey } } }
          }
        }
      }
    }
  }
}
"""

# PostGraphile 5 (amber preset) over the same tables. Differences, all from its generated schema:
# - only indexed columns can be ordered on, so the tiebreak after final_score is the primary key
#   (ours is eligible_at, then id); with distinct scores the rows are the same;
# - no rank field: the rank is the position in the list;
# - the validator's name needs the virtual foreign key evaluationrun.validator_hotkey -> hotkey,
#   declared by a smart tag in graphile.config.mjs (BENCH_PEER_VIRTUAL_FK=1); the schema has none.
PEER_DEEP_LEADERBOARD = """
query DeepLeaderboard($suiteId: Int!) {
  allAgentversions(
    first: 100
    orderBy: [FINAL_SCORE_DESC, PRIMARY_KEY_ASC]
    condition: { suiteId: $suiteId, state: "ELIGIBLE" }
  ) {
    nodes {
      finalScore
      agentByAgentId { name minerHotkey }
      evaluationrunsByAgentVersionId(first: 10, orderBy: [CLAIMED_AT_ASC, PRIMARY_KEY_ASC]) {
        nodes { status validatorScore validator { name ss58 } }
      }
    }
  }
}
"""

# The same answer as one statement: the database's own limit. Runs are taken per version with a
# LATERAL LIMIT 10 over ix_run_version_claimed; json is built in PostgreSQL and fetched as text.
RAW_DEEP_LEADERBOARD = """
WITH suite AS (
  SELECT id FROM suite WHERE is_active ORDER BY id DESC LIMIT 1
), top AS (
  SELECT v.id, v.agent_id, v.final_score,
         row_number() OVER (ORDER BY v.final_score DESC, v.eligible_at ASC, v.id ASC) AS rank
  FROM agentversion v
  WHERE v.suite_id = (SELECT id FROM suite) AND v.state = 'ELIGIBLE'
  ORDER BY v.final_score DESC, v.eligible_at ASC, v.id ASC
  LIMIT 100
)
SELECT coalesce(json_agg(json_build_object(
  'rank', t.rank,
  'finalScore', t.final_score,
  'agent', json_build_object('name', a.name, 'miner', json_build_object('hotkey', a.miner_hotkey)),
  'runs', (
    SELECT coalesce(json_agg(json_build_object(
             'status', r.status, 'validatorScore', r.validator_score,
             'validator', json_build_object('name', h.name, 'hotkey', r.validator_hotkey)
           ) ORDER BY r.claimed_at, r.id), '[]'::json)
    FROM (
      SELECT status, validator_score, validator_hotkey, claimed_at, id
      FROM evaluationrun WHERE agent_version_id = t.id
      ORDER BY claimed_at, id LIMIT 10
    ) r
    LEFT JOIN hotkey h ON h.ss58 = r.validator_hotkey
  )
) ORDER BY t.rank), '[]'::json)::text
FROM top t JOIN agent a ON a.id = t.agent_id
"""

# A frontend's per-version page (issue 13): a different version on every request, with its agent, its
# runs with their validators, and each run's problem results.
VERSION_PAGE = """
query VersionPage($id: ID!) {
  agentVersion(id: $id) {
    id versionNumber state finalScore submittedAt eligibleAt
    agent { name miner { hotkey } }
    runs(first: 20) {
      edges { node {
        status validatorScore claimedAt completedAt
        validator { name hotkey }
        problemResults(first: 100) { edges { node { status score problem { id } } } }
      } }
    }
  }
}
"""

REST_LEADERBOARD = "/v1/public/leaderboard?limit=100"  # no runs in this answer: see RESULTS.md

# Analyst paging (workload 4): every run with its problem results, 100 runs per page, keyset cursors.
RUNS_PAGE = """
query RunsPage($first: Int!, $after: String) {
  evaluationRuns(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges {
      node {
        id
        status
        validatorScore
        claimedAt
        problemResults(first: 100) {
          edges { node { status score problem { id } } }
        }
      }
    }
  }
}
"""

# The raw SQL claim loop (workload 3's limit): the validator's lifecycle as bare statements, the
# same four steps the API performs (claim with SKIP LOCKED, heartbeat, progress, complete).
RAW_CLAIM = """
WITH picked AS (
  SELECT w.id, w.agent_version_id, w.suite_id FROM workitem w
  WHERE NOT w.is_closed AND w.included_successes + w.active_runs < w.required_successes
    AND NOT EXISTS (SELECT 1 FROM evaluationrun r
                    WHERE r.work_item_id = w.id AND r.validator_hotkey = %(hotkey)s)
  ORDER BY w.created_at, w.id
  LIMIT 1
  FOR UPDATE SKIP LOCKED
), bumped AS (
  UPDATE workitem w SET active_runs = w.active_runs + 1 FROM picked WHERE w.id = picked.id RETURNING w.id
)
INSERT INTO evaluationrun (id, work_item_id, agent_version_id, validator_hotkey, suite_id, status,
                           claimed_at, lease_expires_at, is_included)
SELECT gen_random_uuid(), picked.id, picked.agent_version_id, %(hotkey)s, picked.suite_id, 'CLAIMED',
       now(), now() + interval '300 seconds', false
FROM picked JOIN bumped ON bumped.id = picked.id
RETURNING id, work_item_id
"""
RAW_HEARTBEAT = (
    "UPDATE evaluationrun SET status = 'RUNNING', last_heartbeat_at = now(), "
    "lease_expires_at = now() + interval '300 seconds' WHERE id = %(run)s AND validator_hotkey = %(hotkey)s"
)
RAW_PROGRESS = """
INSERT INTO problemresult (id, run_id, problem_id, status, score, updated_at)
SELECT gen_random_uuid(), %(run)s, p, 'SUCCESS', 0.5, now() FROM unnest(%(problems)s::uuid[]) AS p
ON CONFLICT (run_id, problem_id) DO UPDATE SET status = excluded.status, score = excluded.score,
  updated_at = excluded.updated_at
"""
RAW_COMPLETE = """
WITH run AS (
  UPDATE evaluationrun
  SET status = 'SUCCESS', completed_at = now(), validator_score = %(score)s, is_included = true
  WHERE id = %(run)s AND validator_hotkey = %(hotkey)s RETURNING work_item_id
)
UPDATE workitem w SET active_runs = w.active_runs - 1, included_successes = w.included_successes + 1,
  is_closed = (w.included_successes + 1 >= w.required_successes)
FROM run WHERE w.id = run.work_item_id
"""

# Issue 16's filters and statistics, one document per filtered connection: benchmarks/explain.py captures
# each one's statements and their EXPLAIN ANALYZE plans on the 200k-run dataset.
FILTERED_LEADERBOARD = """
query FilteredLeaderboard {
  leaderboard(first: 100, filter: {minScore: 0.2, category: {category: "Shop", minMeanScore: 0.3}}) {
    edges { node { rank finalScore } }
  }
}
"""

FILTERED_VERSIONS = """
query FilteredVersions {
  currentSuite {
    versions(first: 100, filter: {state: [ELIGIBLE, DISCARDED]},
             orderBy: {field: FINAL_SCORE, direction: DESC}) {
      edges { node { finalScore } }
    }
  }
}
"""

FILTERED_VALIDATORS = """
query FilteredValidators {
  validators(first: 100, filter: {status: AVAILABLE}, orderBy: {field: LAST_SEEN_AT, direction: DESC}) {
    edges { node { hotkey lastSeenAt } }
  }
}
"""

FILTERED_RESULTS = """
query FilteredResults {
  evaluationRuns(first: 100) {
    edges { node {
      problemResults(first: 10, filter: {status: [FAILED, TIMED_OUT], category: "Shop"},
                     orderBy: {field: SCORE, direction: DESC}) {
        edges { node { score } }
      }
    } }
  }
}
"""

PROBLEM_STATS = """
query ProblemStats {
  currentSuite {
    problemStats(first: 100, orderBy: {field: DISCRIMINATION, direction: DESC}) {
      edges { node { position attempts passRate medianScore discrimination } }
    }
  }
}
"""

# The per-version page (issue 13, workload b): what a frontend shows for one version, asked for a
# different version on every request (no response cache can answer): the agent, the version's first
# 10 runs with their validators, and each run's problem results.
VERSION_PAGE = """
query VersionPage($id: ID!) {
  agentVersion(id: $id) {
    versionNumber
    state
    finalScore
    agent { name miner { hotkey } }
    runs(first: 10) {
      edges {
        node {
          status
          validatorScore
          claimedAt
          validator { name hotkey }
          problemResults(first: 50) { edges { node { status score problem { id } } } }
        }
      }
    }
  }
}
"""

# The per-version page as one statement, the database's own limit (benchmarks/pgcost.py): runs taken
# per version with a LATERAL LIMIT 10 over ix_run_version_claimed, each run's results with LIMIT 50,
# JSON built in PostgreSQL and fetched as text. Like RAW_DEEP_LEADERBOARD it leaves out what the graph
# adds (the release rule, the race embargo, global ids: the problem's id is its UUID).
RAW_VERSION_PAGE = """
SELECT json_build_object(
  'versionNumber', v.version_number,
  'state', v.state,
  'finalScore', v.final_score,
  'agent', json_build_object('name', a.name, 'miner', json_build_object('hotkey', a.miner_hotkey)),
  'runs', (
    SELECT coalesce(json_agg(json_build_object(
             'status', r.status, 'validatorScore', r.validator_score, 'claimedAt', r.claimed_at,
             'validator', json_build_object('name', h.name, 'hotkey', r.validator_hotkey),
             'problemResults', (
               SELECT coalesce(json_agg(json_build_object(
                        'status', p.status, 'score', p.score, 'problem', json_build_object('id', p.problem_id)
                      ) ORDER BY p.updated_at, p.id), '[]'::json)
               FROM (
                 SELECT status, score, problem_id, updated_at, id FROM problemresult
                 WHERE run_id = r.id ORDER BY updated_at, id LIMIT 50
               ) p
             )
           ) ORDER BY r.claimed_at, r.id), '[]'::json)
    FROM (
      SELECT id, status, validator_score, claimed_at, validator_hotkey
      FROM evaluationrun WHERE agent_version_id = v.id
      ORDER BY claimed_at, id LIMIT 10
    ) r
    LEFT JOIN hotkey h ON h.ss58 = r.validator_hotkey
  )
)::text
FROM agentversion v JOIN agent a ON a.id = v.agent_id
WHERE v.id = %(id)s
"""

# PostGraphile's generated schema for the same question (runs by claim time, then primary key).
PEER_VERSION_PAGE = """
query VersionPage($id: UUID!) {
  agentversionByRowId(rowId: $id) {
    versionNumber
    state
    finalScore
    agentByAgentId { name minerHotkey }
    evaluationrunsByAgentVersionId(first: 10, orderBy: [CLAIMED_AT_ASC, PRIMARY_KEY_ASC]) {
      nodes {
        status
        validatorScore
        claimedAt
        validator { name ss58 }
        problemresultsByRunId(first: 50) { nodes { status score problemId } }
      }
    }
  }
}
"""

# REST has no single answer for this page: a frontend asks for the version's runs and its problem
# matrix (each validator's result per problem), one after the other; the two count as one page.
REST_VERSION_PAGE = ("/v1/public/agent-versions/{id}/runs", "/v1/public/agent-versions/{id}/problems")
