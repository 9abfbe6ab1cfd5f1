"""The ``onepass`` command end to end: exit codes, messages, help, metrics, bad records.

Fast cases run in process with click's CliRunner; the ones that are about the process
itself (stdout holding only JSON, stdin from a pipe, stderr of a real failure) run
``python -m onepass.cli`` in a subprocess, as a user's shell would.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from onepass.cli import main

N_ROWS = 600


def _write_blobs_csv(path: Path, n_rows: int = N_ROWS, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [6.0, 6.0], [0.0, 6.0]])
    X = centers[rng.integers(0, 3, n_rows)] + rng.normal(scale=0.5, size=(n_rows, 2))
    np.savetxt(path, X, fmt="%.6f", delimiter=",", header="a,b", comments="")
    return X


# A header, three good rows and two bad ones: line 3 has a non-number in column "b",
# line 5 has one column instead of two.
BAD_CSV = "a,b\n1,2\n3,x\n5,6\n7\n8,9\n"
BAD_RAW_LINES = ["3,x", "7"]


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "blobs.csv"
    _write_blobs_csv(path)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_csv: Path) -> Path:
    """A model directory trained with --n-clusters 3 (so 16 centers are kept)."""
    out = tmp_path_factory.mktemp("trained") / "model"
    result = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "--seed", "1",
                    "--out", str(out), "-q")
    assert result.exit_code == 0, result.output
    return out


def invoke(*args: str, input: str | None = None):  # noqa: ANN201 (click's Result)
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "onepass.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def read_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


# -- exit codes ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["train", "kmeans", "--data", "{csv}", "--no-such-option", "1"], "No such option"),
    (["train", "kmeans", "--n-clusters", "3"], "Missing option '--data'"),
    (["train", "kmeans", "--data", "-", "--epochs", "2", "--out", "{tmp}/m"], "stdin"),
    (["train", "kmeans", "--data", "{csv}", "--checkpoint-every-rows", "100", "--out", "{tmp}/m"], "--checkpoint-dir"),
    (["train", "kmeans", "--data", "{csv}", "--n-clusters", "0", "--out", "{tmp}/m"], "n_clusters=0"),
    (["train", "no-such-algorithm", "--data", "{csv}"], "No such command"),
    (["predict", "{model}", "--out", "{tmp}/p.csv"], "Missing option '--data'"),
    (["finalize", "{model}", "--n-clusters", "2"], "Missing option '--out'"),
    (["finalize", "{model}", "--no-such-setting", "2", "--out", "{tmp}/m"], "--no-such-setting"),
    (["finalize", "{model}", "--n-clusters", "0", "--out", "{tmp}/m"], "n_clusters=0"),
])
def test_usage_errors_exit_2(args, message, data_csv, trained, tmp_path):
    args = [a.format(csv=data_csv, model=trained, tmp=tmp_path) for a in args]
    result = invoke(*args, input="")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert not (tmp_path / "m").exists()


def test_finalize_more_clusters_than_kept_names_the_valid_range(trained, tmp_path):
    from onepass.algorithms.kmeans import KMeansState

    kept = KMeansState(3).n_centers  # n_clusters=3 with extra_center_factor="auto" keeps 16
    too_many = invoke("finalize", str(trained), "--n-clusters", str(kept + 1), "--out", str(tmp_path / "m31"))
    assert too_many.exit_code == 2
    assert f"n_clusters={kept + 1}" in too_many.stderr
    assert f"n_clusters <= {kept}" in too_many.stderr
    assert not (tmp_path / "m31").exists()
    # The upper end of the range is valid.
    at_limit = invoke("finalize", str(trained), "--n-clusters", str(kept), "--out", str(tmp_path / "m30"))
    assert at_limit.exit_code == 0, at_limit.stderr
    assert manifest(tmp_path / "m30")["arrays"]["cluster_centers"]["shape"] == [kept, 2]


def test_bad_record_exit_3_names_file_line_and_column(tmp_path):
    (tmp_path / "bad.csv").write_text(BAD_CSV)
    proc = run_cli("train", "kmeans", "--data", "bad.csv", "--n-clusters", "1", "--out", "m", cwd=tmp_path)
    assert proc.returncode == 3
    assert "bad.csv" in proc.stderr
    assert "line 3" in proc.stderr
    assert "column 'b'" in proc.stderr
    assert "'x' is not a number" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m").exists()


def test_bad_column_count_exit_3_names_line_and_counts(tmp_path):
    (tmp_path / "short.csv").write_text("a,b\n1,2\n3,4\n7\n")
    result = invoke("train", "kmeans", "--data", str(tmp_path / "short.csv"), "--n-clusters", "1", "--out", str(tmp_path / "m"))
    assert result.exit_code == 3
    assert "line 4 of" in result.stderr and "short.csv" in result.stderr
    assert "expected 2 columns, got 1" in result.stderr


@pytest.mark.parametrize("content", ["", "a,b\n"], ids=["empty-file", "header-only"])
def test_empty_csv_exit_3_with_clear_message(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    result = invoke("train", "kmeans", "--data", str(path), "--n-clusters", "2", "--out", str(tmp_path / "m"))
    assert result.exit_code == 3
    assert str(path) in result.stderr
    assert "no rows" in result.stderr
    assert not (tmp_path / "m").exists()


def test_missing_data_file_exit_3(tmp_path):
    result = invoke("train", "kmeans", "--data", str(tmp_path / "nope-*.csv"), "--n-clusters", "2", "--out", str(tmp_path / "m"))
    assert result.exit_code == 3
    assert "nope-*.csv" in result.stderr
    assert "matches no file" in result.stderr


def _corrupt_array(model: Path) -> str:
    (model / "cluster_centers.npy").write_bytes(b"not an array")
    return "cluster_centers.npy"


def _truncate_manifest(model: Path) -> str:
    text = (model / "manifest.json").read_text()
    (model / "manifest.json").write_text(text[: len(text) // 2])
    return "manifest.json"


def _delete_array(model: Path) -> str:
    (model / "cluster_weights.npy").unlink()
    return "cluster_weights.npy"


def _empty_directory(model: Path) -> str:
    for f in model.iterdir():
        if f.is_file():
            f.unlink()
    return "manifest.json"


@pytest.mark.parametrize(("damage", "code"), [(_corrupt_array, 3), (_truncate_manifest, 3), (_delete_array, 3),
                                            (_empty_directory, 1)])
def test_damaged_model_directory_exit_3(trained, data_csv, tmp_path, damage, code):
    """A damaged model is bad input (exit 3); a directory that is no model at all, exit 1."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    culprit = damage(model)
    result = invoke("predict", str(model), "--data", str(data_csv), "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == code
    assert culprit in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "p.csv").exists()


def test_damaged_state_exit_3_for_finalize_and_inspect(trained, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    (model / "state" / "centers.npy").write_bytes(b"garbage")
    result = invoke("finalize", str(model), "--n-clusters", "2", "--out", str(tmp_path / "k2"))
    assert result.exit_code == 3
    assert "centers.npy" in result.stderr and "damaged" in result.stderr
    assert not (tmp_path / "k2").exists()
    _truncate_manifest(model)
    inspected = invoke("inspect", str(model))
    assert inspected.exit_code == 3
    assert "manifest.json" in inspected.stderr


# -- help -----------------------------------------------------------------------------------


def _command(path: list[str]) -> click.Command:
    ctx = click.Context(main)
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        found = cmd.get_command(ctx, name)
        assert found is not None, name
        cmd = found
    return cmd


def _option_names(cmd: click.Command) -> list[str]:
    ctx = click.Context(cmd)
    names = []
    for param in cmd.get_params(ctx):
        if isinstance(param, click.Option):
            names += [*param.opts, *param.secondary_opts]
    return names


HELP_PATHS = [[], ["train"], ["train", "kmeans"], ["predict"], ["inspect"], ["finalize"]]


@pytest.mark.parametrize("path", HELP_PATHS, ids=lambda p: " ".join(["onepass", *p]))
def test_help_short_flag_mentions_every_option(path):
    cmd = _command(path)
    result = invoke(*path, "-h")
    assert result.exit_code == 0, result.output
    names = _option_names(cmd)
    assert "--help" in names and len(names) >= 2
    missing = [n for n in names if n not in result.stdout]
    assert not missing, f"'onepass {' '.join(path)} -h' does not mention {missing}"
    if isinstance(cmd, click.Group):
        for sub in cmd.list_commands(click.Context(cmd)):
            assert sub in result.stdout


@pytest.mark.parametrize("path", [p for p in HELP_PATHS if p != ["finalize"]],
                         ids=lambda p: " ".join(["onepass", *p]))
def test_help_long_flag_mentions_every_option(path):
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    missing = [n for n in _option_names(_command(path)) if n not in result.stdout]
    assert not missing


def test_finalize_long_help_flag():
    result = invoke("finalize", "--help")
    assert result.exit_code == 0, result.stderr
    assert "--out" in result.stdout


def test_help_teaches_the_finalize_and_train_settings():
    kmeans = invoke("train", "kmeans", "-h").stdout
    for option in ("--n-clusters", "--extra-center-factor", "--half-life", "--init-size"):
        assert option in kmeans
    assert "Run 'onepass train ALGO --help'" in invoke("train", "-h").stdout
    assert "--n-clusters K" in invoke("finalize", "-h").stdout


# -- metrics, bad records, checkpoints, epochs ---------------------------------------------


@pytest.mark.parametrize("mode", ["skip", "quarantine"])
def test_bad_records_counted_in_metrics_and_manifest(tmp_path, mode):
    (tmp_path / "bad.csv").write_text(BAD_CSV)
    quarantine = tmp_path / "quarantine.jsonl"
    extra = ["--quarantine-file", str(quarantine)] if mode == "quarantine" else []
    result = invoke("train", "kmeans", "--data", str(tmp_path / "bad.csv"), "--n-clusters", "1",
                    "--on-bad-record", mode, *extra, "--metrics", str(tmp_path / "metrics.jsonl"),
                    "--out", str(tmp_path / "m"))
    assert result.exit_code == 0, result.stderr
    key, other = ("skipped", "quarantined") if mode == "skip" else ("quarantined", "skipped")
    lines = read_jsonl((tmp_path / "metrics.jsonl").read_text())
    assert [line["event"] for line in lines][-1] == "end"
    assert lines[-1][key] == 2 and lines[-1][other] == 0
    assert lines[-1]["rows"] == 3
    saved = manifest(tmp_path / "m")
    assert saved[key] == 2 and saved[other] == 0
    assert saved["rows_seen"] == 3
    assert f"{key} 2" in result.stderr  # the summary line
    if mode == "quarantine":
        entries = read_jsonl(quarantine.read_text())
        assert [e["raw"] for e in entries] == BAD_RAW_LINES
        assert [e["line"] for e in entries] == [3, 5]
        assert all(e["source"].endswith("bad.csv") and e["reason"] for e in entries)
    else:
        assert not quarantine.exists()


def test_quarantine_needs_a_file(tmp_path):
    (tmp_path / "bad.csv").write_text(BAD_CSV)
    result = invoke("train", "kmeans", "--data", str(tmp_path / "bad.csv"), "--on-bad-record", "quarantine",
                    "--out", str(tmp_path / "m"))
    assert result.exit_code == 2
    assert "--quarantine-file" in result.stderr


def test_metrics_dash_gives_json_lines_on_stdout(tmp_path, data_csv):
    proc = run_cli("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "--seed", "0",
                   "--metrics", "-", "--out", str(tmp_path / "m"))
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(proc.stdout)  # raises if any stdout line is not JSON
    assert len(lines) == len(proc.stdout.splitlines()) >= 3
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "end"
    assert lines[-1]["rows"] == N_ROWS
    for key in ("rows_per_s", "elapsed_s", "skipped", "quarantined", "epoch"):
        assert key in lines[-1]
    assert "trained kmeans on 600 rows" in proc.stderr  # the summary goes to stderr


def test_stdin_training_through_a_pipe(tmp_path, data_csv):
    cmd = (f"cat {shlex.quote(str(data_csv))} | {shlex.quote(sys.executable)} -m onepass.cli "
           "train kmeans --data - --n-clusters 3 --seed 5 --out from-stdin -q")
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert manifest(tmp_path / "from-stdin")["rows_seen"] == N_ROWS
    # The same rows from the file, with the same seed, give the same model.
    from_file = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "--seed", "5",
                       "--out", str(tmp_path / "from-file"), "-q")
    assert from_file.exit_code == 0
    import onepass

    a, b = onepass.load(tmp_path / "from-stdin"), onepass.load(tmp_path / "from-file")
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)


def test_stdin_with_click_runner(data_csv, tmp_path):
    result = invoke("train", "kmeans", "--data", "-", "--n-clusters", "2", "--out", str(tmp_path / "m"), "-q",
                    input=data_csv.read_text())
    assert result.exit_code == 0, result.stderr
    assert manifest(tmp_path / "m")["rows_seen"] == N_ROWS


def test_resume_without_checkpoint_starts_fresh(tmp_path, data_csv):
    ckpt = tmp_path / "ckpt"
    args = ["train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "--seed", "0",
            "--checkpoint-dir", str(ckpt), "--resume", "--metrics", "-", "-q"]
    first = invoke(*args)
    assert first.exit_code == 0, first.stderr
    lines = read_jsonl(first.stdout)
    assert lines[0]["event"] == "start" and lines[0]["resumed_from"] is None
    assert lines[-1]["rows"] == N_ROWS and lines[-1]["rows_this_run"] == N_ROWS
    # Now there is a (finished) checkpoint: --resume picks it up and reads nothing more.
    second = invoke(*args)
    assert second.exit_code == 0, second.stderr
    lines = read_jsonl(second.stdout)
    assert lines[0]["resumed_from"] is not None
    assert lines[-1]["rows"] == N_ROWS and lines[-1]["rows_this_run"] == 0


def test_epochs_two_sees_twice_the_rows(tmp_path, data_csv):
    result = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "--epochs", "2",
                    "--metrics", str(tmp_path / "metrics.jsonl"), "--out", str(tmp_path / "m"), "-q")
    assert result.exit_code == 0, result.stderr
    saved = manifest(tmp_path / "m")
    assert saved["rows_seen"] == 2 * N_ROWS
    assert saved["epochs"] == 2
    ends = [line for line in read_jsonl((tmp_path / "metrics.jsonl").read_text()) if line["event"] == "epoch_end"]
    assert [(e["epoch"], e["rows"]) for e in ends] == [(1, N_ROWS), (2, 2 * N_ROWS)]


def test_checkpoints_every_rows_and_inspect(tmp_path, data_csv):
    ckpt = tmp_path / "ckpt"
    result = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "--batch-size", "100",
                    "--checkpoint-dir", str(ckpt), "--checkpoint-every-rows", "200",
                    "--metrics", str(tmp_path / "metrics.jsonl"), "-q")
    assert result.exit_code == 0, result.stderr
    lines = read_jsonl((tmp_path / "metrics.jsonl").read_text())
    assert [line["rows"] for line in lines if line["event"] == "checkpoint"] == [200, 400, 600]
    inspected = invoke("inspect", str(ckpt), "--json")
    assert inspected.exit_code == 0, inspected.stderr
    latest = json.loads(inspected.stdout)
    assert latest["rows_seen"] == N_ROWS and latest["finished"] is True
    assert latest["algorithm"] == "kmeans"
    # A checkpoint directory finalizes as well as a model directory does.
    k2 = invoke("finalize", str(ckpt), "--n-clusters", "2", "--out", str(tmp_path / "k2"))
    assert k2.exit_code == 0, k2.stderr
    assert manifest(tmp_path / "k2")["finalize"] == {"n_clusters": 2}


def test_finalize_many_models_from_one_state(trained, tmp_path):
    inertias = {}
    for k in (1, 3, 6):
        result = invoke("finalize", str(trained), "--n-clusters", str(k), "--out", str(tmp_path / f"k{k}"))
        assert result.exit_code == 0, result.stderr
        shown = json.loads(invoke("inspect", str(tmp_path / f"k{k}"), "--json").stdout)
        assert shown["arrays"]["cluster_centers"]["shape"] == [k, 2]
        assert shown["rows_seen"] == N_ROWS
        inertias[k] = shown["meta"]["inertia"]
    assert inertias[1] > inertias[3] > inertias[6] > 0


def test_inspect_a_directory_onepass_did_not_write_exit_1(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke("inspect", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert "no manifest.json" in result.stderr and "not a onepass" in result.stderr


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0
    import onepass

    assert onepass.__version__ in result.stdout


def test_resume_with_other_hyperparameters_is_refused(tmp_path, data_csv):
    ckpt = str(tmp_path / "ckpt")
    first = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "--checkpoint-dir", ckpt, "-q")
    assert first.exit_code == 0
    again = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "4", "--checkpoint-dir", ckpt,
                   "--resume", "-q")
    assert again.exit_code == 1
    assert "n_clusters=3" in again.stderr and "n_clusters=4" in again.stderr


def test_finalize_setting_with_equals_sign(trained, tmp_path):
    result = invoke("finalize", str(trained), "--n-clusters=2", "--out", str(tmp_path / "k2"))
    assert result.exit_code == 0, result.stderr
    assert manifest(tmp_path / "k2")["finalize"] == {"n_clusters": 2}


def test_finalize_setting_without_value_is_a_usage_error(trained, tmp_path):
    result = invoke("finalize", str(trained), "--out", str(tmp_path / "k"), "--n-clusters")
    assert result.exit_code == 2
    assert "--n-clusters needs a value" in result.stderr
    assert not (tmp_path / "k").exists()


def test_predict_with_a_state_says_finalize_first(trained, data_csv, tmp_path):
    result = invoke("predict", str(trained / "state"), "--data", str(data_csv), "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == 1
    assert "not a model" in result.stderr and "onepass finalize" in result.stderr


def test_predict_with_a_checkpoint_directory_says_finalize_first(tmp_path, data_csv):
    ckpt = tmp_path / "ckpt"
    assert invoke("train", "kmeans", "--data", str(data_csv), "--checkpoint-dir", str(ckpt), "-q").exit_code == 0
    result = invoke("predict", str(ckpt), "--data", str(data_csv), "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == 1
    assert "not a onepass" not in result.stderr
    assert "finalize" in result.stderr


def test_finalize_a_finalized_model_is_refused(trained, tmp_path):
    k2 = tmp_path / "k2"
    assert invoke("finalize", str(trained), "--n-clusters", "2", "--out", str(k2)).exit_code == 0
    again = invoke("finalize", str(k2), "--n-clusters", "1", "--out", str(tmp_path / "k1"))
    assert again.exit_code == 1
    assert "holds a model" in again.stderr
    assert not (tmp_path / "k1").exists()


def test_train_without_out_refuses_before_reading(data_csv: Path, tmp_path: Path) -> None:
    bare = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "-q")
    assert bare.exit_code == 2
    assert "nothing would be kept: give --out DIR" in bare.stderr
    kept = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "-q", "--out", str(tmp_path / "m"))
    assert kept.exit_code == 0 and "warning" not in kept.stderr
    state_only = invoke("train", "kmeans", "--data", str(data_csv), "--n-clusters", "3", "-q",
                        "--checkpoint-dir", str(tmp_path / "ck"))
    assert state_only.exit_code == 0 and any((tmp_path / "ck").iterdir())


def test_finalize_help_lists_every_algorithms_settings_with_defaults() -> None:
    text = invoke("finalize", "--help").stdout
    for section, setting in (("kmeans", "--n-clusters"), ("pca", "--explained-variance"),
                             ("linear-learner", "--rank"), ("factorization-machines",
                                                            "--binary-classifier-model-selection-criteria")):
        assert f"Finalize settings of {section}" in text and setting in text, (section, setting)
    assert "(default: 0)" in text  # --rank's default is shown
    assert ":func:" not in text and "``" not in text  # no Sphinx markup
