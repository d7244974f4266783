"""Races through the graph: who qualifies, how qualifying predicts racing, how stable ranks are, who
gets the weights, how far validators disagree, and whether a winner's lead is beyond noise.

    from oro_graph.analytics import Client, frames, races
    client = Client.from_env()
    field = frames.race_qualifiers(client, suite_id)       # one row per qualifier
    detail = races.race_details(client, suite_id)           # weights, variance and race runs per race
    races.winner_margins(detail.runs, field, n_boot=2000, seed=0)

The functions below take the frames of ``analytics.frames`` and return frames; nothing here reads the
database or imports the server's rules: the weight rule is written out again (``validator_weights``) so
a notebook can check the graph's ``Race.weights`` against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd

from oro_graph.analytics.client import Client

U16_MAX: Final = 65535
BURN: Final = "burn"  # the burn slot's label (uid 0) in per-miner tables
DETAIL_PAGE: Final = 5  # races a page: each brings its field, every race run, its weights and variance

RACE_DETAILS_QUERY: Final = """
query RaceDetails($suite: Int, $first: Int, $after: String) {
  races(suiteId: $suite, status: [RACE_COMPLETE], first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    edges { node {
      raceId raceNumber drawnProblemIds
      weights { minerHotkey agentVersionId raceRank units share }
      validatorVariance {
        pairCount meanSpread medianSpread maxSpread
        buckets { thresholdPoints pairsAbove share }
        validators { validatorHotkey pairsEvaluated meanDeltaVsPeers stdDev meanScore }
      }
      qualifiers(first: 100) {
        edges { node {
          agentVersionId minerHotkey
          runs { evalRunId validatorHotkey status validatorScore isIncluded }
        } }
      }
    } }
  }
}
"""


@dataclass(frozen=True)
class RaceDetails:
    """Completed races' weights (one row per entry of each vector), validator variance (one row per
    race, and one per race and validator), race runs (one row per run) and draws."""

    weights: pd.DataFrame
    variance: pd.DataFrame
    validator_bias: pd.DataFrame
    runs: pd.DataFrame
    draws: pd.DataFrame  # race_id, race_number, drawn_problem_ids (a list, in draw order)


def race_details(client: Client, suite_id: int | None = None) -> RaceDetails:
    """Weights, validator variance and race runs of every completed race (of a suite, or all)."""
    weights: list[dict[str, Any]] = []
    variance: list[dict[str, Any]] = []
    bias: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    draws: list[dict[str, Any]] = []
    nodes = client.paginate(RACE_DETAILS_QUERY, {"suite": suite_id}, ["races"], page_size=DETAIL_PAGE)
    for race in nodes:
        head = {"race_id": race["raceId"], "race_number": race["raceNumber"]}
        draws.append(head | {"drawn_problem_ids": list(race["drawnProblemIds"] or [])})
        for w in race["weights"]:
            weights.append(
                head
                | {
                    "miner_hotkey": w["minerHotkey"],
                    "agent_version_id": w["agentVersionId"],
                    "race_rank": w["raceRank"],
                    "units": w["units"],
                    "share": w["share"],
                }
            )
        v = race["validatorVariance"]
        buckets = {f"share_above_{b['thresholdPoints']:g}pp": b["share"] for b in v["buckets"]}
        variance.append(
            head
            | {
                "pair_count": v["pairCount"],
                "mean_spread": v["meanSpread"],
                "median_spread": v["medianSpread"],
                "max_spread": v["maxSpread"],
            }
            | buckets
        )
        for b in v["validators"]:
            bias.append(
                head
                | {
                    "validator_hotkey": b["validatorHotkey"],
                    "pairs_evaluated": b["pairsEvaluated"],
                    "mean_delta_vs_peers": b["meanDeltaVsPeers"],
                    "std_dev": b["stdDev"],
                    "mean_score": b["meanScore"],
                }
            )
        for edge in race["qualifiers"]["edges"]:
            q = edge["node"]
            for r in q["runs"]:
                runs.append(
                    head
                    | {
                        "agent_version_id": q["agentVersionId"],
                        "miner_hotkey": q["minerHotkey"],
                        "eval_run_id": r["evalRunId"],
                        "validator_hotkey": r["validatorHotkey"],
                        "status": r["status"],
                        "validator_score": r["validatorScore"],
                        "is_included": r["isIncluded"],
                    }
                )
    weight_columns = [
        "race_id",
        "race_number",
        "miner_hotkey",
        "agent_version_id",
        "race_rank",
        "units",
        "share",
    ]
    run_columns = [
        "race_id",
        "race_number",
        "agent_version_id",
        "miner_hotkey",
        "eval_run_id",
        "validator_hotkey",
        "status",
        "validator_score",
        "is_included",
    ]
    return RaceDetails(
        weights=pd.DataFrame(weights, columns=weight_columns),
        variance=pd.DataFrame(variance),
        validator_bias=pd.DataFrame(bias),
        runs=pd.DataFrame(runs, columns=run_columns),
        draws=pd.DataFrame(draws, columns=["race_id", "race_number", "drawn_problem_ids"]),
    )


# --------------------------------------------------------------------------------------------- the draw


def commitment(secret: str) -> str:
    """What a race publishes when it opens: the SHA-256 (hex) of its secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def draw_seed(secret: str, qualifier_version_ids: Iterable[str]) -> str:
    """The draw's seed as the graph documents it: sha256(``secret:`` + the qualifiers' version ids,
    sorted and comma-joined)."""
    field = ",".join(sorted(str(v) for v in qualifier_version_ids))
    return hashlib.sha256(f"{secret}:{field}".encode()).hexdigest()


def draw_problems(seed: str, problem_ids: Iterable[str], k: int) -> list[str]:
    """The ``k`` problems of the suite whose sha256(``seed:problem_id``) is smallest, in that order."""
    ranked = sorted(
        (str(p) for p in problem_ids), key=lambda p: hashlib.sha256(f"{seed}:{p}".encode()).digest()
    )
    return ranked[: max(0, k)]


# --------------------------------------------------------------------------------------------- weights


def validator_weights(
    finishers: Iterable[tuple[str, str, float]], *, t_top: float = 0.25, t_burn: float = 0.75
) -> list[tuple[str | None, str | None, int | None, int]]:
    """The public validator's weight vector from a race's finishers ``(miner_hotkey, version id, race
    score)``, written out from its description: rank by score descending (ties: version id ascending as
    a string); K = floor(finishers / 2); K = 0 burns everything; otherwise ranks 2..K get K + 1 - rank
    units, the burn slot 65535 and the winner round(t_top * (65535 + tail) / t_burn). Entries are
    ``(miner_hotkey, agent_version_id, race_rank, units)``, the burn slot (None, None, None, units) first.
    """
    ranked = sorted(finishers, key=lambda f: (-f[2], str(f[1])))
    k = len(ranked) // 2
    if k == 0:
        return [(None, None, None, U16_MAX)]
    tail = [(h, str(v), rank, k + 1 - rank) for rank, (h, v, _) in enumerate(ranked, 1) if 2 <= rank <= k]
    tail_units = sum(units for *_, units in tail)
    if t_burn >= t_top:
        top, burn = (round(t_top * (U16_MAX + tail_units) / t_burn) if t_burn > 0 else 0), U16_MAX
    else:
        top, burn = U16_MAX, max(0, round(t_burn * U16_MAX / t_top) - tail_units)
    winner = ranked[0]
    return [(None, None, None, burn), (winner[0], str(winner[1]), 1, top), *tail]


def recompute_weights(qualifiers: pd.DataFrame, *, t_top: float = 0.25, t_burn: float = 0.75) -> pd.DataFrame:
    """``validator_weights`` of every completed race in a ``frames.race_qualifiers`` frame (races whose
    qualifiers carry race scores), one row per entry of each vector, with its share."""
    rows = []
    finished = qualifiers[qualifiers["race_score"].notna()]
    for (race_id, number), field in finished.groupby(["race_id", "race_number"], sort=False):
        vector = validator_weights(
            zip(field["miner_hotkey"], field["agent_version_id"], field["race_score"], strict=True),
            t_top=t_top,
            t_burn=t_burn,
        )
        total = sum(units for *_, units in vector)
        for hotkey, version, rank, units in vector:
            rows.append(
                {
                    "race_id": race_id,
                    "race_number": number,
                    "miner_hotkey": hotkey,
                    "agent_version_id": version,
                    "race_rank": rank,
                    "units": units,
                    "share": units / total if total else 0.0,
                }
            )
    return pd.DataFrame(
        rows,
        columns=["race_id", "race_number", "miner_hotkey", "agent_version_id", "race_rank", "units", "share"],
    )


def weights_by_miner(weights: pd.DataFrame) -> pd.DataFrame:
    """Each miner's share of each race's vector (races as rows, oldest first; the burn slot as ``burn``),
    0 where a miner got nothing."""
    if weights.empty:
        return pd.DataFrame()
    labelled = weights.assign(miner=weights["miner_hotkey"].fillna(BURN))
    table = labelled.pivot_table(
        index="race_number", columns="miner", values="share", aggfunc="sum", fill_value=0.0
    )
    return table.sort_index()


# --------------------------------------------------------------------------------------------- the field


def completed_fields(qualifiers: pd.DataFrame, races: pd.DataFrame) -> pd.DataFrame:
    """The qualifiers of completed races, with each race's completion time, oldest race first."""
    done = races.loc[races["status"] == "RACE_COMPLETE", ["race_id", "race_completed_at"]]
    merged = qualifiers.merge(done, on="race_id", how="inner")
    return merged.sort_values(["race_number", "race_rank"], na_position="last").reset_index(drop=True)


def qualifying_vs_race(fields: pd.DataFrame) -> dict[str, float]:
    """How well the qualifying score predicts the race score, over the finishers of completed races:
    Pearson r, Spearman rho (also within each race, averaged), the least-squares slope and intercept of
    race score on qualifying score, and how many finishers."""
    finishers = fields.dropna(subset=["race_score", "qualifying_score"])
    n = len(finishers)
    if n < 3:
        return {
            "n": float(n),
            "pearson": np.nan,
            "spearman": np.nan,
            "within_race_spearman": np.nan,
            "slope": np.nan,
            "intercept": np.nan,
        }
    x, y = finishers["qualifying_score"].to_numpy(float), finishers["race_score"].to_numpy(float)
    slope, intercept = np.polyfit(x, y, 1)
    within = [
        group["qualifying_score"].rank().corr(group["race_score"].rank())
        for _, group in finishers.groupby("race_id")
        if len(group) >= 3
    ]
    return {
        "n": float(n),
        "pearson": float(np.corrcoef(x, y)[0, 1]),
        "spearman": float(pd.Series(x).rank().corr(pd.Series(y).rank())),
        "within_race_spearman": float(np.nanmean(within)) if within else np.nan,
        "slope": float(slope),
        "intercept": float(intercept),
    }


def rank_stability(fields: pd.DataFrame) -> pd.DataFrame:
    """Race-to-race stability of ranks: for each pair of consecutive completed races, the miners that
    finished both, the Spearman correlation of their ranks and their mean absolute rank change."""
    finishers = fields.dropna(subset=["race_rank"])
    numbers = sorted(finishers["race_number"].unique())
    rows = []
    for before, after in zip(numbers, numbers[1:], strict=False):
        a = finishers[finishers["race_number"] == before].set_index("miner_hotkey")["race_rank"]
        b = finishers[finishers["race_number"] == after].set_index("miner_hotkey")["race_rank"]
        common = a.index.intersection(b.index)
        rho = a[common].rank().corr(b[common].rank()) if len(common) >= 3 else np.nan
        rows.append(
            {
                "race_number": after,
                "previous_race": before,
                "common_miners": len(common),
                "rank_spearman": rho,
                "mean_abs_rank_change": float((a[common] - b[common]).abs().mean())
                if len(common)
                else np.nan,
                "winner_repeated": bool((a == 1).idxmax() == (b == 1).idxmax())
                if len(a) and len(b)
                else False,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "race_number",
            "previous_race",
            "common_miners",
            "rank_spearman",
            "mean_abs_rank_change",
            "winner_repeated",
        ],
    )


# --------------------------------------------------------------------------------------------- margins


def bootstrap_lead(
    winner: Sequence[float],
    runner_up: Sequence[float],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """The winner's lead (mean of its race runs minus the runner-up's) and a percentile bootstrap
    interval: each draw resamples each side's runs with replacement."""
    a, b = np.asarray(winner, dtype=float), np.asarray(runner_up, dtype=float)
    lead = float(a.mean() - b.mean())
    gen = np.random.default_rng(seed)
    draws = gen.choice(a, size=(n_boot, len(a))).mean(axis=1) - gen.choice(b, size=(n_boot, len(b))).mean(
        axis=1
    )
    alpha = (1 - level) / 2
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    return lead, float(low), float(high)


def winner_margins(
    runs: pd.DataFrame, fields: pd.DataFrame, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Per completed race with two finishers or more: the winner's lead over the runner-up in race score,
    its bootstrap interval from their included race runs, and whether the interval excludes 0."""
    included = runs[runs["is_included"].astype(bool) & runs["validator_score"].notna()]
    rows = []
    for number, field in fields.dropna(subset=["race_rank"]).groupby("race_number"):
        ranked = field.sort_values("race_rank")
        if len(ranked) < 2:
            continue
        first, second = ranked.iloc[0], ranked.iloc[1]
        race_runs = included[included["race_number"] == number]

        def scores(version: str, frame: pd.DataFrame = race_runs) -> list[float]:
            return frame.loc[frame["agent_version_id"] == version, "validator_score"].astype(float).tolist()

        lead, low, high = bootstrap_lead(
            scores(first["agent_version_id"]),
            scores(second["agent_version_id"]),
            n_boot=n_boot,
            seed=seed,
            level=level,
        )
        rows.append(
            {
                "race_number": number,
                "winner": first["agent_name"],
                "winner_score": first["race_score"],
                "runner_up": second["agent_name"],
                "runner_up_score": second["race_score"],
                "lead": lead,
                "lower": low,
                "upper": high,
                "beyond_noise": bool(low > 0),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "race_number",
            "winner",
            "winner_score",
            "runner_up",
            "runner_up_score",
            "lead",
            "lower",
            "upper",
            "beyond_noise",
        ],
    )


def summary(
    races: pd.DataFrame,
    fields: pd.DataFrame,
    prediction: dict[str, float],
    stability: pd.DataFrame,
    margins: pd.DataFrame,
    variance: pd.DataFrame,
    weights: pd.DataFrame,
) -> str:
    """A few sentences of findings, written from the tables (so the words cannot drift from them)."""
    done = races[races["status"] == "RACE_COMPLETE"]
    live = races[races["status"].isin(["QUALIFYING_OPEN", "RACE_RUNNING"])]
    lines = [
        f"{len(races)} races, {len(done)} completed"
        + (f"; race {int(live['race_number'].iloc[0])} is {live['status'].iloc[0]}." if len(live) else "."),
        f"{int(fields['did_not_finish'].sum())} of {len(fields)} entries in completed races did not finish; "
        f"{int((fields['qualification_type'] == 'INCUMBENT').sum())} were incumbents.",
    ]
    if not np.isnan(prediction["pearson"]):
        lines.append(
            f"Qualifying score predicts race score with r = {prediction['pearson']:.2f} "
            f"(Spearman {prediction['spearman']:.2f}, {int(prediction['n'])} finishers)."
        )
    if stability["rank_spearman"].notna().any():
        rho, repeats = stability["rank_spearman"].mean(), int(stability["winner_repeated"].sum())
        lines.append(
            f"Ranks of miners finishing consecutive races correlate at {rho:.2f} on average; "
            f"the winner repeated in {repeats} of {len(stability)} races."
        )
    if len(margins):
        clear = int(margins["beyond_noise"].sum())
        lines.append(
            f"The winner's lead was beyond noise in {clear} of {len(margins)} races with a runner-up."
        )
    if len(variance) and variance["mean_spread"].notna().any():
        spread = variance["mean_spread"].mean()
        lines.append(f"Validators scoring the same qualifier lay {spread:.1f} points apart on average.")
    paid = weights[weights["miner_hotkey"].notna()] if len(weights) else weights
    if len(paid):
        top = paid.groupby("miner_hotkey")["share"].sum().sort_values(ascending=False)
        burn = weights.loc[weights["miner_hotkey"].isna(), "share"].mean()
        lines.append(
            f"Across races, {top.index[0][:8]}… earned the most weight ({top.iloc[0]:.2f} race-shares); "
            f"the burn slot took {burn:.0%} of a vector on average."
        )
    return "\n".join(f"- {line}" for line in lines) + "\n"
