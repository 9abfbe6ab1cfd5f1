"""Serving models: batch prediction now, the HTTP model server later."""

from onepass.serve.batch import predict_file

__all__ = ["predict_file"]
