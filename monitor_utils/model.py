"""The year-prediction model: train it, package it as a SageMaker model.tar.gz, and load what an endpoint serves."""

from __future__ import annotations

import io
import tarfile

import joblib
import numpy as np
import pandas as pd
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .aws import Aws, get_bytes, split_s3_uri
from .data import FEATURES, TARGET

ARTIFACT_MEMBER = "model.joblib"


def train_model(train: pd.DataFrame, alpha: float = 1.0) -> Pipeline:
    """Fit the baseline pipeline (standardise, then ridge regression) on the MSD features."""
    return make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(train[FEATURES], train[TARGET])


def make_pipeline_fitted(train: pd.DataFrame, alpha: float = 1.0, sample_weight=None) -> Pipeline:
    """Fit the same pipeline with optional per-row weights (newer labelled traffic can count more)."""
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    return pipe.fit(train[FEATURES], train[TARGET], ridge__sample_weight=sample_weight)


def predict(model: Pipeline, features: pd.DataFrame) -> np.ndarray:
    """Predicted release years, clipped to the dataset's range."""
    return np.clip(model.predict(features[FEATURES]), 1922, 2011)


def to_artifact(model: Pipeline) -> bytes:
    """A model.tar.gz as SageMaker's scikit-learn containers expect (``model.joblib`` inside)."""
    raw = io.BytesIO()
    joblib.dump(model, raw)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(ARTIFACT_MEMBER)
        info.size = raw.tell()
        info.mtime = 0
        raw.seek(0)
        tar.addfile(info, raw)
    return out.getvalue()


def from_artifact(blob: bytes) -> Pipeline:
    """Load the model inside a model.tar.gz."""
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        member = tar.extractfile(ARTIFACT_MEMBER)
        if member is None:
            raise ValueError(f"model artifact holds no {ARTIFACT_MEMBER}")
        return joblib.load(io.BytesIO(member.read()))


def served_model_data_url(aws: Aws, endpoint_name: str, variant_name: str) -> str:
    """ModelDataUrl of the model the endpoint's variant serves now."""
    sm = aws.client("sagemaker")
    config_name = sm.describe_endpoint(EndpointName=endpoint_name)["EndpointConfigName"]
    variants = sm.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"]
    variant = next((v for v in variants if v["VariantName"] == variant_name), None)
    if variant is None:
        raise ValueError(f"endpoint {endpoint_name} has no variant {variant_name!r}; "
                         f"it has {[v['VariantName'] for v in variants]}")
    return sm.describe_model(ModelName=variant["ModelName"])["PrimaryContainer"]["ModelDataUrl"]


def load_served_model(aws: Aws, endpoint_name: str, variant_name: str) -> Pipeline:
    """The model the endpoint serves, loaded from its artifact in S3."""
    url = served_model_data_url(aws, endpoint_name, variant_name)
    blob = get_bytes(aws, *split_s3_uri(url))
    if blob is None:
        raise FileNotFoundError(f"model artifact {url} of endpoint {endpoint_name} is missing")
    return from_artifact(blob)
