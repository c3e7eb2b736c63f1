"""KLL quantile sketch as Model Monitor's analyzer builds it (Deequ's ``QuantileNonSample``): levels, ranks, buckets."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np

#: Deequ's defaults, written by Model Monitor as ``sketch.parameters {c: 0.64, k: 2048.0}``.
DEFAULT_K = 2048
DEFAULT_C = 0.64
#: Equal-width buckets Model Monitor writes under ``distribution.kll.buckets``.
DEFAULT_BUCKETS = 10


class KLLSketch:
    """A deterministic KLL sketch laid out like Deequ's (the analyzer behind SageMaker Model Monitor).

    Level 0 receives the values in arrival order; level ``h`` holds values of weight ``2**h``. Level ``h`` holds
    at most ``capacity(h) = 2 * (ceil(k * c**h / 2) + 1)`` values (level 0 the most, higher levels fewer).
    When the sketch holds more values than its levels' total capacity, the lowest full level is compacted:
    its values (an even number; an odd last value stays) are sorted and every second one, starting at an
    offset that alternates every other compaction, moves up a level. Below ``capacity(0)`` values
    (2050 with the defaults) nothing is compacted: the sketch holds the raw values, as Model Monitor's
    statistics.json shows for small baselines.

    Parameters
    ----------
    k : int
        Sketch size (Deequ's ``sketchSize``): the capacity of level 0, less 2.
    c : float
        Shrinking factor of the capacities from one level to the next.
    """

    def __init__(self, k: int = DEFAULT_K, c: float = DEFAULT_C) -> None:
        if not (isinstance(k, (int, np.integer)) or float(k).is_integer()) or int(k) < 2:
            raise ValueError(f"KLL sketch size k must be an integer >= 2, got {k!r}")
        if not 0.0 < float(c) <= 1.0:
            raise ValueError(f"KLL shrinking factor c must be in (0, 1], got {c!r}")
        self.k = int(k)
        self.c = float(c)
        self._levels: list[np.ndarray] = []
        self._compactions: list[int] = []
        self._offsets: list[int] = []
        self._size = 0
        self._capacity_total = 0
        self._expand()

    # ------------------------------------------------------------------ structure
    def capacity(self, height: int) -> int:
        """Values level ``height`` holds before it is compacted."""
        return 2 * (math.ceil(self.k * self.c**height / 2) + 1)

    def _expand(self) -> None:
        self._levels.append(np.empty(0))
        self._compactions.append(0)
        self._offsets.append(0)
        self._capacity_total = sum(self.capacity(h) for h in range(len(self._levels)))

    @property
    def levels(self) -> list[np.ndarray]:
        """The values of each level, level 0 first (copies; weight of level ``h`` is ``2**h``)."""
        return [lvl.copy() for lvl in self._levels]

    @property
    def n(self) -> int:
        """Total weight: the number of values the sketch stands for."""
        return int(sum(lvl.size << h for h, lvl in enumerate(self._levels)))

    def __len__(self) -> int:
        return self.n

    def __repr__(self) -> str:
        return f"KLLSketch(k={self.k}, c={self.c}, n={self.n}, levels={[lvl.size for lvl in self._levels]})"

    # ------------------------------------------------------------------ building
    def update(self, values: Iterable[float] | np.ndarray) -> "KLLSketch":
        """Add values in order (NaN skipped, as the analyzer skips missing values); returns the sketch.

        Equal to adding them one at a time: values are appended to level 0 in runs that stop exactly where a
        one-at-a-time update would compact.
        """
        v = np.asarray(values, dtype=float).ravel()
        v = v[~np.isnan(v)]
        i = 0
        while i < v.size:
            take = min(max(1, self._capacity_total - self._size + 1), v.size - i)
            self._levels[0] = np.concatenate([self._levels[0], v[i:i + take]])
            self._size += take
            i += take
            if self._size > self._capacity_total:
                self._condense()
        return self

    def merge(self, other: "KLLSketch") -> "KLLSketch":
        """Merge ``other`` into this sketch (Deequ's merge: levels concatenated, then compacted); returns it."""
        if (other.k, other.c) != (self.k, self.c):
            raise ValueError(f"cannot merge KLL sketches with different parameters: "
                             f"k={self.k}, c={self.c} and k={other.k}, c={other.c}")
        while len(self._levels) < len(other._levels):
            self._expand()
        for h, lvl in enumerate(other._levels):
            self._levels[h] = np.concatenate([self._levels[h], lvl])
        self._size = sum(lvl.size for lvl in self._levels)
        while self._size >= self._capacity_total:
            self._condense()
        return self

    def _condense(self) -> None:
        for h in range(len(self._levels)):
            if self._levels[h].size >= self.capacity(h):
                if h + 1 >= len(self._levels):
                    self._expand()
                self._levels[h + 1] = np.concatenate([self._levels[h + 1], self._compact(h)])
                self._size = sum(lvl.size for lvl in self._levels)
                return

    def _compact(self, h: int) -> np.ndarray:
        buf = self._levels[h]
        even = buf.size - buf.size % 2
        if self._compactions[h] % 2 == 1:
            self._offsets[h] = 1 - self._offsets[h]
        out = np.sort(buf[:even], kind="stable")[self._offsets[h]:even:2]
        self._levels[h] = buf[even:].copy()
        self._compactions[h] += 1
        return out

    # ------------------------------------------------------------------ queries
    def _items(self) -> tuple[np.ndarray, np.ndarray]:
        """All values sorted, with their weights."""
        if not self._levels:
            return np.empty(0), np.empty(0, dtype=np.int64)
        values = np.concatenate(self._levels)
        weights = np.concatenate([np.full(lvl.size, 1 << h, dtype=np.int64) for h, lvl in enumerate(self._levels)])
        order = np.argsort(values, kind="stable")
        return values[order], weights[order]

    def rank(self, x: float | np.ndarray, *, inclusive: bool = True) -> np.ndarray:
        """Estimated number of values ``<= x`` (``< x`` when not ``inclusive``), for one or many ``x``."""
        values, weights = self._items()
        cum = np.concatenate([[0], np.cumsum(weights)])
        idx = np.searchsorted(values, np.asarray(x, dtype=float), side="right" if inclusive else "left")
        return cum[idx]

    def cdf(self, x: float | np.ndarray) -> np.ndarray:
        """Estimated share of values ``<= x``."""
        n = self.n
        if n == 0:
            raise ValueError("the KLL sketch is empty: it has no CDF")
        return self.rank(x) / n

    def quantile(self, q: float | np.ndarray) -> np.ndarray:
        """Smallest sketch value whose estimated CDF reaches ``q`` (``q`` in [0, 1])."""
        values, weights = self._items()
        if values.size == 0:
            raise ValueError("the KLL sketch is empty: it has no quantiles")
        q = np.asarray(q, dtype=float)
        if np.any((q < 0) | (q > 1)):
            raise ValueError(f"quantile levels must be in [0, 1], got {q}")
        cum = np.cumsum(weights)
        idx = np.searchsorted(cum, q * cum[-1], side="left")
        return values[np.minimum(idx, values.size - 1)]

    def buckets(self, lower: float, upper: float, count: int = DEFAULT_BUCKETS) -> list[dict[str, float]]:
        """Model Monitor's ``kll.buckets``: ``count`` equal-width buckets from ``lower`` to ``upper`` with the
        sketch's estimated counts (each bucket half-open ``[lo, hi)``, the last one closed), as floats."""
        edges = [lower + (upper - lower) * i / float(count) for i in range(count + 1)]
        below = self.rank(np.array(edges), inclusive=False)
        last = int(self.rank(upper))
        out = []
        for i in range(count):
            top = last if i == count - 1 else int(below[i + 1])
            out.append({"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]),
                        "count": float(top - int(below[i]))})
        return out

    def error_bound(self) -> float:
        """Upper bound on the error of :meth:`cdf` at any point, as a share of ``n``.

        Each compaction at level ``h`` moves any rank by at most ``2**h``, and level ``h`` is compacted at most
        ``n / (2**h * capacity(h))`` times, so the rank error is at most ``n * sum(1 / capacity(h))`` over the
        levels below the top one (the top level was never compacted). Zero while the sketch holds raw values.
        """
        return float(sum(1.0 / self.capacity(h) for h in range(len(self._levels) - 1)))

    # ------------------------------------------------------------------ JSON (Model Monitor's ``sketch``)
    def to_json(self) -> dict[str, Any]:
        """``{"parameters": {"c": c, "k": float(k)}, "data": [[level 0 values], [level 1 values], ...]}``."""
        return {"parameters": {"c": self.c, "k": float(self.k)},
                "data": [[float(v) for v in lvl] for lvl in self._levels]}

    @classmethod
    def from_levels(cls, levels: Sequence[Sequence[float]], k: int = DEFAULT_K, c: float = DEFAULT_C) -> "KLLSketch":
        """A sketch holding the given levels (Deequ's ``reconstruct``: compaction counters start afresh)."""
        sketch = cls(k, c)
        sketch._levels, sketch._compactions, sketch._offsets = [], [], []
        for lvl in levels or [[]]:
            arr = np.asarray(lvl, dtype=float).ravel()
            if np.isnan(arr).any():
                raise ValueError("a KLL sketch level holds NaN; sketch values must be numbers")
            sketch._expand()
            sketch._levels[-1] = arr
        sketch._size = sum(lvl.size for lvl in sketch._levels)
        return sketch

    @classmethod
    def from_json(cls, doc: dict, where: str = "sketch") -> "KLLSketch":
        """Inverse of :meth:`to_json`; ``where`` names the document part in errors."""
        try:
            params, data = doc["parameters"], doc["data"]
            k, c = params["k"], params["c"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{where}: a KLL sketch needs parameters {{c, k}} and data (a list of levels); "
                             f"missing {exc}") from None
        if not isinstance(data, list) or not all(isinstance(lvl, list) for lvl in data):
            raise ValueError(f"{where}.data must be a list of levels, each a list of numbers")
        return cls.from_levels(data, int(float(k)), float(c))


def sketch_values(values: Iterable[float] | np.ndarray, k: int = DEFAULT_K, c: float = DEFAULT_C) -> KLLSketch:
    """The sketch Model Monitor's analyzer writes for a column: the values added in row order, then merged into
    an empty sketch as Spark's final aggregation does (which compacts once more if the sketch is exactly full)."""
    return KLLSketch(k, c).merge(KLLSketch(k, c).update(values))


def linf_distance(sketch: KLLSketch, values: np.ndarray) -> float:
    """Largest distance between the sketch's CDF and the empirical CDF of ``values`` (NaN dropped).

    Both are right-continuous step functions, so the supremum is reached at a value of one of them;
    both are evaluated at every such value (Deequ's ``numericalDistance``, with exact window ranks).
    """
    v = np.sort(np.asarray(values, dtype=float).ravel())
    v = v[~np.isnan(v)]
    if v.size == 0 or sketch.n == 0:
        raise ValueError("the distance needs values on both sides (the sketch or the window is empty)")
    sk_values, sk_weights = sketch._items()  # sorted once: the sketch's CDF at the points from the same items
    points = np.union1d(sk_values, v)
    sketch_cdf = np.concatenate([[0], np.cumsum(sk_weights)])[np.searchsorted(sk_values, points, side="right")] / sketch.n
    window_cdf = np.searchsorted(v, points, side="right") / v.size
    return float(np.max(np.abs(sketch_cdf - window_cdf)))


def robust_distance(linf: float, n: float, m: float, c_alpha: float = 1.8) -> float:
    """Deequ's ``linf_robust``: the distance less the two-sample KS margin ``c_alpha * sqrt((n + m) / (n m))``
    (1.8 is Deequ's default, alpha about 0.003), floored at 0."""
    return max(0.0, linf - c_alpha * math.sqrt((n + m) / (n * m)))
