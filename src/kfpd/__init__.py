"""kfpd: a Kubeflow Pipelines backend in one Python server."""

__version__ = "0.1.0"
