"""End-to-end tests reuse the live-server fixtures of the REST tests."""

from tests.rest.conftest import serve, server  # noqa: F401  (pytest fixtures)
