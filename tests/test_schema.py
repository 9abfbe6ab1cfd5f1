"""Models remember their input schema (issue 21, item 2): predict matches columns by
name, leaves the label out when the data still holds it, and says what differs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from onepass.cli import main


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("schema")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 4))
    y = (X @ [1.0, -2.0, 0.5, 1.0] + rng.normal(size=3000) > 0).astype(int)
    paths = {"train": d / "train.csv", "reordered": d / "reordered.csv", "features": d / "features.csv",
             "headerless": d / "headerless.csv", "short": d / "short.csv"}
    np.savetxt(paths["train"], np.c_[X, y], delimiter=",", header="f1,f2,f3,f4,label", comments="", fmt="%.5f")
    np.savetxt(paths["reordered"], np.c_[y, X[:, [3, 1, 0, 2]]], delimiter=",", header="label,f4,f2,f1,f3",
               comments="", fmt="%.5f")
    np.savetxt(paths["features"], X, delimiter=",", header="f1,f2,f3,f4", comments="", fmt="%.5f")
    np.savetxt(paths["headerless"], np.c_[X, y], delimiter=",", fmt="%.5f")
    np.savetxt(paths["short"], X[:, :3], delimiter=",", header="f1,f2,f3", comments="", fmt="%.5f")
    model = d / "model"
    done = invoke("train", "linear-learner", "--data", str(paths["train"]), "--label-column", "label",
                  "--predictor-type", "binary_classifier", "--seed", "0", "--out", str(model), "-q")
    assert done.exit_code == 0, done.output
    paths["model"] = model
    return paths


def predictions(path: Path) -> np.ndarray:
    return np.loadtxt(path, delimiter=",", skiprows=1)


def test_the_model_keeps_its_schema(labelled: dict[str, Path]) -> None:
    schema = json.loads((labelled["model"] / "manifest.json").read_text())["schema"]
    assert schema["feature_names"] == ["f1", "f2", "f3", "f4"]
    assert schema["columns"] == ["f1", "f2", "f3", "f4", "label"]
    assert schema["label_column"] == "label" and schema["n_features"] == 4 and schema["format"] == "csv"


def test_predict_leaves_the_label_out_and_matches_columns_by_name(labelled: dict[str, Path], tmp_path: Path) -> None:
    outs = {}
    for name in ("train", "reordered", "features"):
        result = invoke("predict", str(labelled["model"]), "--data", str(labelled[name]),
                        "--out", str(tmp_path / f"{name}.csv"))
        assert result.exit_code == 0, result.output
        outs[name] = predictions(tmp_path / f"{name}.csv")
        if name != "features":
            assert "left out column(s) the model was not trained on: label" in result.stderr
    np.testing.assert_array_equal(outs["train"], outs["features"])
    np.testing.assert_array_equal(outs["reordered"], outs["features"])  # not scored with f4 as f1


def test_a_missing_column_is_named(labelled: dict[str, Path], tmp_path: Path) -> None:
    result = invoke("predict", str(labelled["model"]), "--data", str(labelled["short"]), "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == 3
    assert "lacks the column(s) 'f4' the model was trained on" in result.stderr and "Traceback" not in result.output


def test_headerless_rows_holding_the_label_have_it_left_out(labelled: dict[str, Path], tmp_path: Path) -> None:
    result = invoke("predict", str(labelled["model"]), "--data", str(labelled["headerless"]),
                    "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == 0, result.output
    assert "left out column 4, the model's label (label)" in result.stderr
    np.testing.assert_array_equal(predictions(tmp_path / "p.csv"), predictions_of(labelled, "features", tmp_path))


def test_a_width_that_does_not_fit_says_what_the_model_was_trained_on(labelled: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    wide = tmp_path / "wide.csv"
    np.savetxt(wide, np.random.default_rng(0).normal(size=(10, 6)), delimiter=",", fmt="%.4f")
    result = invoke("predict", str(labelled["model"]), "--data", str(wide), "--out", str(tmp_path / "p.csv"))
    assert result.exit_code == 3 and "Traceback" not in result.output
    assert "trained on 4 features named 'f1', 'f2', 'f3', 'f4'" in result.stderr
    assert "give --label-column label (or its 0-based index" in result.stderr


def predictions_of(labelled: dict[str, Path], name: str, tmp_path: Path) -> np.ndarray:
    out = tmp_path / f"{name}-ref.csv"
    assert invoke("predict", str(labelled["model"]), "--data", str(labelled[name]), "--out", str(out)).exit_code == 0
    return predictions(out)


def test_the_server_leaves_the_label_out_of_rows_that_hold_it(labelled: dict[str, Path]) -> None:
    import asyncio

    import httpx

    from onepass.serve import create_app

    app = create_app(labelled["model"])
    app.load_now()

    def post(body: str) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                return await client.post("/invocations", content=body, headers={"Content-Type": "text/csv",
                                                                                  "Accept": "text/csv"})
        return asyncio.run(go())

    rows = labelled["train"].read_text().splitlines()[1:4]  # f1,f2,f3,f4,label
    features = "\n".join(",".join(r.split(",")[:4]) for r in rows)
    plain, labelled_rows = post(features), post("\n".join(rows))
    assert plain.status_code == 200 and labelled_rows.status_code == 200, labelled_rows.text
    assert labelled_rows.text == plain.text
    wrong = post("\n".join(r + ",1,2" for r in rows))  # neither the features nor features and label
    assert wrong.status_code == 400 and "expected 4 features" in wrong.text and "got 7" in wrong.text
