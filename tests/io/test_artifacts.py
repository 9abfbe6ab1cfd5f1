"""Checkpoints and model artifacts: round trips, and clear refusals of bad files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onepass import KMeansState, load
from onepass.batch import Batch
from onepass.errors import ArtifactError, CheckpointCorruptError, ForeignFormatError
from onepass.io import (
    latest_checkpoint,
    load_checkpoint,
    load_model,
    read_artifact,
    save_checkpoint,
    save_model,
    write_artifact,
)


@pytest.fixture
def state() -> KMeansState:
    rng = np.random.default_rng(0)
    s = KMeansState(3, seed=1)
    s.update(Batch(rng.normal(size=(5000, 4)).astype(np.float32)))
    return s


def test_artifact_roundtrip_is_exact(tmp_path: Path) -> None:
    arrays = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], dtype=np.int64)}
    write_artifact(tmp_path / "x", role="model", kind="kmeans", meta={"k": 3}, arrays=arrays, extra={"note": "hi"})
    manifest, loaded = read_artifact(tmp_path / "x")
    assert manifest["meta"] == {"k": 3} and manifest["note"] == "hi" and manifest["format_version"] == 1
    for name in arrays:
        assert loaded[name].dtype == arrays[name].dtype
        np.testing.assert_array_equal(loaded[name], arrays[name])
    assert not list(tmp_path.glob(".x.*")), "temporary siblings left behind"


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="object"):
        write_artifact(tmp_path / "x", role="model", kind="k", meta={}, arrays={"a": np.array([{}], dtype=object)})


def test_damaged_array_names_the_file(tmp_path: Path, state: KMeansState) -> None:
    path = save_checkpoint(tmp_path, state)
    target = path / "centers.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(CheckpointCorruptError, match=r"centers\.npy.*checksum"):
        read_artifact(path)


def test_truncated_array_names_the_file(tmp_path: Path, state: KMeansState) -> None:
    path = save_checkpoint(tmp_path, state)
    target = path / "weights.npy"
    target.write_bytes(target.read_bytes()[:20])
    with pytest.raises(CheckpointCorruptError, match=r"weights\.npy"):
        load_checkpoint(path)


def test_missing_array_file(tmp_path: Path, state: KMeansState) -> None:
    path = save_checkpoint(tmp_path, state)
    (path / "sse.npy").unlink()
    with pytest.raises(CheckpointCorruptError, match=r"sse\.npy: missing"):
        read_artifact(path)


def test_truncated_manifest(tmp_path: Path, state: KMeansState) -> None:
    path = save_checkpoint(tmp_path, state)
    manifest = path / "manifest.json"
    manifest.write_text(manifest.read_text()[:50])
    with pytest.raises(CheckpointCorruptError, match=r"manifest\.json: not valid JSON"):
        read_artifact(path)


def test_foreign_directory_and_newer_version(tmp_path: Path, state: KMeansState) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ForeignFormatError, match="no manifest.json"):
        load(tmp_path / "empty")
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ForeignFormatError, match="not a onepass manifest"):
        read_artifact(other)
    path = save_checkpoint(tmp_path / "ck", state)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ForeignFormatError, match="format_version 99 is newer"):
        read_artifact(path)


def test_pickled_npy_is_refused(tmp_path: Path, state: KMeansState) -> None:
    """A .npy holding pickled objects never runs: allow_pickle=False refuses it."""
    path = save_checkpoint(tmp_path, state)
    target = path / "weights.npy"
    np.save(target, np.array([object()], dtype=object), allow_pickle=True)
    manifest = json.loads((path / "manifest.json").read_text())
    import hashlib

    manifest["arrays"]["weights"]["sha256"] = hashlib.sha256(target.read_bytes()).hexdigest()
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointCorruptError, match="cannot be read"):
        read_artifact(path)


def test_checkpoint_dir_keeps_the_newest_and_latest_falls_back(tmp_path: Path, state: KMeansState) -> None:
    paths = [save_checkpoint(tmp_path, state, extra={"i": i}) for i in range(5)]
    kept = sorted(p.name for p in tmp_path.glob("ckpt-*"))
    assert kept == [p.name for p in paths[-3:]], "three are kept by default"
    assert (tmp_path / "LATEST").read_text().strip() == paths[-1].name
    # Damage the newest: the one before is used.
    (paths[-1] / "manifest.json").write_text("{")
    assert latest_checkpoint(tmp_path) == paths[-2]
    with pytest.warns(UserWarning, match=f"skipped {paths[-1].name}"):
        _, manifest = load_checkpoint(tmp_path)
    assert manifest["i"] == 3


def test_leftovers_of_killed_writers_are_ignored_and_cleaned(tmp_path: Path, state: KMeansState) -> None:
    save_checkpoint(tmp_path, state)
    junk = tmp_path / ".ckpt-000002.tmp-123-abcd"
    junk.mkdir()
    (junk / "centers.npy").write_bytes(b"half")
    assert latest_checkpoint(tmp_path).name == "ckpt-000001"
    save_checkpoint(tmp_path, state)
    assert not junk.exists()


def test_load_dispatches_on_what_is_there(tmp_path: Path, state: KMeansState) -> None:
    save_checkpoint(tmp_path / "ck", state)
    assert isinstance(load(tmp_path / "ck"), KMeansState)
    model = state.model()
    save_model(tmp_path / "m", model)
    loaded = load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_)
    with pytest.raises(ForeignFormatError, match="not a model"):
        load_model(tmp_path / "ck" / "ckpt-000001")
    with pytest.raises(ArtifactError):
        load(tmp_path / "nothing-here")


def test_replacing_a_model_directory(tmp_path: Path, state: KMeansState) -> None:
    save_model(tmp_path / "m", state.model(2))
    save_model(tmp_path / "m", state.model(3))
    assert load(tmp_path / "m").n_clusters == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
