"""Ground-truth labels held compactly: each join key as two 64-bit hashes, its record index and its label (28 bytes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

# two independent keys of pandas' SipHash (16 characters each): a join key is known by both hashes (128 bits)
HASH_KEYS = ("labels-join-key1", "labels-join-key2")


def key_hashes(keys: Sequence[str] | np.ndarray | pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The two 64-bit hashes (uint64) of each join key; the same key gives the same pair in every process."""
    values = np.asarray(keys, dtype=object)
    return tuple(pd.util.hash_array(values, hash_key=k, categorize=False) for k in HASH_KEYS)


@dataclass
class CompactLabels:
    """Labels of a backlog, one entry per (join key, record index), sorted by hashes then record index.

    A join key is held as two 64-bit hashes (``h1``, ``h2``), not as text: 28 bytes a label (plus the arrays'
    headers) instead of a Python string and a row of a frame. Two keys whose first hashes collide are told apart
    by the second (``collisions`` counts such keys when the labels were built; a lookup compares both hashes);
    only two keys equal in all 128 bits would be taken for one (about 1e-24 for 30 million keys).

    Attributes
    ----------
    h1, h2 : np.ndarray
        uint64 hashes of each label's join key (:func:`key_hashes`).
    record_index : np.ndarray
        int32 position of the labelled record in its request.
    year : np.ndarray
        float64 label.
    collisions : int
        Distinct join keys sharing their first hash with another key.
    """

    h1: np.ndarray
    h2: np.ndarray
    record_index: np.ndarray
    year: np.ndarray
    collisions: int = 0

    def __len__(self) -> int:
        return len(self.year)

    @property
    def nbytes(self) -> int:
        """Bytes the labels hold."""
        return self.h1.nbytes + self.h2.nbytes + self.record_index.nbytes + self.year.nbytes

    @classmethod
    def build(cls, parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> "CompactLabels":
        """Labels from parts of (h1, h2, record index, label) in reading order (by collection hour, then file and
        line): when a record is labelled more than once, the latest label wins. Each part's arrays are let go as
        they are joined (``parts`` is left holding None)."""

        def field(i: int, dtype: type) -> np.ndarray:
            out = np.concatenate([p[i] for p in parts]).astype(dtype, copy=False) if parts else np.empty(0, dtype)
            for j, p in enumerate(parts):  # let each part's copy go as soon as it is joined
                parts[j] = p[:i] + (None,) + p[i + 1:]
            return out

        h1, h2, index, year = field(0, np.uint64), field(1, np.uint64), field(2, np.int32), field(3, np.float64)
        order = np.argsort(h1, kind="stable")  # stable: within one key the reading order stays
        # one array at a time: the peak is the labels, the order and one array's copy (44 bytes a label)
        h1 = h1[order]
        h2 = h2[order]
        index = index[order]
        year = year[order]
        del order
        tied = np.flatnonzero(h1[1:] == h1[:-1])  # runs of one first hash (a key's several labels, or collisions):
        if len(tied):  # ordered by second hash and record index within the run, reading order kept among equals
            rows = np.union1d(tied, tied + 1)
            within = np.lexsort((index[rows], h2[rows], h1[rows]))
            h2[rows], index[rows], year[rows] = h2[rows][within], index[rows][within], year[rows][within]
        del tied
        same_next = (h1[1:] == h1[:-1]) & (h2[1:] == h2[:-1]) & (index[1:] == index[:-1])
        if same_next.any():  # a record labelled more than once: the latest of equal entries stays
            last = np.append(~same_next, True)
            h1 = h1[last]
            h2 = h2[last]
            index = index[last]
            year = year[last]
            del last
        del same_next
        new_key = np.append(True, (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])) if len(h1) else np.empty(0, bool)
        first = h1[new_key]  # the first hash of each distinct key, in order
        same = first[1:] == first[:-1]
        shared = np.append(same, False) | np.append(False, same) if len(first) else np.empty(0, bool)
        return cls(h1, h2, index, year, int(shared.sum()))

    def lookup(self, join_key: Sequence[str] | pd.Series, record_index: np.ndarray | Sequence[int]) -> np.ndarray:
        """The label of each (join key, record index), NaN where there is none (float64, one per key given)."""
        q1, q2 = key_hashes(join_key)
        want = np.asarray(record_index, dtype=np.int64)
        out = np.full(len(q1), np.nan)
        if not len(self) or not len(q1):
            return out
        at = np.searchsorted(self.h1, q1)  # the first entry of that first hash
        guess = np.minimum(at + want, len(self) - 1)  # positions 0..k of a request all labelled: entry k follows
        hit = ((self.h1[guess] == q1) & (self.h2[guess] == q2) & (self.record_index[guess] == want)
               & (at + want < len(self)))
        out[hit] = self.year[guess[hit]]
        found = np.minimum(at, len(self) - 1)
        maybe = ~hit & (self.h1[found] == q1)  # a key with labels, but not where guessed: search its entries
        for i in np.flatnonzero(maybe):
            j = int(at[i])
            while j < len(self) and self.h1[j] == q1[i]:
                if self.h2[j] == q2[i] and self.record_index[j] == want[i]:
                    out[i] = self.year[j]
                    break
                j += 1
        return out
