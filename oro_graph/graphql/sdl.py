"""The schema as SDL, and what changed between two versions of it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from graphql import build_schema, find_breaking_changes, find_dangerous_changes


@dataclass(frozen=True)
class SchemaDiff:
    """Changes from an old SDL to a new one, as readable lines ("TYPE_REMOVED: Query.x was removed.")."""

    breaking: list[str] = field(default_factory=list)
    dangerous: list[str] = field(default_factory=list)


RELEASES = Path(__file__).resolve().parents[2] / "schema" / "releases"
_RELEASE = re.compile(r"^v(\d+(?:\.\d+)*)\.graphql$")


def latest_release(directory: Path = RELEASES) -> Path | None:
    """The last released SDL (``v<version>.graphql``, highest version) kept under ``schema/releases/``."""
    found = [
        (tuple(int(p) for p in m.group(1).split(".")), f)
        for f in directory.glob("v*.graphql")
        if (m := _RELEASE.match(f.name))
    ]
    return max(found)[1] if found else None


def export_schema() -> str:
    """The SDL of the served schema; ``schema.graphql`` at the repository top is exactly this."""
    from oro_graph.graphql.schema import schema

    return schema.as_str() + "\n"


def schema_diff(old_sdl: str, new_sdl: str) -> SchemaDiff:
    """Breaking and dangerous changes (graphql-core's rules) from ``old_sdl`` to ``new_sdl``."""
    old, new = build_schema(old_sdl), build_schema(new_sdl)
    return SchemaDiff(
        breaking=[f"{c.type.name}: {c.description}" for c in find_breaking_changes(old, new)],
        dangerous=[f"{c.type.name}: {c.description}" for c in find_dangerous_changes(old, new)],
    )
