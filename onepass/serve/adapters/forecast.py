"""A forecaster (DeepAR) answers SageMaker DeepAR's requests.

``application/json``: ``{"instances": [{"start": ..., "target": [...], "cat": [...],
"dynamic_feat": [[...]]}, ...], "configuration": {"num_samples": 100, "output_types":
["mean", "quantiles", "samples"], "quantiles": ["0.1", "0.9"]}}`` answered with
``{"predictions": [{"mean": [...], "quantiles": {"0.1": [...]}, "samples": [[...]]}]}``.
``application/jsonlines`` (batch transform): one series per line, one prediction per
line, the model's default configuration. Samples are drawn with the request's
``configuration.seed`` (default 0): the same request gets the same samples.
"""

from __future__ import annotations

from typing import Any

import orjson

from onepass.errors import BadRecordError, EmptyBodyError, NotAcceptableError, UnsupportedMediaTypeError
from onepass.serve._codec import check_finite_json
from onepass.serve.adapters import Adapter

_JSON, _JSONLINES = "application/json", "application/jsonlines"


def _load(text: bytes, where: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRecordError(f"{where}: not valid JSON: {exc}") from None


def _configuration(doc: dict[str, Any]) -> dict[str, Any]:
    config = doc.get("configuration") or {}
    if not isinstance(config, dict):
        raise BadRecordError('"configuration" must be an object: {"num_samples": ..., "output_types": [...], '
                             '"quantiles": [...]}')
    unknown = sorted(set(config) - {"num_samples", "output_types", "quantiles", "seed"})
    if unknown:
        raise BadRecordError(f'"configuration" holds {unknown}; it takes num_samples, output_types, quantiles, seed')
    out: dict[str, Any] = {}
    try:
        if "num_samples" in config:
            out["num_samples"] = int(config["num_samples"])
        if "output_types" in config:
            out["output_types"] = [str(t) for t in config["output_types"]]
        if "quantiles" in config:
            out["quantiles"] = [float(q) for q in config["quantiles"]]
        if "seed" in config:
            out["seed"] = int(config["seed"])
    except (TypeError, ValueError) as exc:
        raise BadRecordError(f'"configuration" has a value of the wrong type: {exc}') from None
    return out


def answer(model: Any, body: bytes, content_type: str, accept: str) -> tuple[bytes, int]:
    if accept not in (_JSON, _JSONLINES):
        raise NotAcceptableError(f"a forecaster answers {_JSON} or {_JSONLINES}, not {accept}")
    if not body.strip():
        raise EmptyBodyError('the body is empty; send {"instances": [{"start": ..., "target": [...]}], '
                             '"configuration": {...}}')
    if content_type == _JSON:
        doc = _load(body, "the body")
        if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
            raise BadRecordError('expected {"instances": [{"start": ..., "target": [...]}, ...], '
                                 '"configuration": {...}}')
        instances, config = doc["instances"], _configuration(doc)
    elif content_type == _JSONLINES:
        instances = [_load(line, f"line {i}") for i, line in enumerate(body.splitlines(), 1) if line.strip()]
        config = {}
    else:
        raise UnsupportedMediaTypeError(f"a forecaster reads series as {_JSON} (SageMaker DeepAR's "
                                        f"{{\"instances\": [...]}}) or {_JSONLINES}, not {content_type}")
    predictions = model.forecast(instances, **config)
    for i, prediction in enumerate(predictions, 1):  # JSON would carry NaN or infinity as null
        check_finite_json(prediction, f"instance {i}")
    if accept == _JSONLINES:
        return b"".join(orjson.dumps(p) + b"\n" for p in predictions), len(predictions)
    return orjson.dumps({"predictions": predictions}), len(predictions)


ADAPTER = Adapter(kind="forecast", json_key="predictions", n_features=lambda model: 0, answer=answer)
