"""The signed-mutation matrix of the graph and field-level privacy, over a live server on both
databases: the GraphQL half of test_auth_matrix.py.

Every signed mutation meets every bad cell of the REST matrix (each header missing, a signature
over another message, another key, a timestamp skew+1 s old or ahead, a replayed nonce), an
unregistered hotkey, the wrong role, a banned hotkey and, for the run mutations, another
validator's run. Each answers the documented error (``errors.py``: UNAUTHENTICATED and FORBIDDEN
are top-level errors with ``extensions.code`` and null data; everything else is a member of the
mutation's result union) and leaves every table unchanged. ``requestArtifactDownload`` is public:
it is in the privacy checks instead.

Private data of a miner, and the only fields that carry any of it:

- its inference token: stored encrypted, no field returns it (storeInferenceCredential answers
  ``connected``/``updatedAt`` only);
- its agent's code, until released: no field returns the code or its storage key; validators get
  a short-lived ``ClaimWorkSuccess.codeDownloadUrl`` for the run they claimed, and anyone gets an
  ``ArtifactDownloadSuccess.downloadUrl`` once the version is released;
- the logs and results of its runs, until released: no field returns their keys; the validator
  that asked gets ``UploadUrlSuccess.logsKey``/``uploadUrl`` for its own run.

Public by design (the REST public paths show the same): agent names, owners' hotkeys, versions,
states, scores, runs and per-problem results, and each version's ``codeSha256``/``codeSize``.
A suite's answers (``reward``) are never served either (the graph served them until this test).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLUnionType,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
)
from strawberry.relay import to_base64

from oro_graph.errors import RaceInFlight
from oro_graph.graphql.schema import schema
from oro_graph.models import AgentVersion, ProblemStatus, Role, RunStatus
from oro_graph.runtime import Runtime
from oro_graph.services import evaluations, races, registry, suites
from tests.factories import claim, complete, keypair, make_suite, register, submit
from tests.hardening.support import dump_tables, signed
from tests.hardening.test_auth_matrix import AUTH_CELLS
from tests.rest.live import LiveServer
from tests.rest.seed import Seeded

ANSWER = "... on Error { code message }"
SUBMIT_AGENT = f"""mutation ($name: String!, $file: Upload!) {{ submitAgent(agentName: $name, file: $file) {{
  __typename ... on SubmitAgentSuccess {{ admissionStatus admissionReason }} {ANSWER} }} }}"""
STORE_CREDENTIAL = f"""mutation ($token: String!) {{ storeInferenceCredential(token: $token) {{
  __typename {ANSWER} }} }}"""
CLAIM_WORK = f"mutation {{ claimWork {{ __typename {ANSWER} }} }}"
HEARTBEAT = f"mutation ($run: UUID!) {{ heartbeat(runId: $run) {{ __typename {ANSWER} }} }}"
REPORT_PROGRESS = f"""mutation ($run: UUID!, $problem: UUID!) {{
  reportProgress(runId: $run, problems: [{{problemId: $problem, status: RUNNING}}]) {{
    __typename {ANSWER} }} }}"""
COMPLETE_RUN = f"""mutation ($run: UUID!) {{ completeRun(runId: $run, terminalStatus: FAILED) {{
  __typename {ANSWER} }} }}"""
REQUEST_UPLOAD_URL = f"""mutation ($run: UUID!, $problem: UUID!) {{
  requestUploadUrl(runId: $run, problemId: $problem, contentLength: 10) {{ __typename {ANSWER} }} }}"""
ARTIFACT_DOWNLOAD = f"""mutation ($type: ArtifactType!, $version: UUID!, $run: UUID, $problem: UUID) {{
  requestArtifactDownload(
    artifactType: $type, agentVersionId: $version, evalRunId: $run, problemId: $problem
  ) {{ __typename ... on ArtifactDownloadSuccess {{ downloadUrl }} {ANSWER} }} }}"""

Send = Callable[[httpx.Client, dict[str, str]], dict[str, Any]]


def post(
    http: httpx.Client, document: str, variables: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    response = http.post("/graphql", json={"query": document, "variables": variables}, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def post_upload(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    """submitAgent as the multipart request spec sends it."""
    operations = {"query": SUBMIT_AGENT, "variables": {"name": "matrix", "file": None}}
    response = http.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("agent.py", b"x = 1\n", "text/x-python")},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def signed_mutations(s: Seeded) -> dict[str, tuple[str, Send]]:
    """Every signed mutation, with a call its rightful signer could make: name -> (signer, send)."""
    run = {"run": str(s.beta_run)}
    problem = {**run, "problem": str(s.problems[0].id)}
    return {
        "submitAgent": ("Alice", post_upload),
        "storeInferenceCredential": ("Alice", lambda c, h: post(c, STORE_CREDENTIAL, {"token": "t"}, h)),
        "claimWork": ("Eve", lambda c, h: post(c, CLAIM_WORK, {}, h)),
        "heartbeat": ("Eve", lambda c, h: post(c, HEARTBEAT, run, h)),
        "reportProgress": ("Eve", lambda c, h: post(c, REPORT_PROGRESS, problem, h)),
        "completeRun": ("Eve", lambda c, h: post(c, COMPLETE_RUN, run, h)),
        "requestUploadUrl": ("Eve", lambda c, h: post(c, REQUEST_UPLOAD_URL, problem, h)),
    }


def assert_unchanged(
    server: LiveServer, send: Send, http: httpx.Client, headers: dict[str, str]
) -> dict[str, Any]:
    """Send, and check that every table is as it was."""
    before = dump_tables(server.runtime.db)
    body = send(http, headers)
    assert dump_tables(server.runtime.db) == before, body
    return body


def assert_refused(body: dict[str, Any], code: str, words: str, cell: str) -> None:
    """A top-level error with ``code`` whose message says ``words``, and no data."""
    assert body["data"] is None, (cell, body)
    [error] = body["errors"]
    assert error["extensions"]["code"] == code and words in error["message"], (cell, code, words, error)


def assert_member(body: dict[str, Any], field: str, typename: str, **fields: Any) -> None:
    """The mutation's result is the union member ``typename`` with ``fields``, and nothing failed."""
    assert "errors" not in body, body
    result = body["data"][field]
    assert result["__typename"] == typename, result
    assert {k: result[k] for k in fields} == fields, result


def test_every_bad_signature_cell_is_unauthenticated_and_changes_nothing(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    skew = server.runtime.settings.timestamp_skew_seconds
    mutations = signed_mutations(world)
    assert len(mutations) == 7
    for cell, (make, _, words) in AUTH_CELLS.items():
        for name, (signer, send) in mutations.items():
            body = assert_unchanged(server, send, http, make(signer, skew))
            assert_refused(body, "UNAUTHENTICATED", words, f"{cell} on {name}")


def test_every_unauthorised_cell_is_refused_and_changes_nothing(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    mutations = signed_mutations(world)
    miner = {k: v for k, v in mutations.items() if v[0] == "Alice"}
    validator = {k: v for k, v in mutations.items() if v[0] == "Eve"}

    # an unregistered hotkey: FORBIDDEN, except that a submission is admitted as REJECTED (as on REST)
    for name, (_, send) in {**miner, **validator}.items():
        body = assert_unchanged(server, send, http, signed("Ferdie"))
        if name == "submitAgent":
            assert_member(
                body,
                name,
                "SubmitAgentSuccess",
                admissionStatus="REJECTED",
                admissionReason="NOT_REGISTERED_ONCHAIN",
            )
        else:
            assert_refused(body, "FORBIDDEN", "not registered", f"unregistered on {name}")
    # the wrong role, both ways
    for name, (_, send) in miner.items():
        body = assert_unchanged(server, send, http, signed("Charlie"))
        assert_refused(body, "FORBIDDEN", "for miners", f"validator on {name}")
    for name, (_, send) in validator.items():
        body = assert_unchanged(server, send, http, signed("Bob"))
        assert_refused(body, "FORBIDDEN", "validator permit", f"miner on {name}")
    # banned
    for hotkey in ("Alice", "Eve"):
        server.runtime.db.call(registry.set_banned, keypair(hotkey).ss58_address)
    for name, (signer, send) in {**miner, **validator}.items():
        body = assert_unchanged(server, send, http, signed(signer))
        if name == "submitAgent":
            assert_member(
                body, name, "SubmitAgentSuccess", admissionStatus="REJECTED", admissionReason="BANNED"
            )
        else:
            assert_refused(body, "FORBIDDEN", "banned", f"banned on {name}")


def test_a_validator_cannot_act_on_another_validators_run(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    mutations = signed_mutations(world)
    for name in ("heartbeat", "reportProgress", "completeRun", "requestUploadUrl"):
        body = assert_unchanged(server, mutations[name][1], http, signed("Charlie"))
        assert_member(body, name, "NotRunOwnerError", code="NOT_RUN_OWNER")
        assert "another validator" in body["data"][name]["message"]


def test_a_replayed_nonce_changes_nothing_the_second_time(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    server, world, http = seeded_server
    for name, (signer, send) in signed_mutations(world).items():
        headers = signed(signer)
        first = send(http, headers)
        assert "errors" not in first, (name, first)  # any union member: the signature was accepted
        body = assert_unchanged(server, send, http, headers)
        assert_refused(body, "UNAUTHENTICATED", "nonce was already used", f"replay of {name}")


def test_a_mutation_over_get_is_refused_and_changes_nothing(
    seeded_server: tuple[LiveServer, Seeded, httpx.Client],
) -> None:
    # given a signed claim, sent as GET (which a cache or a prefetching browser could replay)
    server, _, http = seeded_server
    before = dump_tables(server.runtime.db)

    # when
    response = http.get("/graphql", params={"query": CLAIM_WORK}, headers=signed("Charlie"))

    # then
    assert response.status_code in (400, 405) and "mutations are not allowed" in response.text, response.text
    assert dump_tables(server.runtime.db) == before


# Field-level privacy ------------------------------------------------------------------------------

# Fields whose names suggest a secret, each reviewed: who gets it and why that is no leak.
REVIEWED_FIELDS = {
    ("ClaimWorkSuccess", "codeDownloadUrl"): "the claiming validator, for the version it must run",
    ("ClaimWorkSuccess", "codeSha256"): "the claiming validator; public on AgentVersion anyway",
    ("AgentVersion", "codeSha256"): "public: a digest, not the code",
    ("AgentVersion", "codeSize"): "public: the size, not the code",
    ("AgentVersion", "codeAvailableAt"): "public: when the code will be released",
    ("ArtifactDownloadSuccess", "downloadUrl"): "anyone, only once the version is released",
    ("UploadUrlSuccess", "uploadUrl"): "the validator that holds the run",
    ("UploadUrlSuccess", "logsKey"): "the validator that holds the run",
    ("ClaimWorkSuccess", "inferenceToken"): "the claiming validator only: it runs the miner's inference",
    ("InferenceToken", "accessToken"): "reached only through the lease holder's claimWork answer",
    ("InferenceToken", "baseUrl"): "the provider's public API address, not a secret",
    ("InferenceCredentialStatus", "lastRefreshErrorCode"): "the signed miner's own view; a reason, no secret",
    ("Race", "revealedSecret"): "public only once the race is over (services.races.revealed_secret): its "
    "sha256 was committed when it opened, so anyone can check the draw",
}
SECRET_WORDS = {"key", "token", "secret", "credential", "cipher", "url", "code", "reward", "password", "logs"}


def _object_types() -> list[GraphQLObjectType]:
    """Every type that carries data (the Mutation root's fields are operations, checked by their results)."""
    return [
        t
        for t in schema._schema.type_map.values()
        if isinstance(t, GraphQLObjectType)
        and not t.name.startswith("__")
        and t is not schema._schema.mutation_type
    ]


def _words(name: str) -> set[str]:
    return {word.lower() for word in re.findall(r"[a-z0-9]+|[A-Z][a-z0-9]*", name)}


def test_every_field_whose_name_suggests_a_secret_has_been_reviewed() -> None:
    # given every field of every object type in the served schema (Error.code is an ErrorCode)
    suspicious = {
        (t.name, name)
        for t in _object_types()
        for name in t.fields
        if _words(name) & SECRET_WORDS and name != "code"
    }

    # then a new field with such a name fails here until it is added to REVIEWED_FIELDS with its reason
    assert suspicious == set(REVIEWED_FIELDS)


@dataclass
class PrivateWorld:
    """Bob's version, eligible and on the board but not released yet, with everything of his that
    must stay private: its code, its runs' logs and results, his inference token."""

    suite: int
    version: uuid.UUID
    agent: uuid.UUID
    runs: list[uuid.UUID]
    problem: uuid.UUID
    secrets: dict[str, str]  # what -> a value that must appear in no answer
    race: uuid.UUID | None = None  # a race in qualifying with Bob's version in its field


def _private_world(rt: Runtime) -> PrivateWorld:
    tag = uuid.uuid4().hex
    answer_suite = json.dumps(
        [
            {"query": f"q{i}", "title": f"P{i}", "reward": {"product_id": f"answer-{tag}-{i}"}}
            for i in range(3)
        ]
    ).encode()
    suite = rt.db.call(suites.import_suite, answer_suite, activate=True).suite.id or 0
    problem = rt.db.call(suites.problems_for_suite, suite)[0].id
    alice, bob = register(rt, "Alice"), register(rt, "Bob")
    validators = [register(rt, name, Role.VALIDATOR) for name in ("Dave", "Eve")]
    source = f"# bob-code-{tag}\ndef solve(problem):\n    return {{}}\n".encode()
    admission = submit(rt, bob, "bravo", content=source)
    assert admission.agent_version_id and admission.agent_id
    runs = []
    for validator in validators:  # two successes: eligible, and on the board
        claimed = claim(rt, validator)
        assert claimed is not None and claimed.run.agent_version_id == admission.agent_version_id
        run = claimed.run.id
        logs = f"runs/{run}/logs-{tag}.gz"
        update = evaluations.ProblemUpdate(
            problem_id=problem, status=ProblemStatus.SUCCESS, score=0.5, logs_key=logs
        )
        rt.db.call(evaluations.update_progress, run_id=run, validator_hotkey=validator, problems=[update])
        rt.db.call(
            evaluations.complete_run,
            run_id=run,
            validator_hotkey=validator,
            terminal_status=RunStatus.SUCCESS,
            validator_score=0.5,
            results_key=f"runs/{run}/results-{tag}.tar.gz",
            settings=rt.settings,
        )
        runs.append(run)
    submit(rt, alice, "alpha")
    version = rt.db.call(_version_row, admission.agent_version_id)
    assert version.state == "ELIGIBLE"
    try:  # Bob's eligible version qualifies: the race paths lead to it too
        race = rt.db.call(races.open_race, settings=rt.settings).id
    except RaceInFlight:  # the server's scheduler opened one first
        race = rt.db.call(races.race_at).id
    return PrivateWorld(
        suite=suite,
        version=admission.agent_version_id,
        agent=admission.agent_id,
        runs=runs,
        problem=problem,
        secrets={
            "code": f"bob-code-{tag}",
            "code key": version.code_key,
            "logs keys": f"logs-{tag}",
            "results keys": f"results-{tag}",
            "token": f"bob-token-{tag}",
            "suite answer": f"answer-{tag}",
        },
        race=race,
    )


def _version_row(session: Any, version_id: uuid.UUID) -> AgentVersion:
    row = session.get(AgentVersion, version_id)
    assert row is not None
    return row


DEPTH = 2  # objects below each root; with every root, every type's fields are selected somewhere


def _required_args(field: GraphQLField) -> bool:
    return any(isinstance(a.type, GraphQLNonNull) and a.default_value is None for a in field.args.values())


def _selection(type_: Any, depth: int, *, prefix: str = "") -> str:
    """Every field of ``type_`` (every member's, for a union or interface), ``depth`` objects deep.
    Members' fields are aliased by type, since two members may have a field of one name and two types."""
    if is_abstract_type(type_):
        members = schema._schema.get_possible_types(type_)
        return "__typename " + " ".join(
            f"... on {m.name} {{ {_selection(m, depth, prefix=m.name + '_')} }}" for m in members
        )
    parts = ["__typename"]
    for name, field in type_.fields.items():
        named = get_named_type(field.type)
        head = f"{prefix}{name}: {name}" if prefix else name
        if _required_args(field):
            continue
        if is_leaf_type(named):
            parts.append(head)
        elif depth == 0:
            continue
        elif named.name.endswith("Connection"):
            node = get_named_type(named.fields["edges"].type).fields["node"].type  # type: ignore[union-attr]
            inner = _selection(get_named_type(node), depth - 1)
            parts.append(f"{head}(first: 5) {{ totalCount edges {{ cursor node {{ {inner} }} }} }}")
        elif isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            parts.append(f"{head} {{ {_selection(named, depth - 1)} }}")
    return " ".join(parts)


def _every_path(w: PrivateWorld, bob: str, eve: str) -> list[tuple[str, dict[str, Any]]]:
    """A document per way into the graph, each selecting everything ``DEPTH`` objects deep."""
    query = schema._schema.query_type
    assert query is not None
    objects = {
        "AgentVersion": w.version, "Agent": w.agent, "EvaluationRun": w.runs[0],
        "Miner": bob, "Validator": eve, "Problem": w.problem, "Suite": w.suite,
    }  # fmt: skip
    by_id = {to_base64(kind, value): kind for kind, value in objects.items()}
    kinds = {kind: schema._schema.get_type(kind) for kind in objects}
    documents = [  # node(id:) and nodes(ids:), selecting each object's own type
        (
            f"query ($id: ID!) {{ node(id: $id) {{ ... on {k} {{ {_selection(kinds[k], DEPTH)} }} }} }}",
            {"id": g},
        )
        for g, k in by_id.items()
    ]
    fragments = " ".join(f"... on {k} {{ {_selection(t, 1, prefix=k + '_')} }}" for k, t in kinds.items())
    documents.append(
        (f"query ($ids: [ID!]!) {{ nodes(ids: $ids) {{ __typename {fragments} }} }}", {"ids": list(by_id)})
    )
    arguments = {
        "agent": {"id": str(w.agent)},
        "agentVersion": {"id": str(w.version)},
        "evaluationRun": {"id": str(w.runs[0])},
        "miner": {"hotkey": bob},
        "validator": {"hotkey": eve},
        "suite": {"id": str(w.suite)},
        "race": {"id": str(w.race or uuid.UUID(int=0))},
    }
    for root, field in query.fields.items():
        if root in ("dryRun", "node", "nodes"):
            continue
        args = arguments.get(root, {})
        assert args or not _required_args(field), (
            f"no arguments known for Query.{root}: add them to _every_path"
        )
        named = get_named_type(field.type)
        declared = ", ".join(f"${k}: {field.args[k].type}" for k in args)
        head = f"{root}({', '.join(f'{k}: ${k}' for k in args)})" if args else root
        if named.name.endswith("Connection"):
            node = get_named_type(named.fields["edges"].type).fields["node"].type  # type: ignore[union-attr]
            body = f"totalCount edges {{ node {{ {_selection(get_named_type(node), DEPTH)} }} }}"
            head += "(first: 5)"
        else:
            body = _selection(named, DEPTH)
        documents.append((f"query{f'({declared})' if declared else ''} {{ {head} {{ {body} }} }}", args))
    return documents


SIGNED_QUERIES = ("query { myInferenceAuth ", "query { viewer ")  # roots that answer only their signed caller


@pytest.fixture
def unlimited() -> dict[str, int]:
    """Budgets big enough for documents that select everything (the limits have their own tests)."""
    return {
        "graphql_max_cost": 10**9,
        "graphql_max_depth": 100,
        "graphql_max_aliases": 10**4,
        "graphql_max_tokens": 10**6,
        "graphql_max_document_chars": 10**7,
        "graphql_max_fields": 10**6,
    }


@pytest.mark.slow
def test_a_miner_never_reads_another_miners_private_data_through_any_path(
    serve: Callable[..., LiveServer], unlimited: dict[str, int]
) -> None:
    # given Bob's eligible version (released only in a day), with runs' logs and results, and his token
    server = serve(code_release_delay_seconds=86_400, **unlimited)
    world = _private_world(server.runtime)
    bob, eve = keypair("Bob").ss58_address, keypair("Eve").ss58_address
    with server.http() as http:
        stored = post(http, STORE_CREDENTIAL, {"token": world.secrets["token"]}, signed("Bob"))
        assert stored["data"]["storeInferenceCredential"]["__typename"] == "StoreInferenceCredentialSuccess"

        # when Alice (signed) and anyone (unsigned) read every path into the graph
        answers = []
        for document, variables in _every_path(world, bob, eve):
            for headers in (signed("Alice"), {}):
                body = post(http, document, variables, headers)
                if not headers and document.startswith(SIGNED_QUERIES):  # the caller's own data: signed only
                    assert [e["extensions"]["code"] for e in body["errors"]] == ["UNAUTHENTICATED"], body
                else:
                    assert "errors" not in body, (document, body["errors"])
                answers.append(json.dumps(body))
        # and ask for Bob's artifacts
        downloads = [
            post(http, ARTIFACT_DOWNLOAD, {"type": kind, "version": str(world.version), **extra}, headers)
            for kind, extra in (
                ("AGENT_CODE", {}),
                ("EVAL_LOGS_BUNDLE", {"run": str(world.runs[0])}),
                ("EVAL_PROBLEM_LOGS", {"run": str(world.runs[1]), "problem": str(world.problem)}),
            )
            for headers in (signed("Alice"), {})
        ]

    # then the paths reached Bob's rows, and none of his secrets came back
    everything = "\n".join(answers)
    assert (
        all(str(row) in everything for row in (world.version, world.agent, *world.runs)) and bob in everything
    )
    assert '"metadata"' in everything and "P0" in everything  # problems were read, with their metadata
    for what, secret in world.secrets.items():
        assert secret not in everything, f"{what} leaked"
    for body in downloads:
        result = body["data"]["requestArtifactDownload"]
        assert (result["__typename"], result["code"]) == ("ArtifactNotReleasedError", "ARTIFACT_NOT_RELEASED")
        assert not any(secret in json.dumps(body) for secret in world.secrets.values())


# ---- what an unreleased version reveals (services.agents.discloses) ------------------------------


def _hidden_world(rt: Runtime) -> tuple[PrivateWorld, str]:
    """Bob's version QUEUED (not released) with a run Eve holds, beside Alice's released one.
    Returns the world and Bob's code SHA-256, which no public answer may carry before release."""
    suite = rt.db.call(suites.get_current_suite).id or 0
    problem = rt.db.call(suites.problems_for_suite, suite)[0].id
    alice, bob = register(rt, "Alice"), register(rt, "Bob")
    dave, eve = register(rt, "Dave", Role.VALIDATOR), register(rt, "Eve", Role.VALIDATOR)
    released = submit(rt, alice, "alpha")
    for validator in (dave, eve):
        claimed = claim(rt, validator)
        assert claimed is not None and claimed.run.agent_version_id == released.agent_version_id
        complete(rt, claimed.run.id, validator, score=0.5)
    source = f"# bob-hidden-{uuid.uuid4().hex}\ndef solve(problem):\n    return {{}}\n".encode()
    hidden = submit(rt, bob, "bravo", content=source)
    held = claim(rt, eve)
    assert held is not None and held.run.agent_version_id == hidden.agent_version_id
    assert hidden.agent_version_id and hidden.agent_id
    row = rt.db.call(_version_row, hidden.agent_version_id)
    assert row.state == "RUNNING"  # not released: evaluated now
    queued = submit(rt, register(rt, "Ferdie"), "foxtrot", content=source + b"# queued\n")
    queued_row = rt.db.call(_version_row, queued.agent_version_id)
    assert queued_row.state == "QUEUED"  # not released: waiting for a validator
    world = PrivateWorld(
        suite=suite,
        version=hidden.agent_version_id,
        agent=hidden.agent_id,
        runs=[held.run.id],
        problem=problem,
        secrets={"code sha256": row.code_sha256, "queued code sha256": queued_row.code_sha256},
    )
    return world, row.code_sha256


BY_ID = "query ($id: ID!) { agentVersion(id: $id) { codeSha256 } }"


@pytest.mark.slow
def test_every_public_field_of_the_graph_hides_a_version_before_its_release(
    serve: Callable[..., LiveServer], unlimited: dict[str, int]
) -> None:
    # given Bob's version, QUEUED, with a run Eve holds
    server = serve(**unlimited)
    rt = server.runtime
    make_suite(rt)
    world, sha = _hidden_world(rt)
    bob, eve = keypair("Bob").ss58_address, keypair("Eve").ss58_address
    global_id = to_base64("AgentVersion", world.version)

    def walk(http: httpx.Client) -> str:
        answers = []
        for document, variables in _every_path(world, bob, eve):
            if document.startswith(SIGNED_QUERIES):
                continue  # the caller's own data: refused unsigned (the test above), nothing public to hide
            body = post(http, document, variables, {})
            assert "errors" not in body, (document, body["errors"])
            answers.append(json.dumps(body))
        return "\n".join(answers)

    with server.http() as http:
        # when anyone reads every public path into the graph
        hidden = walk(http)
        direct = post(http, BY_ID, {"id": str(world.version)}, {})
        node = post(http, "query ($id: ID!) { node(id: $id) { id } }", {"id": global_id}, {})
        rest = http.get(f"/v1/public/agent-versions/{world.version}")
        status = http.get(f"/v1/public/agent-versions/{world.version}/status")

        # then the version's status is public (as REST's status path serves it), its record is not
        assert str(world.version) in hidden and "bravo" in hidden  # the walk reached Bob's rows
        for what, secret in world.secrets.items():
            assert secret not in hidden, f"{what} of an unreleased version leaked"
        assert global_id not in hidden, "an unreleased version was served as an AgentVersion"
        assert direct["data"] == {"agentVersion": None} and node["data"] == {"node": None}
        assert (rest.status_code, rest.json()["error_code"]) == (404, "ARTIFACT_NOT_RELEASED")
        assert status.status_code == 200 and status.json()["state"] == "RUNNING"

        # and once released (two successes, no delay), the same walk shows it: the test can fail
        dave = keypair("Dave").ss58_address
        complete(rt, world.runs[0], eve, score=0.7)
        again = claim(rt, dave)
        assert again is not None and again.run.agent_version_id == world.version
        complete(rt, again.run.id, dave, score=0.7)
        shown = walk(http)
        assert sha in shown and global_id in shown
        released = post(http, BY_ID, {"id": str(world.version)}, {})["data"]
        assert released == {"agentVersion": {"codeSha256": sha}}
