import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onepass.sources import _text


@pytest.fixture
def small_blocks(monkeypatch):
    """Tiny read blocks, so that every test crosses block boundaries."""
    monkeypatch.setattr(_text, "BLOCK_BYTES", 64)


def write_rows(path, fmt, X, y, bad_at=(), bad_line=None):
    """Write rows (X, y) in ``fmt``; rows listed in ``bad_at`` are replaced by a bad one."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if fmt in ("csv", "jsonl", "libsvm"):
        lines = []
        if fmt == "csv":
            lines.append(",".join([f"x{j}" for j in range(X.shape[1])] + ["y"]))
        for i, (row, label) in enumerate(zip(X, y, strict=False)):
            if i in bad_at:
                lines.append(bad_line or {"csv": "1,oops", "jsonl": "{oops",
                                          "libsvm": "1 1:abc"}[fmt])
            elif fmt == "csv":
                lines.append(",".join(repr(float(v)) for v in row) + f",{float(label)!r}")
            elif fmt == "jsonl":
                lines.append(json.dumps({"features": row.tolist(), "label": float(label)}))
            else:
                lines.append(f"{float(label)!r} " + " ".join(
                    f"{j + 1}:{float(v)!r}" for j, v in enumerate(row) if v != 0))
        path.write_text("".join(line + "\n" for line in lines))
    elif fmt == "parquet":
        cols = {f"x{j}": X[:, j].copy() for j in range(X.shape[1])}
        for i in bad_at:
            cols["x0"][i] = np.nan
        cols["y"] = y
        pq.write_table(pa.table(cols), path, row_group_size=3)
    elif fmt == "npy":
        a = np.column_stack([X, y]) if len(X) else np.zeros((0, X.shape[1] + 1))
        for i in bad_at:
            a[i, 0] = np.inf
        np.save(path, a)
    else:  # pragma: no cover
        raise ValueError(fmt)


EXT = {"csv": ".csv", "jsonl": ".jsonl", "libsvm": ".svm", "parquet": ".parquet",
       "npy": ".npy"}


def label_kw(fmt):
    """open_source arguments that pick the label written by write_rows."""
    return {"csv": {"label_column": "y"}, "jsonl": {}, "libsvm": {}, "parquet":
            {"label_column": "y"}, "npy": {"label_column": -1}}[fmt]


def dense(X):
    return X.toarray() if hasattr(X, "toarray") else np.asarray(X)
