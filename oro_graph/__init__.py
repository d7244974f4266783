"""oro-graph: a GraphQL-first backend and analysis kit for the ORO Bittensor subnet (SN15)."""

__version__ = "0.1.0"
