"""On-disk formats: checkpoints and model artifacts.

Both are a directory holding ``manifest.json`` and one ``.npy`` file per array
(``allow_pickle=False`` on load: loading never runs code). The manifest holds the format
version, what the directory is (``checkpoint`` or ``model``), the algorithm kind, its
JSON-able metadata, extra information (cursor, rows seen, metrics...) and the sha256 and
shape of every array file. Writes go to a temporary sibling, are fsynced and then
renamed into place, so a reader sees the old directory or the new one, never half.

Loading treats a directory as untrusted input (:func:`read_artifact`): the manifest is
checked against its schema, an array is only the plain file ``<name>.npy`` opened without
following links, its header is checked against the manifest and the file's size before
anything is allocated, and every array against what its class declares (``ARRAY_SPECS``).
Any failure is :class:`~onepass.errors.CheckpointCorruptError`, naming the file and why.

A *checkpoint directory* (``--checkpoint-dir``) holds numbered checkpoints
``ckpt-000001/``... and a ``LATEST`` file naming the newest complete one; the last
``keep`` (3) are kept, and a resume takes the newest that verifies.
"""

from onepass.io._artifact import (
    FORMAT_VERSION,
    read_artifact,
    write_artifact,
)
from onepass.io._checkpoints import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from onepass.io._models import load, load_model, save_model, save_state

__all__ = [
    "FORMAT_VERSION",
    "latest_checkpoint",
    "load",
    "load_checkpoint",
    "load_model",
    "read_artifact",
    "save_checkpoint",
    "save_model",
    "save_state",
    "write_artifact",
]
