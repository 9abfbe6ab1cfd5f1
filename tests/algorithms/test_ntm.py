"""The Neural Topic Model: known topics recovered, bad documents refused or counted,
weights honored, validation documents and early stopping, the NumPy model equal to the
torch network, and the whole path through the CLI (vocab, train on raw text, inspect,
predict) and the server."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.sparse as sp

from onepass.algorithms.ntm import NTMState
from onepass.algorithms.ntm._network import Documents
from onepass.algorithms.ntm._quality import match_topics
from onepass.batch import Batch
from onepass.errors import DataError, FeatureCountError, InvalidParameterError
from onepass.io import load_checkpoint, save_checkpoint

torch = pytest.importorskip("torch")


def lda_corpus(n: int, *, V: int = 60, K: int = 4, length: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Documents of LDA's generative model and its true topic-word matrix."""
    beta = np.random.default_rng(123).dirichlet(np.full(V, 0.05), size=K)
    rng = np.random.default_rng(seed)
    theta = rng.dirichlet(np.full(K, 0.1), size=n)
    X = np.vstack([rng.multinomial(length, p) for p in theta @ beta]).astype(np.float32)
    return X, beta


def feed(state: NTMState, X, size: int = 500, w=None) -> NTMState:  # noqa: ANN001
    for i in range(0, X.shape[0], size):
        state.update(Batch(X[i:i + size], None, None if w is None else w[i:i + size]))
    return state


def test_the_true_topics_are_recovered_from_a_generated_corpus() -> None:
    X, beta = lda_corpus(6000)
    state = NTMState(4, seed=0)
    for _ in range(3):
        feed(state, X)
    model = state.model()
    cosines = match_topics(beta, model.topic_word_)
    untrained = NTMState(4, seed=0)
    untrained.update(Batch(X[:1]))
    assert cosines.min() > 0.8, cosines
    assert match_topics(beta, untrained.model().topic_word_).mean() < 0.6
    held_out, _ = lda_corpus(500, seed=9)
    assert model.perplexity(held_out) < 0.8 * untrained.model().perplexity(held_out)
    metrics = state.metrics()
    assert metrics["validation_topic_uniqueness"] > 0.7 and metrics["validation_npmi"] > 0.0


@pytest.mark.parametrize("sparse", [False, True])
def test_bad_documents_are_refused_with_where_and_the_state_is_unchanged(sparse: bool) -> None:
    X, _ = lda_corpus(300)
    state = feed(NTMState(4, seed=0), X)
    before = state.to_arrays()[1]
    as_input = sp.csr_matrix if sparse else np.asarray
    for value, message in ((-1.0, "row 3 .*count -1"), (np.nan, "row 3 .*nan"), (np.inf, "row 3 .*inf")):
        bad = X[:10].copy()
        bad[3, np.flatnonzero(bad[3])[0]] = value
        with pytest.raises(DataError, match=message):
            state.update(Batch(as_input(bad)))
    with pytest.raises(FeatureCountError, match="61 columns.*60 words"):
        state.update(Batch(as_input(np.ones((2, 61), np.float32))))
    wide = sp.csr_matrix(X[:10])
    wide.indices[wide.indptr[4]] = 75  # an index past the vocabulary
    with pytest.raises(DataError, match="row 4 .*word index 75.*60 words"):
        state.update(Batch(wide))
    after = state.to_arrays()[1]
    for k in before:
        assert np.array_equal(before[k], after[k]), k


def test_empty_documents_are_skipped_and_counted_or_refused() -> None:
    X, _ = lda_corpus(200)
    X[[5, 17, 18]] = 0
    state = feed(NTMState(4, seed=0), X)
    assert state.n_empty_documents_ == 3 and state.n_rows_seen_ == 200
    assert state.metrics()["empty_documents"] == 3
    strict = NTMState(4, on_empty_document="fail", seed=0)
    with pytest.raises(DataError, match="row 5 .*document 6 .*no words"):
        strict.update(Batch(X))


def test_weights_are_honored() -> None:
    """Documents of topic 0 weighted up are modeled better than with equal weights, and
    the other documents worse (the trade-off weights ask for)."""
    X, beta = lda_corpus(4000)
    topic = np.argmax(X @ np.log(beta.T + 1e-12), axis=1)  # each document's likeliest topic
    first = topic == 0
    up = np.where(first, 10.0, 1.0).astype(np.float32)
    m_up = feed(feed(NTMState(4, seed=0), X, w=up), X, w=up).model()
    m_equal = feed(feed(NTMState(4, seed=0), X), X).model()
    assert m_up.perplexity(X[first]) < m_equal.perplexity(X[first])
    assert m_up.perplexity(X[~first]) > m_equal.perplexity(X[~first])


def test_validation_documents_are_held_out_or_given() -> None:
    X, _ = lda_corpus(1000)
    held = feed(NTMState(4, max_validation_rows=30, validation_fraction=0.1, seed=0), X)
    assert held.validation_.shape[0] == 30
    assert held.n_documents_trained_ == 1000 - 30
    given = NTMState(4, max_validation_rows=30, seed=0)
    assert given.add_validation(Batch(X[:50])) == 30 and not given.wants_validation
    feed(given, X)
    assert given.n_documents_trained_ == 1000 and given.validation_.shape[0] == 30
    assert np.array_equal(given.validation_.toarray(), X[:30])


def test_the_numpy_model_computes_what_the_network_does() -> None:
    X, _ = lda_corpus(600)
    for more in ({}, {"decoder": "mixture"}, {"batch_norm": True, "encoder_layers_activation": "relu"},
                 {"encoder_layers": "7", "encoder_layers_activation": "tanh"}):
        state = feed(NTMState(4, seed=0, **more), X)
        model = state.model()
        net = state.network_.eval()
        with torch.no_grad():
            x = Documents.from_dense(torch.from_numpy(X[:50]))
            mean, _ = net.encode(x)
            net.train()  # the loss as training computes it: batch norm by the documents' own statistics
            recon, kl = net.losses(x, None)
            net.eval()
        np.testing.assert_allclose(model.transform(X[:50]), torch.softmax(mean, 1).numpy(), rtol=1e-4, atol=1e-6)
        m_recon, m_kl = model.losses(X[:50])
        np.testing.assert_allclose(m_recon, recon.numpy(), rtol=1e-4)
        np.testing.assert_allclose(m_kl, kl.numpy(), rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(model.topic_word_.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(model.transform(sp.csr_matrix(X[:50])), model.transform(X[:50]), rtol=1e-5)


def test_hyperparameters_are_checked_at_construction() -> None:
    with pytest.raises(InvalidParameterError, match="optimizer='nadam'"):
        NTMState(4, optimizer="nadam")
    with pytest.raises(InvalidParameterError, match="encoder_layers='6,x'"):
        NTMState(4, encoder_layers="6,x")
    with pytest.raises(InvalidParameterError, match="sub_sample=0"):
        NTMState(4, sub_sample=0)
    with pytest.raises(InvalidParameterError, match="num_topics=0"):
        NTMState(0)
    assert NTMState(5).encoder_widths == [200, 100] and NTMState(120).encoder_widths == [360, 240]
    assert NTMState(5, encoder_layers="[20, 8]").encoder_widths == [20, 8]


def test_sub_sample_steps_on_a_fraction_of_the_documents() -> None:
    X, _ = lda_corpus(2000)
    state = feed(NTMState(4, sub_sample=0.25, validation_fraction=0.0, seed=0), X)
    assert 400 < state.n_documents_trained_ < 600 and state.n_rows_seen_ == 2000


def _onepass(*args: str, cwd) -> subprocess.CompletedProcess:  # noqa: ANN001
    return subprocess.run([sys.executable, "-m", "onepass.cli", *args], capture_output=True, text=True, cwd=cwd)


def test_raw_text_to_topics_through_the_cli(tmp_path) -> None:
    """onepass vocab, then train ntm on raw text with --vocab, early stopping, inspect's
    top words and predict's topic_weights columns."""
    rng = np.random.default_rng(0)
    themes = [["river", "boat", "water", "fish", "bank", "shore", "sail", "stream"],
              ["court", "judge", "law", "trial", "jury", "verdict", "appeal", "lawyer"],
              ["oven", "bread", "flour", "bake", "dough", "yeast", "crust", "butter"]]
    of_doc = rng.integers(3, size=1500)
    lines = [" ".join(rng.choice(themes[k], size=12)) for k in of_doc]
    (tmp_path / "docs.txt").write_text("\n".join(lines) + "\n")
    r = _onepass("vocab", "--data", "docs.txt", "--size", "100", "--out", "vocab.txt", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "vocab.txt").read_text().split()) == 24
    r = _onepass("train", "ntm", "--data", "docs.txt", "--format", "text", "--vocab", "vocab.txt",
                 "--num-topics", "3", "--epochs", "40", "--num-patience-epochs", "2", "--tolerance", "0.01",
                 "--seed", "0", "--out", "model", "--metrics", "metrics.jsonl", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    ends = [rec for rec in records if rec["event"] == "epoch_end"]
    assert len(ends) < 40 and ends[-1].get("early_stopped") is True  # stopped before 40 epochs
    assert {"validation_total_loss", "validation_perplexity", "validation_npmi"} <= set(ends[-1])
    r = _onepass("inspect", "model", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    topics = json.loads(r.stdout)["meta"]["topics"]
    found = sorted(sorted(words[:4]) for words in topics)
    # each topic's top words come from one theme, and each theme is a topic
    assert sorted(next(i for i, t in enumerate(themes) if set(words) <= set(t)) for words in found) == [0, 1, 2]
    r = _onepass("inspect", "model", cwd=tmp_path)
    assert "river" in r.stdout or "judge" in r.stdout  # the table of top words, for people
    r = _onepass("predict", "model", "--data", "docs.txt", "--format", "text", "--vocab", "vocab.txt",
                 "--out", "topics.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = (tmp_path / "topics.csv").read_text().splitlines()
    assert out[0] == "topic_weights_0,topic_weights_1,topic_weights_2" and len(out) == 1501
    weights = np.array([[float(v) for v in line.split(",")] for line in out[1:]])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    top = weights.argmax(axis=1)  # the documents of a theme share their main topic, one topic per theme
    main = [np.bincount(top[of_doc == k], minlength=3).argmax() for k in range(3)]
    assert sorted(main) == [0, 1, 2]
    assert np.mean(top == np.array(main)[of_doc]) > 0.9


def test_a_vocabulary_of_another_length_is_refused(tmp_path) -> None:
    from onepass.training import train

    X, _ = lda_corpus(100)
    np.save(tmp_path / "X.npy", X)
    (tmp_path / "vocab.txt").write_text("\n".join(f"w{i}" for i in range(59)) + "\n")
    with pytest.raises(DataError, match="59"):
        train("ntm", tmp_path / "X.npy", vocab=tmp_path / "vocab.txt", params={"num_topics": 4})
    (tmp_path / "vocab.txt").write_text("\n".join(f"w{i}" for i in range(60)) + "\n")
    result = train("ntm", tmp_path / "X.npy", vocab=tmp_path / "vocab.txt", params={"num_topics": 4})
    assert all(isinstance(w, str) and w.startswith("w") for words in result.model.top_words_ for w in words)


def test_served_like_sagemaker(tmp_path) -> None:
    import httpx

    from onepass.io import save_model
    from tests.serve.conftest import start_server

    X, _ = lda_corpus(600)
    model = feed(NTMState(4, seed=0), X).model()
    save_model(tmp_path / "m", model)
    server = start_server(tmp_path / "m", tmp_path / "server.log")
    try:
        body = "".join(",".join(str(int(v)) for v in row) + "\n" for row in X[:3])
        r = httpx.post(server.url + "/invocations", content=body, headers={"content-type": "text/csv"})
        assert r.status_code == 200, r.text
        got = np.array([p["topic_weights"] for p in r.json()["predictions"]])
        np.testing.assert_allclose(got, model.transform(X[:3]), rtol=1e-6)
        bad = "1,2,-3" + ",0" * 57 + "\n"
        r = httpx.post(server.url + "/invocations", content=bad, headers={"content-type": "text/csv"})
        assert r.status_code == 400 and "count" in r.text
    finally:
        assert server.stop() == 0


def test_a_refresh_frees_a_duplicate_topic_to_split_the_topic_holding_two() -> None:
    """find_move on a known bad optimum: topics 0 and 1 are one true topic twice, topic 2
    holds two true topics; the move frees 0 or 1 and splits 2 into those two."""
    from onepass.algorithms.ntm._refresh import find_move

    rng = np.random.default_rng(0)
    V = 80
    true = np.zeros((4, V))
    for k in range(4):
        true[k, 20 * k:20 * (k + 1)] = rng.dirichlet(np.ones(20))
    docs_of = rng.integers(0, 4, 400)
    X = sp.csr_matrix(np.vstack([rng.multinomial(50, true[k]) for k in docs_of]).astype(np.float64))
    noise = np.full(V, 1.0 / V)
    topic_word = np.vstack([0.9 * true[0] + 0.1 * noise, 0.88 * true[0] + 0.12 * noise,
                            0.45 * true[1] + 0.45 * true[2] + 0.1 * noise, 0.9 * true[3] + 0.1 * noise])
    owner = np.array([0, 2, 2, 3])[docs_of]
    theta = np.full((400, 4), 0.02)
    theta[np.arange(400), owner] = 0.94
    move = find_move(topic_word, theta, X, np.random.default_rng(1), similarity=0.8)
    assert move is not None and {move.kept, move.freed} == {0, 1} and move.split == 2
    found = match_topics(true[1:3], np.vstack([move.split_words, move.freed_words]))
    assert found.min() > 0.8
    assert find_move(topic_word[[0, 2, 3]], theta[:, [0, 2, 3]], X, np.random.default_rng(1), similarity=0.8) is None


def test_training_out_of_a_duplicated_topic_finds_every_true_topic() -> None:
    X, beta = lda_corpus(6000)
    state = feed(NTMState(4, seed=0, refresh_every=500), X[:3000])
    with torch.no_grad():  # a bad optimum: topic 1 a copy of topic 0
        state.network_.topics[1] = state.network_.topics[0]
    with tempfile.TemporaryDirectory() as tmp:  # the refreshes ahead come out the same after a resume
        save_checkpoint(tmp, state)
        resumed, _ = load_checkpoint(tmp)
    feed(state, X[3000:])
    assert state.n_topic_refreshes_ >= 1 and state.metrics()["topic_refreshes"] == state.n_topic_refreshes_
    assert match_topics(beta, state.model().topic_word_).min() > 0.8
    feed(resumed, X[3000:])
    assert resumed.n_topic_refreshes_ == state.n_topic_refreshes_
    for key, value in state.to_arrays()[1].items():
        assert np.array_equal(value, resumed.to_arrays()[1][key]), key
    stuck = feed(NTMState(4, seed=0, refresh_every=0), X[:3000])
    with torch.no_grad():
        stuck.network_.topics[1] = stuck.network_.topics[0]
    feed(stuck, X[3000:])
    assert stuck.n_topic_refreshes_ == 0 and match_topics(beta, stuck.model().topic_word_).min() < 0.8
