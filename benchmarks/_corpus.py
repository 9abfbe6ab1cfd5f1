"""Text corpora for the topic-model benchmarks, built on this machine with no download.

- :func:`docstring_corpus`: the docstrings of installed Python packages, one document
  per documented module, public class or public function, read from the source files
  with :mod:`ast` (nothing is imported); a document's label is its top-level package.
- :func:`lda_chunk`: documents drawn from LDA's generative model with known topics.
- :func:`write_libsvm`: a CSR matrix of counts as a libsvm file (1-based indices).
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp

_WORD = re.compile(r"[^\W\d_]{2,}")  # for the length filter only; the vectorizer tokenizes
_DOCTEST = re.compile(r"^\s*(>>>|\.\.\.)")


def site_packages() -> Path:
    """The site-packages directory of this interpreter (the venv's)."""
    for p in sys.path:
        if p.endswith("site-packages") and Path(p).is_dir():
            return Path(p)
    raise RuntimeError("no site-packages directory on sys.path")


def _prose(doc: str) -> str:
    """A docstring without its doctest lines (code: ``>>>`` and ``...``), which name the
    package outright (``np.``, ``torch.``) and are not prose a topic model should read."""
    return "\n".join(line for line in doc.splitlines() if not _DOCTEST.match(line))


def package_docstrings(package: str, min_words: int = 20) -> Iterator[str]:
    """Docstrings of one installed package, in a fixed order (sorted walk): its modules,
    and its classes and functions whose names do not start with ``_``; test folders
    skipped, doctest lines dropped, docstrings of fewer than ``min_words`` words dropped,
    each distinct text once."""
    root = site_packages() / package
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in ("tests", "test", "testing", "__pycache__"))
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            try:
                tree = ast.parse(Path(folder, name).read_bytes())
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    if node.name.startswith("_"):
                        continue
                elif not isinstance(node, ast.Module):
                    continue
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                text = _prose(doc)
                if len(_WORD.findall(text)) < min_words or text in seen:
                    continue
                seen.add(text)
                yield text


def docstring_corpus(packages: list[str], max_per_package: int, min_docs: int, seed: int
                     ) -> tuple[list[str], np.ndarray, list[str], dict[str, int]]:
    """(texts, labels, the packages kept in label order, documents found per package).

    Each package gives at most ``max_per_package`` documents, sampled with ``seed`` from
    all it has (so the classes are not too unbalanced); a package missing here or with
    fewer than ``min_docs`` is left out."""
    rng = np.random.default_rng([seed, 0xD0C5])
    texts: list[str] = []
    labels: list[int] = []
    kept: list[str] = []
    found: dict[str, int] = {}
    for pkg in packages:
        if not (site_packages() / pkg).is_dir():
            found[pkg] = 0
            continue
        docs = list(package_docstrings(pkg))
        found[pkg] = len(docs)
        if len(docs) < min_docs:
            continue
        if len(docs) > max_per_package:
            docs = [docs[i] for i in sorted(rng.choice(len(docs), max_per_package, replace=False))]
        labels += [len(kept)] * len(docs)
        kept.append(pkg)
        texts += docs
    return texts, np.array(labels, dtype=np.int64), kept, found


def lda_topics(n_topics: int, n_words: int, beta: float, seed: int) -> np.ndarray:
    """The known topics, (n_topics, n_words) rows ~ Dirichlet(beta), float64."""
    rng = np.random.default_rng([seed, 0x70C1C, n_topics, n_words])
    return rng.dirichlet(np.full(n_words, beta), size=n_topics)


def lda_chunk(topics: np.ndarray, alpha: float, mean_length: float, n_docs: int,
              rng: np.random.Generator) -> sp.csr_matrix:
    """``n_docs`` documents of LDA's generative model as a CSR matrix of word counts.

    Each document: topic mix theta ~ Dirichlet(alpha), length ~ Poisson(mean_length)
    (at least 1), and for each token a topic z ~ theta then a word ~ topics[z]; drawn
    for all tokens at once by inverse CDF (no loop over documents or tokens)."""
    k, v = topics.shape
    theta = rng.dirichlet(np.full(k, alpha), size=n_docs)
    lengths = np.maximum(rng.poisson(mean_length, n_docs), 1)
    doc = np.repeat(np.arange(n_docs), lengths)
    # topic of each token: search each document's cumulative theta, offset by its row
    cum = np.cumsum(theta, axis=1)
    cum[:, -1] = 1.0
    flat = (cum + np.arange(n_docs)[:, None]).ravel()
    z = np.searchsorted(flat, doc + rng.random(doc.size), side="right") - doc * k
    np.clip(z, 0, k - 1, out=z)
    # word of each token: the same trick over the topics' cumulative word weights
    cw = np.cumsum(topics, axis=1)
    cw[:, -1] = 1.0
    flat_w = (cw + np.arange(k)[:, None]).ravel()
    w = np.searchsorted(flat_w, z + rng.random(z.size), side="right") - z * v
    np.clip(w, 0, v - 1, out=w)
    X = sp.csr_matrix((np.ones(doc.size, dtype=np.float32), (doc, w)), shape=(n_docs, v))
    X.sum_duplicates()
    return X


_TABLE: dict[int, np.ndarray] = {}
_SMALL = 16  # counts below this come from a table of ready-made " idx:count" strings


def libsvm_lines(X: sp.csr_matrix, labels: np.ndarray) -> str:
    """Rows of ``X`` (nonnegative integer counts) as libsvm text, 1-based indices, sorted.

    Tokens ``" idx:count"`` for counts below 16 come from a table built once per
    vocabulary size (the text of 1M documents in ~10 s instead of minutes)."""
    X = sp.csr_matrix(X)
    X.sort_indices()
    cnt = X.data.astype(np.int64)
    if not np.array_equal(cnt, X.data):
        raise ValueError("libsvm_lines writes integer counts only")
    v = X.shape[1]
    if v not in _TABLE:
        _TABLE[v] = np.array([f" {j + 1}:{c}" for j in range(v) for c in range(_SMALL)], dtype=object)
    idx = X.indices.astype(np.int64)
    small = cnt < _SMALL
    tok = np.empty(cnt.size, dtype=object)
    tok[small] = _TABLE[v][idx[small] * _SMALL + cnt[small]]
    tok[~small] = [f" {j + 1}:{c}" for j, c in zip(idx[~small].tolist(), cnt[~small].tolist(), strict=True)]
    toks, ptr = tok.tolist(), X.indptr.tolist()
    lab = [str(int(x)) for x in np.asarray(labels).tolist()]
    return "".join(lab[i] + "".join(toks[ptr[i]:ptr[i + 1]]) + "\n" for i in range(X.shape[0]))


def write_libsvm(path: Path, chunks: Iterator[tuple[sp.csr_matrix, np.ndarray]]) -> int:
    """Write (X, labels) chunks to ``path`` atomically; the number of rows written."""
    tmp = path.with_name(path.name + ".tmp")
    rows = 0
    with open(tmp, "w") as f:
        for X, y in chunks:
            f.write(libsvm_lines(X, y))
            rows += X.shape[0]
    os.replace(tmp, path)
    return rows


def save_csr(path: Path, X: sp.csr_matrix, labels: np.ndarray) -> None:
    """X (as float32 CSR) and its labels in one .npz, atomically (loads without pickle)."""
    X = sp.csr_matrix(X, dtype=np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, data=X.data, indices=X.indices, indptr=X.indptr, shape=np.array(X.shape), labels=labels)
    os.replace(tmp, path)


def load_csr(path: Path) -> tuple[sp.csr_matrix, np.ndarray]:
    z = np.load(path)
    X = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
    return X, z["labels"]
