"""Every browser page is served with assets from this server only, and the vendored files are the ones
MANIFEST.json names (`scripts/refresh_ui_assets.py --check`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from oro_graph.web import STATIC
from tests.web.conftest import Site

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["/", "/graphql", "/docs", "/redoc", "/docs/oauth2-redirect"]
# src= and href= of tags, and url(...) in inline styles; data: URIs (GraphiQL's inline favicon) fetch nothing.
REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def references(page: str) -> list[str]:
    return [ref for ref in REFERENCE.findall(page) if not ref.startswith(("data:", "#"))]


@pytest.mark.parametrize("path", PAGES)
def test_pages_load_assets_from_this_server_only(site: Site, path: str) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as client:
        page = client.get(path, headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        refs = references(page.text)
        foreign = [
            r for r in refs if urlsplit(urljoin(site.url + path, r)).netloc != urlsplit(site.url).netloc
        ]
        assert foreign == [], f"{path} loads {foreign} from another host"
        for ref in refs:
            if ref.startswith("/static/"):
                asset = client.get(ref)
                assert asset.status_code == 200, ref
                assert len(asset.content) > 0


def test_graphiql_and_swagger_pages_name_their_scripts(site: Site) -> None:
    with httpx.Client(base_url=site.url, timeout=10) as client:
        graphiql = references(client.get("/graphql", headers={"Accept": "text/html"}).text)
        docs = references(client.get("/docs").text)
        redoc = references(client.get("/redoc").text)
    assert "/static/vendor/graphiql/graphiql.min.js" in graphiql
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs
    assert "/static/vendor/redoc/redoc.standalone.js" in redoc


def test_vendored_files_match_the_manifest() -> None:
    manifest = json.loads((STATIC / "vendor" / "MANIFEST.json").read_text())
    assert {"graphiql", "react", "react-dom", "swagger-ui", "redoc"} <= set(manifest)
    for name, entry in manifest.items():
        assert entry["version"] and entry["license"], name
        assert (STATIC / "vendor" / name / "LICENSE").is_file(), f"{name} has no licence file"
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "refresh_ui_assets.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr


def test_missing_asset_is_404(site: Site) -> None:
    assert httpx.get(f"{site.url}/static/vendor/graphiql/nope.js", timeout=10).status_code == 404
