"""Model artifacts, stand-alone state artifacts, and ``load`` for any of them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepass.errors import CheckpointCorruptError, ForeignFormatError
from onepass.io._artifact import MANIFEST, instantiate, read_artifact, resolve, write_artifact
from onepass.io._checkpoints import is_checkpoint_dir, load_checkpoint

if TYPE_CHECKING:
    from onepass.state import Model, State

STATE_SUBDIR = "state"


def save_model(path: str | os.PathLike[str], model: Model, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a model artifact directory at ``path`` (atomically)."""
    meta, arrays = model.to_arrays()
    return write_artifact(path, role="model", kind=model.kind, meta=meta, arrays=arrays, extra=extra)


def save_state(path: str | os.PathLike[str], state: State, *, extra: dict[str, Any] | None = None) -> Path:
    """Write ``state`` as a stand-alone state artifact at ``path`` (atomically)."""
    meta, arrays = state.to_arrays()
    return write_artifact(path, role="state", kind=state.kind, meta=meta, arrays=arrays, extra=extra)


def load_model(path: str | os.PathLike[str]) -> tuple[Model, dict[str, Any]]:
    """Load a model artifact: the model and its manifest."""
    target = resolve(path)
    if not os.path.lexists(target / MANIFEST) and is_checkpoint_dir(target):
        raise ForeignFormatError(
            f"{path}: holds checkpoints, not a model; finalize one first (onepass finalize {path} --out MODEL_DIR)"
        )
    manifest, arrays = read_artifact(target)
    if manifest["role"] != "model":
        raise ForeignFormatError(
            f"{path}: holds a {manifest['role']}, not a model; finalize it first (onepass finalize)"
        )
    return instantiate(target, manifest, arrays, "model"), manifest


def load(path: str | os.PathLike[str]) -> Model | State:
    """Load whatever onepass wrote at ``path``: a model, or a state for a checkpoint.

    ``path`` may be a model directory (``--out``), a checkpoint, a checkpoint directory
    (its newest complete checkpoint is loaded) or a state directory. Loading checks the
    format version, every array's checksum and what its algorithm declares of it, and
    never runs code; the directory is untrusted (:func:`onepass.io.read_artifact`).
    """
    target = resolve(path)
    if os.path.lexists(target / MANIFEST):
        manifest, arrays = read_artifact(target)
        return instantiate(target, manifest, arrays, "model" if manifest["role"] == "model" else "state")
    if is_checkpoint_dir(target):
        return load_checkpoint(target)[0]
    return load_model(target)[0]  # raises the clear "not a onepass directory" error


def load_state(path: str | os.PathLike[str]) -> tuple[State, dict[str, Any]]:
    """Load a state from a checkpoint, a checkpoint directory, a state directory or a
    model directory written by ``onepass train --out`` (its ``state/``)."""
    target = resolve(path)
    if os.path.lexists(target / STATE_SUBDIR / MANIFEST):
        if (target / STATE_SUBDIR).is_symlink():  # the directory is untrusted: a link could lead out of it
            raise CheckpointCorruptError(f"{target / STATE_SUBDIR}: is a symbolic link; a onepass directory holds "
                                         "plain files and directories, and links are never followed")
        target = target / STATE_SUBDIR
    return load_checkpoint(target)
