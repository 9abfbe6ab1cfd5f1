"""One directory = manifest.json + one .npy per array, written atomically."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from onepass import _failpoints
from onepass.errors import CheckpointCorruptError, ForeignFormatError

FORMAT = "onepass"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_artifact(
    path: str | os.PathLike[str],
    *,
    role: str,
    kind: str,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``meta`` and ``arrays`` as an artifact directory at ``path``, atomically.

    ``role`` is ``"checkpoint"`` or ``"model"``; ``kind`` the algorithm's state or model
    kind. ``extra`` goes into the manifest as it is (cursor, rows seen, metrics...).
    An existing directory at ``path`` is replaced: a reader sees it whole, old or new.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists() and (previous := resolve(target)) != target:
        os.rename(previous, target)  # finish the replacement a killed writer left half done
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        files = {}
        for name, array in arrays.items():
            if not name.isidentifier():
                raise ValueError(f"array name {name!r} must be an identifier")
            array = np.ascontiguousarray(array)
            if array.dtype == object:
                raise TypeError(f"array {name!r} has dtype object, which cannot be saved safely")
            fname = f"{name}.npy"
            with open(tmp / fname, "wb") as fh:
                np.save(fh, array, allow_pickle=False)
                _failpoints.hit("artifact.array_written")
                fh.flush()
                os.fsync(fh.fileno())
            files[name] = {
                "file": fname,
                "sha256": _sha256(tmp / fname),
                "shape": list(array.shape),
                "dtype": array.dtype.str,
            }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "role": role,
            "kind": kind,
            "meta": meta,
            **(extra or {}),
            "arrays": files,
        }
        _write_file(tmp / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        _fsync_dir(tmp)
        _failpoints.hit("artifact.before_rename")
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
            os.rename(target, old)
            _failpoints.hit("artifact.old_moved_aside")
        os.rename(tmp, target)
        _fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def resolve(path: str | os.PathLike[str]) -> Path:
    """``path``, or the previous copy set aside while a writer was replacing it.

    Replacing a directory takes two renames (old aside, new in); a process killed
    between them leaves ``path`` absent and the old copy as ``.NAME.old-*``: readers
    then get the old copy, complete.
    """
    directory = Path(path)
    if not directory.exists() and directory.parent.is_dir():
        aside = sorted(directory.parent.glob(f".{directory.name}.old-*"))
        if aside:
            return aside[-1]
    return directory


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the artifact at ``path``, checked to be a onepass artifact."""
    directory = resolve(path)
    manifest_path = directory / MANIFEST
    if not directory.is_dir():
        raise ForeignFormatError(f"{directory}: not a directory; a onepass checkpoint or model is a directory holding {MANIFEST}")
    if not manifest_path.is_file():
        raise ForeignFormatError(f"{directory}: no {MANIFEST}; this is not a onepass checkpoint or model directory")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointCorruptError(f"{manifest_path}: not valid JSON ({exc}); the file is damaged or truncated") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ForeignFormatError(f"{manifest_path}: not a onepass manifest (no \"format\": \"{FORMAT}\")")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ForeignFormatError(
            f"{manifest_path}: format_version {version!r} is newer than this onepass reads "
            f"({FORMAT_VERSION}); upgrade onepass to load it"
        )
    for key in ("role", "kind", "meta", "arrays"):
        if key not in manifest:
            raise CheckpointCorruptError(f"{manifest_path}: the manifest lacks {key!r}")
    return manifest


def read_artifact(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify the artifact at ``path``: its manifest and its arrays.

    Every array file must exist and match its sha256, shape and dtype. Arrays are loaded
    with ``allow_pickle=False``: loading never runs code.
    """
    directory = resolve(path)
    manifest = read_manifest(directory)
    arrays = {}
    for name, entry in manifest["arrays"].items():
        fpath = directory / entry["file"]
        if not fpath.is_file():
            raise CheckpointCorruptError(f"{fpath}: missing (listed in {directory / MANIFEST})")
        if _sha256(fpath) != entry["sha256"]:
            raise CheckpointCorruptError(
                f"{fpath}: checksum mismatch (sha256 differs from the manifest); the file is damaged or truncated"
            )
        try:
            array = np.load(fpath, allow_pickle=False)
        except ValueError as exc:
            raise CheckpointCorruptError(f"{fpath}: cannot be read as a .npy array ({exc})") from None
        if list(array.shape) != entry["shape"] or array.dtype.str != entry["dtype"]:
            raise CheckpointCorruptError(
                f"{fpath}: shape {array.shape} dtype {array.dtype.str} differ from the manifest's "
                f"{tuple(entry['shape'])} {entry['dtype']}"
            )
        arrays[name] = array
    return manifest, arrays
