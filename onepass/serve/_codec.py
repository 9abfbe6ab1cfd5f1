"""Request bodies to feature matrices, and model outputs to response bodies.

Parsing is strict and says where a problem is: rows are numbered from 1 (the line of a
CSV or JSON Lines body, the position in ``instances`` for JSON), features from 0. Any
problem raises :class:`~onepass.errors.BadRecordError` (``line`` = row, ``column`` =
feature index) or :class:`~onepass.errors.EmptyBodyError`; the server turns them into
400 responses. Nothing here imports the web stack, so it is tested on its own.

Speed: a CSV body of plain numbers is parsed by orjson, its rows joined into one JSON
array (3 us for one row of 50 features, 0.21 ms for 100 rows, 2.6 ms for 1,000: 2 to 5
times NumPy's string conversion); from :data:`ARROW_MIN_BYTES` (about 2,000 such rows)
pyarrow's multithreaded CSV parser takes over (22 ms against 63 ms for 10,000 rows;
fastest of repeated runs on the project's 2-core machine). Either fast path falls back
to the careful one, which finds the exact row and feature, only when something is wrong
(or the numbers are spelled in ways JSON does not allow, like ``+1`` or ``.5``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import scipy.sparse as sp

from onepass.errors import BadRecordError, EmptyBodyError

__all__ = [
    "ARROW_MIN_BYTES",
    "REQUEST_TYPES",
    "RESPONSE_TYPES",
    "check_finite_json",
    "check_outputs_finite",
    "encode",
    "parse",
]

ARROW_MIN_BYTES = 1 << 20

RECORDIO = "application/x-recordio-protobuf"  # SageMaker's binary format (onepass.io.recordio_protobuf)
REQUEST_TYPES = ("text/csv", "application/json", "application/jsonlines", RECORDIO)
RESPONSE_TYPES = ("application/json", "application/jsonlines", "text/csv", RECORDIO)


def _bad(reason: str, row: int | None = None, feature: int | None = None) -> BadRecordError:
    return BadRecordError(reason, line=row, column=feature)


def _short(value: Any, limit: int = 40) -> str:
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:  # as it was written in the JSON body
        text = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_finite(X: np.ndarray, describe: Callable[[int, int], str]) -> None:
    """Raise at the first NaN or infinite value, in row order."""
    if X.size and not np.isfinite(X).all():
        row, feature = map(int, np.argwhere(~np.isfinite(X))[0])
        raise _bad(f"{describe(row, feature)} is not a finite float32 (NaN and infinities are not allowed; "
                   "float32 holds magnitudes up to 3.4e38)", row + 1, feature)


# -- CSV ---------------------------------------------------------------------------------


def _csv_arrow(body: bytes, n_features: int) -> np.ndarray | None:
    """Parse with pyarrow; None when it objects to anything (the careful path says what)."""
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"f{j}" for j in range(n_features)]
    try:
        table = pacsv.read_csv(
            io.BytesIO(body),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(quote_char=False, ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.float32()), null_values=[], strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError):
        return None
    if table.num_columns != n_features:
        return None
    X = np.empty((table.num_rows, n_features), dtype=np.float32)
    for j, column in enumerate(table.columns):
        X[:, j] = column.to_numpy()
    return X


def _csv_careful(lines: list[bytes], n_features: int) -> np.ndarray:
    for i, line in enumerate(lines):
        n = line.count(b",") + 1
        if n != n_features:
            if not line.strip():
                raise _bad(f"the line is empty; expected {n_features} comma-separated features", i + 1)
            raise _bad(f"expected {n_features} features (comma-separated, no header), got {n}", i + 1)
    fields = b",".join(lines).split(b",")
    try:
        with np.errstate(over="ignore"):  # 1e39 becomes inf, reported below with its row and feature
            values = np.array(fields, dtype=np.float32)
    except ValueError:
        for k, field in enumerate(fields):
            try:
                float(field)
            except ValueError:
                what = "an empty field" if not field.strip() else f"{_short(field)!r}"
                raise _bad(f"{what} is not a number", k // n_features + 1, k % n_features) from None
        raise  # pragma: no cover  (NumPy and float() disagree: let the server log it)
    X = values.reshape(len(lines), n_features)
    _check_finite(X, lambda r, j: repr(_short(fields[r * n_features + j])))
    return X


_NUMERIC_BYTES = b"0123456789.,-+eE \t\n"


def _csv_fast(lines: list[bytes], n_features: int) -> np.ndarray | None:
    """Parse plain numbers with orjson (the CSV rows joined into one JSON array); None
    when anything is off, for the careful path to say what.

    Only bodies made of digits, signs, dots, exponents, commas and blanks get here, so
    every JSON token is a number (never a string, a boolean or a null).
    """
    for line in lines:
        if line.count(b",") != n_features - 1:
            return None
    try:
        values = orjson.loads(b"[" + b",".join(lines) + b"]")
        with np.errstate(over="ignore"):
            X = np.array(values, dtype=np.float32)
    except (orjson.JSONDecodeError, ValueError, TypeError, OverflowError):
        return None
    if X.shape != (len(lines) * n_features,):
        return None
    return X.reshape(len(lines), n_features)


def parse_csv(body: bytes, n_features: int) -> np.ndarray:
    """Rows of a CSV body (one row per line, no header) as float32 ``(n, n_features)``."""
    body = body.rstrip(b"\r\n")
    if not body.strip():
        raise EmptyBodyError("the body is empty; send one row per line, features separated by commas")
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    X: np.ndarray | None = None
    if len(body) >= ARROW_MIN_BYTES:
        X = _csv_arrow(body, n_features)
    lines = body.split(b"\n")
    if X is None and not body.translate(None, _NUMERIC_BYTES):
        X = _csv_fast(lines, n_features)
    if X is not None and np.isfinite(X).all():
        return X
    return _csv_careful(lines, n_features)


# -- JSON and JSON Lines ------------------------------------------------------------------


def _is_number(v: Any) -> bool:
    return (type(v) is float or type(v) is int) and math.isfinite(v) and abs(v) <= 3.4028234663852886e38


def _dense(features: Any, row: int, n_features: int) -> list[float]:
    """Check a dense feature list in detail (the slow path: only when the fast one fails)."""
    if len(features) != n_features:
        raise _bad(f"expected {n_features} features, got {len(features)}", row)
    for j, v in enumerate(features):
        if not _is_number(v):
            if type(v) in (float, int):
                raise _bad(f"{v!r} is not a finite float32 (magnitudes up to 3.4e38)", row, j)
            raise _bad(f"{_short(v)} is not a number", row, j)
    return features


def _sparse(features: dict, row: int, n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(keys, values) of a ``{"keys", "shape", "values"}`` sparse row, checked."""
    unknown = set(features) - {"keys", "shape", "values"}
    if unknown:
        raise _bad(f"unknown field(s) {sorted(unknown)} in sparse features; expected keys, shape, values", row)
    keys, values, shape = features.get("keys"), features.get("values"), features.get("shape")
    if not isinstance(values, list):
        raise _bad('sparse features need "values": a list of numbers', row)
    if keys is None:  # {"values": [...]} alone is the dense form SageMaker also accepts
        if shape is not None and shape != [n_features]:
            raise _bad(f"shape {_short(shape)} does not match the model's {n_features} features", row)
        return np.arange(n_features), np.asarray(_dense(values, row, n_features), dtype=np.float32)
    if not isinstance(keys, list) or len(keys) != len(values):
        raise _bad(f'"keys" must be a list as long as "values" ({len(values)})', row)
    if shape is not None and shape != [n_features]:
        raise _bad(f"shape {_short(shape)} does not match the model's {n_features} features; send [{n_features}]", row)
    for k, (key, v) in enumerate(zip(keys, values, strict=True)):
        if type(key) is not int or not 0 <= key < n_features:
            raise _bad(f"key {_short(key)} (keys[{k}]) is not a feature index in [0, {n_features})", row)
        if not _is_number(v):
            raise _bad(f"{_short(v)} (values[{k}]) is not a finite number", row, key)
    if len(set(keys)) != len(keys):
        seen: set[int] = set()
        dup = next(key for key in keys if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _bad("the key appears twice in sparse features", row, dup)
    return np.asarray(keys, dtype=np.int64), np.asarray(values, dtype=np.float32)


def _features_of(instance: Any, row: int) -> Any:
    """The ``features`` of one instance: ``{"features": f}``, ``{"data": {"features": f}}``, or a list."""
    if isinstance(instance, list):
        return instance
    if not isinstance(instance, dict):
        raise _bad(f'an instance must be an object with "features", got {_short(instance)}', row)
    if "features" in instance:
        return instance["features"]
    data = instance.get("data")
    if isinstance(data, dict) and "features" in data:
        return data["features"]
    raise _bad('the instance has no "features" (nor "data": {"features": ...})', row)


def _rows_to_matrix(rows: list[Any], n_features: int, may_hold_bools: bool) -> np.ndarray | sp.csr_matrix:
    """Dense rows (lists) become an array, any sparse row makes the whole batch CSR.

    ``may_hold_bools``: the body has a ``true`` or ``false`` token somewhere. NumPy's
    dtype inference spots strings, nulls and nesting, but turns booleans mixed with
    numbers into 1.0 and 0.0, so such bodies get the value-by-value check.
    """
    if not rows:
        raise EmptyBodyError("no instances in the body; send at least one row")
    if all(type(r) is list for r in rows):
        try:
            X = np.array(rows)
        except (ValueError, TypeError, OverflowError):
            X = None
        if (X is None or X.dtype.kind not in "fi" or X.ndim != 2 or X.shape[1] != n_features
                or (may_hold_bools and not _only_numbers(rows))):
            for i, r in enumerate(rows):
                _dense(r, i + 1, n_features)
            X = np.array(rows, dtype=np.float64)
        with np.errstate(over="ignore"):  # 1e39 becomes inf, reported with its row and feature
            X32 = X.astype(np.float32)
        _check_finite(X32, lambda r, j: repr(rows[r][j]))
        return X32
    indptr, indices, data = [0], [], []
    for i, r in enumerate(rows):
        if type(r) is list:
            keys, values = np.arange(n_features), np.asarray(_dense(r, i + 1, n_features), dtype=np.float32)
        elif isinstance(r, dict):
            keys, values = _sparse(r, i + 1, n_features)
        else:
            raise _bad(f'"features" must be a list of numbers or a sparse object, got {_short(r)}', i + 1)
        indices.append(keys)
        data.append(values)
        indptr.append(indptr[-1] + len(keys))
    return sp.csr_matrix(
        (np.concatenate(data), np.concatenate(indices), np.asarray(indptr)), shape=(len(rows), n_features))


def _may_hold_bools(body: bytes) -> bool:
    return b"true" in body or b"false" in body


def _only_numbers(rows: list[list[Any]]) -> bool:
    """True when every value is an int or float (not bool, str, None, list...)."""
    for r in rows:
        for v in r:
            t = type(v)
            if t is not float and t is not int:
                return False
    return True


def _load_json(text: bytes, row: int | None = None) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"not valid JSON: {exc}", row) from None


def parse_json(body: bytes, n_features: int) -> np.ndarray | sp.csr_matrix:
    """Rows of ``{"instances": [...]}`` (or one ``{"features": ...}``) as a matrix."""
    if not body.strip():
        raise EmptyBodyError('the body is empty; send {"instances": [{"features": [...]}, ...]}')
    doc = _load_json(body)
    if isinstance(doc, dict) and "instances" in doc:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise _bad(f'"instances" must be a list, got {_short(instances)}')
        rows = [_features_of(inst, i + 1) for i, inst in enumerate(instances)]
        return _rows_to_matrix(rows, n_features, _may_hold_bools(body))
    if isinstance(doc, dict) and ("features" in doc or "data" in doc):
        return _rows_to_matrix([_features_of(doc, 1)], n_features, _may_hold_bools(body))
    raise _bad('expected {"instances": [{"features": [...]}, ...]} or {"features": [...]}, '
               f"got {_short(doc)}")


def parse_jsonlines(body: bytes, n_features: int) -> np.ndarray | sp.csr_matrix:
    """Rows of a JSON Lines body, one ``{"features": ...}`` per line (row n = line n)."""
    body = body.rstrip()
    if not body:
        raise EmptyBodyError('the body is empty; send one {"features": [...]} per line')
    rows = []
    for i, line in enumerate(body.split(b"\n")):
        if not line.strip():
            raise _bad('the line is empty; expected one {"features": [...]} per line', i + 1)
        rows.append(_features_of(_load_json(line, i + 1), i + 1))
    return _rows_to_matrix(rows, n_features, _may_hold_bools(body))


def parse_recordio(body: bytes, n_features: int) -> np.ndarray | sp.csr_matrix:
    """Rows of RecordIO-protobuf records (features under ``features['values']``, dense or
    sparse; a label, if sent, is ignored); a bad record is a BadRecordError naming its
    record number and byte offset."""
    from onepass.io.recordio_protobuf import decode_rows

    X, _ = decode_rows(body, n_features=n_features)
    if X.shape[0] == 0:
        raise _bad("the body holds no record")
    if X.shape[1] != n_features:
        raise _bad(f"the records have {X.shape[1]} features, the model takes {n_features}")
    if not sp.issparse(X):
        X = np.asarray(X, dtype=np.float64)
        _check_finite(X, lambda i, j: f"record {i + 1}, feature {j}")
    elif X.nnz and not np.all(np.isfinite(X.data)):
        raise _bad("a feature value is NaN or infinite")
    return X


_PARSERS = {"text/csv": parse_csv, "application/json": parse_json, "application/jsonlines": parse_jsonlines,
            RECORDIO: parse_recordio}


def parse(body: bytes, content_type: str, n_features: int) -> np.ndarray | sp.csr_matrix:
    """The feature matrix of ``body`` sent as ``content_type`` (one of :data:`REQUEST_TYPES`)."""
    return _PARSERS[content_type](body, n_features)


# -- responses ---------------------------------------------------------------------------

_NUMPY = orjson.OPT_SERIALIZE_NUMPY


def _records(outputs: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    names = list(outputs)
    columns = [np.asarray(v) for v in outputs.values()]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def _csv_cells(column: np.ndarray) -> list[bytes]:
    """One ``a,b,c`` cell group per row, each number in its shortest round-trip form."""
    text = orjson.dumps(np.ascontiguousarray(column), option=_NUMPY)
    if column.ndim == 1:
        return text[1:-1].split(b",") if column.size else []
    return text[2:-2].split(b"],[") if column.size else []


def check_outputs_finite(outputs: dict[str, np.ndarray]) -> None:
    """Raise a BadRecordError naming the first row (from 1) whose output is NaN or infinite.

    JSON has no NaN or infinity (orjson writes ``null``), so such an answer would reach the
    client as a 200 with nulls in it. Rows are checked finite on the way in; an output can
    still overflow the model's float32 arithmetic when the features are near float32's limit.
    """
    for name, values in outputs.items():
        arr = np.asarray(values)
        if arr.dtype.kind not in "fc" or arr.size == 0:
            continue
        finite = np.isfinite(arr)
        if finite.all():
            continue
        row = int(np.argwhere(~finite)[0][0])
        value = arr.reshape(arr.shape[0], -1)[row][~finite.reshape(arr.shape[0], -1)[row]][0]
        what = "NaN" if np.isnan(value) else "infinite"
        raise _bad(f"the model's {name} for this row is {what}: its features are too large for the model's "
                   "float32 arithmetic (it overflows); scale the features down", row + 1)


def check_finite_json(value: Any, where: str) -> None:
    """Raise a BadRecordError when ``value`` (lists, dicts, numbers, arrays of a JSON answer)
    holds a NaN or infinity, naming ``where`` (e.g. ``instance 3``) and the key path."""
    path = _nonfinite_path(value)
    if path is not None:
        raise _bad(f"{where}'s answer{path} is not finite (NaN or infinity): the model's arithmetic overflowed "
                   "on this input; scale it down")


def _nonfinite_path(value: Any) -> str | None:
    if isinstance(value, float):
        return None if math.isfinite(value) else ""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            return f"[{int(np.argwhere(~np.isfinite(value))[0][0])}]" if value.ndim else ""
        return None
    if isinstance(value, np.floating):
        return None if np.isfinite(value) else ""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for key, item in items:
        inner = _nonfinite_path(item)
        if inner is not None:
            return f"[{key!r}]{inner}" if isinstance(key, str) else f"[{key}]{inner}"
    return None


def encode(outputs: dict[str, np.ndarray], accept: str, json_key: str) -> bytes:
    """Response body for model ``outputs`` in the ``accept`` type (one of :data:`RESPONSE_TYPES`).

    JSON: ``{json_key: [{name: value, ...}, ...]}``; JSON Lines: one ``{name: value}`` per
    row; CSV: one line per row, the outputs in order (vectors spread over columns), no header.
    An output that is not finite is a BadRecordError naming its row (see
    :func:`check_outputs_finite`), never a ``null``.
    """
    check_outputs_finite(outputs)
    if accept == "application/json":
        return orjson.dumps({json_key: _records(outputs)}, option=_NUMPY)
    if accept == "application/jsonlines":
        return b"".join(orjson.dumps(r, option=_NUMPY | orjson.OPT_APPEND_NEWLINE) for r in _records(outputs))
    if accept == RECORDIO:  # each output under its name in a record's label map, as SageMaker's algorithms answer
        from onepass.io.recordio_protobuf import encode_outputs

        return encode_outputs(outputs)
    columns = [_csv_cells(np.asarray(v)) for v in outputs.values()]
    return b"".join(b",".join(cells) + b"\n" for cells in zip(*columns, strict=True))
