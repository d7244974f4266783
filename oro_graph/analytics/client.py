"""A small GraphQL client for analysts: documents in, tidy pandas frames out.

    from oro_graph.analytics import Client, frames
    client = Client.from_env()                        # ORO_GRAPHQL_URL, default http://127.0.0.1:8000/graphql
    runs = frames.runs(client, suite_id=1, since=...)  # one typed loader per table

GraphQL reports errors with HTTP 200: ``query`` raises ``GraphQLError`` whenever the response
carries ``errors``. Retries (bounded, with backoff) happen only on 429, 5xx and connection errors.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

DEFAULT_URL = "http://127.0.0.1:8000/graphql"
RETRY_STATUSES = {429, 500, 502, 503, 504}


class GraphQLError(RuntimeError):
    """The server answered with GraphQL errors; ``errors`` holds them as sent."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        codes = {str((e.get("extensions") or {}).get("code", "")) for e in errors} - {""}
        messages = "; ".join(str(e.get("message")) for e in errors[:3])
        super().__init__(
            f"GraphQL error{'s' if len(errors) > 1 else ''}: {messages}"
            + (f" [{', '.join(sorted(codes))}]" if codes else "")
        )


class Client:
    def __init__(
        self,
        url: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = 4,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url or os.environ.get("ORO_GRAPHQL_URL") or DEFAULT_URL
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.Client(timeout=timeout, transport=transport)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Client:
        return cls(os.environ.get("ORO_GRAPHQL_URL"), **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, document: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Run one operation and return its ``data``; raise ``GraphQLError`` on any GraphQL error."""
        payload = {"query": document, "variables": dict(variables or {})}
        attempt = 0
        while True:
            try:
                response = self._http.post(self.url, json=payload)
            except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.TimeoutException):
                if attempt >= self.retries:
                    raise
            else:
                if response.status_code not in RETRY_STATUSES or attempt >= self.retries:
                    break
                retry_after = response.headers.get("Retry-After")
                if retry_after and retry_after.isdigit():
                    time.sleep(min(float(retry_after), 30.0))
                    attempt += 1
                    continue
            time.sleep(self.backoff * (2**attempt))
            attempt += 1
        try:
            body = response.json()
        except ValueError:
            response.raise_for_status()
            raise GraphQLError([{"message": f"non-JSON answer with HTTP {response.status_code}"}]) from None
        if body.get("errors"):
            raise GraphQLError(body["errors"])
        if response.status_code >= 400:
            response.raise_for_status()
        return body.get("data") or {}

    def to_parquet(
        self, out: str | os.PathLike[str], *, suite_id: int | None = None, tables: Sequence[str] | None = None
    ) -> dict[str, Path]:
        """Write the graph's main tables as typed Parquet files in ``out`` (created if needed), one per
        table: ``versions``, ``runs``, ``problem_results``, ``validators``, ``problems``, ``races`` and
        ``race_qualifiers`` (of one suite, or every suite when ``suite_id`` is None), with the frames'
        columns and types. Returns the paths. Race results follow the graph's embargo: null while a race
        runs; the secret only once it is over.

        Each file is written beside the old one and swapped in whole. This reads the graph over HTTP, so
        it works against any server; ``oro-graph export`` reads a database directly and adds only the
        problem results that changed since its last run.
        """
        from oro_graph.analytics import frames
        from oro_graph.export import require_pyarrow

        pa = require_pyarrow()
        readers = {
            "versions": lambda: frames.agent_versions(self, suite_id),
            "runs": lambda: frames.runs(self, suite_id=suite_id),
            "problem_results": lambda: frames.problem_results(self, suite_id=suite_id),
            "validators": lambda: frames.validators(self),
            "problems": lambda: frames.problems(self, suite_id),
            "races": lambda: frames.races(self, suite_id),
            "race_qualifiers": lambda: frames.race_qualifiers(self, suite_id),
        }
        unknown = sorted(set(tables or ()) - set(readers))
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; choose from {sorted(readers)}")
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        written = {}
        for name in tables or readers:
            data = pa.Table.from_pandas(readers[name](), preserve_index=False)
            path = target / f"{name}.parquet"
            temp = target / f".{name}.parquet.tmp"
            pa.parquet.write_table(data, temp)
            os.replace(temp, path)
            written[name] = path
        return written

    def paginate(
        self, document: str, variables: Mapping[str, Any] | None, path: Sequence[str], *, page_size: int = 100
    ) -> Iterator[dict[str, Any]]:
        """Yield the nodes of a Relay connection at ``path`` (e.g. ["evaluationRuns"]), page by page.

        The document must take ``$first: Int`` and ``$after: String`` and select
        ``pageInfo { hasNextPage endCursor }`` and ``edges { node { ... } }`` on that connection.
        """
        after: str | None = None
        seen: set[str] = set()
        while True:
            data = self.query(document, {**dict(variables or {}), "first": page_size, "after": after})
            connection: Any = data
            for key in path:
                connection = connection[key] if connection is not None else None
            if connection is None:
                return
            for edge in connection.get("edges") or []:
                yield edge["node"]
            info = connection.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                return
            after = info.get("endCursor")
            if not after or after in seen:
                raise GraphQLError(
                    [{"message": f"the server repeated cursor {after!r}; stopping to avoid a loop"}]
                )
            seen.add(after)


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(name: str) -> str:
    return _CAMEL.sub(r"_\1", name).lower()


def _flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}{snake(key)}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name}_"))
        else:
            out[name] = value
    return out


def frame(
    nodes: Sequence[Mapping[str, Any]] | Iterator[Mapping[str, Any]],
    *,
    columns: Mapping[str, str],
    categories: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Nodes to a tidy frame: nested objects flattened to snake_case columns, typed by ``columns``.

    ``columns`` maps column -> dtype kind: "str", "float", "int", "bool", "datetime" or "category";
    every listed column exists even when there are no rows; categories get the full fixed list.
    """
    rows = [_flatten(n) for n in nodes]
    df = pd.DataFrame(rows, columns=list(columns))
    for name, kind in columns.items():
        series = df[name]
        if kind == "datetime":
            df[name] = pd.to_datetime(series, utc=True, format="ISO8601")
        elif kind == "float":
            df[name] = pd.to_numeric(series, errors="coerce").astype("Float64")
        elif kind == "int":
            df[name] = pd.to_numeric(series, errors="coerce").astype("Int64")
        elif kind == "bool":
            df[name] = series.astype("boolean")
        elif kind == "category":
            cats = list((categories or {}).get(name, sorted(series.dropna().unique())))
            df[name] = pd.Categorical(series, categories=cats)
        else:
            df[name] = series.astype("string")
    return df
