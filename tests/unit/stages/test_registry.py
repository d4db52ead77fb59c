"""Loading from the registry never runs a pickle."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def local_mlflow(tmp_path, monkeypatch):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlflow.create_experiment("registry_test", artifact_location=(tmp_path / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=exp)
    yield mlflow


def test_only_skops_models_of_library_types_are_loaded(local_mlflow):
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from include.stages.registry import UnsafeModel, load_model

    X = pd.DataFrame({"x": np.arange(20.0)})
    model = LogisticRegression().fit(X, np.arange(20) % 2)
    with mlflow.start_run():
        skops = mlflow.sklearn.log_model(model, name="skops", skops_trusted_types=[], pip_requirements=[])
        pickled = mlflow.sklearn.log_model(
            model, name="pickled", serialization_format="cloudpickle", pip_requirements=[]
        )
    assert load_model(skops.model_uri).predict(X).shape == (20,)
    with pytest.raises(UnsafeModel, match="cloudpickle"):
        load_model(pickled.model_uri)
