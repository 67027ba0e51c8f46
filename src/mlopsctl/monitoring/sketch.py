"""Reference sketches: what a drift test compares current data with, made at publish from every training row.

A sketch is small (bounded whatever the number of training rows) and says how far it can be from the
data it summarises:

- ``NumericSketch``: the empirical CDF of a numeric column, kept at up to ``KNOTS`` + 2 of its values. A
  value is kept where the cumulative count crosses a multiple of n/``KNOTS``, so between two kept values
  lies at most 1/``KNOTS`` of the rows and the sketch's CDF is below the true one by at most ``error``
  (≤ 1/``KNOTS`` = 0.001; 0 when every distinct value is kept, which is then the whole column);
- ``CategoricalSketch``: every category's count (categories are bounded by ``[data] max_categories``);
- ``TextSketch``: a numeric sketch of the character lengths, the vocabulary (the ``VOCABULARY`` most
  frequent words) and the out-of-vocabulary rate expected of new text from the training distribution.

Every sketch also counts the missing values, so drift can test them. Numbers are compared at float32
precision on both sides (``f32``): a column written to Parquet as float32 and read back as float64 is not
a shift. Sketches go into ``baseline.json`` as plain JSON (``to_dict``/``sketch_from_dict``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

KNOTS = 1000  # numeric CDF kept within 1/KNOTS
VOCABULARY = 5000  # text: the most frequent training words
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's default tokenizer (lower-cased first)
GOOD_TURING_MAX = 5  # counts below this are smoothed by Good–Turing; above, taken as they are
F32_MAX = float(np.finfo(np.float32).max)

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]


def f32(values: Any) -> Floats:
    """Values as float64 at float32 precision (beyond float32's range: as given; NaN and ±inf kept)."""
    a = np.asarray(values, dtype=np.float64)
    inside = np.abs(a) <= F32_MAX
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = a.astype(np.float32).astype(np.float64)
    return np.where(inside, rounded, a)


def _short(values: Floats) -> list[float]:
    """float32-precision values as the shortest decimals that round back to them (a small JSON file)."""
    return [float(s) for s in values.astype(np.float32).astype(str)] if values.size else []


# -- numbers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericSketch:
    """The CDF of a numeric column at ``values``: ``cum[i]`` values are at or below ``values[i]``."""

    values: Floats
    cum: Ints
    missing: int  # NaN, ±inf, None
    error: float  # sup of F_true − F_sketch (the sketch's CDF is never above the true one)
    mean: float
    std: float

    @property
    def n(self) -> int:
        return int(self.cum[-1]) if self.cum.size else 0

    @property
    def exact(self) -> bool:
        return self.error == 0.0

    @classmethod
    def of(cls, data: Any, knots: int = KNOTS) -> NumericSketch:
        arr = f32(np.asarray(data, dtype=np.float64))
        finite = arr[np.isfinite(arr)]
        missing = int(arr.size - finite.size)
        if finite.size == 0:
            return cls(np.zeros(0), np.zeros(0, dtype=np.int64), missing, 0.0, math.nan, math.nan)
        values, counts = np.unique(finite, return_counts=True)
        cum = np.cumsum(counts, dtype=np.int64)
        n = int(cum[-1])
        if values.size > knots + 2:
            # keep value j when the count crosses a multiple of n/knots there (integer arithmetic: exact)
            prev = np.concatenate(([0], cum[:-1]))
            keep = (cum * knots) // n != (prev * knots) // n
            keep[0] = keep[-1] = True
            kept = np.flatnonzero(keep)
            # mass strictly between two kept values: what the sketch's CDF may miss
            between = cum[kept[1:] - 1] - cum[kept[:-1]]
            error = float(between.max()) / n if between.size else 0.0
            values, cum = values[kept], cum[kept]
        else:
            error = 0.0
        return cls(values, cum, missing, error, float(finite.mean()), float(finite.std()))

    def count_le(self, points: Any) -> Ints:
        """How many values are at or below each point, by the sketch (within ``error``·n below the truth)."""
        idx = np.searchsorted(self.values, np.asarray(points, dtype=np.float64), side="right")
        return np.asarray(np.concatenate(([0], self.cum))[idx], dtype=np.int64)

    def cdf(self, points: Any) -> Floats:
        """The sketch's CDF (share of values ≤ each point): within ``error`` below the true CDF."""
        return self.count_le(points) / max(self.n, 1)

    def counts(self, inner_edges: Any) -> Ints:
        """Counts in the bins (-inf, e0], (e0, e1], …, (e_last, inf) for ascending ``inner_edges``."""
        return np.diff(np.concatenate(([0], self.count_le(inner_edges), [self.n])))

    def sample(self) -> Floats:
        """The column itself, sorted (only when the sketch is exact)."""
        return np.repeat(self.values, np.diff(np.concatenate(([0], self.cum))))

    def cut_points(self, bins: int) -> Floats:
        """The inner edges of ``bins`` equal-share bins: for k = 1 … bins − 1, the smallest value with at
        least k/bins of the values at or below it (a kept value: the count crosses a knot there)."""
        targets = -(-np.arange(1, bins, dtype=np.int64) * self.n // bins)  # ceil(k·n/bins), in integers
        idx = np.searchsorted(self.cum, targets, side="left")
        return self.values[np.clip(idx, 0, self.values.size - 1)]

    def quantile(self, q: float) -> float:
        """The smallest kept value with at least a share q of the values at or below it."""
        idx = int(np.searchsorted(self.cum, math.ceil(q * self.n), side="left"))
        return float(self.values[min(idx, self.values.size - 1)])

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "ecdf",
            "values": _short(self.values),
            "cum": self.cum.tolist(),
            "missing": self.missing,
            "error": self.error,
            "mean": self.mean if math.isfinite(self.mean) else None,
            "std": self.std if math.isfinite(self.std) else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericSketch:
        return cls(
            f32(np.asarray(d["values"], dtype=np.float64)),
            np.asarray(d["cum"], dtype=np.int64),
            int(d["missing"]),
            float(d["error"]),
            math.nan if d.get("mean") is None else float(d["mean"]),
            math.nan if d.get("std") is None else float(d["std"]),
        )


# -- categories ------------------------------------------------------------------------------------


def category_counts(values: Any) -> tuple[dict[str, int], int]:
    """Counts per category key (3, 3.0 and "3" are one category; booleans are true/false) and the missing."""
    import pandas as pd

    from mlopsctl.data.schema import category_key

    s = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    raw = s.value_counts(dropna=True)  # count first, then name: one category_key call per distinct value
    counts: dict[str, int] = {}
    for k, n in zip(raw.index.tolist(), raw.tolist(), strict=True):
        key = category_key(k)
        counts[key] = counts.get(key, 0) + int(n)
    return counts, int(len(s) - sum(counts.values()))


@dataclass(frozen=True)
class CategoricalSketch:
    counts: dict[str, int]
    missing: int

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def of(cls, data: Any) -> CategoricalSketch:
        counts, missing = category_counts(data)
        return cls(counts, missing)

    def to_dict(self) -> dict[str, Any]:
        return {"type": "counts", "counts": dict(self.counts), "missing": self.missing}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalSketch:
        return cls({str(k): int(v) for k, v in d["counts"].items()}, int(d["missing"]))


# -- text ------------------------------------------------------------------------------------------


def texts(values: Any) -> tuple[Any, int]:
    """The non-missing values as a Series of str, and how many were missing."""
    import pandas as pd

    s = pd.Series(values, dtype=object)
    kept = s.dropna().astype(str)
    return kept, int(len(s) - len(kept))


def tokens_per_row(kept: Any) -> list[list[str]]:
    return list(kept.str.lower().str.findall(TOKEN_PATTERN))


def expected_oov(freq: dict[str, int], vocabulary: set[str]) -> float:
    """The chance that a token of new text from the training distribution is not in ``vocabulary``.

    Good–Turing: unseen words take the mass of the words seen once (N₁/N); a word seen r < 5 times takes
    (r+1)·N_{r+1}/N_r, the rest r; seen masses are scaled so that all masses add up to 1. The expected
    rate is the unseen mass plus the masses of the training words left out of the vocabulary.
    """
    total = sum(freq.values())
    if total == 0:
        return 0.0
    by_count: dict[int, int] = {}
    for c in freq.values():
        by_count[c] = by_count.get(c, 0) + 1

    def smoothed(r: int) -> float:
        if r < GOOD_TURING_MAX and by_count.get(r + 1):
            return (r + 1) * by_count[r + 1] / by_count[r]
        return float(r)

    unseen = by_count.get(1, 0) / total
    seen = sum(n * smoothed(r) for r, n in by_count.items())
    outside = sum(smoothed(c) for w, c in freq.items() if w not in vocabulary)
    return min(1.0, unseen + (1 - unseen) * outside / seen) if seen > 0 else 1.0


@dataclass(frozen=True)
class TextSketch:
    lengths: NumericSketch  # characters
    vocabulary: tuple[str, ...]
    expected_oov: float
    tokens: int
    missing: int

    @property
    def n(self) -> int:
        return self.lengths.n

    @classmethod
    def of(cls, data: Any, size: int = VOCABULARY) -> TextSketch:
        kept, missing = texts(data)
        freq: dict[str, int] = {}
        for row in tokens_per_row(kept):
            for t in row:
                freq[t] = freq.get(t, 0) + 1
        vocab = tuple(w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:size])
        lengths = NumericSketch.of(kept.str.len().to_numpy(dtype=np.float64))
        return cls(lengths, vocab, expected_oov(freq, set(vocab)), sum(freq.values()), missing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "text",
            "lengths": self.lengths.to_dict(),
            "vocabulary": list(self.vocabulary),
            "expected_oov": self.expected_oov,
            "tokens": self.tokens,
            "missing": self.missing,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextSketch:
        return cls(
            NumericSketch.from_dict(d["lengths"]),
            tuple(str(w) for w in d["vocabulary"]),
            float(d["expected_oov"]),
            int(d["tokens"]),
            int(d["missing"]),
        )


Sketch = NumericSketch | CategoricalSketch | TextSketch


def sketch_of(kind: str, data: Any) -> Sketch:
    """The sketch of a column of ``kind`` (numeric, categorical or text)."""
    if kind == "numeric":
        import pandas as pd

        if isinstance(data, pd.Series):
            data = pd.to_numeric(data, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return NumericSketch.of(data)
    if kind == "categorical":
        return CategoricalSketch.of(data)
    return TextSketch.of(data)


def sketch_from_dict(d: dict[str, Any]) -> Sketch:
    kind = d.get("type")
    if kind == "ecdf":
        return NumericSketch.from_dict(d)
    if kind == "counts":
        return CategoricalSketch.from_dict(d)
    if kind == "text":
        return TextSketch.from_dict(d)
    raise ValueError(f"sketch type {kind!r}: expected ecdf, counts or text")
