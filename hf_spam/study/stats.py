"""Statistics for comparing classifiers on the same test examples.

Correctness is a matrix ``(seeds, examples)`` of 0/1, one row per seed, the columns the same test examples
in the same order for every run. Intervals resample *examples* (columns) with replacement -- the test set
is the main source of noise -- and average over seeds, so they are pooled over seeds. McNemar's exact test
looks at the discordant examples only (right in one run, wrong in the other); pooled over seeds it sums
their counts, which treats an example judged in several seeds as several examples: read the pooled
p-value as a summary, and the paired bootstrap interval (which resamples examples) as the honest error bar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

DEFAULT_RESAMPLES = 2000
ALPHA = 0.05  # a difference is real when the pooled McNemar p is below this and the interval excludes 0
LEVEL = 0.95


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: ``only_a`` examples right in A alone, ``only_b`` in B alone; under
    the null each discordant example goes either way with probability 1/2. No discordant example: 1."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a}, {only_b}")
    n = only_a + only_b
    return 1.0 if n == 0 else float(binomtest(only_a, n, 0.5).pvalue)


def discordant(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[int, int]:
    """``(right in A only, right in B only)`` summed over every entry of two same-shape 0/1 arrays."""
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired runs need the same examples: shapes {a.shape} and {b.shape}")
    return int((a & ~b).sum()), int((~a & b).sum())


def _as_matrix(correct: np.ndarray) -> np.ndarray:
    matrix = np.asarray(correct, dtype=np.float64)
    matrix = matrix[None, :] if matrix.ndim == 1 else matrix
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise ValueError(f"expected (seeds, examples) correctness, got shape {np.shape(correct)}")
    return matrix


def _column_means(matrix: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """The mean of ``matrix`` over seeds and a bootstrap resample of its columns, ``resamples`` times."""
    rng = np.random.default_rng(seed)
    per_example = matrix.mean(axis=0)  # averaging over seeds first gives the same resampled means
    n = per_example.size
    means = np.empty(resamples)
    for start in range(0, resamples, 500):  # chunks: (500, n) indices at a time
        stop = min(start + 500, resamples)
        means[start:stop] = per_example[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return means


def bootstrap_interval(
    correct: np.ndarray, resamples: int = DEFAULT_RESAMPLES, level: float = LEVEL, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy: examples resampled with replacement, seeds averaged."""
    return _percentile_interval(_column_means(_as_matrix(correct), resamples, seed), level)


def paired_bootstrap_interval(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of accuracy(B) - accuracy(A), resampling the *same* examples for both
    (the pairing removes the noise of which examples happen to be easy)."""
    a, b = _as_matrix(correct_a), _as_matrix(correct_b)
    if a.shape != b.shape:
        raise ValueError(f"paired runs need the same examples: shapes {a.shape} and {b.shape}")
    return _percentile_interval(_column_means(b - a, resamples, seed), level)


def _percentile_interval(means: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap means."""
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


@dataclass
class Comparison:
    """B against A on the same test examples, over the seeds both have."""

    a: str
    b: str
    seeds: list[int]
    n_examples: int
    accuracy_a: float
    accuracy_b: float
    per_seed: list[dict[str, float]]  # seed, only_a, only_b, p, difference
    only_a: int
    only_b: int
    p_value: float
    interval: tuple[float, float]
    significant: bool
    sentence: str
    alpha: float = ALPHA

    @property
    def difference(self) -> float:
        """accuracy(B) - accuracy(A), averaged over seeds."""
        return self.accuracy_b - self.accuracy_a


def compare(
    a: str,
    b: str,
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    seeds: list[int],
    alpha: float = ALPHA,
    resamples: int = DEFAULT_RESAMPLES,
) -> Comparison:
    """McNemar's exact test per seed and pooled, the paired bootstrap interval, and the verdict: a real
    difference when the pooled p < ``alpha`` and the interval excludes 0."""
    ma, mb = _as_matrix(correct_a), _as_matrix(correct_b)
    per_seed = []
    for seed, row_a, row_b in zip(seeds, ma, mb, strict=True):
        x, y = discordant(row_a, row_b)
        per_seed.append({"seed": seed, "only_a": x, "only_b": y, "p": mcnemar_exact(x, y),
                         "difference": float(row_b.mean() - row_a.mean())})  # fmt: skip
    only_a, only_b = discordant(ma, mb)
    p = mcnemar_exact(only_a, only_b)
    interval = paired_bootstrap_interval(ma, mb, resamples)
    significant = p < alpha and not interval[0] <= 0.0 <= interval[1]
    comparison = Comparison(a, b, list(seeds), ma.shape[1], float(ma.mean()), float(mb.mean()), per_seed,
                            only_a, only_b, p, interval, significant, "", alpha)  # fmt: skip
    comparison.sentence = verdict(comparison)
    return comparison


def format_p(p: float) -> str:
    """``p < 0.001``, ``p = 0.0497`` (three digits below 0.1, so a p next to 0.05 shows its side) or
    ``p = 0.53``."""
    return "p < 0.001" if p < 0.001 else f"p = {p:.3g}" if p < 0.1 else f"p = {p:.2f}"


def verdict(c: Comparison) -> str:
    """One sentence from the numbers, e.g. "last beats first by 20.3 points (p < 0.001)"."""
    points = abs(c.difference) * 100
    one = 100 / c.n_examples
    if c.significant:
        winner, loser = (c.b, c.a) if c.difference > 0 else (c.a, c.b)
        low, high = sorted(abs(x) * 100 for x in c.interval)
        interval = f"95 % interval {low:.1f} to {high:.1f}"
        return f"{winner} beats {loser} by {points:.1f} points ({format_p(c.p_value)}; {interval})"
    unit = "point" if round(points, 1) == 1 else "points"
    low, high = (x * 100 for x in c.interval)
    interval = f"95 % interval of {c.b} - {c.a} {low:+.1f} to {high:+.1f}"
    if c.p_value < c.alpha:  # McNemar alone would call it: say why it is not
        why = f"McNemar pooled {format_p(c.p_value)}, but the paired bootstrap {interval} includes 0"
    else:
        why = f"{format_p(c.p_value)}; {interval}"
    return (
        f"no significant difference between {c.a} and {c.b} ({points:.1f} {unit}; {why}; "
        f"one test example = {one:.2f} points)"
    )
