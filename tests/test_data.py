"""Tests for monitor_utils.data: the MSD schema, the synthetic generator and the UCI loader."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from monitor_utils import aws, config, data as D
from monitor_utils.data import SchemaError

BUCKET = "unit-test-data-bucket"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def data_local_aws(emulator):
    """The session's local AWS emulator (tests/conftest.py)."""
    return emulator


@pytest.fixture(scope="module")
def connection(data_local_aws):
    return aws.connect(config.validate({}), data_local_aws.url)


@pytest.fixture()
def s3(connection):
    aws.ensure_bucket(connection, BUCKET)  # per test: another file may reset moto's shared state
    return connection


@pytest.fixture(scope="module")
def train_test():
    return D.generate(20_000, seed=1), D.generate(5_000, seed=2)


def uci_text(df: pd.DataFrame) -> str:
    """Rows in the UCI file's layout: no header, year first, 90 comma-separated features."""
    return df[D.COLUMNS].to_csv(header=False, index=False)


@pytest.fixture(scope="module")
def small():
    return D.generate(30, seed=3)


# --------------------------------------------------------------------------- schema


def test_feature_names():
    assert len(D.FEATURES) == 90 == len(set(D.FEATURES))
    assert len(D.TIMBRE_AVERAGES) == 12 and len(D.TIMBRE_COVARIANCES) == 78
    assert D.FEATURES[:12] == D.TIMBRE_AVERAGES
    assert D.COLUMNS == ["year", *D.FEATURES]
    # covariances are the upper triangle (with diagonal) of a 12x12 matrix
    pairs = {(int(c[11:13]), int(c[14:16])) for c in D.TIMBRE_COVARIANCES}
    assert pairs == {(i, j) for i in range(1, 13) for j in range(i, 13)}


@pytest.mark.parametrize("year, label", [(1994, "1990s"), (2000, "2000s"), (1922, "1920s"), (2011, "2010s"),
                                         (1999.9, "1990s"), (1930, "1930s")])
def test_decade(year, label):
    assert D.decade([year])[0] == label


def test_decade_series_and_missing():
    out = D.decade(pd.Series([1969, 1970, np.nan]))
    assert list(out) == ["1960s", "1970s", "unknown"]


def test_check_schema_reorders_and_accepts():
    df = D.generate(10, seed=0)
    shuffled = df[list(reversed(df.columns))]
    out = D.check_schema(shuffled)
    assert list(out.columns) == D.COLUMNS
    pd.testing.assert_frame_equal(out, df)
    feats = D.check_schema(df[D.FEATURES], require_target=False)
    assert list(feats.columns) == D.FEATURES


def test_check_schema_missing_column():
    df = D.generate(5, seed=0).drop(columns=["timbre_cov_03_07"])
    with pytest.raises(SchemaError, match=r"capture: missing column\(s\) \['timbre_cov_03_07'\]"):
        D.check_schema(df, source="capture")
    with pytest.raises(SchemaError, match="missing.*'year'"):
        D.check_schema(D.generate(5, seed=0)[D.FEATURES], source="x")


def test_check_schema_extra_column():
    df = D.generate(5, seed=0).assign(artist="x")
    with pytest.raises(SchemaError, match=r"batch: unexpected column\(s\) \['artist'\]"):
        D.check_schema(df, source="batch")


def test_check_schema_non_numeric_column():
    df = D.generate(5, seed=0)
    df["timbre_avg_03"] = df["timbre_avg_03"].astype(str)
    with pytest.raises(SchemaError, match=r"src: column\(s\) \['timbre_avg_03'\] are not numeric"):
        D.check_schema(df, source="src")


@pytest.mark.parametrize("year", [1921, 2012, 0])
def test_check_schema_year_out_of_range(year):
    df = D.generate(5, seed=0)
    df.loc[2, "year"] = year
    with pytest.raises(SchemaError, match=rf"f\.txt: 1 year value\(s\) outside 1922-2011, e\.g\. {year}"):
        D.check_schema(df, source="f.txt")


# --------------------------------------------------------------------------- generator


def test_generate_shape_and_types():
    df = D.generate(500, seed=4)
    assert list(df.columns) == D.COLUMNS and len(df) == 500
    assert pd.api.types.is_integer_dtype(df["year"])
    assert df["year"].between(D.YEAR_MIN, D.YEAR_MAX).all()
    assert np.isfinite(df[D.FEATURES].to_numpy()).all()
    D.check_schema(df)


def test_generate_deterministic_and_seed_dependent():
    a, b, c = D.generate(300, seed=5), D.generate(300, seed=5), D.generate(300, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["year"].equals(c["year"])
    assert (a[D.FEATURES].to_numpy() != c[D.FEATURES].to_numpy()).mean() > 0.9


def test_generated_features_predict_year(train_test):
    train, test = train_test
    model = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(train[D.FEATURES], train["year"])
    r2 = r2_score(test["year"], model.predict(test[D.FEATURES]))
    assert r2 > 0.3
    # ...but not trivially: the year is noisy in the features, as in MSD
    assert r2 < 0.95


def test_year_distribution_skews_recent(train_test):
    years = train_test[0]["year"]
    assert years.median() > years.mean()            # long tail towards old songs
    assert stats.skew(years) < -0.5
    assert (years >= 1990).mean() > 0.5
    assert years.min() < 1960


def test_distributions_are_not_all_normal(train_test):
    x = train_test[0][D.FEATURES]
    kurt = stats.kurtosis(x, axis=0)                 # excess kurtosis
    skew = stats.skew(x, axis=0)
    assert (kurt > 1).sum() >= 5
    assert (np.abs(skew) > 0.5).sum() >= 5
    tie_share = x.nunique() / len(x)
    assert (tie_share < 0.1).sum() >= 3              # heavily rounded features: many ties
    # and some look normal, so a detector cannot assume every feature is odd
    assert ((np.abs(skew) < 0.2) & (np.abs(kurt) < 0.5)).sum() >= 5


def test_features_correlate():
    x = D.generate(5000, seed=9)[D.FEATURES].to_numpy()
    corr = np.corrcoef(x, rowvar=False)
    off = np.abs(corr[np.triu_indices(90, 1)])
    assert np.median(off) > 0.02                     # a shared factor correlates features


def test_newer_share_raises_mean_year():
    base = D.generate(5000, seed=10)["year"]
    newer = D.generate(5000, seed=10, newer_share=0.6)["year"]
    assert newer.mean() > base.mean() + 2
    assert newer.between(D.YEAR_MIN, D.YEAR_MAX).all()
    assert (newer >= 2000).mean() > (base >= 2000).mean()


# --------------------------------------------------------------------------- UCI loader


def check_split(train: pd.DataFrame, test: pd.DataFrame, df: pd.DataFrame, n_train: int, n_test: int):
    assert list(train.columns) == D.COLUMNS == list(test.columns)
    assert len(train) == n_train and len(test) == n_test
    assert list(train.index) == list(range(n_train)) and list(test.index) == list(range(n_test))
    np.testing.assert_allclose(train.to_numpy(dtype=float), df.iloc[:n_train].to_numpy(dtype=float), rtol=1e-12)
    np.testing.assert_allclose(test.to_numpy(dtype=float), df.iloc[n_train:].to_numpy(dtype=float), rtol=1e-12)
    assert pd.api.types.is_integer_dtype(train["year"])


def test_load_uci_txt(tmp_path, small):
    f = tmp_path / "YearPredictionMSD.txt"
    f.write_text(uci_text(small))
    train, test = D.load_uci(str(f), train_rows=20, test_rows=10)
    check_split(train, test, small, 20, 10)
    assert train["year"].iloc[0] == small["year"].iloc[0]
    assert test["year"].iloc[-1] == small["year"].iloc[-1]


def test_load_uci_zip(tmp_path, small):
    f = tmp_path / "YearPredictionMSD.txt.zip"
    with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("YearPredictionMSD.txt", uci_text(small))
    train, test = D.load_uci(str(f), train_rows=25, test_rows=5)
    check_split(train, test, small, 25, 5)


def test_load_uci_zip_without_txt(tmp_path):
    f = tmp_path / "data.zip"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("README.md", "nothing here")
    with pytest.raises(SchemaError, match=r"data\.zip: the zip holds no \.txt"):
        D.load_uci(str(f), train_rows=1, test_rows=1)


def test_load_uci_s3(s3, small):
    s3.client("s3").put_object(Bucket=BUCKET, Key="raw/YearPredictionMSD.txt", Body=uci_text(small).encode())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("YearPredictionMSD.txt", uci_text(small))
    s3.client("s3").put_object(Bucket=BUCKET, Key="raw/YearPredictionMSD.zip", Body=buf.getvalue())
    for key in ("raw/YearPredictionMSD.txt", "raw/YearPredictionMSD.zip"):
        train, test = D.load_uci(f"s3://{BUCKET}/{key}", s3_client=s3.client("s3"), train_rows=18, test_rows=12)
        check_split(train, test, small, 18, 12)


def test_load_uci_missing_s3_object_named(s3):
    uri = f"s3://{BUCKET}/raw/missing.txt"
    with pytest.raises(FileNotFoundError, match="raw/missing.txt"):
        D.load_uci(uri, s3_client=s3.client("s3"), train_rows=1, test_rows=1)


def test_load_uci_missing_file(tmp_path):
    f = tmp_path / "YearPredictionMSD.txt"
    with pytest.raises(FileNotFoundError) as e:
        D.load_uci(str(f))
    assert str(f) in str(e.value)


def test_load_uci_wrong_column_count(tmp_path, small):
    f = tmp_path / "short.txt"
    f.write_text(small[D.COLUMNS[:-1]].to_csv(header=False, index=False))
    with pytest.raises(SchemaError) as e:
        D.load_uci(str(f), train_rows=20, test_rows=10)
    assert str(f) in str(e.value) and "90 columns, expected 91" in str(e.value)


def test_load_uci_wrong_row_count(tmp_path, small):
    f = tmp_path / "rows.txt"
    f.write_text(uci_text(small))
    with pytest.raises(SchemaError) as e:
        D.load_uci(str(f), train_rows=20, test_rows=20)
    assert str(f) in str(e.value) and "30 rows" in str(e.value) and "40" in str(e.value)
    with pytest.raises(SchemaError, match="30 rows"):
        D.load_uci(str(f))  # the standard split needs 515,345


def test_load_uci_year_out_of_range(tmp_path, small):
    bad = small.copy()
    bad.loc[7, "year"] = 1850
    f = tmp_path / "years.txt"
    f.write_text(uci_text(bad))
    with pytest.raises(SchemaError) as e:
        D.load_uci(str(f), train_rows=20, test_rows=10)
    assert str(f) in str(e.value) and "1850" in str(e.value)


def _corrupt_cell(tmp_path, small, row: int, col: int, text: str):
    lines = uci_text(small).splitlines()
    cells = lines[row].split(",")
    cells[col] = text
    lines[row] = ",".join(cells)
    f = tmp_path / "corrupt.txt"
    f.write_text("\n".join(lines) + "\n")
    return f


def test_load_uci_non_numeric_cell_named(tmp_path, small):
    f = _corrupt_cell(tmp_path, small, 4, 12, "abc")
    with pytest.raises(SchemaError) as e:
        D.load_uci(str(f), train_rows=20, test_rows=10)
    assert str(f) in str(e.value)


def test_load_uci_empty_feature_cell_rejected(tmp_path, small):
    f = _corrupt_cell(tmp_path, small, 4, 12, "")
    with pytest.raises(SchemaError) as e:
        D.load_uci(str(f), train_rows=20, test_rows=10)
    assert str(f) in str(e.value)


def test_load_uci_empty_year_cell_named(tmp_path, small):
    f = _corrupt_cell(tmp_path, small, 4, 0, "")
    with pytest.raises(SchemaError) as e:
        D.load_uci(str(f), train_rows=20, test_rows=10)
    assert str(f) in str(e.value)


def test_load_uci_ragged_row_named(tmp_path, small):
    f = _corrupt_cell(tmp_path, small, 4, 90, "1.0,2.0")
    with pytest.raises(SchemaError) as e:
        D.load_uci(str(f), train_rows=20, test_rows=10)
    assert str(f) in str(e.value)
