"""The Neural Topic Model's training state."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from onepass.algorithms._hyper import is_int, require, require_choice
from onepass.algorithms.ntm._model import NTMModel, check_counts
from onepass.batch import Batch
from onepass.errors import DataError, FeatureCountError, IncompatibleStateError, InvalidParameterError
from onepass.neural import EarlyStopping, TorchState
from onepass.neural._optimizers import OPTIMIZERS
from onepass.state import ArraySpec, become_copy

__all__ = ["NTMState"]

_ACTIVATIONS = ("sigmoid", "tanh", "relu", "softplus")
_DECODERS = ("product", "mixture")
#: arrays whose first axis is the topic (after their ``param__``, ``buffer__`` or ``opt__`` prefix)
_TOPIC_INDEXED = ("topics", "mean__", "log_var__", "mean_norm__", "log_var_norm__")


def _is_topic_indexed(key: str, value: Any, num_topics: int) -> bool:
    """True for an array (named as in the checkpoint) whose rows are the topics: the topics,
    the encoder's outputs, their batch norm statistics and their optimizer moments."""
    shape = tuple(value.shape)
    return key.partition("__")[2].startswith(_TOPIC_INDEXED) and len(shape) >= 1 and shape[0] == num_topics
REFRESH_DOCS = 2048  # documents of a batch a topic refresh looks at
REFRESH_SIMILARITY = 0.8  # topics at least this alike (centered cosine) are one topic twice


def parse_encoder_layers(encoder_layers: Any, num_topics: int) -> list[int]:
    """SageMaker's ``encoder_layers``: "auto", a comma list ("60,40") or a list of widths.

    "auto" is ``[max(200, 3K), max(100, 2K)]``; SageMaker's is ``[3K, 2K]``, which for 20
    topics over 2,000 words found 8 of 20 true topics of an LDA-generated corpus in one
    pass (100k documents), where ``[200, 100]`` finds 19 (``[300, 200]``: 20) and lifts the
    docstring corpus' label accuracy after four passes from 0.528 to 0.578."""
    if encoder_layers == "auto":
        return [max(200, 3 * num_topics), max(100, 2 * num_topics)]
    if isinstance(encoder_layers, str):
        try:
            encoder_layers = [int(p) for p in encoder_layers.replace(" ", "").strip("[]").split(",") if p]
        except ValueError:
            raise InvalidParameterError(
                f"encoder_layers={encoder_layers!r} must be 'auto' or widths separated by commas, e.g. '60,40'"
            ) from None
    if (not isinstance(encoder_layers, (list, tuple)) or not encoder_layers
            or not all(is_int(h) and h >= 1 for h in encoder_layers)):
        raise InvalidParameterError(f"encoder_layers={encoder_layers!r} must be 'auto' or a list of widths >= 1")
    return [int(h) for h in encoder_layers]


class NTMState(TorchState):
    """State of SageMaker's Neural Topic Model, trained on a stream of documents.

    A variational autoencoder of word counts (NVDM, Miao et al. 2016): an encoder MLP
    gives each document a Gaussian over ``num_topics`` dimensions, whose softmax is the
    document's topic mixture; the decoder turns the mixture back into word probabilities
    (see ``_network.py`` for the two decoders). The loss per document is SageMaker's
    ``total_loss``: the words' negative log-likelihood plus the KL divergence from the
    prior. Steps are taken over ``mini_batch_size`` documents at a time.

    Parameters
    ----------
    num_topics : int, default=10
        Topics (SageMaker requires it; 10 is scikit-learn LDA's default).
    feature_dim : int or None, default=None
        Vocabulary size; inferred from the first batch when None.
    encoder_layers : "auto", str or list of int, default="auto"
        Widths of the encoder's hidden layers; "auto" is ``[max(200, 3*num_topics),
        max(100, 2*num_topics)]`` (wider than SageMaker's ``[3K, 2K]``: see
        ``parse_encoder_layers``).
    encoder_layers_activation : {"sigmoid", "tanh", "relu", "softplus"}, default="sigmoid"
    optimizer : {"adam", "adadelta", "adagrad", "rmsprop", "sgd"}, default="adam"
        SageMaker's default is adadelta, with 50 epochs; one pass needs larger steps
        (see ``learning_rate``).
    learning_rate : float, default=0.02
        Adadelta takes none (as MXNet's): there it scales the steps by
        ``learning_rate / 0.001``, so SageMaker's 0.001 leaves them as they are.
        SageMaker's default is 0.001: on a generated corpus of 30k documents,
        one pass at adam 0.001 recovers the true topics to a mean cosine of 0.25;
        0.02 in steps of 64 documents, 0.66 (0.76 after two passes).
    mini_batch_size : int, default=64
        Documents per optimizer step (the last step of a batch may have fewer;
        SageMaker's default is 256: four times fewer steps per pass).
    batch_norm : bool, default=True
        Batch normalization of the posterior's mean and log variance (and, for the
        product decoder, of the word logits), as ProdLDA's against posterior collapse
        (SageMaker's default is False: on the bench's docstring corpus, without it
        every document got the same topics, label accuracy 0.15 after 3 passes; 0.52
        with it).
    clip_gradient : float, default=inf
        Each gradient value is clipped to ``[-clip_gradient, clip_gradient]``.
    rescale_gradient : float, default=1.0
        Gradients are multiplied by this before clipping.
    sub_sample : float, default=1.0
        Fraction of the training documents stepped on (each drawn independently).
    weight_decay : float, default=0.0
        L2 penalty added to the gradients.
    num_patience_epochs : int, default=3
        Early stopping: evaluations (one per epoch) without improvement of the
        validation loss by more than ``tolerance`` (relative) before training stops; 0
        never stops.
    tolerance : float, default=0.001
    decoder : {"mixture", "product"}, default="mixture"
        How topics make words (not a SageMaker setting): LDA's mixture of topic-word
        distributions, or a product of experts over a learned background (ProdLDA).
    max_validation_rows : int, default=2000
        Validation documents kept, from ``add_validation`` or held out of the stream.
    validation_fraction : float, default=0.05
        Without validation data: every ``round(1/validation_fraction)``-th document is
        held out of training until ``max_validation_rows`` are kept (0 holds none out).
    on_empty_document : {"skip", "fail"}, default="skip"
        A document without words: skipped and counted (``n_empty_documents_``), or an
        error naming its row.
    prior_alpha : float, default=0.5
        The prior over topic mixtures: the Laplace approximation (in the softmax basis) of
        a symmetric Dirichlet(prior_alpha), a Gaussian of variance ``(1 - 2/K)/alpha +
        1/(K alpha)`` (ProdLDA's); not a SageMaker setting. On the bench's generated
        corpus (true alpha 0.1, one pass) 0.5 against 1.0: held-out perplexity 600
        against 633, all 20 true topics found either way (4 runs each); on its
        docstring corpus, 8 passes: perplexity 690 against 770, NPMI 0.24 against 0.23.
    refresh_every : int, default=4096
        Every this many documents trained, the mixture decoder's topics are refreshed
        (``onepass.algorithms.ntm._refresh``; not a SageMaker setting): when two topics
        have become one (centered cosine at least 0.8), one of them is freed to split
        the topic whose documents fall into the two least alike groups. 0 never
        refreshes; the product decoder never does.
    device : str, default="auto"
        "auto" (a GPU when torch sees one), "cpu", "cuda" or "cuda:N".
    seed : int or None

    Attributes
    ----------
    network_ : NTMNetwork or None
    n_features_, n_rows_seen_, n_steps_, rng_
        See :class:`onepass.neural.TorchState`.
    n_documents_trained_ : int
        Documents stepped on (rows seen minus those held out, skipped or sub-sampled away).
    n_empty_documents_ : int
    n_topic_refreshes_ : int
        Topics freed and split (see ``refresh_every``).
    words_seen_ : float
        Words in the documents stepped on.
    validation_ : scipy.sparse.csr_matrix
        The validation documents kept (at most ``max_validation_rows``).
    early_stopping_ : EarlyStopping
    vocabulary_ : ndarray of str or None
        The words of the columns, when the source named them (``--vocab``).

    Notes
    -----
    Memory: the network and its optimizer's moments, ``O(V * (K + encoder width))``
    floats, the batch's counts (sparse: documents are never densified; the product
    decoder's word logits are ``mini_batch_size * V`` floats) and the validation
    documents; never the stream. Time: ``O(words * encoder width + V * (K + encoder
    width))`` per step.
    """

    kind: ClassVar[str] = "ntm"
    ARRAY_SPECS: ClassVar[dict[str, ArraySpec]] = {
        **TorchState.network_array_specs(),
        "validation_data": ArraySpec(("f4",), ("nnz",)),
        "validation_indices": ArraySpec(("i4",), ("nnz",)),
        "validation_indptr": ArraySpec(("i8",), (None,)),
        "validation_shape": ArraySpec(("i8",), (2,)),
        "vocabulary": ArraySpec(("U",), (None,), required=False),
    }

    def __init__(self, num_topics: int = 10, *, feature_dim: int | None = None, encoder_layers: Any = "auto",
                 encoder_layers_activation: str = "sigmoid", optimizer: str = "adam",
                 learning_rate: float = 0.02, mini_batch_size: int = 64, batch_norm: bool = True,
                 clip_gradient: float = math.inf, rescale_gradient: float = 1.0, sub_sample: float = 1.0,
                 weight_decay: float = 0.0, num_patience_epochs: int = 3, tolerance: float = 0.001,
                 decoder: str = "mixture", max_validation_rows: int = 2000, validation_fraction: float = 0.05,
                 on_empty_document: str = "skip", prior_alpha: float = 0.5, refresh_every: int = 4096,
                 device: str = "auto", seed: int | None = None) -> None:
        require("int>=1", num_topics=num_topics, mini_batch_size=mini_batch_size)
        require("int>=0", num_patience_epochs=num_patience_epochs, max_validation_rows=max_validation_rows,
                refresh_every=refresh_every)
        if feature_dim is not None:
            require("int>=1", feature_dim=feature_dim)
        self.encoder_widths = parse_encoder_layers(encoder_layers, int(num_topics))
        require_choice("encoder_layers_activation", encoder_layers_activation, _ACTIVATIONS)
        require_choice("optimizer", optimizer, OPTIMIZERS)
        require_choice("decoder", decoder, _DECODERS)
        require_choice("on_empty_document", on_empty_document, ("skip", "fail"))
        require(">0", prior_alpha=prior_alpha, learning_rate=learning_rate, tolerance=tolerance, rescale_gradient=rescale_gradient)
        require(">=0", weight_decay=weight_decay)
        require("bool", batch_norm=batch_norm)
        if not (isinstance(clip_gradient, (int, float)) and clip_gradient > 0):
            raise InvalidParameterError(f"clip_gradient={clip_gradient!r} must be a number > 0 (inf: no clipping)")
        if not (isinstance(sub_sample, (int, float)) and 0 < sub_sample <= 1):
            raise InvalidParameterError(f"sub_sample={sub_sample!r} must be in (0, 1]")
        require("[0,1)", validation_fraction=validation_fraction)
        self.num_topics = int(num_topics)
        self.feature_dim = feature_dim
        self.encoder_layers = encoder_layers
        self.encoder_layers_activation = encoder_layers_activation
        self.optimizer = optimizer
        self.learning_rate = float(learning_rate)
        self.mini_batch_size = int(mini_batch_size)
        self.batch_norm = bool(batch_norm)
        self.clip_gradient = float(clip_gradient)
        self.rescale_gradient = float(rescale_gradient)
        self.sub_sample = float(sub_sample)
        self.weight_decay = float(weight_decay)
        self.num_patience_epochs = int(num_patience_epochs)
        self.tolerance = float(tolerance)
        self.decoder = decoder
        self.max_validation_rows = int(max_validation_rows)
        self.validation_fraction = float(validation_fraction)
        self.on_empty_document = on_empty_document
        self.prior_alpha = float(prior_alpha)
        self.refresh_every = int(refresh_every)
        self.device = device
        self.seed = seed
        self._init_training()
        self.n_documents_trained_ = 0
        self.n_empty_documents_ = 0
        self.n_topic_refreshes_ = 0
        self.refreshed_at_ = 0  # documents trained at the last refresh (or look for one)
        self.words_seen_ = 0.0
        self.validation_: sp.csr_matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self.has_validation_source_ = False
        self.early_stopping_ = EarlyStopping(self.num_patience_epochs, self.tolerance)
        self.vocabulary_: np.ndarray | None = None

    def hyperparameters(self) -> dict[str, Any]:
        return {"num_topics": self.num_topics, "feature_dim": self.feature_dim,
                "encoder_layers": self.encoder_layers if isinstance(self.encoder_layers, str)
                else list(self.encoder_layers),
                "encoder_layers_activation": self.encoder_layers_activation, "optimizer": self.optimizer,
                "learning_rate": self.learning_rate, "mini_batch_size": self.mini_batch_size,
                "batch_norm": self.batch_norm, "clip_gradient": self.clip_gradient,
                "rescale_gradient": self.rescale_gradient, "sub_sample": self.sub_sample,
                "weight_decay": self.weight_decay, "num_patience_epochs": self.num_patience_epochs,
                "tolerance": self.tolerance, "decoder": self.decoder,
                "max_validation_rows": self.max_validation_rows, "validation_fraction": self.validation_fraction,
                "on_empty_document": self.on_empty_document, "prior_alpha": self.prior_alpha,
                "refresh_every": self.refresh_every, "device": self.device, "seed": self.seed}

    # -- the network ------------------------------------------------------------------

    def _make_network(self, n_features: int) -> Any:
        from onepass.algorithms.ntm._network import NTMNetwork

        return NTMNetwork(n_features, self.num_topics, self.encoder_widths, self.encoder_layers_activation,
                          self.batch_norm, self.decoder, self.prior_alpha)

    def _initial_array(self, name: str, shape: tuple[int, ...], init: np.random.Generator) -> np.ndarray:
        if name == "topics":  # topic-word weights start small and apart (ProdLDA's xavier start)
            bound = math.sqrt(6.0 / (shape[0] + shape[1]))
            return init.uniform(-bound, bound, size=shape).astype(np.float32)
        if name == "words":  # the first layer, (words, width): a linear layer's start, fan-in the words
            bound = 1.0 / math.sqrt(shape[0])
            return init.uniform(-bound, bound, size=shape).astype(np.float32)
        return super()._initial_array(name, shape, init)

    def _width_of(self, parameters: dict[str, np.ndarray]) -> int:
        return int(np.shape(parameters["param__topics"])[1])

    # -- input ------------------------------------------------------------------------

    def name_features(self, names: Any) -> None:
        """Name the columns (the vocabulary, one word per column), e.g. from ``--vocab``."""
        words = np.asarray(list(names), dtype=str)
        width = self.feature_dim if self.n_features_ == -1 else self.n_features_
        if width is not None and words.size != width:
            raise FeatureCountError(f"the vocabulary has {words.size} words, the documents {width} columns")
        self.vocabulary_ = words

    def _documents(self, batch: Batch) -> tuple[sp.csr_matrix, np.ndarray]:
        """The batch as checked CSR float32 counts and per-document weights."""
        X = batch.X
        X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise DataError(f"documents must be a 2-d array of word counts, got {X.ndim} dimension(s)")
        width = self.n_features_ if self.n_features_ != -1 else self.feature_dim
        if width is not None and X.shape[1] != width:
            raise FeatureCountError(
                f"batch has {X.shape[1]} columns, but this NTM state's vocabulary has {width} words"
                f"{'' if self.n_features_ == -1 else ' (set by the data it was trained on)'}; "
                "use documents counted against the same vocabulary")
        if sp.issparse(X):
            X.sum_duplicates()
            if X.nnz and (X.indices.min() < 0 or X.indices.max() >= X.shape[1]):
                bad = np.flatnonzero((X.indices < 0) | (X.indices >= X.shape[1]))[0]
                row = int(np.searchsorted(X.indptr, bad, side="right") - 1)
                raise DataError(f"row {row} of the batch has word index {int(X.indices[bad])}, past the "
                                f"vocabulary's {X.shape[1]} words (0 to {X.shape[1] - 1})")
        check_counts(X)
        X = sp.csr_matrix(X) if not sp.issparse(X) else X
        w = np.ones(X.shape[0], np.float32) if batch.w is None else np.asarray(batch.w, dtype=np.float32)
        if w.shape != (X.shape[0],) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError(f"the batch weights must be {X.shape[0]} finite values >= 0")
        return X, w

    def _drop_empty(self, X: sp.csr_matrix, w: np.ndarray, first_row: int) -> tuple[sp.csr_matrix, np.ndarray]:
        empty = np.asarray(X.sum(axis=1)).ravel() <= 0
        if not empty.any():
            return X, w
        if self.on_empty_document == "fail":
            row = int(np.flatnonzero(empty)[0])
            raise DataError(f"row {row} of the batch (document {first_row + row + 1} of the stream) has no words; "
                            "drop empty documents, or train with on_empty_document='skip' to skip and count them")
        self.n_empty_documents_ += int(empty.sum())
        keep = np.flatnonzero(~empty)
        return X[keep], w[keep]

    # -- training ---------------------------------------------------------------------

    def update(self, batch: Batch) -> None:
        """Learn from one batch of documents, in steps of ``mini_batch_size``."""
        X, w = self._documents(batch)
        first_row = self.n_rows_seen_
        self.n_rows_seen_ += X.shape[0]
        if self.network_ is None:
            self._build(X.shape[1])
            self._start_background(X)
        X, w = self._drop_empty(X, w, first_row)
        X, w = self._hold_out(X, w, first_row)
        if self.sub_sample < 1.0 and X.shape[0]:
            keep = np.flatnonzero(self.rng_.random(X.shape[0]) < self.sub_sample)
            X, w = X[keep], w[keep]
        self.network_.train()
        csr = _CSRTensors(self, X)
        for start in range(0, X.shape[0], self.mini_batch_size):
            stop = min(start + self.mini_batch_size, X.shape[0])
            if stop - start < 2 and self.batch_norm:
                continue  # batch statistics need two documents (counted, not stepped)
            self._learn(csr.documents(start, stop), w[start:stop])
        self._refresh(X, csr)

    def _start_background(self, X: sp.csr_matrix) -> None:
        """Start the decoder at the log word frequencies of the first batch (add-one
        smoothed): the mixture's topics all start there, apart by their small random
        starts; the product decoder's background ``b`` starts there, so that its topics
        learn what sets documents apart rather than first relearning the common words
        (NVDM's and ProdLDA's practice). On a generated corpus (10 topics, 30k
        documents, one pass) the mixture started so recovers the true topics to a mean
        cosine of 0.997, as scikit-learn's online LDA does (0.998); started at zero
        with a learned background, 0.90."""
        import torch

        counts = np.asarray(X.sum(axis=0), dtype=np.float64).ravel() + 1.0
        with torch.no_grad():
            if self.decoder == "mixture":
                self.network_.topics.add_(self._tensor(np.log(counts / counts.sum()))[None, :])
            else:
                self.network_.background.copy_(self._tensor(np.log(counts / counts.sum())))

    def _learn(self, docs: Any, w: np.ndarray) -> None:
        recon, kl = self.network_.losses(docs, self._normal((docs.n, self.num_topics)))
        weights = self._tensor(w)
        loss = ((recon + kl) * weights).sum() / max(float(w.sum()), 1e-12)
        self._step(loss)
        self.n_documents_trained_ += docs.n
        self.words_seen_ += float(docs.counts.sum())

    def _refresh(self, X: sp.csr_matrix, csr: _CSRTensors) -> None:
        """Look for a topic move (``_refresh``) on up to ``REFRESH_DOCS`` of the batch just
        learned, once ``refresh_every`` documents were trained since the last look."""
        if (self.refresh_every == 0 or self.decoder != "mixture"
                or self.n_documents_trained_ - self.refreshed_at_ < self.refresh_every or X.shape[0] < 2):
            return
        import torch

        from onepass.algorithms.ntm._refresh import find_move

        self.refreshed_at_ = self.n_documents_trained_
        n = min(X.shape[0], REFRESH_DOCS)
        net = self.network_
        net.eval()
        with torch.no_grad():
            docs = csr.documents(0, n)
            theta = torch.softmax(net.encode(docs)[0], dim=1).double().cpu().numpy()
            topic_word = torch.softmax(net.topics.double(), dim=1).cpu().numpy()
        net.train()
        move = find_move(topic_word, theta, X[:n], self.rng_, REFRESH_SIMILARITY)
        if move is None:
            return
        with torch.no_grad():
            # the freed topic takes the split one's place in the encoder's output, buffers and moments
            for key, t in self._live_tensors():
                if _is_topic_indexed(key, t, self.num_topics):
                    t[move.freed] = t[move.split]
            net.topics[move.split] = self._tensor(np.log(move.split_words))
            net.topics[move.freed] = self._tensor(np.log(move.freed_words))
        self.n_topic_refreshes_ += 1

    def _hold_out(self, X: sp.csr_matrix, w: np.ndarray, first_row: int) -> tuple[sp.csr_matrix, np.ndarray]:
        """Without a validation source, keep every k-th document of the stream for
        validation until ``max_validation_rows`` are kept; train on the rest."""
        room = self.max_validation_rows - self.validation_.shape[0]
        if self.has_validation_source_ or room <= 0 or self.validation_fraction == 0 or X.shape[0] == 0:
            return X, w
        every = max(1, round(1.0 / self.validation_fraction))
        # positions in the stream (counted after empty documents are dropped: close enough to pick 1 in k)
        held = np.flatnonzero(np.arange(first_row, first_row + X.shape[0]) % every == 0)[:room]
        if held.size == 0:
            return X, w
        self._keep_validation(X[held])
        keep = np.setdiff1d(np.arange(X.shape[0]), held)
        return X[keep], w[keep]

    def _keep_validation(self, X: sp.csr_matrix) -> None:
        if self.validation_.shape[0] == 0:
            self.validation_ = sp.csr_matrix(X, dtype=np.float32)
        else:
            self.validation_ = sp.vstack([self.validation_, X], format="csr", dtype=np.float32)

    def add_validation(self, batch: Batch) -> int:
        """Keep documents of a validation source (up to ``max_validation_rows``); returns
        how many were kept. Documents held out of the stream are then not needed."""
        X, _ = self._documents(batch)
        X = X[np.flatnonzero(np.asarray(X.sum(axis=1)).ravel() > 0)]
        if self.network_ is None:  # validation documents come first: the decoder starts from them
            self._build(X.shape[1])
            self._start_background(X)
        room = self.max_validation_rows - self.validation_.shape[0]
        if not self.has_validation_source_:
            self.has_validation_source_ = True
            self.validation_ = sp.csr_matrix((0, X.shape[1]), dtype=np.float32)
            room = self.max_validation_rows
        X = X[:max(room, 0)]
        if X.shape[0]:
            self._keep_validation(X)
        return int(X.shape[0])

    @property
    def wants_validation(self) -> bool:
        return self.validation_.shape[0] < self.max_validation_rows

    # -- evaluation, early stopping ---------------------------------------------------

    def evaluate(self, X: Any = None) -> dict[str, float]:
        """SageMaker's validation metrics on ``X`` (the validation documents by default):
        ``total_loss`` (mean reconstruction + KL per document, at the posterior mean),
        ``perplexity`` (exp of the loss per word), ``npmi`` (mean coherence of each topic's
        top 10 words over those documents) and ``topic_uniqueness``."""
        return self.model().evaluate(self.validation_ if X is None else X)

    def end_epoch(self) -> None:
        """Called by the training loop at the end of each epoch: one early-stopping
        evaluation on the validation documents (none kept: nothing to judge)."""
        if self.network_ is None or self.validation_.shape[0] == 0:
            return
        self.early_stopping_.observe(self.evaluate()["total_loss"])

    @property
    def is_stopped(self) -> bool:
        """True once early stopping has ended training."""
        return self.early_stopping_.is_stopped

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"documents_trained": float(self.n_documents_trained_),
                                 "empty_documents": float(self.n_empty_documents_),
                                 "topic_refreshes": float(self.n_topic_refreshes_)}
        if self.network_ is not None and self.validation_.shape[0]:
            out.update({f"validation_{k}": v for k, v in self.evaluate().items()})
        return out

    # -- merge ------------------------------------------------------------------------

    def merge(self, other: NTMState) -> None:
        """Average the networks and optimizer moments, weighted by rows seen (a
        parameter server's loose consistency, see :class:`onepass.neural.TorchState`);
        counts add up, validation documents are pooled up to ``max_validation_rows``."""
        if not isinstance(other, NTMState):
            raise IncompatibleStateError(f"cannot merge {type(other).__name__} into NTMState")
        mine, theirs = self.hyperparameters(), other.hyperparameters()
        mine.pop("seed"), theirs.pop("seed")
        mine.pop("device"), theirs.pop("device")
        if mine != theirs:
            diff = sorted(k for k in mine if mine[k] != theirs[k])
            raise IncompatibleStateError(f"cannot merge NTM states with different hyperparameters: {diff}")
        if other.network_ is None:
            return
        if self.network_ is None and self.n_rows_seen_ == 0:
            become_copy(self, other)
            return
        self._merge_networks(other)
        self.n_rows_seen_ += other.n_rows_seen_
        self.n_documents_trained_ += other.n_documents_trained_
        self.n_empty_documents_ += other.n_empty_documents_
        self.n_topic_refreshes_ += other.n_topic_refreshes_
        self.words_seen_ += other.words_seen_
        room = self.max_validation_rows - self.validation_.shape[0]
        if room > 0 and other.validation_.shape[0]:
            self._keep_validation(other.validation_[:room])
        if self.vocabulary_ is None:
            self.vocabulary_ = other.vocabulary_

    def _aligned(self, mine: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``theirs`` with its topics put in the order of ``mine``: topics are exchangeable,
        and states trained apart (or refreshed apart) hold the same topics in different
        places. Each of ``mine`` is paired with one of theirs by the Hungarian method on
        the cosine of their word distributions; every array indexed by topic (the topics,
        the encoder's outputs, their batch norm statistics and optimizer moments) follows."""
        from scipy.optimize import linear_sum_assignment

        def unit(topics: np.ndarray) -> np.ndarray:
            p = np.exp(topics - topics.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            return p / np.linalg.norm(p, axis=1, keepdims=True)

        mine_t, theirs_t = (np.asarray(x["param__topics"], dtype=np.float64) for x in (mine, theirs))
        _, order = linear_sum_assignment(-(unit(mine_t) @ unit(theirs_t).T))
        if np.array_equal(order, np.arange(order.size)):
            return theirs
        return {key: np.asarray(value)[order] if _is_topic_indexed(key, np.asarray(value), self.num_topics) else value
                for key, value in theirs.items()}

    # -- arrays -----------------------------------------------------------------------

    def to_arrays(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        meta = {"hyperparameters": self.hyperparameters(), **self._training_meta(),
                "n_documents_trained": self.n_documents_trained_, "n_empty_documents": self.n_empty_documents_,
                "n_topic_refreshes": self.n_topic_refreshes_, "refreshed_at": self.refreshed_at_,
                "words_seen": self.words_seen_, "has_validation_source": self.has_validation_source_,
                "early_stopping": self.early_stopping_.to_meta()}
        V = self.validation_
        arrays = {**self.network_arrays(),
                  "validation_data": V.data.astype(np.float32), "validation_indices": V.indices.astype(np.int32),
                  "validation_indptr": V.indptr.astype(np.int64),
                  "validation_shape": np.asarray(V.shape, dtype=np.int64)}
        if self.vocabulary_ is not None:
            arrays["vocabulary"] = self.vocabulary_
        return meta, arrays

    @classmethod
    def from_arrays(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> NTMState:
        state = cls(**meta["hyperparameters"])
        state._restore_training(meta, arrays)
        state.n_documents_trained_ = int(meta["n_documents_trained"])
        state.n_empty_documents_ = int(meta["n_empty_documents"])
        state.n_topic_refreshes_ = int(meta["n_topic_refreshes"])
        state.refreshed_at_ = int(meta["refreshed_at"])
        state.words_seen_ = float(meta["words_seen"])
        state.has_validation_source_ = bool(meta["has_validation_source"])
        state.early_stopping_.restore(meta["early_stopping"])
        shape = tuple(int(s) for s in arrays["validation_shape"])
        V = sp.csr_matrix((np.array(arrays["validation_data"], dtype=np.float32),
                           np.array(arrays["validation_indices"], dtype=np.int32),
                           np.array(arrays["validation_indptr"], dtype=np.int64)), shape=shape)
        V.check_format(full_check=True)
        state.validation_ = V
        if "vocabulary" in arrays:
            state.vocabulary_ = np.asarray(arrays["vocabulary"], dtype=str)
        return state

    # -- finalize ---------------------------------------------------------------------

    def model(self, *, top_words: int = 10) -> NTMModel:
        """The topic model: the encoder and topics as NumPy arrays (no torch needed to
        predict or serve); ``top_words`` per topic are listed in its metadata."""
        if self.network_ is None:
            from onepass.errors import NotFittedError

            raise NotFittedError("this NTM state has seen no documents; train it first")
        arrays = {k.partition("__")[2]: v for k, v in self.parameters().items()
                  if k.startswith("param__") or "__running_" in k}

        return NTMModel(arrays, num_topics=self.num_topics, n_layers=len(self.encoder_widths),
                        activation=self.encoder_layers_activation, batch_norm=self.batch_norm,
                        decoder=self.decoder, prior_variance=self.network_.prior_var, vocabulary=self.vocabulary_,
                        top_words=top_words,
                        n_rows_seen=self.n_rows_seen_)


class _CSRTensors:
    """A batch's CSR arrays as tensors on the state's device, cut into mini-batches
    (:class:`~onepass.algorithms.ntm._network.Documents`) without densifying them."""

    def __init__(self, state: NTMState, X: sp.csr_matrix) -> None:
        import torch

        device = state.torch_device
        self.indptr = X.indptr.astype(np.int64)
        self.words = torch.from_numpy(X.indices.astype(np.int64)).to(device)
        self.counts = torch.from_numpy(np.asarray(X.data, dtype=np.float32)).to(device)
        self.rows = torch.from_numpy(np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(self.indptr))).to(device)
        self.starts = torch.from_numpy(self.indptr[:-1]).to(device)
        from onepass.algorithms.ntm._network import Documents

        self._documents = Documents

    def documents(self, start: int, stop: int) -> Any:
        a, b = int(self.indptr[start]), int(self.indptr[stop])
        return self._documents(self.words[a:b], self.starts[start:stop] - a, self.counts[a:b], self.rows[a:b] - start)
