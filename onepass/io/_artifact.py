"""One directory = manifest.json + one .npy per array, written atomically."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import io
import json
import math
import os
import re
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepass import _failpoints
from onepass.errors import ArtifactError, CheckpointCorruptError, ForeignFormatError, InvalidParameterError

if TYPE_CHECKING:  # NumPy is imported where arrays are read or written: reading a manifest needs none
    import numpy as np

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
    import numpy as np

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


# -- reading: the directory is untrusted ---------------------------------------------------
#
# Everything in an artifact directory may have been written by someone else: the manifest is
# checked against its schema before any of it is used, an array file is only ever the plain
# name "<array>.npy" opened through the directory's descriptor without following links (a
# name that could leave the directory is refused before the file system is asked anything,
# so nothing is told about files outside it), and a .npy header is checked against the
# manifest and the file's size before its data is read or any memory is set aside for it.
# Every failure is CheckpointCorruptError (a newer format_version: ForeignFormatError),
# naming the file and what is wrong.

ROLES = ("checkpoint", "model", "state")
MAX_MANIFEST_BYTES = 64 << 20
MAX_NDIM = 32
MAX_DIM = 1 << 40  # a dimension of an empty array is bounded by nothing else
_MAX_NPY_HEADER = 1 << 16
_NPY_MAGIC = b"\x93NUMPY"
_NPY_KINDS = "biufcU"  # what onepass writes: booleans, numbers, strings (never objects, records, bytes)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
# fields of the manifest a reader uses beyond the artifact's own, with the types they must have
_EXTRA_TYPES: dict[str, tuple[type, ...]] = {
    "algorithm": (str,),
    "cursor": (dict, type(None)),
    "distributed": (dict, type(None)),
    "epoch": (int,),
    "epochs": (int,),
    "finished": (bool,),
    "quarantined": (int,),
    "rows_seen": (int,),
    "skipped": (int,),
}


def _corrupt(where: Path | str, what: str) -> CheckpointCorruptError:
    return CheckpointCorruptError(f"{where}: {what}")


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


@contextlib.contextmanager
def _opened_directory(directory: Path) -> Iterator[int]:
    """A descriptor of ``directory`` (the path itself may be a link: the user named it)."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise ForeignFormatError(
            f"{directory}: not a directory; a onepass checkpoint or model is a directory holding {MANIFEST}") from None
    except OSError as exc:
        raise _corrupt(directory, f"cannot be opened ({exc.strerror})") from None
    try:
        yield fd
    finally:
        os.close(fd)


def _open_plain_file(name: str, dir_fd: int, where: Path) -> tuple[int, os.stat_result]:
    """Open ``name`` in the directory, refusing a link or anything but a regular file
    (FileNotFoundError passes through: what a missing file means is the caller's)."""
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _corrupt(where, "is a symbolic link; a onepass directory holds plain files, and links are "
                                  "never followed") from None
        raise _corrupt(where, f"cannot be opened ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _corrupt(where, "is not a regular file")
    return fd, info


def _read_exact(fh: Any, n: int) -> bytes:
    data = fh.read(n)
    return data if data is not None else b""


def _load_manifest(dir_fd: int, directory: Path) -> dict[str, Any]:
    where = directory / MANIFEST
    try:
        fd, info = _open_plain_file(MANIFEST, dir_fd, where)
    except FileNotFoundError:
        raise ForeignFormatError(
            f"{directory}: no {MANIFEST}; this is not a onepass checkpoint or model directory") from None
    with os.fdopen(fd, "rb") as fh:
        if info.st_size > MAX_MANIFEST_BYTES:
            raise _corrupt(where, f"{info.st_size} bytes, over the {MAX_MANIFEST_BYTES} a manifest may hold")
        text = _read_exact(fh, MAX_MANIFEST_BYTES + 1)
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _corrupt(where, f"not valid JSON ({exc}); the file is damaged or truncated") from None
    _check_manifest(manifest, where)
    return manifest


def _check_manifest(manifest: Any, where: Path) -> None:
    """Refuse a manifest that is not of the shape onepass writes, saying which field."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ForeignFormatError(f"{where}: not a onepass manifest (no \"format\": \"{FORMAT}\")")
    version = manifest.get("format_version")
    if type(version) is not int:
        raise _corrupt(where, f"format_version is {_show(version)} ({_type_name(version)}); it must be an integer")
    if version > FORMAT_VERSION:
        raise ForeignFormatError(
            f"{where}: format_version {version} is newer than this onepass reads ({FORMAT_VERSION}); "
            "upgrade onepass to load it")
    if version < 1:
        raise _corrupt(where, f"format_version {version} is not one onepass ever wrote (1 to {FORMAT_VERSION})")
    _require(manifest, {"role": str, "kind": str, "meta": dict, "arrays": dict}, where, "the manifest")
    if manifest["role"] not in ROLES:
        raise _corrupt(where, f"role {_show(manifest['role'])} is none of {', '.join(ROLES)}")
    if not manifest["kind"]:
        raise _corrupt(where, "kind is empty")
    for key, types in _EXTRA_TYPES.items():
        value = manifest.get(key)
        if key in manifest and (not isinstance(value, types) or (types[0] is int and (type(value) is bool or value < 0))):
            raise _corrupt(where, f"{key!r} is {_show(value)} ({_type_name(value)}), not what onepass writes there")
    for name, entry in manifest["arrays"].items():
        _check_entry(name, entry, where)


def _require(mapping: dict[str, Any], fields: dict[str, type], where: Path, subject: str) -> None:
    """Refuse ``mapping`` (``subject``: the manifest, an array's entry) when it lacks one
    of ``fields`` or holds it as another type."""
    for key, kind in fields.items():
        if key not in mapping:
            raise _corrupt(where, f"{subject} lacks {key!r}")
        if not isinstance(mapping[key], kind):
            raise _corrupt(where, f"{subject}: {key!r} is {_type_name(mapping[key])}, not {_type_name(kind())}")


def _check_entry(name: str, entry: Any, where: Path) -> None:
    if not name.isidentifier() or len(name) > 200:
        raise _corrupt(where, f"array name {_show(name)} is not an identifier")
    if not isinstance(entry, dict):
        raise _corrupt(where, f"array {name!r} is described by {_type_name(entry)}, not an object")
    _require(entry, {"file": str, "sha256": str, "shape": list, "dtype": str}, where, f"array {name!r}")
    if entry["file"] != f"{name}.npy":
        raise _corrupt(where, f"array {name!r}: file {_show(entry['file'])} is not the plain file name "
                              f"'{name}.npy' onepass writes; no other file is read")
    if not _SHA256.fullmatch(entry["sha256"]):
        raise _corrupt(where, f"array {name!r}: sha256 {_show(entry['sha256'])} is not 64 hexadecimal digits")
    shape = entry["shape"]
    if len(shape) > MAX_NDIM or not all(type(n) is int and 0 <= n <= MAX_DIM for n in shape):
        raise _corrupt(where, f"array {name!r}: shape {_show(shape)} is not a list of up to {MAX_NDIM} sizes "
                              f"(integers from 0 to 2^40)")


def _read_npy(name: str, entry: dict[str, Any], dir_fd: int, directory: Path) -> np.ndarray:
    """The array of file ``entry["file"]``: header checked against the manifest and the
    file's size before anything is allocated, then read once, checksummed as it is."""
    import numpy as np

    where = directory / entry["file"]
    try:
        fd, info = _open_plain_file(entry["file"], dir_fd, where)
    except FileNotFoundError:
        raise _corrupt(where, f"missing (listed in {directory / MANIFEST})") from None
    with os.fdopen(fd, "rb") as fh:
        prefix = _read_exact(fh, 10)
        if len(prefix) < 10 or prefix[:6] != _NPY_MAGIC:
            raise _corrupt(where, "cannot be read as a .npy array (no .npy magic number); the file is damaged")
        version = (prefix[6], prefix[7])
        if version == (2, 0):
            prefix += _read_exact(fh, 2)
            length = int.from_bytes(prefix[8:12], "little")
        elif version == (1, 0):
            length = int.from_bytes(prefix[8:10], "little")
        else:
            raise _corrupt(where, f"cannot be read as a .npy array (format version {version[0]}.{version[1]}, "
                                  "onepass writes 1.0 or 2.0)")
        if length > _MAX_NPY_HEADER:
            raise _corrupt(where, f"cannot be read as a .npy array (a header of {length} bytes)")
        header = _read_exact(fh, length)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:
            shape, fortran_order, dtype = reader(io.BytesIO(prefix[8:] + header), max_header_size=_MAX_NPY_HEADER)
        except Exception as exc:  # a header numpy cannot parse: ValueError, SyntaxError, TypeError...
            raise _corrupt(where, f"cannot be read as a .npy array (its header: {exc})") from None
        if dtype.hasobject or dtype.names is not None or dtype.subdtype is not None or dtype.kind not in _NPY_KINDS:
            raise _corrupt(where, f"cannot be read as a .npy array of numbers: it holds dtype {_show(dtype.descr)}, "
                                  "which onepass never writes (objects, records and bytes are refused)")
        if dtype.itemsize == 0 or fortran_order or len(shape) > MAX_NDIM:
            raise _corrupt(where, "cannot be read as a .npy array: a header onepass never writes "
                                  f"(dtype {dtype.str}, fortran_order {fortran_order}, shape {_show(shape)})")
        if list(shape) != entry["shape"] or dtype.str != entry["dtype"]:
            raise _corrupt(where, f"shape {tuple(shape)} dtype {dtype.str} differ from the manifest's "
                                  f"{tuple(entry['shape'])} {entry['dtype']}")
        offset = len(prefix) + len(header)
        nbytes = math.prod(shape) * dtype.itemsize
        if offset + nbytes != info.st_size:
            raise _corrupt(where, f"{info.st_size} bytes, where its header's shape {tuple(shape)} of {dtype.str} needs "
                                  f"{offset + nbytes}; the file is truncated or its header damaged")
        data = bytearray(nbytes)
        view, got = memoryview(data), 0
        while got < nbytes:
            n = fh.readinto(view[got:])
            if not n:
                raise _corrupt(where, "shorter than when it was opened; is it being written?")
            got += n
    digest = hashlib.sha256(prefix)
    digest.update(header)
    digest.update(data)
    if not hmac.compare_digest(digest.hexdigest(), entry["sha256"]):
        raise _corrupt(where, "checksum mismatch (sha256 differs from the manifest); the file is damaged or truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape)
    if not dtype.isnative:  # written on a machine of the other byte order: the same numbers, in this one's
        array = array.byteswap().view(dtype.newbyteorder("="))
    return array


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of the artifact at ``path``, checked against the manifest's schema."""
    directory = resolve(path)
    with _opened_directory(directory) as dir_fd:
        return _load_manifest(dir_fd, directory)


def _itemsize(dtype: str) -> int | None:
    """Bytes per item of a dtype as the manifest writes it (``<f4``, ``|b1``, ``<U5``), or
    None for one onepass does not write (read without NumPy: ``inspect`` stays light)."""
    m = re.fullmatch(r"[<>|=]?([biufcU])(\d+)", dtype)
    if m is None:
        return None
    return int(m.group(2)) * (4 if m.group(1) == "U" else 1)


def array_files_problems(path: str | os.PathLike[str], manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the artifact's array files, found without reading them: each
    must be a plain file (not a link) in the directory, of the size a .npy file of its
    manifest's shape and dtype has (a header of 64-byte blocks, then the data). A file
    truncated, grown or swapped for another shape shows; a flipped byte needs its
    checksum (:func:`read_artifact`). For ``onepass inspect``: quick, whatever the size."""
    directory = resolve(path)
    problems = []
    for name, entry in manifest["arrays"].items():
        file = f"{name}.npy"  # what read_manifest allows (no other name, no path)
        try:
            info = os.lstat(directory / file)
        except OSError:
            problems.append(f"{file}: missing")
            continue
        if not stat.S_ISREG(info.st_mode):
            problems.append(f"{file}: not a plain file")
            continue
        data = math.prod(entry["shape"]) * (_itemsize(entry["dtype"]) or -1)
        if data < 0:
            problems.append(f"{file}: dtype {entry['dtype']!r} is not one onepass writes")
            continue
        header = info.st_size - data
        if header < 64 or header % 64 or header > _MAX_NPY_HEADER + 64:
            problems.append(f"{file}: {info.st_size:,} bytes, not the size of a .npy file of shape "
                            f"{tuple(entry['shape'])} {entry['dtype']} (truncated or replaced)")
    return problems


def read_artifact(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify the artifact at ``path``: its manifest and its arrays.

    The directory is untrusted: the manifest must have the shape onepass writes, every
    array must be the plain file ``<name>.npy`` in the directory (never a link), its .npy
    header must agree with the manifest and the file's size, and its bytes with the
    manifest's sha256. Arrays of objects are refused: loading never runs code. Any failure
    is :class:`~onepass.errors.CheckpointCorruptError` naming the file and what is wrong.
    """
    directory = resolve(path)
    with _opened_directory(directory) as dir_fd:
        manifest = _load_manifest(dir_fd, directory)
        arrays = {name: _read_npy(name, entry, dir_fd, directory) for name, entry in manifest["arrays"].items()}
    return manifest, arrays


def _spec_of(specs: dict[str, Any], name: str) -> Any:
    if name in specs:
        return specs[name]
    prefixes = [key for key in specs if key.endswith("*") and name.startswith(key[:-1])]
    return specs[max(prefixes, key=len)] if prefixes else None


def check_declared(cls: type, role: str, arrays: dict[str, np.ndarray], directory: Path) -> None:
    """Refuse arrays that are not what ``cls`` declares in ``ARRAY_SPECS``: an array it
    does not hold, one missing, a dtype, a shape, or NaN/infinities where it cannot hold them."""
    import numpy as np

    specs: dict[str, Any] | None = getattr(cls, "ARRAY_SPECS", None)
    if specs is None:  # a class of no registered algorithm (a test double): nothing declared
        return
    what = f"a {cls.kind} {role}"
    for name, spec in specs.items():
        if spec.required and not name.endswith("*") and name not in arrays:
            raise _corrupt(directory / MANIFEST, f"lacks array {name!r}, which {what} holds")
    sizes: dict[str, tuple[int, str]] = {}
    for name, array in arrays.items():
        where = directory / f"{name}.npy"
        spec = _spec_of(specs, name)
        if spec is None:
            raise _corrupt(where, f"array {name!r} is none that {what} holds")
        dtype = array.dtype
        if f"{dtype.kind}{dtype.itemsize}" not in spec.dtypes and dtype.kind not in spec.dtypes:
            raise _corrupt(where, f"dtype {dtype.str}, where {what} holds {' or '.join(spec.dtypes)}")
        if spec.shape is not None:
            if array.ndim != len(spec.shape):
                raise _corrupt(where, f"{array.ndim} dimension(s) {array.shape}, where {what} holds {len(spec.shape)}")
            for axis, (size, declared) in enumerate(zip(array.shape, spec.shape, strict=True)):
                if isinstance(declared, int) and size != declared:
                    raise _corrupt(where, f"shape {array.shape}: axis {axis} must be {declared}")
                if isinstance(declared, str):
                    seen = sizes.setdefault(declared, (size, name))
                    if seen[0] != size:
                        raise _corrupt(where, f"shape {array.shape}: axis {axis} is {size}, where {seen[1]}.npy "
                                              f"has {seen[0]} for the same dimension ({declared})")
        if spec.finite and dtype.kind in "fc" and not np.isfinite(array).all():
            bad = "NaN" if np.isnan(array).any() else "an infinity (inf)"
            raise _corrupt(where, f"holds {bad}, which {what} cannot hold")


def instantiate(directory: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray], role: str) -> Any:
    """The state or model (``role``) a verified artifact holds: its kind's class, its arrays
    checked against what the class declares, built by the class's ``from_arrays``.
    Metadata the class cannot take is the corrupt-artifact error, like a damaged file."""
    from onepass.state import algorithm_of_kind

    kind = manifest["kind"]
    try:
        cls = algorithm_of_kind(kind, role)
    except InvalidParameterError:
        raise ForeignFormatError(f"{directory / MANIFEST}: kind {_show(kind)} is no {role} this onepass knows; "
                                 "was it written by another version of onepass?") from None
    check_declared(cls, role, arrays, directory)
    try:
        return cls.from_arrays(manifest["meta"], arrays)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 -- any failure to build from untrusted metadata is a damaged artifact
        raise _corrupt(directory / MANIFEST, f"its metadata and arrays do not make a {cls.kind} {role} "
                                             f"({type(exc).__name__}: {exc})") from exc
