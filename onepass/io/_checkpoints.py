"""A checkpoint directory: numbered checkpoints and a LATEST pointer, both atomic."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from onepass import _failpoints
from onepass.errors import ArtifactError, ForeignFormatError
from onepass.io._artifact import _fsync_dir, _write_file, read_artifact, read_manifest, write_artifact
from onepass.state import State, algorithm_of_kind

LATEST = "LATEST"
_NUMBERED = re.compile(r"^ckpt-(\d{6,})$")


def _numbered(directory: Path) -> list[tuple[int, Path]]:
    found = []
    if directory.is_dir():
        for child in directory.iterdir():
            match = _NUMBERED.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child))
    return sorted(found)


def save_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    state: State,
    *,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write ``state`` as the next numbered checkpoint in ``checkpoint_dir``.

    The checkpoint is written whole to a temporary sibling and renamed into place; then
    ``LATEST`` is replaced atomically to name it; then all but the newest ``keep``
    checkpoints and any temporary leftovers of killed writers are removed. A process
    killed at any instant leaves ``LATEST`` naming a complete checkpoint.
    """
    directory = Path(checkpoint_dir)
    directory.mkdir(parents=True, exist_ok=True)
    existing = _numbered(directory)
    number = existing[-1][0] + 1 if existing else 1
    meta, arrays = state.to_arrays()
    path = write_artifact(
        directory / f"ckpt-{number:06d}", role="checkpoint", kind=state.kind,
        meta=meta, arrays=arrays, extra=extra,
    )
    _failpoints.hit("checkpoint.before_latest")
    tmp = directory / f".{LATEST}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    _write_file(tmp, path.name.encode() + b"\n")
    os.replace(tmp, directory / LATEST)
    _fsync_dir(directory)
    for _, old in _numbered(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for child in directory.iterdir():
        if child.name.startswith(".") and (".tmp-" in child.name or ".old-" in child.name):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    return path


def is_checkpoint_dir(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory of numbered checkpoints (not one artifact)."""
    directory = Path(path)
    return (directory / LATEST).is_file() or bool(_numbered(directory))


def latest_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint in ``checkpoint_dir`` that reads whole, or None if none.

    ``LATEST`` is trusted first; if it is missing or names a damaged checkpoint, the
    numbered checkpoints are tried newest first.
    """
    directory = Path(checkpoint_dir)
    candidates = []
    pointer = directory / LATEST
    if pointer.is_file():
        name = pointer.read_text().strip()
        if _NUMBERED.match(name):
            candidates.append(directory / name)
    candidates += [p for _, p in reversed(_numbered(directory)) if p not in candidates]
    for candidate in candidates:
        try:
            read_manifest(candidate)
            return candidate
        except ArtifactError:
            continue
    return None


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[State, dict[str, Any]]:
    """Load a state and its manifest from a checkpoint (or a checkpoint directory).

    Given a checkpoint directory, the newest complete checkpoint is loaded.
    """
    target = Path(path)
    if is_checkpoint_dir(target) and not (target / "manifest.json").exists():
        found = latest_checkpoint(target)
        if found is None:
            raise ArtifactError(f"{target}: no complete checkpoint in this checkpoint directory")
        target = found
    manifest, arrays = read_artifact(target)
    if manifest["role"] not in ("checkpoint", "state"):
        raise ForeignFormatError(
            f"{target}: holds a {manifest['role']}, not a state; a finalized model cannot be trained or "
            "finalized again: use the checkpoint, or the state/ of the directory 'onepass train --out' wrote"
        )
    cls = algorithm_of_kind(manifest["kind"], "state")
    return cls.from_arrays(manifest["meta"], arrays), manifest
