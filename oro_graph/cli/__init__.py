"""The ``oro-graph`` command: serve, migrate, manage the registry and suites, export the schema."""

from __future__ import annotations

import typer

from oro_graph.cli.admin import db_app, races_app, registry_app, suites_app
from oro_graph.cli.data import demo_data, export_openapi, export_schema, export_tables, mirror, schema_diff
from oro_graph.cli.server import serve

app = typer.Typer(
    help="oro-graph: GraphQL-first backend and analysis kit for the ORO subnet (SN15).", no_args_is_help=True
)
# Commands first, then groups, each in the order `oro-graph --help` lists them.
app.command()(serve)
app.command("demo-data")(demo_data)
app.command()(mirror)
app.command("export")(export_tables)
app.command("export-schema")(export_schema)
app.command("export-openapi")(export_openapi)
app.command("schema-diff")(schema_diff)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.add_typer(suites_app, name="suites")
app.add_typer(races_app, name="races")

__all__ = ["app"]
