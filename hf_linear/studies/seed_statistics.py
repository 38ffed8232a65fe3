"""A recipe over seeds, reported the rliable way (Agarwal, Schwarzer, Castro, Courville and
Bellemare, "Deep Reinforcement Learning at the Edge of the Statistical Precipice", NeurIPS 2021).

A study with `seeds: [...]` runs each of its runs once per seed (NAME@seedS, hf_linear.studies.study);
its report gives each group of seeds

    reaching the target   how many seeds' held-out exact match is at or above the report's target
    IQM                   the interquartile mean of the seeds' held-out exact match: the mean of
                          the middle 50% (⌊n/4⌋ values cut from each end of the sorted values, as
                          scipy.stats.trim_mean(x, 0.25), which rliable uses; for 2 or 3 seeds the
                          plain mean)
    95% interval          percentile bootstrap of the IQM over the seeds resampled with
                          replacement (rliable's stratified bootstrap with one stratum: a group is
                          one task), BOOTSTRAP_REPS resamples drawn by a generator seeded with
                          BOOTSTRAP_SEED, so the report is the same every time it is written
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

SEED_MARK = "@seed"  # a study's run NAME on seed S is NAME@seedS
BOOTSTRAP_REPS = 50_000  # rliable's default
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


def interquartile_mean(values) -> float:
    """Mean of the middle 50% of `values` (⌊n/4⌋ cut from each end of the sorted values)."""
    return float(trimmed_means(np.asarray(values, dtype=float)[None])[0])


def trimmed_means(samples: np.ndarray) -> np.ndarray:
    """(reps,) interquartile mean of each row of (reps, n) samples."""
    n = samples.shape[1]
    cut = int(0.25 * n)
    return np.sort(samples, axis=1)[:, cut : n - cut].mean(axis=1)


def bootstrap_interval(values, reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """The CONFIDENCE percentile interval of the interquartile mean over `reps` resamples of
    `values` with replacement."""
    values = np.asarray(values, dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(values), size=(reps, len(values)))  # (reps, n)
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(trimmed_means(values[picks]), [tail, 100 - tail])
    return float(low), float(high)


def seed_group(name: str) -> str | None:
    """The run NAME of a run NAME@seedS (its group of seeds), None for a run without a seed mark."""
    group, mark, seed = name.rpartition(SEED_MARK)
    return group if mark and seed.isdigit() else None


def seed_groups(records: list[dict]) -> dict[str, list[dict]]:
    """The records of runs NAME@seedS by NAME, in order of their seeds (runs without a seed: none)."""
    groups = defaultdict(list)
    for record in records:
        group = seed_group(record["name"])
        if group is not None and "exact_match" in record["final"]:
            groups[group].append(record)
    return {name: sorted(runs, key=lambda r: int(r["varied"].get("seed", 0))) for name, runs in groups.items()}


def summary(runs: list[dict], target: float) -> dict:
    """Seeds, how many reach `target`, the IQM and its interval of the held-out exact match."""
    scores = [run["final"]["exact_match"] for run in runs]
    return {
        "seeds": [int(run["varied"]["seed"]) for run in runs],
        "scores": scores,
        "reaching": sum(score >= target for score in scores),
        "iqm": interquartile_mean(scores),
        "interval": bootstrap_interval(scores),
    }


def seed_lines(records: list[dict], target: float) -> list[str]:
    """REPORT.md's section on the groups of seeds (none when the study has no seeds)."""
    groups = seed_groups(records)
    if not groups:
        return []
    lines = [
        "## Over seeds",
        "",
        f"Per group of seeds: how many seeds reach {100 * target:g}% held-out exact match; the interquartile mean "
        "(IQM: the mean of the middle 50% of the seeds' values, the plain mean for 2 or 3 seeds) and its 95% "
        f"percentile bootstrap interval ({BOOTSTRAP_REPS:,} resamples of the seeds, generator seed "
        f"{BOOTSTRAP_SEED}; the rliable convention, Agarwal et al., NeurIPS 2021).",
        "",
        f"| runs | seeds | reaching {100 * target:g}% | IQM held-out exact match | 95% interval | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in groups.items():
        s = summary(runs, target)
        low, high = s["interval"]
        lines.append(
            f"| {name} | {', '.join(map(str, s['seeds']))} | {s['reaching']} of {len(runs)} | "
            f"{100 * s['iqm']:.1f}% | [{100 * low:.1f}%, {100 * high:.1f}%] | "
            + " / ".join(f"{100 * score:.1f}%" for score in s["scores"])
            + " |"
        )
    return [*lines, ""]
