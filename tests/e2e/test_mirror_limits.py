"""`oro-graph mirror` against a server that enforces its rate limit: paced, waits out 429s, resumes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func
from sqlmodel import select

from oro_graph import mirror_client as mirroring
from oro_graph.db import Database
from oro_graph.migrations import upgrade
from oro_graph.models import AgentVersion, utcnow
from oro_graph.services import invariants
from oro_graph.settings import Settings
from tests.e2e.test_mirror import _counts
from tests.factories import make_eligible, make_world

VERSIONS = 24  # 4 requests each plus 7: about 100, the server's whole budget for a minute


def _mirror_command(source: str, target_url: str, state: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ORO_DATABASE_URL": target_url, "ORO_DATA_DIR": str(state), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "oro_graph", "mirror", "--from", source, *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _versions(db: Database) -> int:
    with db.session() as s:
        return s.exec(select(func.count()).select_from(AgentVersion)).one()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_mirror_survives_the_default_limit_and_resumes_after_a_kill(runtime, serve, tmp_path):
    # given a source at the default limit (100 requests per minute per address) with 24 eligible versions
    world = make_world(runtime)
    start = utcnow() - timedelta(days=30)
    for i in range(VERSIONS):
        miner = world.miners[i % 2]
        make_eligible(
            runtime, world, miner, f"agent-{i}", [0.5, 0.6 + i / 100], now=start + timedelta(hours=2 * i)
        )
    server = serve(rate_limit_per_minute=100)
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    upgrade(target_url)
    target = Database(Settings(database_url=target_url, data_dir=tmp_path / "t", secret_key="m"))
    # when a mirror at its default pace is killed part-way through
    first = _mirror_command(server.base_url, target_url, tmp_path / "t")
    deadline = time.monotonic() + 120
    while _versions(target) < 6:
        assert first.poll() is None, first.communicate()[0]
        assert time.monotonic() < deadline, "the first mirror made no progress"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.communicate()
    kept = _versions(target)
    assert 6 <= kept < VERSIONS
    # and run again, this time asking for more than the server allows, so it meets 429s
    second = _mirror_command(server.base_url, target_url, tmp_path / "t", "--rate", "1000/minute")
    output, _ = second.communicate(timeout=170)
    # then it waited as the server said, finished, and fetched only the versions it did not have
    assert second.returncode == 0, output
    added = json.loads(re.search(r"added (\{.*?\});", output).group(1))
    assert added["versions"] == VERSIONS - kept
    requests, retried = map(int, re.search(r"(\d+) requests, (\d+) retried", output).groups())
    waited = float(re.search(r"(\d+) s waiting", output).group(1))
    # the budget the first run spent is not back yet: the mirror either paced itself under the
    # X-RateLimit-* headers the server announces, or met a 429 and waited out its Retry-After
    assert waited >= 1, output
    assert retried == 0 or "HTTP 429 with Retry-After" in output, output
    assert requests - retried == 7 + 4 * (VERSIONS - kept)
    mirrored, source = _counts(target), _counts(runtime.db)
    # the public paths name the current top agent only, not the history of who held the title
    assert mirrored.pop("top") == 1 and source.pop("top") == VERSIONS
    assert mirrored == source
    broken = target.call(invariants.check_invariants, max_active_runs_per_validator=1)
    assert not any(broken.values()), broken


class _Announcing(BaseHTTPRequestHandler):
    """Answers every GET with the budget it was told to announce (a real HTTP server on loopback)."""

    answers: list[dict[str, str]] = []

    def do_GET(self) -> None:
        headers = self.answers.pop(0) if self.answers else {}
        status = int(headers.pop("status", "200"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def announcing() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Announcing)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class PacingClock:
    """``time`` as the paced transport sees it: its sleeps move the clock and nothing else does, so
    the pauses it computes are exact however slowly a loaded machine runs the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_paced_transport_waits_for_an_announced_budget_to_reset(announcing, monkeypatch):
    _Announcing.answers = [
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"},
        {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "99", "X-RateLimit-Reset": "60"},
    ]
    monkeypatch.setattr(mirroring, "time", PacingClock())
    waits: list[tuple[float, str]] = []
    transport = mirroring.PacedTransport(
        httpx.HTTPTransport(), interval=0.0, on_wait=lambda s, why: waits.append((s, why))
    )
    with httpx.Client(transport=transport, base_url=announcing) as client:
        assert client.get("/a").status_code == 200
        assert waits == []  # nothing waited before the first answer
        client.get("/b")
        client.get("/c")
    # the budget was used up for 3 s: the second request waited for it (and half a second more); the
    # third was spaced by 60/100 s
    assert len(waits) == 1 and waits[0][0] == pytest.approx(3.5) and "rate limit" in waits[0][1]
    assert transport.traffic.requests == 3 and transport.traffic.waited_seconds == pytest.approx(3.5 + 0.6)


def test_mirror_honours_retry_after_and_gives_up_with_a_clear_message(announcing, tmp_path):
    _Announcing.answers = [{"status": "503", "Retry-After": "1"} for _ in range(mirroring.MAX_RETRIES + 1)]
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    upgrade(target_url)
    db = Database(Settings(database_url=target_url, data_dir=tmp_path / "t", secret_key="m"))
    waits: list[tuple[float, str]] = []
    traffic = mirroring.Traffic()
    with pytest.raises(mirroring.MirrorError, match="still answered HTTP 503 after 8 retries"):
        mirroring.mirror(db, announcing, on_wait=lambda s, why: waits.append((s, why)), traffic=traffic)
    assert [w[0] for w in waits] == [1.0] * mirroring.MAX_RETRIES
    assert all("HTTP 503 with Retry-After: 1 s" in why for _, why in waits)
    assert traffic.requests == mirroring.MAX_RETRIES + 1


@pytest.mark.parametrize(
    ("text", "interval"),
    [("90/minute", 60 / 90), ("2/second", 0.5), ("500/hour", 7.2), ("1/10seconds", 10.0)],
)
def test_rate_option(text, interval):
    assert mirroring.parse_rate(text) == pytest.approx(interval)


@pytest.mark.parametrize("text", ["fast", "0/minute", "90/fortnight", ""])
def test_bad_rate_option_says_what_to_write(text):
    with pytest.raises(mirroring.MirrorError, match="such as 90/minute"):
        mirroring.parse_rate(text)
