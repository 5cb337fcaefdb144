"""The GLTA recommender as an MLflow pyfunc, logged as "models from code" (this file is the model).

MLflow copies this file into the logged model and runs it at load time; the files it reads are
the model's ``recommender`` artifact (:mod:`glta_pipelines.serving.bundle`). The request contract is
:mod:`glta_pipelines.core.glta.recommender`'s; a bad request (or one over the model's limits)
becomes an MLflow ``INVALID_PARAMETER_VALUE`` error (HTTP 400 from ``mlflow models serve``) naming
the request and the field; any other failure becomes an ``INTERNAL_ERROR`` (HTTP 500) saying only
that it failed, its traceback in the server's log and never in the answer.
"""

from __future__ import annotations

import logging

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

log = logging.getLogger(__name__)


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
        except Exception as error:  # noqa: BLE001  (the answer says no more than this; the log has the trace)
            log.exception("recommend failed on %d request(s)", len(requests))
            raise MlflowException(f"the recommender failed on this call ({type(error).__name__}); the server's log "
                                  "has the details", error_code=INTERNAL_ERROR) from None


mlflow.models.set_model(GLTARecommenderModel())
