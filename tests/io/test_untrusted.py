"""A model directory and a checkpoint are untrusted input (issue 20, findings 1-4).

Each numbered finding of the issue has its tests here: reads outside the directory (1),
valid JSON of the wrong shape (2), arrays that agree with their checksums but make no
sense (3), resume that falls back over a damaged checkpoint (4). Then a fuzz test
mutates model directories and checkpoints thousands of times: every case is refused with
the corrupt-artifact error or loads to the same model, and nothing outside the directory
is ever opened (an audit hook watches every ``open``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import onepass
from onepass import KMeansState, PCAState
from onepass.batch import Batch
from onepass.cli import main
from onepass.errors import (
    ArtifactError,
    CheckpointCorruptError,
    CheckpointSkippedWarning,
    ForeignFormatError,
    exit_code,
)
from onepass.io import load, load_checkpoint, load_model, save_checkpoint, save_model
from onepass.io._artifact import check_declared

# -- watching every open: a read outside the directory is a failure ----------------------

_OPENED: list[tuple[str, int | None]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        flags = args[2] if len(args) > 2 and isinstance(args[2], int) else None
        _OPENED.append((os.fsdecode(args[0]), flags))


sys.addaudithook(_audit)  # process-wide and permanent: it records only inside opens_outside()


def _inside(path: str, directory: Path) -> bool:
    return os.path.commonpath([os.path.abspath(path), str(directory)]) == str(directory)


_SENTINELS = ("/etc/passwd", "/dev/zero")  # files outside the zone that manifests name


@contextlib.contextmanager
def opens_outside(directory: Path, zone: Path) -> Iterator[list[str]]:
    """The files outside ``directory`` opened in the block: in ``zone`` (the canaries
    beside it), the sentinels, or by a relative path that climbs (a relative path is taken
    as opened through the descriptor of the directory or one inside it; a symbolic link
    opened without ``O_NOFOLLOW`` as read where it points). Modules imported meanwhile are
    outside the zone and not counted."""
    global _OPENED
    directory = Path(os.path.realpath(directory))
    zone = Path(os.path.realpath(zone))
    found: list[str] = []
    _OPENED = []
    try:
        yield found
    finally:
        opened, _OPENED = _OPENED, None
        for path, flags in opened:
            full = path if os.path.isabs(path) else str(directory / path)
            follows = flags is None or not flags & os.O_NOFOLLOW
            target = os.path.realpath(full) if follows else os.path.join(os.path.realpath(os.path.dirname(full)),
                                                                         os.path.basename(full))
            climbs = not os.path.isabs(path) and ".." in Path(path).parts
            if climbs or target in _SENTINELS or (_inside(target, zone) and not _inside(target, directory)):
                found.append(f"{path} -> {target}")


# -- fixtures ------------------------------------------------------------------------------


def _kmeans_state(seed: int = 1) -> KMeansState:
    rng = np.random.default_rng(0)
    state = KMeansState(3, seed=seed)
    state.update(Batch(rng.normal(size=(3000, 4)).astype(np.float32)))
    return state


@pytest.fixture(scope="module")
def state() -> KMeansState:
    return _kmeans_state()


@pytest.fixture
def model_dir(tmp_path: Path, state: KMeansState) -> Path:
    return save_model(tmp_path / "model", state.model())


@pytest.fixture
def canary(tmp_path: Path, model_dir: Path) -> Path:
    """A file outside the model directory holding a copy of one of its arrays: a loader
    that follows a path out of the directory finds a valid array with a valid checksum."""
    path = tmp_path / "canary.npy"
    shutil.copyfile(model_dir / "cluster_centers.npy", path)
    return path


def _manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / "manifest.json").read_text())


def _write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _forge_array(directory: Path, name: str, array: np.ndarray) -> None:
    """Replace array ``name`` with ``array``, its manifest entry made to agree (checksum,
    shape, dtype): only a check of what the algorithm declares can refuse it."""
    np.save(directory / f"{name}.npy", array, allow_pickle=False)
    manifest = _manifest(directory)
    manifest["arrays"][name].update(sha256=_sha256(directory / f"{name}.npy"), shape=list(array.shape),
                                    dtype=array.dtype.str)
    _write_manifest(directory, manifest)


def _refused(directory: Path, loader: Callable[[Path], Any] = load) -> str:
    with pytest.raises(CheckpointCorruptError) as info:
        loader(directory)
    assert exit_code(info.value) == 3
    return str(info.value)


def _predict(model: Path, tmp_path: Path) -> Any:
    data = tmp_path / "rows.csv"
    data.write_text("a,b,c,d\n" + "\n".join("0.5,1,2,3" for _ in range(5)) + "\n")
    return CliRunner().invoke(main, ["predict", str(model), "--data", str(data), "--out", str(tmp_path / "p.csv")],
                              catch_exceptions=False)


def test_the_watch_sees_reads_outside(tmp_path: Path, model_dir: Path, canary: Path) -> None:
    """The audit hook the tests rely on is no check that passes by construction: a naive
    reader (the loader before issue 20) is caught climbing out, reading through a link,
    opening an absolute path."""
    (model_dir / "link.npy").symlink_to(canary)
    with opens_outside(model_dir, tmp_path) as outside:
        np.load(model_dir / "../canary.npy")
        np.load(model_dir / "link.npy")
        with open(canary, "rb"):
            pass
        with open(model_dir / "cluster_centers.npy", "rb"):  # inside: not counted
            pass
    assert len(outside) == 3, outside


# -- finding 1: the loader reads outside the model directory -------------------------------


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_1_an_array_file_outside_the_directory_is_refused_unread(tmp_path: Path, model_dir: Path, canary: Path,
                                                                 where: str) -> None:
    manifest = _manifest(model_dir)
    manifest["arrays"]["cluster_centers"]["file"] = "../canary.npy" if where == "parent" else str(canary)
    _write_manifest(model_dir, manifest)
    (model_dir / "cluster_centers.npy").unlink()
    with opens_outside(model_dir, tmp_path) as outside:
        message = _refused(model_dir, load_model)
    assert not outside, outside
    assert "cluster_centers" in message and "plain file name" in message
    result = _predict(model_dir, tmp_path)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.stderr and not (tmp_path / "p.csv").exists()


def test_1_whether_a_file_exists_outside_is_not_told(tmp_path: Path, model_dir: Path) -> None:
    """No "missing" or "checksum mismatch" oracle: the same refusal for a file that exists
    and for one that does not, and neither is opened."""
    messages = []
    for target in (tmp_path / "secret.txt", tmp_path / "no-such-file.txt"):
        if target.name == "secret.txt":
            target.write_text("root:x:0:0\n")
        manifest = _manifest(model_dir)
        manifest["arrays"]["cluster_weights"]["file"] = str(target)
        _write_manifest(model_dir, manifest)
        with opens_outside(model_dir, tmp_path) as outside:
            messages.append(_refused(model_dir, load_model))
        assert not outside, outside
    assert messages[0] == messages[1]
    assert "missing" not in messages[0] and "checksum" not in messages[0]


def test_1_a_symlinked_array_is_refused(tmp_path: Path, model_dir: Path, canary: Path) -> None:
    (model_dir / "cluster_centers.npy").unlink()
    (model_dir / "cluster_centers.npy").symlink_to(canary)  # same bytes: the checksum agrees
    with opens_outside(model_dir, tmp_path) as outside:
        message = _refused(model_dir, load_model)
    assert not outside, outside
    assert "cluster_centers.npy" in message and "symbolic link" in message


def test_1_a_symlinked_manifest_is_refused(tmp_path: Path, model_dir: Path) -> None:
    elsewhere = tmp_path / "elsewhere.json"
    shutil.move(model_dir / "manifest.json", elsewhere)
    (model_dir / "manifest.json").symlink_to(elsewhere)
    with opens_outside(model_dir, tmp_path) as outside:
        message = _refused(model_dir, load_model)
    assert not outside, outside
    assert "manifest.json" in message and "symbolic link" in message


def test_1_a_directory_named_by_a_symlink_still_loads(tmp_path: Path, model_dir: Path, state: KMeansState) -> None:
    """The directory the user names may be a link (/opt/ml/model -> a volume): only what
    is inside it must be plain files."""
    (tmp_path / "link").symlink_to(model_dir)
    np.testing.assert_array_equal(load_model(tmp_path / "link")[0].cluster_centers_, state.model().cluster_centers_)


# -- finding 2: valid JSON of the wrong shape ----------------------------------------------


def _without_file(m: dict[str, Any]) -> None:
    del m["arrays"]["cluster_centers"]["file"]


def _arrays_as_list(m: dict[str, Any]) -> None:
    m["arrays"] = list(m["arrays"].values())


def _required_array_missing(m: dict[str, Any]) -> None:
    del m["arrays"]["cluster_weights"]


def _shape_not_a_list(m: dict[str, Any]) -> None:
    m["arrays"]["cluster_centers"]["shape"] = "3x4"


def _meta_not_a_dict(m: dict[str, Any]) -> None:
    m["meta"] = [1, 2]


def _version_as_string(m: dict[str, Any]) -> None:
    m["format_version"] = "1"


@pytest.mark.parametrize("damage", [_without_file, _arrays_as_list, _required_array_missing, _shape_not_a_list,
                                    _meta_not_a_dict, _version_as_string], ids=lambda f: f.__name__.strip("_"))
def test_2_a_manifest_of_the_wrong_shape_is_the_corrupt_artifact_error(tmp_path: Path, model_dir: Path,
                                                                       damage: Callable[[dict], None]) -> None:
    manifest = _manifest(model_dir)
    damage(manifest)
    _write_manifest(model_dir, manifest)
    message = _refused(model_dir, load_model)
    assert "manifest.json" in message
    assert "newer" not in message
    result = _predict(model_dir, tmp_path)
    assert result.exit_code == 3, result.output
    assert "Traceback" not in result.stderr


def test_2_a_header_declaring_a_huge_array_is_refused_before_allocating(model_dir: Path) -> None:
    """shape (1e11, 3) in the .npy header and in the manifest, the checksum agreeing: the
    file is too short for it, which is said before anything is allocated."""
    path = model_dir / "cluster_centers.npy"
    header = {"descr": "<f4", "fortran_order": False, "shape": (100_000_000_000, 3)}
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header)
        fh.write(b"\0" * 48)
    manifest = _manifest(model_dir)
    manifest["arrays"]["cluster_centers"].update(sha256=_sha256(path), shape=[100_000_000_000, 3])
    _write_manifest(model_dir, manifest)
    message = _refused(model_dir, load_model)
    assert "cluster_centers.npy" in message and "bytes" in message


def test_2_a_newer_format_version_stays_a_newer_format(model_dir: Path) -> None:
    manifest = _manifest(model_dir)
    manifest["format_version"] = 2
    _write_manifest(model_dir, manifest)
    with pytest.raises(ForeignFormatError, match="format_version 2 is newer than this onepass reads"):
        load_model(model_dir)


@pytest.mark.parametrize("damage", ["newer", "corrupt"])
def test_2_serve_answers_503_for_a_model_it_cannot_load(model_dir: Path, damage: str,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A newer format_version, like any damage, leaves the server up, /ping 503 saying why,
    and one clear log line (no traceback): it does not exit at start-up."""
    pytest.importorskip("uvicorn")
    from onepass.serve._app import create_app

    manifest = _manifest(model_dir)
    if damage == "newer":
        manifest["format_version"] = 2
    else:
        manifest["arrays"] = []
    _write_manifest(model_dir, manifest)
    app = create_app(model_dir)
    with caplog.at_level("ERROR", logger="onepass.serve"):
        app.load_now()
    assert app.model is None
    assert ("newer" if damage == "newer" else "arrays") in app.load_error
    status, _, body = _run_async(app._ping({}, None))
    assert status == 503 and b"failed to load" in body
    records = [r for r in caplog.records if r.name == "onepass.serve"]
    assert records and str(model_dir) in records[-1].getMessage() and records[-1].exc_info is None


def _run_async(coroutine: Any) -> Any:
    import asyncio

    return asyncio.run(coroutine)


# -- finding 3: arrays that agree with their checksums but make no sense -------------------


def test_3_cluster_centers_as_strings_are_refused(tmp_path: Path, model_dir: Path) -> None:
    centers = np.load(model_dir / "cluster_centers.npy")
    _forge_array(model_dir, "cluster_centers", centers.astype("<U5"))
    message = _refused(model_dir, load_model)
    assert "cluster_centers" in message and "<U5" in message
    result = _predict(model_dir, tmp_path)
    assert result.exit_code == 3, result.output


def test_3_cluster_centers_holding_nan_are_refused(tmp_path: Path, model_dir: Path) -> None:
    centers = np.load(model_dir / "cluster_centers.npy")
    centers[1, 2] = np.nan
    _forge_array(model_dir, "cluster_centers", centers)
    message = _refused(model_dir, load_model)
    assert "cluster_centers" in message and "NaN" in message
    assert _predict(model_dir, tmp_path).exit_code == 3


def test_3_arrays_that_disagree_on_the_number_of_clusters_are_refused(model_dir: Path) -> None:
    weights = np.load(model_dir / "cluster_weights.npy")
    _forge_array(model_dir, "cluster_weights", np.concatenate([weights, weights]))
    message = _refused(model_dir, load_model)
    assert "cluster_weights" in message


def test_3_a_state_with_a_nan_center_is_refused(tmp_path: Path, state: KMeansState) -> None:
    path = save_checkpoint(tmp_path / "ck", state)
    centers = np.load(path / "centers.npy")
    centers[0, 0] = np.inf
    _forge_array(path, "centers", centers)
    message = _refused(path, load_checkpoint)
    assert "centers" in message and "inf" in message


def test_every_state_and_model_declares_its_arrays(tmp_path: Path) -> None:
    """What the loader checks arrays against: declared by every registered class (the
    conformance suite's round trips check that what each writes passes it, trained; here a
    fresh state of each, which holds its empty arrays)."""
    from onepass.algorithms import load_all
    from onepass.state import ALGORITHMS, ArraySpec

    load_all()
    for algo in ALGORITHMS.values():
        for cls in (algo.state, algo.model):
            specs = getattr(cls, "ARRAY_SPECS", None)
            assert isinstance(specs, dict) and specs, f"{cls.__name__} declares no ARRAY_SPECS"
            assert all(isinstance(spec, ArraySpec) for spec in specs.values()), cls.__name__
        fresh = algo.state(**algo.tags.get("test_params", {}), seed=0)
        loaded, _ = load_checkpoint(save_checkpoint(tmp_path / algo.name, fresh))
        assert type(loaded) is algo.state


# -- finding 4: resume falls back over a damaged checkpoint --------------------------------


def _flip_a_byte(checkpoint: Path) -> None:
    target = max((p for p in checkpoint.glob("*.npy")), key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))


@pytest.fixture(scope="module")
def blobs_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(3)
    centers = rng.normal(0, 5, (4, 3))
    X = centers[rng.integers(0, 4, 4000)] + rng.normal(size=(4000, 3))
    path = tmp_path_factory.mktemp("data") / "blobs.csv"
    np.savetxt(path, X, fmt="%.5f", delimiter=",", header="a,b,c", comments="")
    return path


def _train(data: Path, ckpt: Path, **more: Any) -> Any:
    return onepass.train("kmeans", data, params={"n_clusters": 4}, seed=5, batch_size=250, checkpoint_dir=ckpt,
                         checkpoint_every_rows=500, **more)


def test_4_resume_skips_a_damaged_checkpoint_and_ends_with_the_undamaged_model(tmp_path: Path,
                                                                               blobs_csv: Path) -> None:
    never_damaged = _train(blobs_csv, tmp_path / "straight")
    ckpt = tmp_path / "ckpt"
    paused = _train(blobs_csv, ckpt, max_rows=2000)
    assert paused.paused
    kept = sorted(ckpt.glob("ckpt-*"))
    assert len(kept) == 3, "three checkpoints are kept by default"
    newest, older = kept[-1], kept[-2]
    older_rows = json.loads((older / "manifest.json").read_text())["rows_seen"]
    _flip_a_byte(newest)
    records: list[dict[str, Any]] = []
    with pytest.warns(UserWarning, match=rf"{newest.name}.*checksum") as caught:
        resumed = _train(blobs_csv, ckpt, resume=True, metrics=_Lines(records))
    assert older.name in str(caught[0].message)
    start = records[0]
    assert start["resumed_from"] == str(older)
    assert start["skipped_checkpoints"][0]["checkpoint"] == str(newest)
    assert resumed.n_rows_seen == never_damaged.n_rows_seen == 4000
    assert records[-1]["rows_this_run"] == 4000 - older_rows, "the rows since the older checkpoint are read again"
    for a, b in zip(never_damaged.model.to_arrays()[1].values(), resumed.model.to_arrays()[1].values(), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.state.to_arrays()[1]["centers"],
                                  never_damaged.state.to_arrays()[1]["centers"])


class _Lines:
    """A metrics sink that keeps the records."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                self.records.append(json.loads(line))
        return len(text)

    def flush(self) -> None:
        pass


def test_4_keep_checkpoints_and_no_good_one_deleted_first(tmp_path: Path, blobs_csv: Path) -> None:
    result = CliRunner().invoke(main, ["train", "kmeans", "--data", str(blobs_csv), "--n-clusters", "4",
                                       "--batch-size", "250", "--checkpoint-dir", str(tmp_path / "ck"),
                                       "--checkpoint-every-rows", "500", "--keep-checkpoints", "5", "-q"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "ck").glob("ckpt-*"))) == 5
    state = _kmeans_state()
    directory = tmp_path / "one"
    for _ in range(3):
        save_checkpoint(directory, state, keep=1)
    assert [p.name for p in directory.glob("ckpt-*")] == ["ckpt-000003"]


def test_4_resume_with_every_checkpoint_damaged_says_so(tmp_path: Path, blobs_csv: Path) -> None:
    ckpt = tmp_path / "ckpt"
    _train(blobs_csv, ckpt, max_rows=1000)
    for path in ckpt.glob("ckpt-*"):
        _flip_a_byte(path)
    with pytest.raises(CheckpointCorruptError, match="no checkpoint in .* verifies"):
        _train(blobs_csv, ckpt, resume=True)
    result = CliRunner().invoke(main, ["train", "kmeans", "--data", str(blobs_csv), "--n-clusters", "4",
                                       "--checkpoint-dir", str(ckpt), "--resume", "-q"], catch_exceptions=False)
    assert result.exit_code == 3
    assert "verifies" in result.stderr


# -- the fuzz test: mutated model directories and checkpoints ------------------------------
#
# Each case writes one artifact afresh into its own directory, applies one to three
# mutations and loads it with an audit hook watching every open. Mutations of the files,
# their names and the manifest's structure must be refused with the corrupt-artifact error
# (ArtifactError: a newer format or an unknown kind is ForeignFormatError) or load to the
# very model or state that was saved. A forged array (its manifest entry made to agree) must
# be refused when it breaks what the class declares, or be the same numbers (another byte
# order, a .npy 2.0 header). A checkpoint directory may fall back to its older checkpoint,
# saying so. Metadata values (which no checksum covers) must be refused or load.

def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _fuzz_artifacts() -> dict[str, dict[str, Any]]:
    """The artifacts mutated: their files, what loads them and what they hold."""
    import tempfile

    rng = np.random.default_rng(4)
    kmeans = _kmeans_state()
    kmeans.update(Batch(rng.normal(size=(40, 4)).astype(np.float32)))  # rows in the buffer too
    pca = PCAState(2, seed=0)
    pca.update(Batch(rng.normal(size=(300, 5)).astype(np.float32)))
    older = _kmeans_state(seed=2)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for name, write, obj in (
            ("kmeans-model", lambda p: save_model(p, kmeans.model()), kmeans.model()),
            ("pca-model", lambda p: save_model(p, pca.model()), pca.model()),
            ("kmeans-state", lambda p: save_checkpoint(p, kmeans), kmeans),
        ):
            path = write(base / name)
            out[name] = {"files": _files(path), "expected": [obj.to_arrays()], "dir": "", "loader": load,
                         "declared": type(obj).ARRAY_SPECS}
        save_checkpoint(base / "ckdir", older)
        save_checkpoint(base / "ckdir", kmeans)
        out["checkpoint-dir"] = {"files": _files(base / "ckdir"), "dir": "ckpt-000002",
                                 "loader": lambda p: load_checkpoint(p)[0],
                                 "expected": [kmeans.to_arrays(), older.to_arrays()], "declared": KMeansState.ARRAY_SPECS}
    return out


ARTIFACTS = _fuzz_artifacts()

_NAMES = ["../canary.npy", "../../canary.npy", "{canary}", "/etc/passwd", "/dev/zero", "sub/{name}.npy", "..", ".", "",
          "./{name}.npy", "{name}.npy/", "{name}.npy\x00", "{other}.npy", "{name}.NPY", "manifest.json", "~/{name}.npy",
          " {name}.npy", "..\\{name}.npy", "%2e%2e/canary.npy", "{name}.npy/../{name}.npy"]
_SCALARS = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
_JSON = _SCALARS | st.lists(_SCALARS, max_size=3) | st.dictionaries(st.text(max_size=6), _SCALARS, max_size=3)
_TOP_KEYS = ["format", "format_version", "role", "kind", "meta", "arrays", "rows_seen", "cursor", "epoch", "finished",
             "algorithm", "distributed", "skipped"]
_SPECIAL = ["onepass", 1, "1", 1.0, True, 2, 0, -1, 2**63, "model", "state", "checkpoint", "pca", "kmeans", "forecast",
            "", None, [], {}, -5]
_DTYPES = ["<f8", "<f4", ">f4", ">f8", "<f2", "<i8", "<i4", "|b1", "<U5", "<c8", "|S5", "|O", "[('a', '<f4')]", "<M8[s]"]

_manifest_ops = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(_TOP_KEYS), st.sampled_from(_SPECIAL) | _JSON),
    st.tuples(st.just("delete"), st.sampled_from(_TOP_KEYS)),
    st.tuples(st.just("entry_file"), st.integers(0, 9), st.sampled_from(_NAMES)),
    st.tuples(st.just("entry_set"), st.integers(0, 9), st.sampled_from(["file", "sha256", "shape", "dtype", "extra"]),
              st.sampled_from(_SPECIAL) | _JSON | st.sampled_from(_DTYPES)),
    st.tuples(st.just("entry_delete_key"), st.integers(0, 9), st.sampled_from(["file", "sha256", "shape", "dtype"])),
    st.tuples(st.just("entry_drop"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("entry_copy"), st.integers(0, 9), st.sampled_from(["extra", "__init__", "a-b", "x" * 300])),
    st.tuples(st.just("entry_shape"), st.integers(0, 9), st.sampled_from(["add", "drop", "grow", "huge", "negative"])),
)
_file_ops = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 9), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("truncate"), st.integers(0, 9), st.integers(0, 10**6)),
    st.tuples(st.just("append"), st.integers(0, 9), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("replace"), st.integers(0, 9),
              st.sampled_from(["symlink_canary", "symlink_missing", "directory", "fifo", "empty", "delete"])),
    st.tuples(st.just("manifest_file"), st.sampled_from(["symlink_canary", "fifo", "directory", "delete", "empty",
                                                         "deep", "huge_number", "latin1", "nan"])),
    st.tuples(st.just("latest"), st.sampled_from(["symlink_canary", "older", "garbage", "delete", "fifo"])),
    st.tuples(st.just("forge"), st.integers(0, 9),
              st.sampled_from(["astype", "nan", "inf", "slice", "extra_axis", "scalar", "fortran", "object", "huge_header",
                               "version2", "structured"]),
              st.sampled_from(_DTYPES[:12])),
)


class _Case:
    """One artifact written into a fresh directory, with canaries outside it."""

    def __init__(self, zone: Path, name: str) -> None:
        import tempfile

        self.spec = ARTIFACTS[name]
        self.root = Path(tempfile.mkdtemp(dir=zone))  # the directory handed to the loader
        for rel, data in self.spec["files"].items():
            (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.root / rel).write_bytes(data)
        self.dir = self.root / self.spec["dir"] if self.spec["dir"] else self.root  # the artifact mutated
        self.manifest = json.loads((self.dir / "manifest.json").read_bytes())
        self.names = sorted(self.manifest["arrays"])
        self.canary = zone / "canary.npy"
        self.manifest_written = False
        self.sliced = False

    def name_at(self, i: int) -> str:
        return self.names[i % len(self.names)]

    def entry(self, i: int) -> dict[str, Any] | None:
        arrays = self.manifest.get("arrays")
        if isinstance(arrays, dict) and self.names and isinstance(arrays.get(self.name_at(i)), dict):
            return arrays[self.name_at(i)]
        return None

    def write_manifest(self) -> None:
        if not self.manifest_written and (self.dir / "manifest.json").is_file() \
                and not (self.dir / "manifest.json").is_symlink():
            (self.dir / "manifest.json").write_text(json.dumps(self.manifest))

    def replace(self, path: Path, how: str, canary: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
        if how == "symlink_canary":
            path.symlink_to(canary)
        elif how == "symlink_missing":
            path.symlink_to(canary.parent / "no-such-file")
        elif how == "directory":
            path.mkdir()
        elif how == "fifo":
            os.mkfifo(path)
        elif how == "empty":
            path.write_bytes(b"")

    def apply(self, op: tuple[Any, ...]) -> None:  # noqa: C901 -- one branch per mutation
        kind, *args = op
        if kind == "set":
            self.manifest[args[0]] = args[1]
        elif kind == "delete":
            self.manifest.pop(args[0], None)
        elif kind in ("entry_file", "entry_set", "entry_delete_key", "entry_shape"):
            entry = self.entry(args[0])
            if entry is None:
                return
            name, other = self.name_at(args[0]), self.name_at(args[0] + 1)
            if kind == "entry_file":
                entry["file"] = args[1].format(name=name, other=other, canary=self.canary)
            elif kind == "entry_set":
                entry[args[1]] = args[2]
            elif kind == "entry_delete_key":
                entry.pop(args[1], None)
            elif isinstance(entry.get("shape"), list) and all(type(n) is int for n in entry["shape"]):
                shape = entry["shape"]
                entry["shape"] = {"add": shape + [1], "drop": shape[:-1], "grow": [n + 1 for n in shape],
                                  "huge": [10**11] + shape[1:], "negative": [-1] + shape[1:]}[args[1]]
        elif kind == "entry_drop":
            arrays = self.manifest.get("arrays")
            if isinstance(arrays, dict) and self.names:
                arrays.pop(self.name_at(args[0]), None)
                if args[1]:
                    self.replace(self.dir / f"{self.name_at(args[0])}.npy", "delete", self.canary)
        elif kind == "entry_copy":
            entry = self.entry(args[0])
            if entry is not None:
                self.manifest["arrays"][args[1]] = dict(entry)
        elif kind in ("flip", "truncate", "append", "replace", "forge"):
            path = self.dir / f"{self.name_at(args[0])}.npy"
            if kind == "replace":
                self.replace(path, args[1], self.canary)
                return
            if not path.is_file() or path.is_symlink():
                return
            data = bytearray(path.read_bytes())
            if kind == "flip" and data:
                data[args[1] % len(data)] ^= args[2]
            elif kind == "truncate":
                data = data[: args[1] % max(len(data), 1)]
            elif kind == "append":
                data += args[1]
            elif kind == "forge":
                self.forge(path, *args[1:])
                return
            path.write_bytes(bytes(data))
        elif kind == "manifest_file":
            self.write_manifest()
            self.manifest_written = True
            path = self.dir / "manifest.json"
            how = args[0]
            if how in ("symlink_canary", "fifo", "directory", "delete", "empty"):
                outside = self.canary.parent / "canary-manifest.json"
                outside.write_text(json.dumps(self.manifest))
                self.replace(path, how, outside)
            elif not path.is_file() or path.is_symlink():  # a link or a FIFO put there by an earlier mutation
                return
            elif how == "deep":
                path.write_text("[" * 100_000 + "]" * 100_000)
            elif how == "huge_number":
                path.write_bytes(path.read_bytes().replace(b'"format_version": 1', b'"format_version": 1' + b"0" * 5000))
            elif how == "latin1":
                path.write_bytes(path.read_bytes().replace(b'"onepass"', b'"onepass\xe9"'))
            elif how == "nan":
                path.write_bytes(path.read_bytes().replace(b'"format_version": 1', b'"format_version": NaN'))
        elif kind == "latest" and (self.root / "LATEST").exists():
            how, latest = args[0], self.root / "LATEST"
            if how == "symlink_canary":
                outside = self.canary.parent / "canary-latest"
                outside.write_text("ckpt-000002\n")
                self.replace(latest, "symlink_canary", outside)
            elif how in ("older", "garbage"):
                self.replace(latest, "delete", self.canary)  # never written through a FIFO or a link put there
                latest.write_text("ckpt-000001\n" if how == "older" else "../../etc\n")
            else:
                self.replace(latest, how, self.canary)

    def is_shared(self, dimension: Any) -> bool:
        """Whether another declared array has ``dimension`` (a size two arrays must agree on)."""
        return isinstance(dimension, str) and sum(
            dimension in (spec.shape or ()) for spec in self.spec["declared"].values()) > 1

    def forge(self, path: Path, how: str, dtype: str) -> None:
        """Rewrite an array as saved, transformed, and make its manifest entry agree
        (checksum, shape, dtype)."""
        entry = self.entry(self.names.index(path.stem)) if path.stem in self.names else None
        declared = self.spec["declared"][path.stem]
        original = self.spec["files"].get(path.relative_to(self.root).as_posix())
        if original is None:
            return
        array = np.load(io.BytesIO(original), allow_pickle=False)  # what was saved: earlier damage is not signed
        if how == "astype":
            try:
                array = array.astype(dtype)
            except (TypeError, ValueError):
                return
        elif how in ("nan", "inf"):
            if not (array.dtype.kind == "f" and array.size and declared.finite):
                return  # where the class holds NaN, a forged one is another model, not a damaged one
            array = array.copy()
            array.flat[array.size // 2] = np.nan if how == "nan" else -np.inf
        elif how == "slice":
            if self.sliced or not (array.ndim and array.shape[0] and self.is_shared(declared.shape[0])):
                return  # one row less of every array of a size (or of one no other is tied to): another model
            self.sliced = True
            array = array[:-1]
        elif how == "extra_axis":
            array = array[None]
        elif how == "scalar":
            array = np.asarray(array.ravel()[:1].sum() if array.size else 0, dtype=array.dtype)
        elif how == "fortran" and array.ndim == 2:
            array = np.asfortranarray(array.T)  # written with fortran_order: True
        elif how == "structured":
            array = np.zeros(array.shape, dtype=[("a", "<f4")])
        with open(path, "wb") as fh, contextlib.suppress(ValueError):  # an object array np.save refuses
            if how == "object":
                np.save(fh, np.array([object()], dtype=object), allow_pickle=True)
            elif how == "huge_header":
                np.lib.format.write_array_header_1_0(fh, {"descr": array.dtype.str, "fortran_order": False,
                                                          "shape": (10**11, *array.shape[1:])})
                fh.write(array.tobytes())
            elif how == "version2":
                np.lib.format.write_array(fh, array, version=(2, 0))
            else:
                np.save(fh, array, allow_pickle=False)
        if entry is not None:
            entry["sha256"] = _sha256(path)
            entry["shape"] = [10**11, *array.shape[1:]] if how == "huge_header" else list(array.shape)
            entry["dtype"] = "|O" if how == "object" else array.dtype.str


@pytest.fixture(scope="module")
def zone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the cases' directories go (in memory when /dev/shm is there: thousands of
    directories are written and removed), and beside them the canary: a file outside every
    case's directory holding a valid array (with the checksum of a case's own array)."""
    import tempfile

    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else tmp_path_factory.getbasetemp()
    path = Path(tempfile.mkdtemp(prefix="onepass-fuzz-", dir=base))
    (path / "canary.npy").write_bytes(ARTIFACTS["kmeans-model"]["files"]["cluster_centers.npy"])
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _same(a: tuple[dict, dict], b: tuple[dict, dict]) -> bool:
    if json.dumps(a[0], sort_keys=True) != json.dumps(b[0], sort_keys=True) or a[1].keys() != b[1].keys():
        return False
    return all(a[1][k].dtype == b[1][k].dtype and np.array_equal(a[1][k], b[1][k], equal_nan=a[1][k].dtype.kind == "f")
               for k in a[1])


def _run_case(zone: Path, name: str, ops: list[tuple[Any, ...]]) -> tuple[Any, list[str], bool]:
    """Write, mutate and load one case: (what loaded or the error, files read outside, skipped)."""
    import warnings

    case = _Case(zone, name)
    try:
        for op in ops:
            case.apply(op)
        case.write_manifest()
        with warnings.catch_warnings(record=True) as caught, opens_outside(case.root, zone) as outside:
            warnings.simplefilter("always")
            try:
                loaded = case.spec["loader"](case.root)
            except ArtifactError as exc:
                loaded = exc
        skipped = any(issubclass(w.category, CheckpointSkippedWarning) for w in caught)
        return loaded, outside, skipped
    finally:
        shutil.rmtree(case.root, ignore_errors=True)


def _fuzz(n: int) -> Any:
    """Hypothesis settings for ``n`` cases (times ONEPASS_FUZZ_SCALE, to fuzz longer by hand)."""
    scale = float(os.environ.get("ONEPASS_FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, int(n * scale)), deadline=None, suppress_health_check=list(HealthCheck),
                    database=None)


def _check_mutated(zone: Path, name: str, ops: list[tuple[Any, ...]]) -> None:
    loaded, outside, skipped = _run_case(zone, name, ops)
    assert not outside, f"{name}: read outside the directory: {outside}"
    if isinstance(loaded, ArtifactError):
        return
    if any(op[:2] == ("set", "meta") and isinstance(op[2], dict) for op in ops):
        return  # other metadata: may be another model (test_fuzz_metadata_values_are_refused_or_load)
    got = loaded.to_arrays()
    newest, *older = ARTIFACTS[name]["expected"]
    if _same(got, newest):
        return
    pointed = ("latest", "older") in ops  # LATEST names the older one: it is trusted first
    assert older and _same(got, older[0]) and (skipped or pointed), f"{name}: loaded something else than was saved"


def test_fuzz_unmutated_artifacts_load_unwatched_reads_only(zone: Path) -> None:
    for name in ARTIFACTS:  # (and what loading imports is imported before the fuzz watches)
        loaded, outside, skipped = _run_case(zone, name, [])
        assert not outside and not skipped and _same(loaded.to_arrays(), ARTIFACTS[name]["expected"][0])


@_fuzz(600)
@given(ops=st.lists(st.one_of(_manifest_ops, _file_ops), min_size=1, max_size=3))
def test_fuzz_a_mutated_artifact_is_refused_or_the_same(zone: Path, ops: list[tuple[Any, ...]]) -> None:
    """The same mutations of each artifact (a model of K-Means and of PCA, a K-Means
    checkpoint, a checkpoint directory of two): 4 cases an example."""
    for name in ARTIFACTS:
        _check_mutated(zone, name, ops)


_META = {name: json.loads(ARTIFACTS[name]["files"]["manifest.json"])["meta"]
         for name in ("kmeans-model", "kmeans-state", "pca-model")}


@_fuzz(250)
@given(changes=st.lists(st.tuples(st.integers(0, 99), st.sampled_from(_SPECIAL) | _JSON), min_size=1, max_size=3))
def test_fuzz_metadata_values_are_refused_or_load(zone: Path, changes: list[tuple[int, Any]]) -> None:
    """Values inside ``meta`` are covered by no checksum: changed, they may make another
    model, but never another exception than the corrupt-artifact error, nor a read outside
    (3 cases an example)."""
    for name, meta in _META.items():
        keys = sorted(meta)
        ops = [("set", "meta", {**meta, **{keys[i % len(keys)]: value for i, value in changes}})]
        loaded, outside, _ = _run_case(zone, name, ops)
        assert not outside, f"{name}: read outside the directory: {outside}"
        if not isinstance(loaded, ArtifactError):
            check_declared(type(loaded), "model" if "model" in name else "state", loaded.to_arrays()[1], Path("."))


def test_4_the_command_line_says_which_checkpoint_it_skipped(tmp_path: Path, blobs_csv: Path) -> None:
    """As a line for people (``onepass: warning: ...``), not a Python warning with its source."""
    ckpt = tmp_path / "ckpt"
    _train(blobs_csv, ckpt, max_rows=1000)
    newest = sorted(ckpt.glob("ckpt-*"))[-1]
    _flip_a_byte(newest)
    result = CliRunner().invoke(main, ["train", "kmeans", "--data", str(blobs_csv), "--n-clusters", "4",
                                       "--checkpoint-dir", str(ckpt), "--resume", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "onepass: warning: " in result.stderr and newest.name in result.stderr
    assert "warnings.warn" not in result.stderr and "Warning:" not in result.stderr
