"""``evaluate``: one read of a data source, the model's own measures (the scorer of its
kind, :mod:`onepass.tune._scorers`, the one ``tune`` ranks models with)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from onepass.errors import FeatureCountError, InvalidParameterError
from onepass.evaluation._text import format_number, format_table
from onepass.evaluation._units import is_probability_score, shown_threshold

__all__ = ["MEASURE_NOTES", "Evaluation", "evaluate"]

#: what each measure is, in a few words, for the table people read
MEASURE_NOTES = {
    "auc": "area under the ROC curve (1 perfect, 0.5 chance)",
    "cross_entropy": "log loss: mean -log p(true label) (lower is better)",
    "accuracy": "share of rows labelled right",
    "f1": "harmonic mean of precision and recall",
    "precision": "rows labelled 1 that are 1",
    "recall": "rows that are 1 labelled 1",
    "macro_precision": "precision of each class, averaged",
    "macro_recall": "recall of each class, averaged",
    "macro_f1": "F1 of each class, averaged",
    "rmse": "root mean squared error",
    "mae": "mean absolute error",
    "r2": "1 - squared error / variance of the labels",
    "inertia": "sum of squared distances to the closest center",
    "inertia_per_row": "inertia / rows: mean squared distance",
    "bic": "Bayesian information criterion (lower is better)",
    "silhouette": "mean silhouette, 2,000-row sample (-1..1, higher is better)",
    "reconstruction_error": "mean squared distance of a row to its reconstruction",
    "validation_explained_variance": "explained variance ratio of these rows, all components",
    "explained_variance_ratio": "explained variance ratio in training, all components",
    "perplexity": "exp(loss / words) (lower is better)",
    "total_loss": "mean per document: words' negative log-likelihood + KL",
    "npmi": "top words' coherence over these documents (-1..1)",
    "topic_uniqueness": "how little top words repeat across topics (1/topics..1)",
    "mean_wQuantileLoss": "weighted quantile loss, mean over the quantiles",
    "RMSE": "root mean squared error of the mean forecast",
    "MSE": "mean squared error of the mean forecast",
    "MASE": "mean absolute error of the median / seasonal naive error",
    "ND": "absolute error of the median / sum |actual|",
}

_SUPERVISED_NAMES = {"linear-learner": "Linear Learner", "factorization-machines": "Factorization Machines"}


def _task(model: Any) -> str:
    predictor_type = getattr(model, "predictor_type", None)
    if predictor_type is not None:
        return predictor_type
    return {"kmeans": "clustering", "pca": "components", "ntm": "topics", "forecast": "forecast"}.get(model.kind,
                                                                                                    model.kind)


def _about(model: Any) -> dict[str, Any]:
    """What the table and the JSON say of the model itself (its threshold as ``predict``'s score)."""
    about: dict[str, Any] = {}
    if getattr(model, "predictor_type", None) == "binary_classifier":
        about["threshold"] = shown_threshold(model.threshold_, model.loss)
        about["score"] = "probability" if is_probability_score(model.loss) else "raw score"
    for name in ("n_clusters", "n_components", "num_topics", "prediction_length"):
        value = getattr(model, name, None)
        if isinstance(value, int):
            about[name] = value
    return about


def _describe(about: dict[str, Any]) -> str:
    parts = []
    for key, value in about.items():
        if key == "threshold":
            parts.append(f"decision threshold {format_number(value, 4)} (on the {about.get('score', 'score')} "
                         "predict writes: rows at or above are labelled 1)")
        elif key == "prediction_length":
            parts.append(f"forecasts {format_number(value)} steps")
        elif key != "score":
            parts.append(f"{format_number(value)} {key.removeprefix('n_').removeprefix('num_').replace('_', ' ')}")
    return ", ".join(parts)


#: what a row is, by task (a forecaster reads series, a topic model documents)
_ROWS = {"forecast": "series", "topics": "documents"}


def _in_table(name: str) -> bool:
    """Whether the table shows a measure (the sums behind a forecaster's measures are in --json only)."""
    return not name.startswith("QuantileLoss[") and name not in ("abs_error", "abs_target_sum", "n_series",
                                                                  "n_points")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class Evaluation:
    """A model's measures on one read of a data source.

    Attributes
    ----------
    algorithm : str
        The algorithm's name (``kmeans``, ``linear-learner``...).
    task : str
        ``binary_classifier``, ``multiclass_classifier``, ``regressor``, ``clustering``,
        ``components``, ``topics`` or ``forecast``.
    data : str
        The source read.
    n_rows, n_skipped, n_quarantined : int
        Rows measured, and bad records skipped or quarantined (not measured).
    model : dict
        What is measured of the model's own settings: a binary classifier's
        ``threshold`` as ``predict``'s score (a probability for logistic loss), the
        number of clusters, components, topics.
    measures : dict of str to float
        The scorer's measures (:mod:`onepass.tune._scorers`); NaN where undefined.
    details : dict
        JSON-able tables: ``confusion_matrix`` (rows actual, columns predicted),
        ``cluster_sizes``, ``components`` (each one's explained variance ratio),
        ``topics`` (top words and NPMI).
    curves : dict of str to ndarray
        What :meth:`plot` draws (ROC, calibration, residual sample); not in :meth:`to_json`.
    """

    algorithm: str
    task: str
    data: str
    n_rows: int
    n_skipped: int = 0
    n_quarantined: int = 0
    model: dict[str, Any] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self) -> dict[str, Any]:
        """One JSON object (NaN and infinities as null)."""
        return _jsonable({"algorithm": self.algorithm, "task": self.task, "data": self.data, "rows": self.n_rows,
                          "skipped": self.n_skipped, "quarantined": self.n_quarantined, "model": self.model,
                          "measures": self.measures, "details": self.details})

    def table(self) -> str:
        """The measures as aligned text, then the details that apply."""
        head = (f"{self.algorithm} ({self.task.replace('_', ' ')}) on {self.n_rows:,} {_ROWS.get(self.task, 'rows')} "
                f"of {self.data}")
        bad = [f"{n:,} {what}" for n, what in ((self.n_skipped, "skipped"), (self.n_quarantined, "quarantined")) if n]
        if bad:
            head += f" ({', '.join(bad)}: not measured)"
        lines = [head] + ([f"model: {_describe(self.model)}"] if self.model else []) + [""]
        lines.append(format_table([{"measure": k, "value": v, "meaning": MEASURE_NOTES.get(k, "")}
                                   for k, v in self.measures.items() if _in_table(k)]))
        matrix = self.details.get("confusion_matrix")
        if matrix:
            lines += ["", "confusion matrix (rows: actual label, columns: predicted label)"]
            lines.append(format_table([{"actual": c, **{f"pred {j}": v for j, v in enumerate(row)}}
                                       for c, row in enumerate(matrix)]))
        sizes = self.details.get("cluster_sizes")
        if sizes:
            total = sum(sizes) or 1
            shown = [{"cluster": c, "rows": n, "share": f"{100 * n / total:.1f}%"} for c, n in enumerate(sizes)]
            lines += ["", "cluster sizes (rows closest to each center)", format_table(shown[:50])]
            if len(shown) > 50:
                lines.append(f"... {len(shown) - 50} more clusters (--json lists them all)")
        components = self.details.get("components")
        if components:
            cumulative, rows = 0.0, []
            for c in components:
                cumulative += c["explained_variance_ratio"]
                rows.append({**c, "cumulative": cumulative})
            lines += ["", "explained variance ratio per component (these rows; in training)",
                      format_table(rows[:50], ["component", "explained_variance_ratio", "cumulative",
                                               "training_explained_variance_ratio"])]
            if len(rows) > 50:
                lines.append(f"... {len(rows) - 50} more components (--json lists them all)")
        topics = self.details.get("topics")
        if topics:
            lines += ["", "topics (NPMI over these documents, top words)",
                      format_table([{"topic": t["topic"], "npmi": t["npmi"], "top words": " ".join(map(str, t["top_words"]))}
                                    for t in topics])]
        return "\n".join(lines)

    def plot(self, path: str | os.PathLike[str]) -> Any:
        """Draw what people look at into ``path`` (PNG; needs matplotlib, the ``plot``
        extra): ROC and calibration curves (binary), the confusion matrix (multiclass),
        residuals against predictions (regression), cluster sizes (K-Means), each
        component's explained variance (PCA), each topic's NPMI (topic models)."""
        from onepass.evaluation._plot import plot_evaluation

        return plot_evaluation(self, path)


def evaluate(model: Any, data: Any, *, label_column: str | int | None = None, weight_column: str | int | None = None,
             batch_size: int = 8192, seed: int = 0, manifest: dict[str, Any] | None = None,
             **source_options: Any) -> Evaluation:
    """Measure ``model`` on ``data``, read once, with its algorithm's own measures.

    Parameters
    ----------
    model : model or str or PathLike
        A finalized model, or the directory ``onepass train --out`` wrote.
    data : str or PathLike or list
        Any source :func:`onepass.open_source` reads.
    label_column, weight_column : str or int or None, default None
        The label column (needed by classifiers and regressors, unless the format
        carries labels: libsvm, RecordIO-protobuf), and a weight column to leave out of
        the features (measures are not weighted). Default: the columns the model was
        trained with, as its manifest's ``schema`` records them; a model that knows its
        features by name reads them by name, and leaves every other column out.
    batch_size : int, default 8192
    seed : int, default 0
        Seeds the silhouette's sample and a forecaster's sample paths.
    manifest : dict or None, default None
        The manifest of a ``model`` given as an object (read with it from a directory).
    **source_options
        The source's other options (``format``, ``header``, ``n_features``,
        ``zero_based``, ``on_bad_record``, ``quarantine_file``, ``vocab``...).

    Notes
    -----
    Memory is fixed by the model, not by the rows: score histograms (AUC, ROC,
    calibration), confusion counts, per-cluster and per-component sums, a 2,000-row
    sample for the silhouette and a regressor's residual plot. Forecasters keep the
    series read (as a test channel is scored: a series' MASE needs its history).

    Examples
    --------
    >>> import numpy as np
    >>> from onepass.algorithms.kmeans import KMeansState
    >>> from onepass.batch import Batch
    >>> X = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    >>> state = KMeansState(n_clusters=2, seed=0)
    >>> state.update(Batch(X[:100]))
    >>> state.update(Batch(X[100:]))
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "rows.npy", X)
    >>> result = evaluate(state.model(), folder / "rows.npy")
    >>> result.n_rows, sorted(result.measures)
    (200, ['bic', 'inertia', 'inertia_per_row', 'silhouette'])
    >>> bool(abs(result.measures["inertia"] - state.model().inertia(X)) < 1e-4 * result.measures["inertia"])
    True
    """
    from onepass.tune._from_state import run_scorer
    from onepass.tune._scorers import scorer_for

    if isinstance(model, (str, os.PathLike)):
        from onepass.io import load_model

        model, manifest = load_model(model)
    from onepass.schema import InputSchema

    schema = InputSchema.of(manifest or {})
    scorer_cls = scorer_for(model.kind)
    name = (manifest or {}).get("algorithm") or model.kind
    # The label: given, or the one the model was trained with; a model that reads its
    # features by name leaves the other columns out itself, so an unsupervised one needs
    # neither label nor weight column (and data without them reads as well)
    by_name = schema.feature_names is not None
    if label_column is None and (scorer_cls.needs_labels or not by_name):
        label_column = schema.label_column
    if weight_column is None and not by_name:
        weight_column = schema.weight_column
    if hasattr(model, "forecast") and source_options.get("format") is None:
        source_options["format"] = "series"
    source_options = {k: v for k, v in source_options.items() if v is not None}
    source_options.update(schema.source_options(label_column=label_column, weight_column=weight_column))

    def check(batch: Any) -> None:
        if scorer_cls.needs_labels and batch.y is None:
            shown = _SUPERVISED_NAMES.get(model.kind, name)
            raise InvalidParameterError(
                f"evaluating a {shown} model needs the labels: give --label-column NAME or INDEX "
                "(label_column=...), the column of the data holding them"
                + ("" if schema.label_column is not None else "; the model's manifest records no label column"))

    try:
        scorer, counts = run_scorer([model], data, seed=seed, batch_size=batch_size, detailed=True, check=check,
                                    **source_options)
    except FeatureCountError as exc:
        raise FeatureCountError(schema.explain(exc, label_given=label_column is not None)) from None
    report = scorer.report(0)
    shown_data = data if isinstance(data, str) else (
        ", ".join(map(str, data)) if isinstance(data, (list, tuple)) and all(isinstance(d, (str, os.PathLike)) for d in data)
        else str(data) if isinstance(data, os.PathLike) else type(data).__name__)
    return Evaluation(algorithm=name, task=_task(model), data=shown_data, n_rows=counts["rows"],
                      n_skipped=counts["skipped"], n_quarantined=counts["quarantined"], model=_about(model),
                      measures={k: float(v) for k, v in report["measures"].items()}, details=report["details"],
                      curves=report["curves"])
