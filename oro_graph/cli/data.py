"""Commands that fill or read the data: demo-data, mirror, export, export-schema, export-openapi and
schema-diff."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import TaskID

from oro_graph.cli.common import console, current_settings, fail, open_database, progress_bar
from oro_graph.errors import OroError
from oro_graph.settings import Settings


def fill_demo(
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
    with progress_bar() as progress:
        task = progress.add_task("demo world", total=None)

        def advance(step: int, total: int) -> None:
            progress.update(task, advance=step, total=total)

        result = demo_world.generate(db, settings, seed=seed, progress=advance, **sizes)
    if manifest is not None:
        manifest.write_text(result.to_json())
        console.print(f"manifest written to {manifest}")
    console.print(f"demo world ready: {json.dumps(result.counts)}")


def demo_data(
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same world.")] = 7,
    miners: Annotated[int | None, typer.Option(min=1)] = None,
    validators: Annotated[int | None, typer.Option(min=4)] = None,
    runs: Annotated[int | None, typer.Option(min=10)] = None,
    manifest: Annotated[Path | None, typer.Option(help="Write the planted faults as JSON here.")] = None,
) -> None:
    """Generate a realistic, deterministic demo world into an empty database."""
    settings = current_settings()
    try:
        fill_demo(
            open_database(settings),
            settings,
            seed=seed,
            miners=miners,
            validators=validators,
            runs=runs,
            manifest=manifest,
        )
    except OroError as exc:
        raise fail(exc.detail) from exc


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

    from oro_graph import mirror_client as mirroring

    if rate is not None:
        try:
            mirroring.parse_rate(rate)
        except mirroring.MirrorError as exc:
            raise fail(str(exc)) from exc
    db = open_database(current_settings())
    traffic = mirroring.Traffic()
    with progress_bar() as progress:
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
            raise fail(str(exc)) from exc
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
        raise fail(str(exc)) from exc
    settings = current_settings()
    db = open_database(settings)
    with progress_bar() as progress:
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


def export_schema() -> None:
    """Print the GraphQL schema (SDL); schema.graphql is this output."""
    from oro_graph.graphql.sdl import export_schema as sdl

    sys.stdout.write(sdl())


def openapi_document() -> str:
    """The OpenAPI document the server serves at /openapi.json, as openapi.json holds it: built from an
    app on default settings (a throwaway SQLite file, nothing migrated), so no environment changes it."""
    import tempfile

    from oro_graph.app import create_app
    from oro_graph.settings import Settings

    with tempfile.TemporaryDirectory() as state:
        settings = Settings(database_url=f"sqlite:///{state}/oro.db", data_dir=Path(state), secret_key="k")
        document = create_app(settings, migrate=False).openapi()
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def export_openapi() -> None:
    """Print the REST API's OpenAPI document; openapi.json is this output."""
    sys.stdout.write(openapi_document())


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
