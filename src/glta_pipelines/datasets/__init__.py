"""Custom Kedro datasets of glta-pipelines."""

from glta_pipelines.datasets.safetensors_dataset import SafetensorsDataset

__all__ = ["SafetensorsDataset"]
