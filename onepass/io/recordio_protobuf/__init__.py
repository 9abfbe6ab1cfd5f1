"""RecordIO-protobuf: SageMaker's binary data format, read and written.

A file (or an HTTP body, ``application/x-recordio-protobuf``) is a sequence of RecordIO
frames (:mod:`._framing`), each holding one ``Record`` message (``record.proto``, wire
compatible with the SageMaker SDK's ``aialgs.data.Record``). By SageMaker's convention one
record is one row: its features under ``features['values']`` (a dense tensor, or a sparse
one with ``keys`` and ``shape [n_features]``) and its label under ``label['values']``.
Answers put each output of a model under its name in ``label`` (``closest_cluster``,
``projection``, ``score``...) and leave ``features`` empty.

The source format ``recordio-protobuf`` (:mod:`onepass.sources`) reads files with
:class:`RecordDecoder`; batch prediction and the model server use :func:`encode_outputs`
and :func:`decode_rows`.

Examples
--------
>>> import numpy as np
>>> body = encode_rows(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), y=np.array([0.0, 1.0]))
>>> X, y = decode_rows(body)
>>> X.tolist(), y.tolist()
([[1.0, 2.0], [3.0, 4.0]], [0.0, 1.0])
>>> answer = encode_outputs({"closest_cluster": np.array([2.0]), "distance_to_cluster": np.array([0.5])})
>>> len(answer) % 4
0
"""

from __future__ import annotations

from typing import Any

import numpy as np

from onepass.io.recordio_protobuf._codec import Decoded, RecordDecoder, encode_outputs, encode_rows
from onepass.io.recordio_protobuf._framing import MAGIC

__all__ = ["CONTENT_TYPE", "MAGIC", "Decoded", "RecordDecoder", "RecordioWriter", "decode_rows", "encode_outputs",
           "encode_rows"]

#: the media type SageMaker uses for it
CONTENT_TYPE = "application/x-recordio-protobuf"


def decode_rows(data: bytes, *, n_features: int | None = None, source: str = "the request body",
                dtype: Any = np.float32) -> tuple[Any, np.ndarray | None]:
    """``(X, y)`` of RecordIO-protobuf bytes: X dense (n, d) or scipy CSR, y the
    ``label['values']`` of each record, or None when the records have none.

    Raises
    ------
    BadRecordError
        The first bad record, naming ``source``, its record number and byte offset.
    """
    from onepass.errors import BadRecordError

    decoded = RecordDecoder(n_features=n_features, dtype=dtype).decode(bytes(data), 0, 0, final=True)
    if decoded.bad:
        first = decoded.bad[0]
        raise BadRecordError(first.reason, source=source)
    return decoded.X, decoded.y


class RecordioWriter:
    """Batch prediction's RecordIO-protobuf output: each batch of a model's outputs appended
    to a binary file as :func:`encode_outputs` writes them (``write(outputs)``, ``close()``,
    as batch prediction's other writers)."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def write(self, outputs: dict[str, np.ndarray]) -> None:
        self._fh.write(encode_outputs(outputs))

    def close(self) -> None:
        self._fh.flush()
