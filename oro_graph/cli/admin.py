"""The command groups that administer a server: db, registry, suites and races."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from oro_graph.cli.common import console, current_settings, fail, open_database, redacted
from oro_graph.errors import OroError
from oro_graph.models import Role

db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
registry_app = typer.Typer(help="The hotkey registry (who may call what).", no_args_is_help=True)
suites_app = typer.Typer(help="Problem suites.", no_args_is_help=True)
races_app = typer.Typer(help="Races: the competition that decides emissions.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database (ORO_DATABASE_URL) to the newest schema."""
    from oro_graph.migrations import upgrade

    settings = current_settings()
    upgrade(settings.database_url)
    console.print(f"database at {redacted(settings.database_url)} is up to date")


@db_app.command("check")
def db_check() -> None:
    """Check the lifecycle invariants with SQL; exits 1 if any is violated."""
    from oro_graph.services import invariants

    settings = current_settings()
    found = open_database(settings).call(
        invariants.check_invariants, max_active_runs_per_validator=settings.max_active_runs_per_validator
    )
    for name, count in found.items():
        Console().print(f"{'ok ' if count == 0 else 'BAD'} {name}: {count}")
    if any(found.values()):
        raise typer.Exit(code=1)


@registry_app.command("add")
def registry_add(
    ss58: str,
    role: Annotated[Role, typer.Option(help="miner or validator (validators get a permit).")],
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
) -> None:
    """Register a hotkey."""
    from oro_graph.services import registry

    try:
        row = open_database(current_settings()).call(registry.add_hotkey, ss58, role=role, name=name)
    except OroError as exc:
        raise fail(exc.detail) from exc
    console.print(f"registered {row.ss58} as {row.role}")


@registry_app.command("ban")
def registry_ban(
    ss58: str, unban: Annotated[bool, typer.Option("--unban", help="Lift the ban.")] = False
) -> None:
    """Ban (or with --unban, unban) a hotkey."""
    from oro_graph.services import registry

    try:
        open_database(current_settings()).call(registry.set_banned, ss58, banned=not unban)
    except OroError as exc:
        raise fail(exc.detail) from exc
    console.print(f"{ss58} {'unbanned' if unban else 'banned'}")


@registry_app.command("list")
def registry_list(role: Annotated[Role | None, typer.Option()] = None) -> None:
    """List registered hotkeys."""
    from oro_graph.services import registry

    rows = open_database(current_settings()).call(registry.list_hotkeys, role)
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

    db = open_database(current_settings())
    with console.status(f"reading subnet {netuid} from {url}"):
        try:
            report = chain.sync_from_chain(db, url, netuid)
        except Exception as exc:
            raise fail(f"could not read the chain: {exc}") from exc
    console.print(f"added {report.added}, updated {report.updated}, removed {report.deregistered}")


@suites_app.command("import")
def suites_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    activate: Annotated[bool, typer.Option(help="Make it the active suite.")] = False,
) -> None:
    """Import a problem suite in the ORO JSON format (idempotent: the same file is imported once)."""
    from oro_graph.services import suites

    try:
        result = open_database(current_settings()).call(
            suites.import_suite, file.read_bytes(), activate=activate
        )
    except OroError as exc:
        raise fail(exc.detail) from exc
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
    for s in open_database(current_settings()).call(suites.list_suites):
        table.add_row(str(s.id), str(s.version), str(s.is_active), s.execution_kind, s.created_at.isoformat())
    Console(width=200).print(table)


@suites_app.command("activate")
def suites_activate(suite_id: int) -> None:
    """Make a suite the active one (new submissions are evaluated on it)."""
    from oro_graph.services import suites

    try:
        open_database(current_settings()).call(suites.activate_suite, suite_id)
    except OroError as exc:
        raise fail(exc.detail) from exc
    console.print(f"suite {suite_id} is active")


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
    settings = current_settings()
    try:
        race = open_database(settings).call(fn, **kwargs)
    except OroError as exc:
        raise fail(exc.detail) from exc
    table = Table("number", "id", "suite", "status", "qualifiers", "winner score", "opened")
    _race_row(table, race)
    Console(width=200).print(table)


@races_app.command("list")
def races_list(limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20) -> None:
    """List races, the live one first."""
    from oro_graph.services import races

    db = open_database(current_settings())
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

    _race_command(races.open_race, settings=current_settings(), suite_id=suite_id)


@races_app.command("close-qualifying")
def races_close_qualifying() -> None:
    """Close qualifying of the open race: freeze the field, draw the problems, hand out race work."""
    from oro_graph.services import races

    _race_command(races.close_qualifying, settings=current_settings())


@races_app.command("complete")
def races_complete() -> None:
    """Complete the running race now: rank the finishers, crown the winner."""
    from oro_graph.services import races

    _race_command(races.complete_race, settings=current_settings())


@races_app.command("cancel")
def races_cancel() -> None:
    """Cancel the live race (nobody wins; the top agent does not change)."""
    from oro_graph.services import races

    _race_command(races.cancel_race)
