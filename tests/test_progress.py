"""The progress bar knows the total when the source knows its size (issue 21, item 1):
a share of the files read from each batch's cursor gives the rows in all, the
percentage and the time left."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from onepass.sources import open_source
from onepass.training import Checkpoints, Data, Reporting, TrainingRun
from onepass.training._report import total_rows

ROWS = 6000


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    d = tmp_path_factory.mktemp("progress")
    X = np.random.default_rng(0).normal(size=(ROWS, 3)).astype(np.float32)
    out: dict[str, list[Path]] = {"csv": [], "parquet": [], "npy": []}
    for k, part in enumerate(np.array_split(X, 3)):
        csv = d / f"part{k}.csv"
        np.savetxt(csv, part, delimiter=",", header="a,b,c", comments="", fmt="%.6f")
        out["csv"].append(csv)
        pq.write_table(pa.table({"a": part[:, 0], "b": part[:, 1], "c": part[:, 2]}), d / f"part{k}.parquet",
                       row_group_size=500)
        out["parquet"].append(d / f"part{k}.parquet")
        np.save(d / f"part{k}.npy", part)
        out["npy"].append(d / f"part{k}.npy")
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet", "npy"])
def test_the_total_estimated_from_the_cursor_converges_on_the_rows(files, fmt: str) -> None:
    with open_source([str(p) for p in files[fmt]], batch_size=400) as src:
        estimates = [total_rows(b.cursor["rows"], src.fraction_read(b.cursor)) for b in src]
    assert estimates[-1] == ROWS  # at the end, exact
    assert all(0.9 * ROWS <= e <= 1.1 * ROWS for e in estimates), estimates  # and close all along


def test_stdin_and_compressed_files_have_no_total(files, tmp_path: Path) -> None:
    import gzip

    packed = tmp_path / "part.csv.gz"
    packed.write_bytes(gzip.compress(files["csv"][0].read_bytes()))
    with open_source(str(packed), batch_size=400) as src:
        assert src.fraction_read(next(iter(src)).cursor) is None


def test_the_bar_shows_total_percentage_and_time_left(files, tmp_path: Path, capsys) -> None:
    TrainingRun("kmeans", Data.of([str(p) for p in files["csv"]]), params={"n_clusters": 2}, batch_size=500,
                checkpoints=Checkpoints(None), reporting=Reporting(progress=True), out=tmp_path / "m").run()
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert re.search(r"100%.*6\.00k/6\.00k", last), last
    assert "<" in err  # tqdm's "elapsed<remaining"


def test_train_ends_saying_what_it_learned_and_where_it_went(files, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from onepass.cli import main

    out = tmp_path / "m"
    result = CliRunner().invoke(main, ["train", "kmeans", "--data", *[str(p) for p in files["csv"]][:1],
                                       "--n-clusters", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    said = result.stderr
    assert re.search(r"trained kmeans on 2,000 rows in [\d.]+ s \([\d,]+ rows/s this run\), 1 epoch", said), said
    inertia = json.loads((out / "manifest.json").read_text())["meta"]["inertia"]
    shown = re.search(r"inertia\s+([\d,.]+)\n", said)
    assert shown and abs(float(shown.group(1).replace(",", "")) - inertia) <= 1e-3 * inertia, said
    assert f"model in {out}" in said
