"""``python -m oro_graph`` is the ``oro-graph`` command."""

from oro_graph.cli import app

app()
