"""Binary storage of a baseline: the exact ``.npz`` archive (JSON header plus arrays) and its reader."""

from __future__ import annotations

import json
import os
from typing import Any, BinaryIO, Iterable

import numpy as np

from .features import CategoricalFeature, Feature, NumericFeature

_FORMAT = "monitor_utils.drift.Baseline"
_FORMAT_VERSION = 1


def write_archive(
    path_or_fileobj: str | os.PathLike | BinaryIO,
    features: Iterable[Feature],
    n_rows: int,
    settings: dict[str, Any],
) -> None:
    """Write a baseline as an ``.npz`` archive (JSON header + float/int arrays).

    The round trip through :func:`read_archive` is exact. A path is written as given (no
    ``.npz`` suffix is appended).

    Parameters
    ----------
    path_or_fileobj
        Destination path or binary file object.
    features
        The baseline's column summaries, in column order.
    n_rows
        Rows of the reference data.
    settings
        The baseline's build settings.
    """
    header: dict[str, Any] = {
        "format": _FORMAT,
        "version": _FORMAT_VERSION,
        "n_rows": n_rows,
        "settings": settings,
        "features": [],
    }
    arrays: dict[str, np.ndarray] = {}
    for i, feat in enumerate(features):
        meta = {"name": feat.name, "kind": feat.kind, "role": feat.role, "n_total": feat.n_total}
        meta["inferred_type"] = feat.inferred_type
        if isinstance(feat, NumericFeature):
            for key in ("mean", "std", "minimum", "maximum", "q25", "q50", "q75", "spread", "grid_lo", "grid_scale"):
                meta[key] = float(getattr(feat, key))
            meta["grid_size"] = int(feat.grid_size)
            for key in ("sorted_values", "grid_cumcount", "grid_integral", "grid_pure", "psi_cuts", "psi_shares"):
                arrays[f"f{i}.{key}"] = getattr(feat, key)
        else:
            meta["value_type"] = feat.value_type
            for key in ("mean", "std", "minimum", "maximum", "spread"):
                meta[key] = float(getattr(feat, key))
            if feat.value_type == "numeric":
                arrays[f"f{i}.categories"] = feat.categories
            else:
                meta["categories"] = [str(c) for c in feat.categories]
            arrays[f"f{i}.counts"] = feat.counts
        header["features"].append(meta)
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    if isinstance(path_or_fileobj, (str, os.PathLike)):
        with open(path_or_fileobj, "wb") as fh:
            np.savez(fh, header=blob, **arrays)
    else:
        np.savez(path_or_fileobj, header=blob, **arrays)


def read_archive(path_or_fileobj: str | os.PathLike | BinaryIO) -> tuple[dict[str, Feature], int, dict[str, Any]]:
    """Read an archive written by :func:`write_archive`.

    Parameters
    ----------
    path_or_fileobj
        Source path or binary file object.

    Returns
    -------
    tuple
        ``(features, n_rows, settings)``: the column summaries by name, the reference row
        count and the build settings.
    """
    with np.load(path_or_fileobj, allow_pickle=False) as npz:
        if "header" not in npz.files:
            raise ValueError("not a drift baseline archive: no 'header' entry; write it with Baseline.save()")
        header = json.loads(npz["header"].tobytes().decode("utf-8"))
        if header.get("format") != _FORMAT or header.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"unsupported baseline format {header.get('format')!r} version {header.get('version')!r}; "
                f"rebuild it with build_baseline()"
            )
        features: dict[str, Feature] = {}
        for i, meta in enumerate(header["features"]):
            common = {k: meta[k] for k in ("name", "role", "n_total", "inferred_type")}
            if meta["kind"] == "numeric":
                feat: Feature = NumericFeature(
                    **common,
                    **{k: meta[k] for k in ("mean", "std", "minimum", "maximum", "q25", "q50", "q75", "spread")},
                    grid_lo=meta["grid_lo"],
                    grid_scale=meta["grid_scale"],
                    grid_size=meta["grid_size"],
                    **{
                        k: npz[f"f{i}.{k}"]
                        for k in ("sorted_values", "grid_cumcount", "grid_integral", "grid_pure", "psi_cuts", "psi_shares")
                    },
                )
            else:
                if meta["value_type"] == "numeric":
                    cats = npz[f"f{i}.categories"]
                else:
                    cats = np.array(meta["categories"], dtype=object)
                feat = CategoricalFeature(
                    **common,
                    value_type=meta["value_type"],
                    categories=cats,
                    counts=npz[f"f{i}.counts"],
                    **{k: meta[k] for k in ("mean", "std", "minimum", "maximum", "spread")},
                )
            features[feat.name] = feat
    return features, header["n_rows"], header["settings"]
