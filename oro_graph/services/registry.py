"""The hotkey registry: who is a miner, who holds a validator permit, who is banned."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Label
from sqlmodel import Session, col, select

from oro_graph.db import writes
from oro_graph.errors import Forbidden, ValidationFailed
from oro_graph.models import Hotkey, Role, utcnow


def validate_ss58(ss58: str) -> str:
    from substrateinterface.utils.ss58 import ss58_decode

    try:
        ss58_decode(ss58)
    except Exception as exc:  # the library raises ValueError or IndexError for junk
        raise ValidationFailed(f"{ss58!r} is not a valid SS58 address") from exc
    return ss58


@writes
def add_hotkey(
    session: Session, ss58: str, *, role: Role, name: str | None = None, uid: int | None = None
) -> Hotkey:
    """Register (or re-register) a hotkey; a validator gets a permit, a ban is kept."""
    validate_ss58(ss58)
    row = session.get(Hotkey, ss58)
    if row is None:
        row = Hotkey(ss58=ss58, role=role, registered_at=utcnow())
    row.role = role
    row.validator_permit = role == Role.VALIDATOR
    if name is not None:
        row.name = name
    if uid is not None:
        row.uid = uid
    session.add(row)
    session.flush()
    return row


@writes
def set_banned(session: Session, ss58: str, *, banned: bool = True) -> Hotkey:
    row = session.get(Hotkey, ss58)
    if row is None:
        raise ValidationFailed(f"{ss58} is not in the registry; add it first")
    row.banned = banned
    session.add(row)
    session.flush()
    return row


def list_hotkeys(session: Session, role: Role | None = None) -> list[Hotkey]:
    stmt = select(Hotkey).order_by(col(Hotkey.role), col(Hotkey.ss58))
    if role is not None:
        stmt = stmt.where(Hotkey.role == role)
    return list(session.exec(stmt))


def require_role(session: Session, ss58: str, role: Role) -> Hotkey:
    """403 unless ``ss58`` is registered, not banned and has ``role`` (validators need a permit)."""
    row = session.get(Hotkey, ss58)
    refusal = role_refusal(ss58, role, None if row is None else (row.banned, row.role, row.validator_permit))
    if refusal is not None:
        raise refusal
    assert row is not None  # registered: role_refusal says so otherwise
    return row


RegistryRow = tuple[bool, str, bool]  # (banned, role, validator_permit)


def role_refusal(ss58: str, role: Role, found: RegistryRow | None) -> Forbidden | None:
    """Why ``ss58`` may not act as ``role``, given its registry row (None: not registered); None if it may.

    The rule of ``require_role``, for a service that reads the row in its own first statement
    (``role_columns``), so the check is in the same transaction as the work it guards.
    """
    if found is None:
        return Forbidden(f"hotkey {ss58} is not registered on this subnet")
    banned, actual, permit = found
    if banned:
        return Forbidden(f"hotkey {ss58} is banned")
    if role == Role.VALIDATOR and not (actual == Role.VALIDATOR and permit):
        return Forbidden(f"hotkey {ss58} has no validator permit; this path is for validators")
    if role == Role.MINER and actual != Role.MINER:
        return Forbidden(f"hotkey {ss58} is registered as a {actual}; this path is for miners")
    return None


def role_columns(ss58: str | ColumnElement[str]) -> list[Label[Any]]:
    """The registry row of ``ss58`` as three scalar subqueries (banned, role, validator_permit), to add to
    a statement's columns; all NULL when it is not registered. Read them with ``registry_row``."""
    by_key = col(Hotkey.ss58) == ss58
    return [
        select(column).where(by_key).scalar_subquery().label(f"registry_{name}")
        for name, column in (
            ("banned", col(Hotkey.banned)),
            ("role", col(Hotkey.role)),
            ("permit", col(Hotkey.validator_permit)),
        )
    ]


def registry_row(values: Mapping[str, Any]) -> RegistryRow | None:
    """The registry row read through ``role_columns`` (None: not registered)."""
    banned = values["registry_banned"]
    if banned is None:
        return None
    return bool(banned), str(values["registry_role"]), bool(values["registry_permit"])


@dataclass(frozen=True)
class ChainNeuron:
    """One neuron as read from the chain: its hotkey, uid and whether it holds a validator permit."""

    hotkey: str
    uid: int
    validator_permit: bool


@dataclass(frozen=True)
class SyncReport:
    added: int
    updated: int
    deregistered: int


@writes
def sync_registry(session: Session, neurons: Iterable[ChainNeuron]) -> SyncReport:
    """Make the registry match the chain: permits give the validator role, the rest are miners.

    Hotkeys that came from the chain and left it are removed; hotkeys added by hand (no uid) and
    banned hotkeys stay, since those are an operator's decisions.
    """
    seen: dict[str, ChainNeuron] = {n.hotkey: n for n in neurons}
    existing = {row.ss58: row for row in session.exec(select(Hotkey))}
    added = updated = removed = 0
    for hotkey, neuron in seen.items():
        role = Role.VALIDATOR if neuron.validator_permit else Role.MINER
        row = existing.get(hotkey)
        if row is None:
            session.add(
                Hotkey(ss58=hotkey, role=role, validator_permit=neuron.validator_permit, uid=neuron.uid)
            )
            added += 1
        elif (row.role, row.validator_permit, row.uid) != (role, neuron.validator_permit, neuron.uid):
            row.role, row.validator_permit, row.uid = role, neuron.validator_permit, neuron.uid
            session.add(row)
            updated += 1
    for hotkey, row in existing.items():
        if hotkey not in seen and row.uid is not None and not row.banned:
            session.delete(row)
            removed += 1
    session.flush()
    return SyncReport(added=added, updated=updated, deregistered=removed)
