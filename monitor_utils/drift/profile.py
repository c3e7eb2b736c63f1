"""The Baseline: a dataset's reference profile for drift checks, with its binary storage."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from .features import Feature, NumericFeature
from .ks import ecdf_points
from .store import read_archive, write_archive


@dataclass(eq=False, repr=False)
class Baseline:
    """Everything :func:`detect_drift` needs from the reference data, built once.

    Attributes
    ----------
    features
        Per-column summaries, in the reference column order.
    n_rows
        Rows of the reference data.
    settings
        ``n_bins``, ``categorical_max_unique``, ``grid_size`` and ``prediction_column``.
    """

    features: dict[str, Feature]
    n_rows: int
    settings: dict[str, Any]

    @property
    def feature_names(self) -> list[str]:
        """Column names in reference order."""
        return list(self.features)

    def sorted_values(self, name: str) -> np.ndarray:
        """Sorted non-NaN reference values of a numeric feature (read-only view)."""
        feat = self._feature(name)
        if isinstance(feat, NumericFeature):
            view = feat.sorted_values.view()
        else:
            if feat.value_type != "numeric":
                raise ValueError(f"feature {name!r} is categorical (strings); it has no sorted values")
            view = np.repeat(feat.categories, feat.counts)
        view.flags.writeable = False
        return view

    def ecdf_points(self, name: str, *, max_points: int | None = 2000) -> tuple[np.ndarray, np.ndarray]:
        """ECDF points of a numeric reference feature for plotting (see :func:`ecdf_points`)."""
        return ecdf_points(self.sorted_values(name), max_points=max_points, assume_sorted=True)

    def _feature(self, name: str) -> Feature:
        try:
            return self.features[name]
        except KeyError:
            raise KeyError(f"baseline has no feature {name!r}; known features: {self.feature_names}") from None

    def __repr__(self) -> str:
        kinds = [f.kind for f in self.features.values()]
        return (
            f"Baseline(n_rows={self.n_rows}, numeric={kinds.count('numeric')}, "
            f"categorical={kinds.count('categorical')})"
        )

    # ---------------------------------------------------------------- binary storage
    def save(self, path_or_fileobj: str | os.PathLike | BinaryIO) -> None:
        """Write the baseline as an ``.npz`` archive (JSON header + float/int arrays).

        The round trip through :meth:`load` is exact. A path is written as given (no
        ``.npz`` suffix is appended).
        """
        write_archive(path_or_fileobj, self.features.values(), self.n_rows, self.settings)

    @classmethod
    def load(cls, path_or_fileobj: str | os.PathLike | BinaryIO) -> "Baseline":
        """Read a baseline written by :meth:`save`."""
        features, n_rows, settings = read_archive(path_or_fileobj)
        return cls(features=features, n_rows=n_rows, settings=settings)

    def to_bytes(self) -> bytes:
        """The :meth:`save` archive as bytes (e.g. for an S3 ``put_object``)."""
        buf = io.BytesIO()
        self.save(buf)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Baseline":
        """Inverse of :meth:`to_bytes`."""
        return cls.load(io.BytesIO(data))
