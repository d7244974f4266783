"""The installed oro-sdk generation (7.0.2 from the test extra, or 1.0.50 in ``.venv-sdk1050``, see
``scripts/test``) and the few calls whose shape differs between them, so one test serves both.

Tests that must pass with both generations carry ``@pytest.mark.sdk1050`` (or a module-level
``pytestmark``); ``scripts/test`` runs them again with 1.0.50. They reach paths and models through
``api()`` and ``model()`` below (or import only names both generations have) and build request bodies
with ``claim_body()`` / ``heartbeat_body()``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType
from typing import Any

SDK_VERSION = importlib.metadata.version("oro-sdk")
SDK_1050 = SDK_VERSION.startswith("1.")

# What the public validator reports with every claim and heartbeat (subnet/validator, May 2026):
# its stack's image digests and its machine's load, on the wire as these names.
VALIDATOR_METRICS: dict[str, Any] = {
    "service_versions": {"validator": "sha256:" + "ab" * 32, "sandbox": "sha256:" + "cd" * 32},
    "cpu_pct": 37.5,
    "ram_pct": 61.0,
    "disk_pct": 42.0,
    "docker_container_count": 3,
}
RUNTIME_CONTRACT = 1  # 7.0.2 adds it to the claim; this server has no env packs and ignores it


def api(tag: str, name: str) -> ModuleType | None:
    """``oro_sdk.api.<tag>.<name>``, or None where this generation has no such path."""
    try:
        return importlib.import_module(f"oro_sdk.api.{tag}.{name}")
    except ModuleNotFoundError:
        return None


def model(name: str) -> type:
    """A model class of the installed generation by name, e.g. ``model("EvalRunNotFoundError")``."""
    models = importlib.import_module("oro_sdk.models")
    found: type = getattr(models, name)
    return found


def heartbeat_body(**metrics: Any) -> Any:
    """The heartbeat body the real validator sends. 1.0.50 cannot send none: without a body its client
    passes ``json=UNSET`` to httpx and fails before sending."""
    values = {**VALIDATOR_METRICS, **metrics}
    versions = values.pop("service_versions")
    body = model("HeartbeatRequest")(**values)
    if versions is not None:
        body.service_versions = model("HeartbeatRequestServiceVersionsType0").from_dict(versions)
    return body


def claim_body(**metrics: Any) -> Any:
    """The claim body the real validator sends: 1.0.50 types it as a HeartbeatRequest (and fails on the
    client side without one); 7.0.2 has ClaimWorkRequest, with ``runtime_contract`` besides."""
    if SDK_1050:
        return heartbeat_body(**metrics)
    values = {**VALIDATOR_METRICS, "runtime_contract": RUNTIME_CONTRACT, **metrics}
    versions = values.pop("service_versions")
    body = model("ClaimWorkRequest")(**values)
    if versions is not None:
        body.service_versions = model("ClaimWorkRequestServiceVersionsType0").from_dict(versions)
    return body


def wire(parsed: Any, name: str) -> Any:
    """A field of a parsed answer by its wire name, whether this generation's model has it as an
    attribute or keeps it among ``additional_properties`` (fields added after 1.0.50)."""
    if hasattr(parsed, name):
        return getattr(parsed, name)
    return parsed.additional_properties[name]
