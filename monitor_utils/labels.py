"""Ground-truth labels held compactly: each join key as two 64-bit hashes, its record index and its label (28 bytes)."""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

# two independent keys of pandas' SipHash (16 characters each): a join key is known by both hashes (128 bits)
HASH_KEYS = ("labels-join-key1", "labels-join-key2")
# one label as the builder holds it until it is sorted: 28 bytes, packed
ENTRY = np.dtype([("h1", np.uint64), ("h2", np.uint64), ("index", np.int32), ("year", np.float64)])
BUCKET_BITS = 8  # labels are gathered into 2**8 buckets by the top bits of their first hash (ranges of h1)
CHUNK = 1 << 16  # labels a bucket's full chunk holds (1.8 MB, its own memory map: given back whole when let go)


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
        line): when a record is labelled more than once, the latest label wins. Each part is let go as it is
        taken (``parts`` is left holding None); see :class:`LabelBuilder`."""
        builder = LabelBuilder()
        for j, part in enumerate(parts):
            builder.add(*part)
            parts[j] = None
        return builder.build()

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


def _sorted_unique(h1: np.ndarray, h2: np.ndarray, index: np.ndarray, year: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Labels in reading order sorted by (h1, h2, record index), the latest of equal entries kept; and the
    distinct keys sharing their first hash with another key."""
    order = np.argsort(h1, kind="stable")  # stable: within one key the reading order stays
    h1, h2, index, year = h1[order], h2[order], index[order], year[order]
    del order
    tied = np.flatnonzero(h1[1:] == h1[:-1])  # runs of one first hash (a key's several labels, or collisions):
    if len(tied):  # ordered by second hash and record index within the run, reading order kept among equals
        rows = np.union1d(tied, tied + 1)
        within = np.lexsort((index[rows], h2[rows], h1[rows]))
        h2[rows], index[rows], year[rows] = h2[rows][within], index[rows][within], year[rows][within]
    same_next = (h1[1:] == h1[:-1]) & (h2[1:] == h2[:-1]) & (index[1:] == index[:-1])
    if same_next.any():  # a record labelled more than once: the latest of equal entries stays
        last = np.append(~same_next, True)
        h1, h2, index, year = h1[last], h2[last], index[last], year[last]
    new_key = np.append(True, (h1[1:] != h1[:-1]) | (h2[1:] != h2[:-1])) if len(h1) else np.empty(0, bool)
    first = h1[new_key]  # the first hash of each distinct key, in order
    same = first[1:] == first[:-1]
    shared = np.append(same, False) | np.append(False, same) if len(first) else np.empty(0, bool)
    return h1, h2, index, year, int(shared.sum())


def _chunk(size: int) -> np.ndarray:
    """Room for ``size`` entries in a memory map of its own: its pages are the system's again as soon as it is let
    go, and it pins none of the allocator's heap (where each object's passing text and tables come and go)."""
    return np.frombuffer(mmap.mmap(-1, size * ENTRY.itemsize), ENTRY)


class LabelBuilder:
    """Labels gathered as they are read (:meth:`add`, in reading order), then built into :class:`CompactLabels`
    without holding them twice.

    Each part's labels go to one of 2**``BUCKET_BITS`` buckets by the top bits of their first hash, appended to
    the bucket's chunks (28 bytes a label). :meth:`build` then takes one bucket at a time (a range of first
    hashes): it sorts and deduplicates the bucket, writes it into the result and lets the bucket's chunks go, so
    the peak is the labels once (gathered or built) plus one bucket, not the labels twice and their sort order.
    The result is the same as sorting all labels at once: a key's labels all share a bucket.
    """

    def __init__(self) -> None:
        self._buckets: list[list[list]] = [[] for _ in range(1 << BUCKET_BITS)]  # per bucket: [chunk, filled]
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, h1: np.ndarray, h2: np.ndarray, record_index: np.ndarray, year: np.ndarray) -> None:
        """Append labels (later ones win over earlier ones for the same join key and record index)."""
        n = len(h1)
        if not n:
            return
        entries = np.empty(n, ENTRY)
        entries["h1"], entries["h2"], entries["index"], entries["year"] = h1, h2, record_index, year
        bucket = (entries["h1"] >> np.uint64(64 - BUCKET_BITS)).astype(np.intp)
        order = np.argsort(bucket, kind="stable")  # stable: reading order kept within a bucket
        entries = entries[order]
        bounds = np.concatenate(([0], np.cumsum(np.bincount(bucket, minlength=1 << BUCKET_BITS))))
        del bucket, order
        for b in np.flatnonzero(np.diff(bounds)):
            self._append(self._buckets[b], entries[bounds[b]:bounds[b + 1]])
        self._count += n

    @staticmethod
    def _append(chunks: list[list], rows: np.ndarray) -> None:
        while len(rows):
            if not chunks or chunks[-1][1] == len(chunks[-1][0]):  # a new chunk, twice the last (up to CHUNK)
                chunks.append([_chunk(min(CHUNK, max(1024, 2 * len(chunks[-1][0]) if chunks else len(rows)))), 0])
            chunk = chunks[-1]
            take = min(len(rows), len(chunk[0]) - chunk[1])
            chunk[0][chunk[1]:chunk[1] + take] = rows[:take]
            chunk[1] += take
            rows = rows[take:]

    def build(self) -> CompactLabels:
        """The labels, sorted by hashes then record index, the latest of equal entries kept; the builder is empty
        afterwards."""
        total, at, collisions = self._count, 0, 0
        h1, h2 = np.empty(total, np.uint64), np.empty(total, np.uint64)
        index, year = np.empty(total, np.int32), np.empty(total, np.float64)
        for b, chunks in enumerate(self._buckets):
            if not chunks:
                continue
            entries = np.concatenate([c[:filled] for c, filled in chunks]) if len(chunks) > 1 else chunks[0][0][:chunks[0][1]]
            self._buckets[b] = []
            del chunks
            *columns, shared = _sorted_unique(entries["h1"], entries["h2"], entries["index"], entries["year"])
            del entries
            m = len(columns[0])
            for out, values in zip((h1, h2, index, year), columns):
                out[at:at + m] = values
            at += m
            collisions += shared
        self._count = 0
        if at < total:  # some labels replaced by later ones: the arrays shrink in place (no copy)
            for out in (h1, h2, index, year):
                out.resize(at, refcheck=False)
        return CompactLabels(h1, h2, index, year, collisions)
