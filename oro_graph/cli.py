"""The ``oro-graph`` command: serve, migrate, manage the registry and suites, export the schema."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from oro_graph.errors import OroError
from oro_graph.models import Role
from oro_graph.settings import Settings, load_settings

app = typer.Typer(
    help="oro-graph: GraphQL-first backend and analysis kit for the ORO subnet (SN15).", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
registry_app = typer.Typer(help="The hotkey registry (who may call what).", no_args_is_help=True)
suites_app = typer.Typer(help="Problem suites.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.add_typer(suites_app, name="suites")
races_app = typer.Typer(help="Races: the competition that decides emissions.", no_args_is_help=True)
app.add_typer(races_app, name="races")
console = Console(stderr=True)


def _settings() -> Settings:
    return load_settings()


def _database(settings: Settings, *, migrate: bool = True):
    from oro_graph.db import Database
    from oro_graph.migrations import upgrade

    if migrate:
        upgrade(settings.database_url)
    return Database(settings)


def _fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database (ORO_DATABASE_URL) to the newest schema."""
    from oro_graph.migrations import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    console.print(f"database at {_redacted(settings.database_url)} is up to date")


@db_app.command("check")
def db_check() -> None:
    """Check the lifecycle invariants with SQL; exits 1 if any is violated."""
    from oro_graph.services import invariants

    settings = _settings()
    found = _database(settings).call(
        invariants.check_invariants, max_active_runs_per_validator=settings.max_active_runs_per_validator
    )
    for name, count in found.items():
        Console().print(f"{'ok ' if count == 0 else 'BAD'} {name}: {count}")
    if any(found.values()):
        raise typer.Exit(code=1)


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes sharing the database (and Redis).")
    ] = 1,
    demo: Annotated[
        bool, typer.Option(help="Fill an empty database with the deterministic demo world first.")
    ] = False,
) -> None:
    """Run the server: /graphql, the /v1 REST paths, /docs and /health."""
    import os

    import uvicorn

    from oro_graph.observability import log_config

    settings = _settings()
    problem = _bind_problem(host, port)  # before migrating or filling anything: say it first
    if problem:
        raise _fail(problem)
    db = _database(settings)
    if demo:
        _fill_demo(
            db, settings, seed=7, miners=None, validators=None, runs=None, manifest=None, only_if_empty=True
        )
        # A served demo world stays as generated unless the operator asks for the race scheduler.
        os.environ.setdefault("ORO_RACE_SCHEDULER", "false")
    db.dispose()
    if workers > 1 and not settings.redis_url:
        console.print(
            "[yellow]warning:[/yellow] several workers without ORO_REDIS_URL keep rate limits per process"
        )
    os.environ["ORO_WORKERS"] = str(workers)  # the processes learn how many share the database
    if workers > 1:  # each worker keeps its metrics in files there; a scrape of any worker adds them up
        from oro_graph.observability import prepare_multiprocess_dir

        prepare_multiprocess_dir(settings.state_dir)
    if not os.environ.get("ORO_PUBLIC_BASE_URL"):
        os.environ["ORO_PUBLIC_BASE_URL"] = f"http://{host}:{port}"
    console.print(f"serving on http://{host}:{port}  (GraphQL at /graphql, REST docs at /docs)")
    from oro_graph.serving import serve as run_workers

    # With workers > 1 a supervisor hands each connection to the least busy worker (oro_graph/serving.py).
    run_workers(
        "oro_graph.app:main_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        log_level="info",
        log_config=log_config(settings) or uvicorn.config.LOGGING_CONFIG,
        access_log=False,  # a line per request costs more than the request under load
        # Silent and slow connections are closed (oro_graph/connections.py).
        http="oro_graph.connections:GuardedHttpToolsProtocol",
        timeout_keep_alive=settings.keep_alive_seconds,
    )


def _bind_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (port taken, unknown address...), or None."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, OverflowError) as exc:
        return f"cannot listen on {host}:{port}: {exc}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use (another server?); pick another: --port N"
            if exc.errno == errno.EACCES:
                return f"not allowed to listen on port {port} (ports below 1024 need privileges); use --port"
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


def _fill_demo(
    db,
    settings: Settings,
    *,
    seed: int,
    miners: int | None,
    validators: int | None,
    runs: int | None,
    manifest: Path | None,
    only_if_empty: bool = False,
) -> None:
    from oro_graph import demo as demo_world

    if only_if_empty and not demo_world.is_empty(db):
        console.print("database already has data; --demo left it as it is")
        return
    sizes = {
        k: v for k, v in {"miners": miners, "validators": validators, "runs": runs}.items() if v is not None
    }
    with _progress() as progress:
        task = progress.add_task("demo world", total=None)

        def advance(step: int, total: int) -> None:
            progress.update(task, advance=step, total=total)

        result = demo_world.generate(db, settings, seed=seed, progress=advance, **sizes)
    if manifest is not None:
        manifest.write_text(result.to_json())
        console.print(f"manifest written to {manifest}")
    console.print(f"demo world ready: {json.dumps(result.counts)}")


@app.command("demo-data")
def demo_data(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same world.")] = 7,
    miners: Annotated[int | None, typer.Option(min=1)] = None,
    validators: Annotated[int | None, typer.Option(min=4)] = None,
    runs: Annotated[int | None, typer.Option(min=10)] = None,
    manifest: Annotated[Path | None, typer.Option(help="Write the planted faults as JSON here.")] = None,
) -> None:
    """Generate a realistic, deterministic demo world into an empty database."""
    settings = _settings()
    try:
        _fill_demo(
            _database(settings),
            settings,
            seed=seed,
            miners=miners,
            validators=validators,
            runs=runs,
            manifest=manifest,
        )
    except OroError as exc:
        raise _fail(exc.detail) from exc


@registry_app.command("add")
def registry_add(
    ss58: str,
    role: Annotated[Role, typer.Option(help="miner or validator (validators get a permit).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Register a hotkey."""
    from oro_graph.services import registry

    try:
        row = _database(_settings()).call(registry.add_hotkey, ss58, role=role, name=name)
    except OroError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"registered {row.ss58} as {row.role}")


@registry_app.command("ban")
def registry_ban(
    ss58: str, unban: Annotated[bool, typer.Option("--unban", help="Lift the ban.")] = False
) -> None:
    """Ban (or with --unban, unban) a hotkey."""
    from oro_graph.services import registry

    try:
        _database(_settings()).call(registry.set_banned, ss58, banned=not unban)
    except OroError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"{ss58} {'unbanned' if unban else 'banned'}")


@registry_app.command("list")
def registry_list(role: Annotated[Role | None, typer.Option()] = None) -> None:
    """List registered hotkeys."""
    from oro_graph.services import registry

    rows = _database(_settings()).call(registry.list_hotkeys, role)
    table = Table("hotkey", "role", "permit", "banned", "name", "uid")
    for row in rows:
        table.add_row(
            row.ss58, row.role, str(row.validator_permit), str(row.banned), row.name or "", str(row.uid or "")
        )
    Console(width=200).print(table)


@registry_app.command("sync")
def registry_sync(
    url: Annotated[
        str, typer.Option(help="Subtensor node websocket URL, e.g. wss://entrypoint-finney.opentensor.ai:443")
    ],
    netuid: Annotated[int, typer.Option(help="Subnet id.")] = 15,
) -> None:
    """Make the registry match the subnet's hotkeys and validator permits on chain."""
    from oro_graph import chain

    db = _database(_settings())
    with console.status(f"reading subnet {netuid} from {url}"):
        try:
            report = chain.sync_from_chain(db, url, netuid)
        except Exception as exc:
            raise _fail(f"could not read the chain: {exc}") from exc
    console.print(f"added {report.added}, updated {report.updated}, removed {report.deregistered}")


@suites_app.command("import")
def suites_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    activate: Annotated[bool, typer.Option(help="Make it the active suite.")] = False,
) -> None:
    """Import a problem suite in the ORO JSON format (idempotent: the same file is imported once)."""
    from oro_graph.services import suites

    try:
        result = _database(_settings()).call(suites.import_suite, file.read_bytes(), activate=activate)
    except OroError as exc:
        raise _fail(exc.detail) from exc
    verb = "imported" if result.created else "already present as"
    state = "active" if result.suite.is_active else "inactive"
    console.print(
        f"{verb} suite {result.suite.id} "
        f"(version {result.suite.version}, {result.problems} problems, {state})"
    )


@suites_app.command("list")
def suites_list() -> None:
    """List suites."""
    from oro_graph.services import suites

    table = Table("id", "version", "active", "kind", "created")
    for s in _database(_settings()).call(suites.list_suites):
        table.add_row(str(s.id), str(s.version), str(s.is_active), s.execution_kind, s.created_at.isoformat())
    Console(width=200).print(table)


@suites_app.command("activate")
def suites_activate(suite_id: int) -> None:
    """Make a suite the active one (new submissions are evaluated on it)."""
    from oro_graph.services import suites

    try:
        _database(_settings()).call(suites.activate_suite, suite_id)
    except OroError as exc:
        raise _fail(exc.detail) from exc
    console.print(f"suite {suite_id} is active")


@app.command()
def mirror(
    source: Annotated[
        str, typer.Option("--from", help="Base URL of a server speaking the /v1/public paths.")
    ],
    suite_id: Annotated[
        int | None, typer.Option(help="Suite to copy (default: the source's current suite).")
    ] = None,
    rate: Annotated[
        str | None,
        typer.Option(
            help="Most requests to send, such as 90/minute or 2/second (default: the budget the source "
            "announces in X-RateLimit-* headers, else 90/minute)."
        ),
    ] = None,
) -> None:
    """Copy another server's public data into this database (incremental, idempotent and resumable).

    Stays under the source's rate limit and waits out a 429 or 503 for as long as its Retry-After
    says; after an interruption, run it again: versions already copied in a final state are skipped.
    """
    import time

    from oro_graph import mirror as mirroring

    if rate is not None:
        try:
            mirroring.parse_rate(rate)
        except mirroring.MirrorError as exc:
            raise _fail(str(exc)) from exc
    db = _database(_settings())
    traffic = mirroring.Traffic()
    with _progress() as progress:
        tasks: dict[str, TaskID] = {}
        labels: dict[str, str] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
                labels[stage] = stage
            progress.update(tasks[stage], completed=done, total=total, description=labels[stage])

        def waiting(seconds: float, why: str) -> None:
            until = time.strftime("%H:%M:%S", time.localtime(time.time() + seconds))
            progress.console.print(f"waiting {seconds:.0f} s (until {until}): {why}")
            for stage, task in tasks.items():  # the bar says so too, until the next step
                progress.update(
                    task, description=f"{labels[stage]} [yellow](waiting {seconds:.0f} s)[/yellow]"
                )

        try:
            counts = mirroring.mirror(
                db, source, suite_id=suite_id, progress=advance, rate=rate, on_wait=waiting, traffic=traffic
            )
        except mirroring.MirrorError as exc:
            raise _fail(str(exc)) from exc
    console.print(
        f"added {json.dumps(counts.added, sort_keys=True)}; "
        f"updated {json.dumps(counts.updated, sort_keys=True)}"
    )
    console.print(
        f"{traffic.requests} requests, {traffic.retries} retried, "
        f"{traffic.waited_seconds:.0f} s waiting for the source's limits"
    )


class ExportFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


@app.command("export")
def export_tables(
    format: Annotated[ExportFormat, typer.Option("--format", help="File format.")] = ExportFormat.parquet,
    out: Annotated[Path, typer.Option(help="Directory of the files (made if missing).")] = Path("oro-export"),
    full: Annotated[
        bool, typer.Option("--full", help="Read every table whole, even after an earlier export.")
    ] = False,
) -> None:
    """Write versions, runs, problem results, validators and problems as typed files (for DuckDB, Polars,
    Spark); run again into the same directory to add only what changed. Needs the 'analysis' extra."""
    from oro_graph import export as exporting

    try:
        exporting.require_pyarrow()
    except exporting.MissingExtra as exc:
        raise _fail(str(exc)) from exc
    settings = _settings()
    db = _database(settings)
    with _progress() as progress:
        tasks: dict[str, object] = {}

        def advance(table: str, rows: int) -> None:
            if table not in tasks:
                tasks[table] = progress.add_task(table, total=None)
            progress.update(tasks[table], advance=rows)  # type: ignore[arg-type]

        report = exporting.export(db, out, format.value, full=full, progress=advance)
    kind = "incremental" if report.incremental else "full"
    for name, rows in report.rows.items():
        console.print(f"{report.files[name]}: {rows:,} rows ({report.read[name]:,} read)")
    console.print(f"{kind} {report.format} export in {out}")


@app.command("export-schema")
def export_schema() -> None:
    """Print the GraphQL schema (SDL); schema.graphql is this output."""
    from oro_graph.graphql.sdl import export_schema as sdl

    sys.stdout.write(sdl())


@app.command("schema-diff")
def schema_diff(
    old: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    new: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
) -> None:
    """List breaking and dangerous changes from OLD to NEW SDL; exits 1 when something breaks."""
    from oro_graph.graphql.sdl import schema_diff as diff

    result = diff(old.read_text(), new.read_text())
    for change in result.breaking:
        Console().print(f"BREAKING  {change}")
    for change in result.dangerous:
        Console().print(f"DANGEROUS {change}")
    if not result.breaking and not result.dangerous:
        Console().print("no breaking or dangerous changes")
    if result.breaking:
        raise typer.Exit(code=1)


def _race_row(table: Table, race) -> None:
    table.add_row(
        str(race.race_number),
        str(race.id),
        str(race.suite_id),
        race.status,
        str(race.qualifier_count),
        "" if race.winner_score is None else f"{race.winner_score:.4f}",
        race.created_at.isoformat(timespec="seconds"),
    )


def _race_command(fn, **kwargs) -> None:
    settings = _settings()
    try:
        race = _database(settings).call(fn, **kwargs)
    except OroError as exc:
        raise _fail(exc.detail) from exc
    table = Table("number", "id", "suite", "status", "qualifiers", "winner score", "opened")
    _race_row(table, race)
    Console(width=200).print(table)


@races_app.command("list")
def races_list(limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20) -> None:
    """List races, the live one first."""
    from oro_graph.services import races

    db = _database(_settings())
    table = Table("number", "id", "suite", "status", "qualifiers", "winner score", "opened")
    current = db.call(races.current_race)
    if current is not None and current.race.status in ("QUALIFYING_OPEN", "RACE_RUNNING"):
        _race_row(table, current.race)
    for view in db.call(races.race_history, limit=limit).races:
        _race_row(table, view.race)
    Console(width=200).print(table)


@races_app.command("open")
def races_open(
    suite_id: Annotated[int | None, typer.Option(help="Suite (default: the active one).")] = None,
) -> None:
    """Open qualifying for a new race now."""
    from oro_graph.services import races

    _race_command(races.open_race, settings=_settings(), suite_id=suite_id)


@races_app.command("close-qualifying")
def races_close_qualifying() -> None:
    """Close qualifying of the open race: freeze the field, draw the problems, hand out race work."""
    from oro_graph.services import races

    _race_command(races.close_qualifying, settings=_settings())


@races_app.command("complete")
def races_complete() -> None:
    """Complete the running race now: rank the finishers, crown the winner."""
    from oro_graph.services import races

    _race_command(races.complete_race, settings=_settings())


@races_app.command("cancel")
def races_cancel() -> None:
    """Cancel the live race (nobody wins; the top agent does not change)."""
    from oro_graph.services import races

    _race_command(races.cancel_race)
