"""RecordIO-protobuf reader (SageMaker's binary format), as dense float32 or CSR.

One record is one row: ``features['values']`` dense (every row as wide as the first, or
``n_features``) or sparse (``keys`` with ``shape [n_features]``; the first record decides
which X is). The label is ``label['values']`` when the records have one (``label_column``
names another key of the ``label`` map), a weight is the ``label`` map's
``weight_column`` key. Files are read in 8 MB blocks and decoded by
:class:`onepass.io.recordio_protobuf.RecordDecoder`. Cursors hold the byte offset of the
next frame (``offset``) and the count of records before it (``line``). A bad frame (wrong
magic number, truncated, a message protobuf refuses, a row of another width) is a bad
record named by its record number and byte offset; after a wrong magic number reading
goes on at the next 4-byte-aligned magic number.
"""

from __future__ import annotations

from collections.abc import Iterator

from onepass.errors import InvalidParameterError
from onepass.io.recordio_protobuf import RecordDecoder
from onepass.sources._base import Chunk, Options, Reader
from onepass.sources._transport import Entry

__all__ = ["RecordioReader"]

_READ_BYTES = 8 << 20


class RecordioReader(Reader):
    name = "recordio-protobuf"
    can_stream = True

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        for what in ("label_column", "weight_column"):
            v = getattr(options, what)
            if v is not None and not isinstance(v, str):
                raise InvalidParameterError(
                    f"{what}={v!r}: RecordIO-protobuf records have no columns; name a key of the "
                    "record's label map (SageMaker's label is 'values')")
        if options.header is not None or options.delimiter is not None or options.zero_based:
            raise InvalidParameterError("header, delimiter and zero_based do not apply to RecordIO-protobuf")
        self._decoder: RecordDecoder | None = None

    def read(self, entry: Entry, start: dict | None) -> Iterator[Chunk]:
        o = self.options
        if self._decoder is None:  # one for the whole source: the width and kind hold across files
            self._decoder = RecordDecoder(
                n_features=self.n_features, label_key=o.label_column or "values",
                label_required=o.label_column is not None, weight_key=o.weight_column, dtype=o.dtype)
        decoder = self._decoder
        f = entry.open()
        try:
            offset = line = 0
            if start is not None:
                offset, line = int(start["offset"]), int(start["line"])
                if offset % 4:
                    raise InvalidParameterError(
                        f"the cursor's offset {offset} in {entry.name} is not a record boundary (a multiple of 4)")
                f.seek(offset)
            rest = b""
            while True:
                data = f.read(_READ_BYTES)
                final = not data
                buf = rest + data if rest else data
                if not buf and final:
                    break
                decoded = decoder.decode(buf, offset, line, final=final)
                self.n_features = decoder.n_features
                offset += decoded.consumed
                line = decoded.n_records
                rest = buf[decoded.consumed:]
                if len(decoded.ends) or decoded.bad:
                    yield decoded
                if final:
                    break
        finally:
            if not entry.is_stdin:
                f.close()
