"""``onepass vocab`` and the text options of the CLI, end to end (in process, CliRunner)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from onepass.cli import main
from onepass.sources import open_source

DOCS = "The cat sat on the mat.\nThe dog sat.\n\nA cat and a dog ran!\nCats ran 2019\n"


def invoke(*args: str, input: str | None = None):  # noqa: ANN201 (click's Result)
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    path = tmp_path / "docs.txt"
    path.write_text(DOCS)
    return path


def test_vocab_then_read_as_text(tmp_path, docs):
    out = tmp_path / "vocab.txt"
    result = invoke("vocab", "--data", str(docs), "--size", "4", "--out", str(out))
    assert result.exit_code == 0, result.output
    words = out.read_text().splitlines()
    assert words == ["cat", "dog", "ran", "sat"]  # df 2 each: ties by word; "the", "and": stop words
    assert "4 words written to" in result.stderr and "from 4 documents (exact counts)" in result.stderr
    with open_source(docs, format="text", vocab=out) as src:
        X = sp.vstack([b.X for b in src]).toarray()
    np.testing.assert_array_equal(X, [[1, 0, 0, 1], [0, 1, 0, 1], [1, 1, 1, 0], [0, 0, 1, 0]])


def test_vocab_options_and_stdout(tmp_path, docs):
    stop = tmp_path / "stop.txt"
    stop.write_text("sat\n")
    result = invoke("vocab", "--data", str(docs), "--out", "-", "--stop-words", str(stop), "--keep-numbers",
                    "--min-df", "2")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["cat", "dog", "ran", "the"]  # df 2 each; "2019" in 1
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / "a.txt").write_text("cat cat\ncat dog\n")
    (folder / "b.txt").write_text("dog\n")
    result = invoke("vocab", "--data", str(folder), "--document", "file", "--stop-words", "none", "--out", "-")
    assert result.stdout.splitlines() == ["dog", "cat"]
    assert "from 2 documents" in result.stderr


def test_vocab_sketch_summary_and_errors(tmp_path, docs):
    result = invoke("vocab", "--data", str(docs), "--size", "1", "--sketch-size", "2", "--stop-words", "none",
                    "--out", "-")
    assert result.exit_code == 0, result.output
    assert "a sketch of 2 words let" in result.stderr and "above the truth" in result.stderr
    result = invoke("vocab", "--data", str(docs), "--size", "10", "--sketch-size", "5", "--out", "-")
    assert result.exit_code == 2 and "sketch_size=5 must be an integer >= size (10)" in result.stderr
    result = invoke("vocab", "--data", str(tmp_path / "missing*.txt"), "--out", "-")
    assert result.exit_code == 3 and "matches no file" in result.stderr


def test_vocab_help_teaches():
    result = invoke("vocab", "--help")
    assert result.exit_code == 0
    for fragment in ("Space-Saving", "--sketch-size", "--min-df", "--stop-words", "--document", "onepass vocab --data",
                     "--format text --vocab vocab.txt"):
        assert fragment in result.output, fragment


@pytest.mark.parametrize("command", [["train", "kmeans"], ["predict", "."]])
def test_text_options_are_offered(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "--vocab" in result.output and "--document [line|file]" in result.output
    assert "text" in result.output


def test_train_on_text_without_vocab_says_so(docs):
    result = invoke("train", "kmeans", "--data", str(docs), "--format", "text", "-q", "--out", str(docs.parent / "m"))
    assert result.exit_code == 2 and "format 'text' needs a vocabulary" in result.stderr
