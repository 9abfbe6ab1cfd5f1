"""A checkpoint directory: numbered checkpoints and a LATEST pointer, both atomic."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from onepass import _failpoints
from onepass.errors import (
    ArtifactError,
    CheckpointCorruptError,
    CheckpointSkippedWarning,
    ForeignFormatError,
    InvalidParameterError,
)
from onepass.io._artifact import _fsync_dir, _write_file, instantiate, read_artifact, read_manifest, write_artifact

if TYPE_CHECKING:
    from onepass.state import State

LATEST = "LATEST"
DEFAULT_KEEP = 3
_NUMBERED = re.compile(r"^ckpt-(\d{6,})$")


def _numbered(directory: Path) -> list[tuple[int, Path]]:
    found = []
    if directory.is_dir():
        for child in directory.iterdir():
            match = _NUMBERED.match(child.name)
            if match and child.is_dir() and not child.is_symlink():  # a link could lead out of the directory
                found.append((int(match.group(1)), child))
    return sorted(found)


def save_checkpoint(
    checkpoint_dir: str | os.PathLike[str],
    state: State,
    *,
    extra: dict[str, Any] | None = None,
    keep: int = DEFAULT_KEEP,
) -> Path:
    """Write ``state`` as the next numbered checkpoint in ``checkpoint_dir``.

    The checkpoint is written whole to a temporary sibling and renamed into place; then
    ``LATEST`` is replaced atomically to name it; only then are all but the newest ``keep``
    checkpoints and any temporary leftovers of killed writers removed, so an older
    checkpoint is never deleted before a newer one is committed. A process killed at any
    instant leaves ``LATEST`` naming a complete checkpoint; keeping more than one lets a
    resume fall back when the newest is later damaged (:func:`load_latest_checkpoint`).
    """
    if type(keep) is not int or keep < 1:
        raise InvalidParameterError(f"keep={keep!r} must be an integer >= 1 (checkpoints kept)")
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


def _candidates(directory: Path) -> list[Path]:
    """The checkpoints of ``directory``, the one ``LATEST`` names first, then newest first."""
    numbered = [p for _, p in reversed(_numbered(directory))]
    named = directory / _read_pointer(directory)
    return ([named] if named in numbered else []) + [p for p in numbered if p != named]


def _read_pointer(directory: Path) -> str:
    """The name ``LATEST`` holds ("" when there is none; never read through a link)."""
    try:
        fd = os.open(directory / LATEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        return os.read(fd, 64).decode("ascii", "replace").strip() if stat.S_ISREG(os.fstat(fd).st_mode) else ""
    finally:
        os.close(fd)


def latest_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint in ``checkpoint_dir`` whose manifest reads, or None if none.

    ``LATEST`` is trusted first; if it is missing or names a damaged checkpoint, the
    numbered checkpoints are tried newest first. Only manifests are read: to resume, use
    :func:`load_latest_checkpoint`, which verifies every array too.
    """
    for candidate in _candidates(Path(checkpoint_dir)):
        try:
            read_manifest(candidate)
            return candidate
        except ArtifactError:
            continue
    return None


class Resumed(NamedTuple):
    """The newest checkpoint of a directory that verifies, loaded, and the newer ones
    skipped because they did not (each with why)."""

    state: State
    manifest: dict[str, Any]
    path: Path
    skipped: list[tuple[Path, str]]


def load_latest_checkpoint(checkpoint_dir: str | os.PathLike[str]) -> Resumed | None:
    """Load the newest checkpoint in ``checkpoint_dir`` that verifies whole (manifest,
    every array's header, checksum and declared dtype and shape), skipping damaged ones.

    None when the directory holds no checkpoint; :class:`CheckpointCorruptError` when it
    holds some and none verifies (saying why each was refused). Warning about what was
    skipped is the caller's: it knows whether the rows since can be read again.
    """
    directory = Path(checkpoint_dir)
    skipped: list[tuple[Path, str]] = []
    for candidate in _candidates(directory):
        try:
            state, manifest = load_checkpoint(candidate)
        except ArtifactError as exc:
            skipped.append((candidate, str(exc)))
            continue
        return Resumed(state, manifest, candidate, skipped)
    if skipped:
        raise CheckpointCorruptError(
            f"{directory}: no checkpoint in it verifies; " + "; ".join(why for _, why in skipped)
            + ". Train again without --resume (or into another --checkpoint-dir)")
    return None


def skipped_message(resumed: Resumed) -> str:
    """What a load that skipped damaged checkpoints says: which, why, and which it took."""
    skipped = "; ".join(f"{path.name} ({why})" for path, why in resumed.skipped)
    return f"skipped {skipped}; loaded {resumed.path}, the newest checkpoint that verifies"


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[State, dict[str, Any]]:
    """Load a state and its manifest from a checkpoint (or a checkpoint directory).

    Given a checkpoint directory, the newest checkpoint that verifies is loaded (with a
    :class:`~onepass.errors.CheckpointSkippedWarning` for each newer one that did not).
    """
    target = Path(path)
    if is_checkpoint_dir(target) and not os.path.lexists(target / "manifest.json"):
        resumed = load_latest_checkpoint(target)
        if resumed is None:
            raise ArtifactError(f"{target}: no complete checkpoint in this checkpoint directory")
        if resumed.skipped:
            warnings.warn(skipped_message(resumed), CheckpointSkippedWarning, stacklevel=2)
        return resumed.state, resumed.manifest
    manifest, arrays = read_artifact(target)
    if manifest["role"] not in ("checkpoint", "state"):
        raise ForeignFormatError(
            f"{target}: holds a {manifest['role']}, not a state; a finalized model cannot be trained or "
            "finalized again: use the checkpoint, or the state/ of the directory 'onepass train --out' wrote"
        )
    return instantiate(target, manifest, arrays, "state"), manifest
