"""The server's own install carries no notebook stack: pandas, scipy, matplotlib and pyarrow come only with
the ``analysis`` extra, the server runs without them, and the commands that need them say which extra to
install."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib.metadata import requires
from pathlib import Path

from packaging.requirements import Requirement

ANALYSIS_ONLY = {"pandas", "scipy", "matplotlib", "pyarrow", "jupyterlab", "papermill"}

BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, Blocked())
"""


def _requirements(extra: str | None) -> set[str]:
    out = set()
    for line in requires("oro-graph") or []:
        req = Requirement(line)
        wanted = (
            req.marker is None
            if extra is None
            else req.marker is not None and req.marker.evaluate({"extra": extra})
        )
        if wanted:
            out.add(req.name.lower())
    return out


def test_installed_metadata_keeps_the_notebook_stack_in_the_analysis_extra() -> None:
    core = _requirements(None)
    assert "numpy" in core and "fastapi" in core
    assert core.isdisjoint(ANALYSIS_ONLY), core & ANALYSIS_ONLY
    assert ANALYSIS_ONLY <= _requirements("analysis")
    assert "oro-graph" in _requirements("test")  # the test extra pulls the analysis one


def _run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = BLOCKER.format(blocked=sorted(ANALYSIS_ONLY)) + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "ORO_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}",
        },
    )


def test_the_server_runs_without_the_analysis_extra(tmp_path: Path) -> None:
    done = _run_blocked(
        """
        import sys
        from fastapi.testclient import TestClient
        from oro_graph import demo
        from oro_graph.app import create_app
        from oro_graph.migrations import upgrade
        from oro_graph.runtime import Runtime
        from oro_graph.settings import load_settings

        settings = load_settings()
        upgrade(settings.database_url)
        runtime = Runtime.build(settings)
        demo.generate(runtime.db, settings, seed=3, miners=6, validators=4, runs=40)
        interval = "agentVersion { scoreInterval { mean lower upper } }"
        query = "{ leaderboard(first: 3) { edges { node { %s } } } }" % interval
        with TestClient(create_app(settings, runtime=runtime, migrate=False)) as client:
            assert client.get("/").status_code == 200
            assert client.get("/docs").status_code == 200
            body = client.post("/graphql", json={"query": query}).json()
            assert "errors" not in body, body
            edges = body["data"]["leaderboard"]["edges"]
            intervals = [e["node"]["agentVersion"]["scoreInterval"] for e in edges]
            assert intervals and all(i and i["lower"] <= i["mean"] <= i["upper"] for i in intervals)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("served", len(intervals), "score intervals")
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "served 3 score intervals" in done.stdout


def test_export_without_the_extra_names_it(tmp_path: Path) -> None:
    done = _run_blocked(
        """
        from typer.testing import CliRunner
        from oro_graph.cli import app

        result = CliRunner().invoke(app, ["export", "--out", "out"])
        print(result.exit_code)
        print(result.output)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    code, output = done.stdout.split("\n", 1)
    assert code == "1"
    assert "pyarrow" in output and "analysis" in output and "pip install" in output
    assert not (tmp_path / "out").exists()
