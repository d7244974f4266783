"""Bytes on the wire for the hot public reads, raw, gzip and Brotli, and what a 304 saves.

    python -m benchmarks.compression

Builds the demo world (seed 7, its default size) in a temporary SQLite file, then asks the app
in-process for a 100-entry leaderboard page, the suite's problems and a GraphQL board page with
each Accept-Encoding, and once more with the ETag of the first answer. Sizes are deterministic
(same seed, same bytes).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import urlencode

from fastapi.testclient import TestClient

PATHS = {
    "REST leaderboard, 100 entries": "/v1/public/leaderboard?limit=100",
    "REST suite problems": "/v1/public/suites/1/problems",
    "GraphQL board, 100 entries (GET)": "/graphql?"
    + urlencode({"query": "{leaderboard(first:100){edges{node{agentVersionId finalScore rank}}}}"}),
}


def main() -> None:
    from oro_graph import demo
    from oro_graph.app import create_app
    from oro_graph.db import Database
    from oro_graph.migrations import upgrade
    from oro_graph.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        settings = Settings(database_url=url, data_dir=Path(tmp) / "state", secret_key="bench",
                            rate_limit_per_minute=1_000_000)  # fmt: skip
        demo.generate(Database(settings), settings, seed=7)
        print("| answer | identity | gzip | br | 304 |")
        print("| --- | ---: | ---: | ---: | ---: |")
        with TestClient(create_app(settings, migrate=False)) as client:
            for name, path in PATHS.items():
                sizes = {}
                for encoding in ("identity", "gzip", "br"):
                    with client.stream("GET", path, headers={"Accept-Encoding": encoding}) as response:
                        body = b"".join(response.iter_raw())
                        sizes[encoding] = len(body)
                        assert response.status_code == 200, body[:200]
                        tag = response.headers.get("etag")
                again = client.get(path, headers={"If-None-Match": tag or ""})
                print(
                    f"| {name} | {sizes['identity']:,} B | {sizes['gzip']:,} B | {sizes['br']:,} B "
                    f"| {again.status_code}, {len(again.content)} B |"
                )


if __name__ == "__main__":
    main()
