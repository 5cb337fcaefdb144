"""The trained recommender as an MLflow model: its files (``bundle``), the pyfunc that serves it
(``mlflow_model``, logged as MLflow "models from code") and its logging and registration (``registry``)."""
