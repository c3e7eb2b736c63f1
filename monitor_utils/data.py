"""The Million Song Dataset schema, a loader for the real UCI file and a deterministic synthetic generator."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

TARGET = "year"
TIMBRE_AVERAGES = [f"timbre_avg_{i:02d}" for i in range(1, 13)]
TIMBRE_COVARIANCES = [f"timbre_cov_{i:02d}_{j:02d}" for i in range(1, 13) for j in range(i, 13)]
FEATURES = TIMBRE_AVERAGES + TIMBRE_COVARIANCES
COLUMNS = [TARGET] + FEATURES
YEAR_MIN, YEAR_MAX = 1922, 2011
UCI_TRAIN_ROWS, UCI_TEST_ROWS = 463_715, 51_630
UCI_FILE = "YearPredictionMSD.txt"

assert len(FEATURES) == 90 and len(TIMBRE_COVARIANCES) == 78


class SchemaError(ValueError):
    """Data does not match the MSD schema."""


def decade(years: np.ndarray | pd.Series) -> np.ndarray:
    """Release decade label of each year, e.g. 1994 -> '1990s'."""
    y = np.asarray(years, dtype=float)
    return np.array([f"{int(v // 10 * 10)}s" if np.isfinite(v) else "unknown" for v in y])


def check_schema(df: pd.DataFrame, *, source: str = "data", require_target: bool = True) -> pd.DataFrame:
    """Check columns, dtypes and the year range; return the frame with columns in schema order.

    Raises
    ------
    SchemaError
        Naming the source and the missing, extra or non-numeric column.
    """
    wanted = COLUMNS if require_target else FEATURES
    missing = [c for c in wanted if c not in df.columns]
    extra = [c for c in df.columns if c not in COLUMNS]
    if missing:
        raise SchemaError(f"{source}: missing column(s) {missing[:5]}{'...' if len(missing) > 5 else ''}; "
                          f"expected '{TARGET}' and the 90 MSD features")
    if extra:
        raise SchemaError(f"{source}: unexpected column(s) {extra[:5]}; the MSD schema has '{TARGET}' and 90 features")
    cols = [c for c in COLUMNS if c in df.columns]
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise SchemaError(f"{source}: column(s) {bad[:5]} are not numeric")
    if TARGET in df.columns and len(df):
        y = df[TARGET]
        out = (y < YEAR_MIN) | (y > YEAR_MAX)
        if out.any():
            raise SchemaError(f"{source}: {int(out.sum())} year value(s) outside {YEAR_MIN}-{YEAR_MAX}, e.g. {y[out].iloc[0]}")
    return df[cols]


def _read_bytes(path_or_uri: str, s3_client=None) -> bytes:
    if path_or_uri.startswith("s3://"):
        if s3_client is None:
            import boto3
            s3_client = boto3.client("s3")
        bucket, _, key = path_or_uri[5:].partition("/")
        try:
            return s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3_client.exceptions.NoSuchKey:
            raise FileNotFoundError(f"MSD file {path_or_uri} not found in S3") from None
        except s3_client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                raise FileNotFoundError(f"MSD file {path_or_uri} not found in S3") from None
            raise
    path = Path(path_or_uri)
    if not path.is_file():
        raise FileNotFoundError(f"MSD file {path} not found; download YearPredictionMSD.txt (or .zip) from the UCI repository")
    return path.read_bytes()


def load_uci(path_or_uri: str, *, s3_client=None, train_rows: int = UCI_TRAIN_ROWS,
             test_rows: int = UCI_TEST_ROWS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load the UCI YearPredictionMSD file (.txt or .zip, local path or s3:// URI) with the standard split.

    Parameters
    ----------
    path_or_uri : str
        ``YearPredictionMSD.txt`` or the ``.zip`` holding it; a local path or ``s3://bucket/key``.
    s3_client : botocore client, optional
        Client used for s3:// URIs.
    train_rows, test_rows : int
        The split: the first ``train_rows`` rows train, the last ``test_rows`` rows test
        (463,715 and 51,630 in the standard split, which avoids the producer effect).

    Returns
    -------
    tuple[pd.DataFrame, pd.DataFrame]
        Train and test frames with the named MSD columns.
    """
    raw = _read_bytes(path_or_uri, s3_client)
    if path_or_uri.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            names = [n for n in zf.namelist() if n.endswith(".txt")]
            if not names:
                raise SchemaError(f"{path_or_uri}: the zip holds no .txt file (expected {UCI_FILE})")
            raw = zf.read(names[0])
    try:
        df = pd.read_csv(io.BytesIO(raw), header=None, dtype=np.float64)
    except (ValueError, pd.errors.ParserError) as exc:
        raise SchemaError(f"{path_or_uri}: not a comma-separated numeric MSD file ({exc})") from None
    if df.shape[1] != len(COLUMNS):
        raise SchemaError(f"{path_or_uri}: {df.shape[1]} columns, expected {len(COLUMNS)} (year + 90 features)")
    df.columns = COLUMNS
    if df.isna().any().any():
        row, col = np.argwhere(df.isna().to_numpy())[0]
        raise SchemaError(f"{path_or_uri}: empty value in row {row + 1}, column '{COLUMNS[col]}'")
    df[TARGET] = df[TARGET].astype(int)
    if len(df) != train_rows + test_rows:
        raise SchemaError(f"{path_or_uri}: {len(df)} rows, the standard split needs {train_rows + test_rows} "
                          f"({train_rows} train + {test_rows} test)")
    df = check_schema(df, source=path_or_uri)
    return df.iloc[:train_rows].reset_index(drop=True), df.iloc[train_rows:].reset_index(drop=True)


# --- synthetic generator -------------------------------------------------------------------------

_YEAR_CENTER, _YEAR_SCALE = 1998.0, 11.0
SIGNAL = 1.5  # strength of the year signal in the features


def sample_years(n: int, rng: np.random.Generator, newer_share: float = 0.0) -> np.ndarray:
    """Release years skewed towards recent decades like MSD's; ``newer_share`` mixes in mostly post-2000 songs."""
    age = rng.gamma(1.6, 8.0, size=n)
    if newer_share > 0:
        newer = rng.random(n) < newer_share
        age[newer] = rng.gamma(1.3, 2.5, size=int(newer.sum()))
    return np.clip(np.round(YEAR_MAX - age), YEAR_MIN, YEAR_MAX).astype(int)


def _feature_plan(seed: int) -> list[tuple[str, float, float, float, str, int | None]]:
    """Per feature: (name, signal weight, centre, scale, noise kind, rounding decimals); fixed by the seed."""
    rng = np.random.default_rng(seed)
    kinds = np.array(["normal", "t3", "lognormal", "normal", "t5"])
    plan = []
    for k, name in enumerate(FEATURES):
        is_avg = name.startswith("timbre_avg")
        if name == "timbre_avg_01":
            weight, centre, scale, kind = 0.9, 43.0, 6.0, "normal"  # loudness-like, strongly informative
        elif is_avg:
            weight, centre, scale, kind = rng.uniform(0.15, 0.5) * rng.choice([-1, 1]), rng.uniform(-30, 30), rng.uniform(8, 40), str(rng.choice(kinds))
        else:
            i, j = int(name[11:13]), int(name[14:16])
            diag = i == j
            weight = rng.uniform(0.02, 0.25) * rng.choice([-1, 1])
            centre = rng.uniform(500, 3000) if diag else rng.uniform(-150, 150)
            scale = rng.uniform(300, 2000) if diag else rng.uniform(50, 400)
            kind = "lognormal" if diag else str(rng.choice(kinds))
        decimals = 0 if k % 17 == 5 else (1 if k % 23 == 7 else None)
        plan.append((name, float(weight), float(centre), float(scale), kind, decimals))
    return plan


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "t3":
        return rng.standard_t(3, n) / np.sqrt(3.0)
    if kind == "t5":
        return rng.standard_t(5, n) / np.sqrt(5.0 / 3.0)
    if kind == "lognormal":
        x = rng.lognormal(0.0, 0.6, n)
        return (x - np.exp(0.18)) / 0.7
    return rng.standard_normal(n)


def features_for_years(years: np.ndarray, rng: np.random.Generator, plan_seed: int = 1234) -> pd.DataFrame:
    """Draw the 90 features for the given release years (the year carries real but noisy signal)."""
    z = (np.asarray(years, dtype=float) - _YEAR_CENTER) / _YEAR_SCALE
    n = len(z)
    common = rng.standard_normal(n)  # a shared "recording style" factor correlating features
    cols = {}
    for name, weight, centre, scale, kind, decimals in _feature_plan(plan_seed):
        signal = SIGNAL * weight * (np.tanh(z) if kind != "lognormal" else z)
        x = centre + scale * (signal + 0.25 * common * np.sign(weight) + np.sqrt(1 - weight**2 * 0.5) * _noise(kind, n, rng))
        cols[name] = np.round(x, decimals) if decimals is not None else np.round(x, 5)
    return pd.DataFrame(cols)


def generate(n: int, seed: int = 0, *, newer_share: float = 0.0) -> pd.DataFrame:
    """Deterministic synthetic MSD-shaped data: ``year`` plus the 90 features.

    Parameters
    ----------
    n : int
        Rows.
    seed : int
        Same seed, same rows.
    newer_share : float
        Share of rows drawn from a "newer songs" year distribution (0 = the base mix).

    Returns
    -------
    pd.DataFrame
        Columns ``COLUMNS``; features have heavy tails, skew and rounding ties, and predict the year.
    """
    rng = np.random.default_rng(seed)
    years = sample_years(n, rng, newer_share)
    df = features_for_years(years, rng)
    df.insert(0, TARGET, years)
    return df
