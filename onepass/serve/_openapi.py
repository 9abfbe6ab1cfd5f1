"""The OpenAPI 3.1 description of the server, written by hand (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi"]

_NUMBER_LIST = {"type": "array", "items": {"type": "number"}}
_SPARSE = {
    "type": "object",
    "description": "A sparse row: the values at feature indices `keys` (0-based, distinct), of a row `shape` [d] wide.",
    "properties": {
        "keys": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "shape": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 1},
        "values": _NUMBER_LIST,
    },
    "required": ["values"],
}
_FEATURES = {"oneOf": [_NUMBER_LIST, _SPARSE]}
_INSTANCE = {
    "oneOf": [
        {"type": "object", "properties": {"features": _FEATURES}, "required": ["features"]},
        {"type": "object", "properties": {"data": {"type": "object", "properties": {"features": _FEATURES},
                                                  "required": ["features"]}}, "required": ["data"]},
    ]
}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "The kind of error (an onepass exception name)."},
        "message": {"type": "string", "description": "What was wrong, where, and how to fix it."},
        "row": {"type": ["integer", "null"], "description": "1-based row (CSV or JSON Lines line, or instance)."},
        "feature": {"type": ["integer", "null"], "description": "0-based feature index."},
    },
    "required": ["error", "message"],
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi(*, title: str, version: str, model_kind: str, json_key: str, n_features: int,
            max_payload_bytes: int) -> dict[str, Any]:
    """The OpenAPI document of a server answering with a ``model_kind`` model."""
    record = {"type": "object", "description": f"The outputs of one row of the {model_kind} model."}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                f"A onepass {model_kind} model ({n_features} features) behind the SageMaker inference-container "
                f"contract. Bodies up to {max_payload_bytes} bytes."
            ),
        },
        "paths": {
            "/ping": {"get": {
                "summary": "Health: 200 with an empty body once the model is loaded, 503 before.",
                "responses": {"200": {"description": "ready"}, "503": _error("the model is not loaded (yet)")},
            }},
            "/invocations": {"post": {
                "summary": "Predict the rows of the body.",
                "parameters": [{
                    "name": "Accept", "in": "header", "required": False,
                    "schema": {"type": "string", "default": "application/json"},
                    "description": "application/json (default), application/jsonlines or text/csv.",
                }],
                "requestBody": {"required": True, "content": {
                    "text/csv": {"schema": {"type": "string", "description": (
                        f"One row per line, {n_features} comma-separated numbers, no header.")}},
                    "application/json": {"schema": {"oneOf": [
                        {"type": "object", "properties": {"instances": {"type": "array", "items": _INSTANCE}},
                         "required": ["instances"]},
                        _INSTANCE,
                    ]}},
                    "application/jsonlines": {"schema": {"type": "string", "description": (
                        'One {"features": [...]} object per line.')}},
                }},
                "responses": {
                    "200": {"description": "The outputs of every row, in order.", "content": {
                        "application/json": {"schema": {"type": "object", "properties": {
                            json_key: {"type": "array", "items": record}}}},
                        "application/jsonlines": {"schema": {"type": "string"}},
                        "text/csv": {"schema": {"type": "string"}},
                    }},
                    "400": _error("the body is malformed: says what and where (row, feature)"),
                    "406": _error("no type of the Accept header is served"),
                    "413": _error(f"the body is over {max_payload_bytes} bytes"),
                    "415": _error("the Content-Type is not served"),
                    "503": _error("the model is not loaded (yet)"),
                },
            }},
            "/metrics": {"get": {
                "summary": "Prometheus text format: requests and latency by route and status, rows predicted, model "
                           "(every worker process of the server added up).",
                "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            }},
            "/execution-parameters": {"get": {
                "summary": "SageMaker batch transform settings.",
                "responses": {"200": {"description": "settings", "content": {"application/json": {
                    "schema": {"type": "object"}}}}},
            }},
            "/openapi.json": {"get": {
                "summary": "This document.",
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {
                    "schema": {"type": "object"}}}}},
            }},
        },
        "components": {"schemas": {"Error": _ERROR}},
    }
