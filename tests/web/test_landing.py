"""The landing page at `/` on both databases: what the server holds, from the overview service."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from oro_graph.app import create_app
from oro_graph.models import utcnow
from oro_graph.services import overview
from tests.factories import make_eligible, make_world, submit


def _page(runtime) -> str:  # type: ignore[no-untyped-def]
    with TestClient(create_app(runtime.settings, runtime=runtime, migrate=False)) as client:
        response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "https://" not in response.text  # nothing from elsewhere
    return response.text


def _counts(page: str) -> dict[str, int]:
    return {
        k: int(v.replace(",", "")) for k, v in re.findall(r"<tr><th>([^<]+)</th><td>([\d,]+)</td></tr>", page)
    }


def test_an_empty_server_says_how_to_start(runtime) -> None:
    page = _page(runtime)
    assert "No problem suite is active yet" in page and "suites import FILE --activate" in page
    assert _counts(page) == dict.fromkeys(
        ["suites", "miners", "validators", "agents", "agent versions", "runs", "successful runs"], 0
    )
    for link in ('href="/graphql"', 'href="/docs"', 'href="/health"', 'id="notebooks"'):
        assert link in page


def test_the_page_shows_the_suite_the_top_agent_and_the_counts(runtime) -> None:
    world = make_world(runtime)
    t0 = utcnow() - timedelta(hours=3)
    make_eligible(runtime, world, world.miners[0], "steady", [0.4, 0.5], now=t0)
    make_eligible(runtime, world, world.miners[1], "sharp", [0.8, 0.9], now=t0 + timedelta(hours=1))
    submit(runtime, world.miners[0], "steady")
    page = _page(runtime)
    assert f"Current suite <strong>{world.suite.id}</strong>" in page and "6 problems" in page
    assert "2 eligible agent versions" in page
    assert "top agent <strong>sharp</strong>" in page
    expected = runtime.db.call(overview.overview).counts
    assert _counts(page) == {k.replace("_", " "): v for k, v in expected.items()}
    assert expected == {
        "suites": 1,
        "miners": 2,
        "validators": 3,
        "agents": 2,
        "agent_versions": 3,
        "runs": 4,
        "successful_runs": 4,
    }


def test_names_are_escaped_and_a_race_is_shown_once_races_exist() -> None:
    from oro_graph.web import landing_html

    summary = overview.Overview(
        suite=overview.SuiteSummary(3, 2, 30, 5, "<script>x</script>"),
        counts={"runs": 1234},
        race="race 7 (open)",
    )
    page = landing_html(summary, graphql_url="http://example.test/graphql")
    assert "&lt;script&gt;x&lt;/script&gt;" in page and "<script>x" not in page
    assert "<td>1,234</td>" in page and "Current race: race 7 (open)" in page
    assert "ORO_GRAPHQL_URL=http://example.test/graphql jupyter lab notebooks/" in page


def test_the_current_race_is_on_the_landing_page(runtime) -> None:
    from oro_graph.services import overview, races
    from tests.factories import make_suite

    make_suite(runtime)
    assert runtime.db.call(overview.overview).race is None
    runtime.db.call(races.open_race, settings=runtime.settings)
    assert runtime.db.call(overview.overview).race == "race 1, qualifying open, 0 qualifiers"
