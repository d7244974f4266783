"""Validator variance: per-validator scores, pair spreads, peer deltas and consensus trust."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from oro_graph.analytics.metrics.common import Frame, _empty, _float, _ids, _require, _status, _suite_rows


def validator_scores(runs: Frame, *, min_validators: int = 2) -> Frame:
    """Each validator's score per version, the input of the ORO validator-variance metrics.

    Needs runs columns agent_version_id, validator_hotkey, status, validator_score, is_included.
    Keeps successful included runs with a score, averages repeated runs of one validator on one
    version, and keeps versions scored by at least ``min_validators`` validators; race runs are left
    out (``_suite_rows``). Output: agent_version_id, validator_hotkey, score, n_runs, n_validators.
    """
    _require(
        runs,
        ["agent_version_id", "validator_hotkey", "status", "validator_score", "is_included"],
        "validator_scores",
    )
    columns = ["agent_version_id", "validator_hotkey", "score", "n_runs", "n_validators"]
    runs = _suite_rows(runs)
    score = _float(runs["validator_score"])
    keep = (
        _status(runs["status"]).eq("SUCCESS") & runs["is_included"].fillna(False).astype(bool) & score.notna()
    )
    tidy = pd.DataFrame(
        {
            "agent_version_id": _ids(runs["agent_version_id"]),
            "validator_hotkey": _ids(runs["validator_hotkey"]),
            "score": score,
        }
    )[keep]
    if tidy.empty:
        return _empty(columns)
    out = (
        tidy.groupby(["agent_version_id", "validator_hotkey"])["score"]
        .agg(score="mean", n_runs="size")
        .reset_index()
    )
    out["n_validators"] = out.groupby("agent_version_id")["validator_hotkey"].transform("size")
    out = out[out["n_validators"] >= min_validators]
    return out.reset_index(drop=True)[columns] if not out.empty else _empty(columns)


def pair_spread(runs: Frame, *, thresholds: Sequence[float] = (0.01, 0.02, 0.05, 0.10)) -> Frame:
    """Spread of validators' scores per version (ORO validator variance).

    Among successful included runs, for versions scored by 2+ validators: spread = max - min of the
    validators' scores (see ``validator_scores``), bucketed at ``thresholds`` (left-closed, e.g.
    "<0.01", "0.01-0.02", ..., ">=0.1"). Output: agent_version_id, n_validators, n_pairs, min_score,
    max_score, spread, bucket (ordered categorical).
    """
    columns = ["agent_version_id", "n_validators", "n_pairs", "min_score", "max_score", "spread", "bucket"]
    scores = validator_scores(runs)
    if scores.empty:
        return _empty(columns)
    out = scores.groupby("agent_version_id")["score"].agg(
        n_validators="size", min_score="min", max_score="max"
    )
    out = out.reset_index()
    out["n_pairs"] = out["n_validators"] * (out["n_validators"] - 1) // 2
    out["spread"] = out["max_score"] - out["min_score"]
    edges = sorted(thresholds)
    labels = (
        [f"<{edges[0]:g}"]
        + [f"{a:g}-{b:g}" for a, b in zip(edges, edges[1:], strict=False)]
        + [f">={edges[-1]:g}"]
    )
    # A tiny tolerance so a spread of exactly 0.05 - 0.02 (0.0299999...) lands where a reader expects.
    out["bucket"] = pd.cut(out["spread"] + 1e-12, [-np.inf, *edges, np.inf], labels=labels, right=False)
    return out[columns]


def peer_deltas(runs: Frame) -> Frame:
    """Each validator's score minus the mean of the other validators on the same version.

    Same filtering as ``validator_scores`` (successful included runs, versions with 2+ validators).
    Output: agent_version_id, validator_hotkey, score, peer_mean, delta, n_peers.
    """
    columns = ["agent_version_id", "validator_hotkey", "score", "peer_mean", "delta", "n_peers"]
    scores = validator_scores(runs)
    if scores.empty:
        return _empty(columns)
    total = scores.groupby("agent_version_id")["score"].transform("sum")
    scores["n_peers"] = scores["n_validators"] - 1
    scores["peer_mean"] = (total - scores["score"]) / scores["n_peers"]
    scores["delta"] = scores["score"] - scores["peer_mean"]
    return scores[columns]


def validator_deltas(runs: Frame) -> Frame:
    """Per-validator mean delta vs peers (ORO validator variance), its SD and number of versions.

    See ``peer_deltas`` for the delta. Output: validator_hotkey, n_versions, mean_delta, sd_delta
    (ddof=1), mean_abs_delta.
    """
    columns = ["validator_hotkey", "n_versions", "mean_delta", "sd_delta", "mean_abs_delta"]
    deltas = peer_deltas(runs)
    if deltas.empty:
        return _empty(columns)
    deltas["abs_delta"] = deltas["delta"].abs()
    out = deltas.groupby("validator_hotkey").agg(
        n_versions=("delta", "size"),
        mean_delta=("delta", "mean"),
        sd_delta=("delta", "std"),
        mean_abs_delta=("abs_delta", "mean"),
    )
    return out.reset_index()[columns]


def consensus_trust(runs: Frame) -> Frame:
    """Yuma-style consensus trust: share of a validator's score mass kept after clipping at consensus.

    On versions scored by 2+ validators (``validator_scores``), each score is clipped at the
    version's median of validators' scores (unweighted); trust = sum(clipped) / sum(scores).
    A validator that scores above consensus loses mass. Output: validator_hotkey, n_versions,
    score_mass, clipped_mass, trust.
    """
    columns = ["validator_hotkey", "n_versions", "score_mass", "clipped_mass", "trust"]
    scores = validator_scores(runs)
    if scores.empty:
        return _empty(columns)
    median = scores.groupby("agent_version_id")["score"].transform("median")
    scores["clipped"] = np.minimum(scores["score"], median)
    out = (
        scores.groupby("validator_hotkey")
        .agg(n_versions=("score", "size"), score_mass=("score", "sum"), clipped_mass=("clipped", "sum"))
        .reset_index()
    )
    out["trust"] = out["clipped_mass"] / out["score_mass"].where(out["score_mass"] > 0)
    return out[columns]


def score_matrix(runs: Frame, *, min_validators: int = 2) -> Frame:
    """Versions x validators matrix of validator scores (NaN where a validator did not score).

    Same filtering as ``validator_scores``; index agent_version_id, columns validator_hotkey.
    """
    scores = validator_scores(runs, min_validators=min_validators)
    matrix = scores.pivot(index="agent_version_id", columns="validator_hotkey", values="score")
    return matrix.astype(float)
