"""The load generator, run in its own process: ``python -m benchmarks.loadgen SPEC.json``.

It reads one spec (kind, target, concurrency, warm-up, duration) and prints one JSON result:
completions per second inside the measured window, p50/p99 latency in milliseconds, errors with
a sample message. Workers are asyncio tasks on one core (pinned to the last CPU when allowed), so
the servers under test keep the other core; the load generator's own cost is the same for every
server, which is why the record compares ratios.

Kinds:
- ``http``: one fixed request over keep-alive HTTP/1.1 connections (a minimal client: a few
  microseconds per request, where httpx costs about a millisecond of the shared CPU).
- ``sql``: one statement through psycopg's async connections (auto-prepared after 5 runs).
- ``validators``: N validators claim, heartbeat, report progress and complete through the REST
  paths with real SR25519 signatures.
- ``signed``: N validators each POST a signed request in a loop (fresh signature and nonce each).
- ``raw_claims``: the same lifecycle as bare SQL (SKIP LOCKED claim), the database's limit.
- ``paging``: one analyst walking a GraphQL connection page by page with keyset cursors.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Tally:
    """Latencies and errors of the requests that finished inside the measured window."""

    window_start: float
    window_end: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_sample: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record(self, started: float, finished: float, ok: bool, message: str | None = None) -> None:
        if started < self.window_start or finished > self.window_end:
            return
        if ok:
            self.latencies.append(finished - started)
        else:
            self.errors += 1
            if self.error_sample is None:
                self.error_sample = (message or "error")[:500]

    def result(self) -> dict[str, Any]:
        seconds = self.window_end - self.window_start
        lat = sorted(self.latencies)
        out: dict[str, Any] = {
            "requests": len(lat),
            "seconds": round(seconds, 3),
            "rps": round(len(lat) / seconds, 2) if seconds > 0 else 0.0,
            "p50_ms": round(percentile(lat, 0.50) * 1000, 2) if lat else None,
            "p99_ms": round(percentile(lat, 0.99) * 1000, 2) if lat else None,
            "errors": self.errors,
        }
        if self.error_sample:
            out["error_sample"] = self.error_sample
        out.update(self.extra)
        return out


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[rank]


def pin_to_last_cpu() -> None:
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > 1:
            os.sched_setaffinity(0, {cpus[-1]})
    except (AttributeError, OSError):
        pass


# ------------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client: enough for fixed requests to our servers and the peer.


class HttpConnection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.cache: str | None = None  # the last answer's x-cache header (hit, miss), if it had one

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        body = b""
        marker = lower.find(b"\r\ncontent-length:")
        if marker >= 0:
            end = lower.index(b"\r\n", marker + 2)
            length = int(lower[marker + 17 : end].strip())
            body = await self.reader.readexactly(length)
        elif b"transfer-encoding: chunked" in lower:
            parts = []
            while True:
                line = await self.reader.readuntil(b"\r\n")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            body = b"".join(p[:-2] for p in parts)
        if b"connection: close" in lower:
            self.close()
        self.cache = (
            "hit" if b"\r\nx-cache: hit" in lower else "miss" if b"\r\nx-cache: miss" in lower else None
        )
        return status, body


def build_request(spec: dict[str, Any], body: bytes | None) -> bytes:
    method = spec.get("method", "GET")
    lines = [
        f"{method} {spec['path']} HTTP/1.1",
        f"Host: {spec['host']}:{spec['port']}",
        "Accept: application/json",
    ]
    for name, value in (spec.get("headers") or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def response_problem(status: int, body: bytes, graphql: bool) -> str | None:
    """Why a response does not count as an answer, or None when it does."""
    if status != 200:
        return f"HTTP {status}: {body[:300]!r}"
    if graphql and (b'"errors"' in body[:200] or b'"errors":' in body[-2000:]):
        return f"GraphQL errors: {body[:400]!r}"
    if not body:
        return "empty body"
    return None


async def run_http(spec: dict[str, Any]) -> dict[str, Any]:
    concurrency = int(spec["concurrency"])
    payload = spec.get("json")
    unique = bool(spec.get("unique_document"))
    graphql = bool(spec.get("graphql"))
    fixed = build_request(spec, json.dumps(payload).encode() if payload is not None else None)
    # Distinct requests in turn: a pool of variables (GraphQL) or of paths (REST; a page may be
    # several paths, asked one after the other and counted as one page).
    pages: list[list[bytes]] = []
    for variables in spec.get("variables_pool") or []:
        pages.append([build_request(spec, json.dumps({**(payload or {}), "variables": variables}).encode())])
    for paths in spec.get("path_pool") or []:
        pages.append([build_request({**spec, "path": path}, None) for path in paths])
    turn = itertools.count()
    start = time.perf_counter()
    tally = Tally(start + spec["warmup"], start + spec["warmup"] + spec["duration"])
    sizes: list[int] = []
    counter = 0
    caches = {"hit": 0, "miss": 0}

    async def worker() -> None:
        nonlocal counter
        conn = HttpConnection(spec["host"], spec["port"])
        try:
            while time.perf_counter() < tally.window_end:
                raw = fixed
                if unique:  # a new comment per request: no document-keyed cache can answer it
                    counter += 1
                    body = dict(payload or {})
                    body["query"] = f"# bench {os.getpid()}-{counter}\n" + body["query"]
                    raw = build_request(spec, json.dumps(body).encode())
                raws = pages[next(turn) % len(pages)] if pages else [raw]
                t0 = time.perf_counter()
                try:
                    problem = None
                    for one in raws:
                        status, data = await conn.request(one)
                        problem = response_problem(status, data, graphql)
                        if conn.cache and tally.window_start <= t0:
                            caches[conn.cache] += 1
                        if problem:
                            break
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    conn.close()
                    problem = f"{type(exc).__name__}: {exc}"
                    data = b""
                t1 = time.perf_counter()
                tally.record(t0, t1, problem is None, problem)
                if problem is None and len(sizes) < 5:
                    sizes.append(len(data))
                if problem is not None:
                    await asyncio.sleep(0.05)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out = tally.result()
    out["response_bytes"] = max(sizes) if sizes else None
    out["concurrency"] = concurrency
    if caches["hit"] + caches["miss"]:
        out["cache_hit_share"] = round(caches["hit"] / (caches["hit"] + caches["miss"]), 3)
    if pages:
        out["distinct_requests"] = len(pages)
    return out


# ------------------------------------------------------------------------------------------------


async def run_writers(spec: dict[str, Any]) -> dict[str, Any]:
    """Signed validator writes at a fixed rate (open loop): heartbeats and progress reports in turn,
    spread over validators that each hold a claimed run; their latency is what the reads may starve."""
    import httpx
    from substrateinterface import Keypair

    from oro_graph.auth import sign_headers

    rate = float(spec["rate"])
    holders = [(Keypair.create_from_uri(uri), run, problems) for uri, run, problems in spec["holders"]]
    start = time.perf_counter()
    tally = Tally(start + spec["warmup"], start + spec["warmup"] + spec["duration"])
    if rate <= 0:
        await asyncio.sleep(tally.window_end - start)
        return {**tally.result(), "rate": 0}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=len(holders))
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(base_url=spec["base_url"], limits=limits, timeout=60) as client:

        async def write(k: int) -> None:
            kp, run, problems = holders[k % len(holders)]
            if (k // len(holders)) % 2 == 0:
                path, body = f"/v1/validator/evaluation-runs/{run}/heartbeat", {"cpu_pct": 20.0}
            else:
                path = f"/v1/validator/evaluation-runs/{run}/progress"
                # ``rescore``: every report moves the scores (the totals change each time); otherwise a
                # report re-sends the same results (a validator repeating its progress).
                score = (k % 97) / 97 if spec.get("rescore") else 0.5
                body = {
                    "problems": [{"problem_id": p, "status": "SUCCESS", "score": score} for p in problems]
                }
            t0 = time.perf_counter()
            try:
                r = await client.post(path, json=body, headers=sign_headers(kp))
                ok, message = (
                    r.status_code == 200,
                    f"{path.rsplit('/', 1)[-1]} HTTP {r.status_code}: {r.text[:200]}",
                )
            except httpx.HTTPError as exc:
                ok, message = False, f"{type(exc).__name__}: {exc}"
            tally.record(t0, time.perf_counter(), ok, message)

        k = 0
        while True:
            due = start + k / rate
            if due >= tally.window_end:
                break
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            task = asyncio.create_task(write(k))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            k += 1
        if tasks:
            await asyncio.wait(tasks, timeout=60)
    return {**tally.result(), "rate": rate}


async def run_sql(spec: dict[str, Any]) -> dict[str, Any]:
    import psycopg

    concurrency = int(spec["concurrency"])
    start = time.perf_counter()
    tally = Tally(start + spec["warmup"], start + spec["warmup"] + spec["duration"])
    sizes: list[int] = []

    async def worker() -> None:
        async with await psycopg.AsyncConnection.connect(spec["dsn"], autocommit=True) as conn:
            while time.perf_counter() < tally.window_end:
                t0 = time.perf_counter()
                try:
                    cur = await conn.execute(spec["statement"], spec.get("params"))
                    rows = await cur.fetchall()
                    ok, message = True, None
                except psycopg.Error as exc:
                    ok, message, rows = False, str(exc), []
                t1 = time.perf_counter()
                tally.record(t0, t1, ok, message)
                if ok and rows and len(sizes) < 5:
                    sizes.append(len(str(rows[0][0])))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out = tally.result()
    out["response_bytes"] = max(sizes) if sizes else None
    out["concurrency"] = concurrency
    return out


# ------------------------------------------------------------------------------------------------


async def run_validators(spec: dict[str, Any]) -> dict[str, Any]:
    """N validators each loop claim -> heartbeat -> progress -> complete through the REST paths."""
    from urllib.parse import urlsplit

    from substrateinterface import Keypair

    from oro_graph.auth import sign_headers

    n = int(spec["validators"])
    problems = spec["problems"]
    keypairs = [Keypair.create_from_uri(uri) for uri in spec["uris"][:n]]
    target = urlsplit(spec["base_url"])
    host, port = target.hostname or "127.0.0.1", target.port or 80
    start = time.perf_counter()
    tally = Tally(start + spec["warmup"], start + spec["warmup"] + spec["duration"])
    cycles = Tally(tally.window_start, tally.window_end)
    counts = {"no_work": 0, "cycles": 0}
    rng = random.Random(6)
    # One keep-alive connection per validator, as each validator is its own machine, through the same
    # minimal client as the HTTP floor: httpx cost this process about 3.5 ms of the shared CPU per
    # call (14 ms a cycle, a quarter of a core at 20 cycles/s), which the servers' CPU then lacked;
    # the floor's client costs a few microseconds. Signing (about 0.1 ms) stays per request.

    async def validator(kp: Keypair) -> None:
        conn = HttpConnection(host, port)

        async def call(path: str, body: dict[str, Any]) -> tuple[int, bytes]:
            raw = build_request(
                {"method": "POST", "path": path, "host": host, "port": port, "headers": sign_headers(kp)},
                json.dumps(body).encode(),
            )
            try:
                return await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                conn.close()
                raise

        try:
            while time.perf_counter() < tally.window_end:
                c0 = time.perf_counter()
                try:
                    status, answer = await call("/v1/validator/work/claim", {"cpu_pct": 12.5})
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    tally.record(c0, time.perf_counter(), False, f"claim: {exc!r}")
                    await asyncio.sleep(0.05)
                    continue
                c1 = time.perf_counter()
                if status == 204:
                    counts["no_work"] += 1
                    await asyncio.sleep(0.05)
                    continue
                if status != 200:
                    tally.record(c0, c1, False, f"claim HTTP {status}: {answer[:300]!r}")
                    await asyncio.sleep(0.05)
                    continue
                tally.record(c0, c1, True)
                run = json.loads(answer)["eval_run_id"]
                steps = [
                    (f"/v1/validator/evaluation-runs/{run}/heartbeat", {"cpu_pct": 20.0}),
                    (
                        f"/v1/validator/evaluation-runs/{run}/progress",
                        {
                            "problems": [
                                {"problem_id": p, "status": "SUCCESS", "score": 0.5} for p in problems
                            ]
                        },
                    ),
                    (
                        f"/v1/validator/evaluation-runs/{run}/complete",
                        {"terminal_status": "SUCCESS", "validator_score": round(rng.random(), 4)},
                    ),
                ]
                failed = None
                for path, body in steps:
                    try:
                        status, answer = await call(path, body)
                        if status != 200:
                            failed = f"{path.rsplit('/', 1)[-1]} HTTP {status}: {answer[:300]!r}"
                    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                        failed = f"{path.rsplit('/', 1)[-1]}: {exc!r}"
                    if failed:
                        break
                cycles.record(c0, time.perf_counter(), failed is None, failed)
                if failed is None and c0 >= tally.window_start and time.perf_counter() <= tally.window_end:
                    counts["cycles"] += 1
        finally:
            conn.close()

    await asyncio.gather(*(validator(kp) for kp in keypairs))
    out = tally.result()  # rps here is claims per second, latencies are the claim call's
    cycle = cycles.result()
    out.update(
        validators=n,
        no_work=counts["no_work"],
        cycles_per_s=cycle["rps"],
        cycle_p50_ms=cycle["p50_ms"],
        cycle_p99_ms=cycle["p99_ms"],
        cycle_errors=cycle["errors"],
    )
    if cycle.get("error_sample") and "error_sample" not in out:
        out["error_sample"] = cycle["error_sample"]
    return out


async def run_signed(spec: dict[str, Any]) -> dict[str, Any]:
    """N validators each POST one signed request after another (a fresh SR25519 signature and nonce
    each, as the loop signs): the signed floor (``benchmarks.signedfloor``)."""
    from urllib.parse import urlsplit

    from substrateinterface import Keypair

    from oro_graph.auth import sign_headers

    n = int(spec["concurrency"])
    keypairs = [Keypair.create_from_uri(uri) for uri in spec["uris"][:n]]
    target = urlsplit(spec["base_url"])
    host, port = target.hostname or "127.0.0.1", target.port or 80
    body = json.dumps(spec.get("json") or {}).encode()
    start = time.perf_counter()
    tally = Tally(start + spec["warmup"], start + spec["warmup"] + spec["duration"])

    async def worker(kp: Keypair) -> None:
        conn = HttpConnection(host, port)
        try:
            while time.perf_counter() < tally.window_end:
                head = {"method": "POST", "path": spec["path"], "host": host, "port": port}
                raw = build_request({**head, "headers": sign_headers(kp)}, body)
                t0 = time.perf_counter()
                try:
                    status, data = await conn.request(raw)
                    problem = response_problem(status, data, False)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    conn.close()
                    problem = f"{type(exc).__name__}: {exc}"
                tally.record(t0, time.perf_counter(), problem is None, problem)
                if problem is not None:
                    await asyncio.sleep(0.05)
        finally:
            conn.close()

    await asyncio.gather(*(worker(kp) for kp in keypairs))
    out = tally.result()
    out["concurrency"] = n
    return out


async def run_raw_claims(spec: dict[str, Any]) -> dict[str, Any]:
    """The same lifecycle as bare SQL over N connections: the SKIP LOCKED claim rate the database allows."""
    import psycopg

    from benchmarks import queries

    n = int(spec["validators"])
    problems = spec["problems"]
    start = time.perf_counter()
    tally = Tally(start + spec["warmup"], start + spec["warmup"] + spec["duration"])
    cycles = Tally(tally.window_start, tally.window_end)
    counts = {"no_work": 0}
    rng = random.Random(6)

    async def validator(hotkey: str) -> None:
        async with await psycopg.AsyncConnection.connect(spec["dsn"], autocommit=True) as conn:
            while time.perf_counter() < tally.window_end:
                c0 = time.perf_counter()
                async with conn.transaction():
                    row = await (await conn.execute(queries.RAW_CLAIM, {"hotkey": hotkey})).fetchone()
                c1 = time.perf_counter()
                if row is None:
                    counts["no_work"] += 1
                    await asyncio.sleep(0.05)
                    continue
                tally.record(c0, c1, True)
                run = row[0]
                await conn.execute(queries.RAW_HEARTBEAT, {"run": run, "hotkey": hotkey})
                await conn.execute(queries.RAW_PROGRESS, {"run": run, "problems": problems})
                await conn.execute(
                    queries.RAW_COMPLETE, {"run": run, "hotkey": hotkey, "score": rng.random()}
                )
                cycles.record(c0, time.perf_counter(), True)

    await asyncio.gather(*(validator(h) for h in spec["hotkeys"][:n]))
    out = tally.result()
    cycle = cycles.result()
    out.update(
        validators=n,
        no_work=counts["no_work"],
        cycles_per_s=cycle["rps"],
        cycle_p50_ms=cycle["p50_ms"],
        cycle_p99_ms=cycle["p99_ms"],
    )
    return out


# ------------------------------------------------------------------------------------------------


async def run_paging(spec: dict[str, Any]) -> dict[str, Any]:
    """Walk a connection to its end (or the time budget); then time the first and last page again."""
    import httpx

    path = spec["connection"]
    page_size = int(spec.get("page_size", 100))
    budget = float(spec["budget"])
    fetches = itertools.count()
    async with httpx.AsyncClient(base_url=spec["base_url"], timeout=120) as client:

        async def page(after: str | None) -> tuple[float, dict[str, Any]]:
            # A new comment each time: the first and last pages are fetched again below to time
            # them, and the response cache must not answer those (it would time the cache).
            document = f"{spec['document']}\n# fetch {next(fetches)}"
            t0 = time.perf_counter()
            r = await client.post(
                "/graphql",
                json={"query": document, "variables": {"first": page_size, "after": after}},
            )
            elapsed = time.perf_counter() - t0
            body = r.json()
            if r.status_code != 200 or body.get("errors"):
                raise RuntimeError(f"HTTP {r.status_code}: {json.dumps(body.get('errors') or body)[:400]}")
            conn = body["data"]
            for key in path:
                conn = conn[key]
            return elapsed, conn

        started = time.perf_counter()
        after: str | None = None
        cursors: list[str | None] = []
        times: list[float] = []
        rows = results = 0
        complete = False
        while time.perf_counter() - started < budget:
            elapsed, conn = await page(after)
            cursors.append(after)
            times.append(elapsed)
            edges = conn.get("edges") or []
            rows += len(edges)
            results += sum(len(((e["node"].get("problemResults") or {}).get("edges")) or []) for e in edges)
            info = conn.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                complete = True
                break
            after = info.get("endCursor")
        walked = time.perf_counter() - started

        # First and last page again, alternating, median of five each: less noise than one walk.
        # When the budget ended the walk early, the last page is reached with a keyset cursor the
        # harness built for the final 100 rows (the server's cursor format), if it could.
        last_cursor, last_source = cursors[-1], "walk"
        tail = spec.get("tail_cursor")
        if not complete and tail:
            _, conn = await page(tail)
            if not (conn.get("pageInfo") or {}).get("hasNextPage"):
                last_cursor, last_source = tail, "built cursor for the final rows"
            else:
                last_source = "deepest page walked (the built cursor was not the end)"
        elif not complete:
            last_source = "deepest page walked"
        first, last = [], []
        for _ in range(5):
            first.append((await page(cursors[0]))[0])
            last.append((await page(last_cursor))[0])
    first.sort()
    last.sort()
    return {
        "pages": len(times),
        "rows": rows,
        "problem_results": results,
        "complete": complete,
        "seconds": round(walked, 3),
        "rows_per_s": round(rows / walked, 1) if walked else None,
        "results_per_s": round(results / walked, 1) if walked else None,
        "first_page_ms": round(first[2] * 1000, 2),
        "last_page_ms": round(last[2] * 1000, 2),
        "last_page": last_source,
        "walk_first_page_ms": round(times[0] * 1000, 2),
        "walk_last_page_ms": round(times[-1] * 1000, 2),
        "p50_ms": round(percentile(sorted(times), 0.5) * 1000, 2),
        "p99_ms": round(percentile(sorted(times), 0.99) * 1000, 2),
        "rps": round(len(times) / walked, 2) if walked else None,
    }


KINDS = {
    "http": run_http,
    "writers": run_writers,
    "sql": run_sql,
    "validators": run_validators,
    "signed": run_signed,
    "raw_claims": run_raw_claims,
    "paging": run_paging,
}


def main(argv: list[str]) -> int:
    with open(argv[1]) as handle:
        spec = json.load(handle)
    if spec.get("pin", True):
        pin_to_last_cpu()
    try:
        from uvloop import run as run_loop
    except ImportError:
        run_loop = asyncio.run
    try:
        result = run_loop(KINDS[spec["kind"]](spec))
    except Exception as exc:  # reported to the harness, which marks the workload unavailable
        result = {"failed": f"{type(exc).__name__}: {exc}"[:1000]}
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
