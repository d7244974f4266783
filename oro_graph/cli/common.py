"""What every command shares: the console, the settings, the database and progress bars."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from oro_graph.settings import Settings, load_settings

console = Console(stderr=True)


def current_settings() -> Settings:
    return load_settings()


def open_database(settings: Settings, *, migrate: bool = True):
    from oro_graph.db import Database
    from oro_graph.migrations import upgrade

    if migrate:
        upgrade(settings.database_url)
    return Database(settings)


def fail(message: str) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
