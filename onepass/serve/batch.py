"""Batch prediction: stream a source through a model into an output file, in order.

Memory is one batch of input and output at a time, whatever the size of the data.
The output format follows the extension of ``out`` (``.csv``, ``.jsonl``, ``.parquet``,
``.rec``/``.pbr`` for SageMaker's RecordIO-protobuf, each output under its name in a
record's ``label`` map), or ``output_format`` (needed for ``out="-"``, stdout).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from onepass._readahead import read_ahead
from onepass.errors import InvalidParameterError
from onepass.sources import open_source
from onepass.state import Model

__all__ = ["OUTPUT_FORMATS", "PredictSummary", "predict_file"]

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet",
                  ".rec": "recordio-protobuf", ".pbr": "recordio-protobuf"}


def _flat_columns(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Vector outputs become one column per component (``name_0``, ``name_1``...)."""
    flat = {}
    for name, values in outputs.items():
        values = np.asarray(values)
        if values.ndim == 1:
            flat[name] = values
        else:
            for j in range(values.shape[1]):
                flat[f"{name}_{j}"] = values[:, j]
    return flat


class _CsvWriter:
    """CSV through pyarrow's writer: numbers in their shortest round-trip form, about
    15x faster than ``np.savetxt`` (0.2 s against 3.5 s per million K-Means rows)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        self._header = False

    def write(self, outputs: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        flat = _flat_columns(outputs)
        if not self._header:
            self._fh.write((",".join(flat) + "\n").encode())
            self._header = True
        table = pa.table({name: np.asarray(values) for name, values in flat.items()})
        pacsv.write_csv(table, self._fh, pacsv.WriteOptions(include_header=False, quoting_style="none"))

    def close(self) -> None:
        self._fh.flush()


class _JsonlWriter:
    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh

    def write(self, outputs: dict[str, np.ndarray]) -> None:
        names = list(outputs)
        columns = [np.asarray(v).tolist() for v in outputs.values()]
        lines = [json.dumps(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
        self._fh.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        self._fh.flush()


class _ParquetWriter:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._writer: Any = None

    def write(self, outputs: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        arrays = []
        for values in outputs.values():
            values = np.asarray(values)
            if values.ndim == 1:
                arrays.append(pa.array(values))
            else:
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1]))
        table = pa.Table.from_arrays(arrays, names=list(outputs))
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@dataclass
class PredictSummary:
    """What a batch prediction did: rows written, bad input records skipped or quarantined."""

    n_rows: int
    n_skipped: int = 0
    n_quarantined: int = 0
    #: columns of the input left out of the features: those the model was not trained on
    #: (its label among them) when it matched the input's columns by name
    unused_columns: list[str] = field(default_factory=list)


def predict_file(
    model: Model,
    data: str | os.PathLike[str] | list[str],
    out: str | os.PathLike[str],
    *,
    output_format: str | None = None,
    batch_size: int = 65536,
    forecast: dict[str, Any] | None = None,
    plot: str | os.PathLike[str] | None = None,
    **source_options: Any,
) -> PredictSummary:
    """Predict every row of ``data`` with ``model`` and write the outputs to ``out``.

    Rows come out in input order (bad records set aside by ``on_bad_record="skip"`` or
    ``"quarantine"`` have no output row, and are counted in the summary). ``source_options``
    go to :func:`onepass.sources.open_source` (format, header, label_column,
    on_bad_record...). The output is written to a temporary sibling and renamed into
    place when complete, so a failed run leaves no half file behind.

    A forecaster (a model with ``forecast``, DeepAR) reads series (format ``"series"``
    unless told) and writes JSON lines, one forecast per series, with ``forecast``'s
    settings (``num_samples``, ``quantiles``, ``output_types``, ``seed``); ``plot`` draws
    the first few series and their forecasts into a PNG.
    """
    is_forecaster = hasattr(model, "forecast")
    if plot is not None and not is_forecaster:
        raise InvalidParameterError("--plot draws forecasts; this model does not forecast")
    if is_forecaster:
        source_options["format"] = source_options.get("format") or "series"
        if output_format is None and str(out) != "-" and Path(out).suffix.lower() not in (".jsonl", ".json"):
            raise InvalidParameterError(f"a forecaster writes JSON lines, one forecast per series: name the output "
                                        f"*.jsonl, not {out}")
        output_format = output_format or "jsonl"
        if output_format != "jsonl":
            raise InvalidParameterError(f"a forecaster writes JSON lines (--output-format jsonl), not {output_format}")
    if output_format is None:
        if str(out) == "-":
            raise InvalidParameterError("writing to stdout ('-') needs an output format: csv or jsonl")
        suffix = Path(out).suffix.lower()
        if suffix not in OUTPUT_FORMATS:
            raise InvalidParameterError(
                f"cannot tell the output format of {out!s} from its extension {suffix!r}; "
                f"use one of {', '.join(sorted(OUTPUT_FORMATS))} or give the format"
            )
        output_format = OUTPUT_FORMATS[suffix]
    if output_format not in ("csv", "jsonl", "parquet", "recordio-protobuf"):
        raise InvalidParameterError(f"output format {output_format!r} must be csv, jsonl, parquet or recordio-protobuf")
    to_stdout = str(out) == "-"
    if to_stdout and output_format == "parquet":
        raise InvalidParameterError("parquet output cannot go to stdout; give a file path")
    tmp = None if to_stdout else Path(out).with_name(f".{Path(out).name}.tmp-{os.getpid()}")
    fh: IO[bytes] | None = None
    if output_format == "parquet":
        assert tmp is not None
        writer: Any = _ParquetWriter(tmp)
    else:
        fh = sys.stdout.buffer if to_stdout else open(tmp, "wb")  # type: ignore[arg-type]
        if output_format == "recordio-protobuf":
            from onepass.io.recordio_protobuf import RecordioWriter

            writer = RecordioWriter(fh)
        else:
            writer = _CsvWriter(fh) if output_format == "csv" else _JsonlWriter(fh)
    summary = PredictSummary(0)
    try:
        with open_source(data, batch_size=batch_size, **source_options) as src:
            last = None
            for batch in read_ahead(src):
                last = batch.cursor
                if is_forecaster:
                    assert fh is not None
                    predictions = model.forecast(batch.X, **(forecast or {}))
                    fh.write("".join(json.dumps(p) + "\n" for p in predictions).encode())
                    if plot is not None and summary.n_rows == 0:  # the first series of the file
                        from onepass.algorithms.deepar._plot import plot_forecasts

                        plot_forecasts(model, batch.X.on_grid(model.frequency), predictions, plot)
                else:
                    writer.write(model.outputs(batch.X))
                summary.n_rows += batch.n_rows
            summary.n_skipped, summary.n_quarantined = src.n_skipped, src.n_quarantined
            summary.unused_columns = list(getattr(src, "unused_columns", []))
            writer.close()
            if fh is not None and not to_stdout:
                fh.close()
            if tmp is not None:
                os.replace(tmp, out)
            acknowledge = getattr(src, "acknowledge", None)
            if acknowledge is not None:  # a stream's entries are forgotten once their predictions are written
                acknowledge(last)
    except BaseException:
        if fh is not None and not to_stdout:
            fh.close()
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    return summary
