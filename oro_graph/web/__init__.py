"""The browser-facing pages: a landing page at `/`, GraphiQL (served by the graph's router), Swagger UI at
`/docs` and ReDoc at `/redoc`, every script, stylesheet and icon served by this server from
`oro_graph/web/static/` (vendored from npm by `scripts/refresh_ui_assets.py`; versions and licences in
`static/vendor/MANIFEST.json`), so they work without internet and behind strict proxies.
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from oro_graph import __version__
from oro_graph.runtime import Runtime
from oro_graph.services import overview as overview_service

HERE = Path(__file__).parent
STATIC = HERE / "static"
VENDOR = "/static/vendor"


@cache
def graphiql_html() -> str:
    """GraphiQL's page (Strawberry's, with the assets served from /static)."""
    return (HERE / "graphiql.html").read_text()


def install(app: FastAPI, runtime: Runtime) -> None:
    """Mount /static and serve /, /docs, /docs/oauth2-redirect and /redoc (create the app with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN-backed pages are not registered first)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title} {__version__}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title}: REST",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_js_url=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title}: REST",
            redoc_js_url=f"{VENDOR}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{VENDOR}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )

    @app.get("/", include_in_schema=False)
    async def landing(request: Request) -> HTMLResponse:
        summary = await runtime.db.run(overview_service.overview)
        return HTMLResponse(landing_html(summary, graphql_url=f"{str(request.base_url).rstrip('/')}/graphql"))


def landing_html(
    summary: overview_service.Overview, *, graphql_url: str = "http://127.0.0.1:8000/graphql"
) -> str:
    e = html.escape
    suite = summary.suite
    if suite is None:
        suite_html = (
            "<p>No problem suite is active yet: <code>oro-graph suites import FILE --activate</code>.</p>"
        )
    else:
        top = f"; top agent <strong>{e(suite.top_agent)}</strong>" if suite.top_agent else ""
        suite_html = (
            f"<p>Current suite <strong>{suite.id}</strong> (version {suite.version}): "
            f"{suite.problems:,} problems, {suite.eligible_versions:,} eligible agent versions{top}.</p>"
        )
    if summary.race is not None:  # once races exist
        suite_html += f"<p>Current race: {e(str(summary.race))}</p>"
    counts = "".join(
        f"<tr><th>{e(name.replace('_', ' '))}</th><td>{value:,}</td></tr>"
        for name, value in summary.counts.items()
    )
    return _PAGE.format(
        version=e(__version__), suite=suite_html, counts=counts, vendor=VENDOR, graphql_url=e(graphql_url)
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>oro-graph {version}</title>
<link rel="icon" href="{vendor}/swagger-ui/favicon-32x32.png">
<style>
  body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; }}
  body {{ color: #222; }}
  h1 {{ margin-bottom: 0; }} .version {{ color: #666; font-size: 1rem; font-weight: normal; }}
  table {{ border-collapse: collapse; }} th {{ text-align: left; font-weight: normal; padding-right: 2rem; }}
  td {{ text-align: right; font-variant-numeric: tabular-nums; }}
  code, pre {{ background: #f4f4f4; padding: 0 .25rem; }} pre {{ padding: .5rem; overflow-x: auto; }}
  li {{ margin: .2rem 0; }}
</style>
</head>
<body>
<h1>oro-graph <span class="version">{version}</span></h1>
<p>The GraphQL-first backend of the ORO Bittensor subnet (SN15): miners submit agents, validators claim and
score them under leases, and this server ranks the eligible versions and names the top agent. It speaks
GraphQL and the documented <code>/v1</code> REST paths of the official <code>oro-sdk</code>.</p>
<h2>Now</h2>
{suite}
<table id="counts">{counts}</table>
<h2>Explore</h2>
<ul>
  <li><a href="/graphql">/graphql</a>: GraphiQL, the graph with every field described</li>
  <li><a href="/docs">/docs</a>: the REST paths in Swagger UI (<a href="/redoc">ReDoc</a>,
      <a href="/openapi.json">openapi.json</a>)</li>
  <li><a href="/health">/health</a>: liveness and database reachability</li>
</ul>
<h2 id="notebooks">For analysts</h2>
<p>Two notebooks (scores, validator reliability) read this server through <code>/graphql</code>. In a
checkout of the repository:</p>
<pre>pip install -e '.[analysis]'
ORO_GRAPHQL_URL={graphql_url} jupyter lab notebooks/</pre>
<p><code>notebooks/README.md</code> explains their parameters; <code>oro-graph export --format parquet</code>
writes the main tables for DuckDB, Polars or Spark.</p>
</body>
</html>
"""
