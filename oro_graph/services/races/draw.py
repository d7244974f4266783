"""The draw: commit to a secret when the race opens, draw from it and the final field, reveal it at
the end; the race score and the weights it pays."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

U16_MAX = 65535


def commitment_of(secret: str) -> str:
    """The published commitment to a race's secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def draw_seed(secret: str, qualifier_ids: Iterable[uuid.UUID | str]) -> str:
    """The seed of a race's draw: the secret bound to the final qualifier list (in any order)."""
    field = ",".join(sorted(str(q) for q in qualifier_ids))
    return hashlib.sha256(f"{secret}:{field}".encode()).hexdigest()


def draw_problems(seed: str, problem_ids: Iterable[uuid.UUID | str], k: int) -> list[str]:
    """The ``k`` problems a seed draws from a suite: those whose SHA-256 of ``seed:problem_id`` is
    smallest, in that order. Anyone can recompute it from the revealed secret and the qualifiers."""
    ranked = sorted(
        (str(p) for p in problem_ids), key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).digest()
    )
    return ranked[: max(0, k)]


def finisher_order(race_score: float, agent_version_id: uuid.UUID | str) -> tuple[float, str]:
    """The sort key of race ranks: race score descending, ties by version id ascending as a string."""
    return (-race_score, str(agent_version_id))


def race_score_of(run_scores: Iterable[float | None]) -> float | None:
    """A qualifier's race score: the mean of its counted race runs' scores (None without any)."""
    values = [s for s in run_scores if s is not None]
    return sum(values) / len(values) if values else None


@dataclass(frozen=True)
class Weight:
    """One entry of the weight vector: a miner's hotkey (or the burn slot, uid 0) and its u16 units."""

    miner_hotkey: str | None  # None: the burn slot (uid 0)
    agent_version_id: uuid.UUID | None
    race_rank: int | None
    units: int
    share: float  # units / sum of units: what the chain's normalisation gives it


def race_weights(
    finishers: Sequence[tuple[str, uuid.UUID, float]], *, t_top: float, t_burn: float
) -> list[Weight]:
    """The public validator's weights from a race's finishers ``(miner_hotkey, version id, race score)``.

    Finishers are ranked by score descending, ties by version id ascending as a string. K is
    floor(finishers / 2). K = 0 burns everything. Otherwise ranks 2..K get ``K + 1 - rank`` units, the
    burn slot gets 65535 and the winner ``round(t_top * (65535 + tail) / t_burn)`` (t_burn >= t_top);
    when t_burn < t_top the winner is pinned at 65535 and the burn slot gets what the tail leaves of
    ``round(t_burn * 65535 / t_top)``. The chain normalises the vector.
    """
    ranked = sorted(finishers, key=lambda f: finisher_order(f[2], f[1]))
    k = len(ranked) // 2
    entries: list[tuple[str | None, uuid.UUID | None, int | None, int]] = []
    if k == 0:
        entries.append((None, None, None, U16_MAX))
    else:
        tail = [
            (hotkey, vid, rank, k + 1 - rank)
            for rank, (hotkey, vid, _) in enumerate(ranked, 1)
            if 2 <= rank <= k
        ]
        tail_sum = sum(units for *_, units in tail)
        if t_burn >= t_top:
            top = round(t_top * (U16_MAX + tail_sum) / t_burn) if t_burn > 0 else 0
            burn = U16_MAX if t_burn > 0 else 0
        else:
            top = U16_MAX
            burn = max(0, round(t_burn * U16_MAX / t_top) - tail_sum)
        hotkey, vid, _ = ranked[0]
        entries.append((None, None, None, burn))
        entries.append((hotkey, vid, 1, top))
        entries.extend(tail)
    total = sum(units for *_, units in entries)
    return [Weight(h, v, r, u, (u / total) if total else 0.0) for h, v, r, u in entries]
