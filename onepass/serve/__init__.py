"""Serving models: batch prediction, and the HTTP model server (``onepass serve``).

``predict_file`` streams a source through a model into a file. ``create_app`` builds the
ASGI app of the server and ``run_server`` runs it on uvicorn; both need the ``serve``
extra (``pip install 'onepass[serve]'``) and are imported only when used, so batch
prediction and the CLI start without the web stack.
"""

from typing import Any

from onepass.serve.batch import predict_file

__all__ = ["create_app", "predict_file", "run_server"]

_LAZY = {"create_app": "onepass.serve._app", "run_server": "onepass.serve._server"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'onepass.serve' has no attribute {name!r}")
