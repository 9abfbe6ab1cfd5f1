"""Sources: a URI in, a stream of :class:`~onepass.batch.Batch` out, with exact cursors.

Formats (csv, parquet, jsonl, libsvm, npy) are kept apart from transports (local files,
folders, globs, fsspec URLs, stdin). Every bad record goes through one policy
(``on_bad_record``) and every batch carries a cursor to resume right after it.
"""

from onepass.sources._source import FORMATS, Source, open_source

__all__ = ["FORMATS", "Source", "open_source"]
