"""The GLTA recommender as an MLflow pyfunc, logged as "models from code" (this file is the model).

MLflow copies this file into the logged model and runs it at load time; the files it reads are
the model's ``recommender`` artifact (:mod:`glta_pipelines.serving.bundle`). The request contract is
:mod:`glta_pipelines.core.glta.recommender`'s; a bad request becomes an MLflow ``INVALID_PARAMETER_VALUE``
error (HTTP 400 from ``mlflow models serve``) naming the request and the field.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


class GLTARecommenderModel(mlflow.pyfunc.PythonModel):
    """Rows in (``user_id`` or ``history``, ``k``, ``exclude``), ranked items out (one row per item)."""

    def load_context(self, context) -> None:
        from glta_pipelines.serving.bundle import load_recommender

        self.recommender = load_recommender(context.artifacts["recommender"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        from glta_pipelines.core.errors import InputError

        if isinstance(model_input, pd.DataFrame):
            if model_input.empty:  # MLflow drops fields outside the signature (with a warning) before this
                raise MlflowException("no request: expected rows with a user_id or a history (fields: user_id, "
                                      "history, k, exclude)", error_code=INVALID_PARAMETER_VALUE)
            requests = model_input.to_dict("records")
        elif isinstance(model_input, dict):
            requests = [model_input]
        else:
            requests = list(model_input)
        try:
            return self.recommender.recommend(requests)
        except InputError as error:
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None


mlflow.models.set_model(GLTARecommenderModel())
