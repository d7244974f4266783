import json
import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from oro_graph.cli import app
from tests.factories import keypair
from tests.support.ports import start_serve, wait_healthy

SHARED_SUITE = Path(__file__).resolve().parents[2] / "shared" / "data" / "problem_suite_v3.json"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ORO_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("ORO_DATA_DIR", str(tmp_path / "state"))
    return tmp_path


def invoke(*args):
    result = CliRunner().invoke(app, list(args))
    return result


def test_registry_add_list_ban(env):
    alice = keypair("Alice").ss58_address
    assert invoke("registry", "add", alice, "--role", "validator", "--name", "alice").exit_code == 0
    listed = invoke("registry", "list")
    assert alice in listed.output and "validator" in listed.output
    assert invoke("registry", "ban", alice).exit_code == 0
    assert "True" in invoke("registry", "list").output.split(alice)[1].splitlines()[0]


def test_registry_add_rejects_bad_ss58(env):
    result = invoke("registry", "add", "nope", "--role", "miner")
    assert result.exit_code == 1
    assert "not a valid SS58" in result.output


@pytest.mark.skipif(not SHARED_SUITE.exists(), reason="shared/data/problem_suite_v3.json not present")
def test_suites_import_real_suite_is_idempotent(env):
    first = invoke("suites", "import", str(SHARED_SUITE), "--activate")
    assert first.exit_code == 0, first.output
    assert "30 problems" in first.output and "active" in first.output
    second = invoke("suites", "import", str(SHARED_SUITE))
    assert "already present as suite 1" in second.output
    listed = invoke("suites", "list")
    assert listed.output.count("True") == 1


def test_suites_import_refuses_garbage(env):
    bad = env / "bad.json"
    bad.write_text('{"not": "a suite"}')
    result = invoke("suites", "import", str(bad))
    assert result.exit_code == 1 and "non-empty JSON list" in result.output


def test_bad_setting_names_the_variable(env, monkeypatch):
    monkeypatch.setenv("ORO_LEASE_SECONDS", "-5")
    result = invoke("db", "upgrade")
    assert result.exit_code != 0
    assert "ORO_LEASE_SECONDS" in str(result.exception) + result.output


def test_serve_answers_health_on_the_embedded_default(tmp_path):
    """The newcomer's command: a fresh directory, no configuration, one command, /health answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORO_")}
    proc, port = start_serve(env, stdout=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.time() + 120
        body = None
        while time.time() < deadline:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                body = response.json()
                break
            except httpx.HTTPError:
                if proc.poll() is not None:
                    break
                time.sleep(0.05)
        assert body == {"status": "ok", "database": "ok", "redis": "off", "version": "0.1.0"}, (
            proc.stdout.read1().decode() if body is None else body
        )
        assert (tmp_path / "oro_graph.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()
    assert json.loads(json.dumps(body))["status"] == "ok"


def test_serve_app_serves_another_factory_the_benchmarks_signed_floor(tmp_path):
    """``serve --app`` (hidden, for the benchmarks) serves that factory: the signed floor's no-op answers a
    signed request, and refuses the same request again (its nonce was spent, as a validator call's is)."""
    from substrateinterface import Keypair

    from benchmarks import signedfloor
    from oro_graph.auth import sign_headers

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORO_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH", "")) if p)
    proc, port = start_serve(
        env, stdout=subprocess.PIPE, cwd=tmp_path, options=("--app", "benchmarks.signedfloor:app")
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_healthy(port, proc)
        signed = sign_headers(Keypair.create_from_uri("//signed-floor"))
        first = httpx.post(f"{base}{signedfloor.NOOP_PATH}", json={}, headers=signed, timeout=10)
        again = httpx.post(f"{base}{signedfloor.NOOP_PATH}", json={}, headers=signed, timeout=10)
        unsigned = httpx.post(f"{base}{signedfloor.NOOP_PATH}", json={}, timeout=10)
        assert (first.status_code, first.json()) == (200, {"accepted": True}), first.text
        assert again.status_code == 401, again.text
        assert unsigned.status_code == 401, unsigned.text
        documented = httpx.get(f"{base}/openapi.json", timeout=10).json()["paths"]
        assert signedfloor.NOOP_PATH not in documented
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        proc.stdout.close()


def test_db_check_on_empty_database(env):
    result = invoke("db", "check")
    assert result.exit_code == 0
    assert "ok  over_claimed_work_items: 0" in result.output


def test_export_schema_is_the_committed_sdl(env):
    result = invoke("export-schema")
    assert result.exit_code == 0
    committed = (Path(__file__).resolve().parents[1] / "schema.graphql").read_text()
    assert result.output == committed


def test_schema_diff_exits_1_on_breaking_changes(env):
    old = env / "old.graphql"
    new = env / "new.graphql"
    old.write_text("type Query { a: Int, b: String }")
    new.write_text("type Query { a: Int }")
    broken = invoke("schema-diff", str(old), str(new))
    assert broken.exit_code == 1 and "BREAKING" in broken.output and "b" in broken.output
    same = invoke("schema-diff", str(old), str(old))
    assert same.exit_code == 0 and "no breaking or dangerous changes" in same.output


def test_races_cycle_from_the_cli(env):
    from tests.factories import suite_json

    suite = env / "suite.json"
    suite.write_bytes(suite_json(4))
    assert invoke("suites", "import", str(suite), "--activate").exit_code == 0
    assert "no race is open" in invoke("races", "close-qualifying").output
    opened = invoke("races", "open")
    assert opened.exit_code == 0 and "QUALIFYING_OPEN" in opened.output, opened.output
    again = invoke("races", "open")
    assert again.exit_code == 1 and "still QUALIFYING_OPEN" in again.output
    # nobody qualified: closing qualifying cancels the race
    closed = invoke("races", "close-qualifying")
    assert closed.exit_code == 0 and "CANCELLED" in closed.output, closed.output
    assert "CANCELLED" in invoke("races", "list").output
    assert invoke("races", "complete").exit_code == 1


def test_serve_says_the_port_is_busy_before_anything_else(env):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = invoke("serve", "--port", str(port), "--demo")
    assert result.exit_code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.output and "--port" in result.output
    assert "serving on" not in result.output
    assert not (env / "cli.db").exists()  # nothing migrated or filled before the check


def test_serve_refuses_an_unknown_host(env):
    result = invoke("serve", "--host", "no-such-host.invalid", "--port", "8000")
    assert result.exit_code == 1 and "cannot listen on no-such-host.invalid:8000" in result.output


def test_export_writes_typed_files(env):
    from oro_graph.export import read_table
    from oro_graph.services.export import BY_NAME

    assert invoke("demo-data", "--miners", "5", "--validators", "4", "--runs", "40").exit_code == 0
    result = invoke("export", "--format", "csv", "--out", str(env / "out"))
    assert result.exit_code == 0, result.output
    assert "full csv export" in result.output
    runs = read_table(env / "out" / "runs.csv", BY_NAME["runs"])
    assert runs.num_rows == 40 and str(runs.schema.field("claimed_at").type) == "timestamp[us, tz=UTC]"
    again = invoke("export", "--format", "csv", "--out", str(env / "out"))
    assert again.exit_code == 0 and "incremental csv export" in again.output
    assert invoke("export", "--format", "xlsx").exit_code == 2  # typer names the choices
