"""Pictures of an evaluation: what people look at for each kind of model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from onepass._plotting import pyplot, save_figure
from onepass.errors import InvalidParameterError

__all__ = ["PLOTTED_TASKS", "check_plot", "plot_evaluation"]

#: the tasks --plot draws: what, and for which models
PLOTTED_TASKS = {
    "binary_classifier": ("ROC and calibration curves", "binary classifiers"),
    "multiclass_classifier": ("the confusion matrix", "multiclass classifiers"),
    "regressor": ("residuals against predictions", "regressors"),
    "clustering": ("cluster sizes", "K-Means"),
    "components": ("explained variance per component", "PCA"),
    "topics": ("NPMI per topic", "topic models"),
}


def check_plot(task: str) -> None:
    """Fail before any data is read when ``--plot`` cannot be drawn: matplotlib missing,
    or nothing to draw for ``task``."""
    if task not in PLOTTED_TASKS:
        raise InvalidParameterError(
            f"--plot draws nothing for a {task} model; it draws "
            + "; ".join(f"{what} for {models}" for what, models in PLOTTED_TASKS.values())
            + (" (onepass predict --plot draws a forecaster's forecasts)" if task == "forecast" else ""))
    pyplot()


def plot_evaluation(evaluation: Any, path: str | os.PathLike[str]) -> Path:
    """Draw ``evaluation`` (an :class:`~onepass.evaluation.Evaluation`) into ``path`` (PNG)."""
    check_plot(evaluation.task)
    plt = pyplot()
    task, curves, details, m = evaluation.task, evaluation.curves, evaluation.details, evaluation.measures
    title = f"{evaluation.algorithm} on {evaluation.n_rows:,} rows of {evaluation.data}"
    if task == "binary_classifier":
        has_calibration = "calibration_predicted" in curves
        fig, axes = plt.subplots(1, 2 if has_calibration else 1, figsize=(11 if has_calibration else 5.5, 4.8),
                                 dpi=110, squeeze=False)
        ax = axes[0, 0]
        ax.plot(curves["roc_fpr"], curves["roc_tpr"], lw=2, label=f"AUC {m.get('auc', float('nan')):.4f}")
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
        matrix = details.get("confusion_matrix")
        if matrix:
            (tn, fp), (fn, tp) = matrix
            ax.plot([fp / max(fp + tn, 1)], [tp / max(tp + fn, 1)], "o", color="C3",
                    label=f"the model's threshold ({evaluation.model.get('threshold', float('nan')):.3g})")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower right")
        if has_calibration:
            ax = axes[0, 1]
            ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
            ax.plot(curves["calibration_predicted"], curves["calibration_observed"], marker="o", lw=2, label="model")
            ax.set(xlabel="predicted probability (mean of the bin)", ylabel="share of rows labelled 1",
                   title="calibration (10 bins)", xlim=(0, 1), ylim=(0, 1.01))
            ax.legend(loc="upper left")
    elif task == "multiclass_classifier":
        import numpy as np

        matrix = np.asarray(details.get("confusion_matrix") or [[0]], dtype=np.float64)
        fig, ax = plt.subplots(figsize=(5.5, 4.8), dpi=110)
        shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=ax, label="share of the actual class")
        if matrix.shape[0] <= 20:
            for (i, j), v in np.ndenumerate(matrix):
                ax.text(j, i, f"{int(v):,}", ha="center", va="center", fontsize=8,
                        color="white" if shares[i, j] > 0.5 else "black")
        ticks = range(matrix.shape[0]) if matrix.shape[0] <= 20 else range(0, matrix.shape[0], matrix.shape[0] // 10)
        ax.set(xlabel="predicted class", ylabel="actual class", xticks=list(ticks), yticks=list(ticks),
               title=f"confusion matrix (accuracy {m['accuracy']:.4f})")
    elif task == "regressor":
        import numpy as np

        predicted, actual = np.asarray(curves.get("predicted", [])), np.asarray(curves.get("actual", []))
        fig, ax = plt.subplots(figsize=(6.5, 4.6), dpi=110)
        ax.scatter(predicted, actual - predicted, s=6, alpha=0.4)
        ax.axhline(0, color="grey", lw=1)
        ax.set(xlabel="predicted", ylabel="actual - predicted",
               title=f"residuals ({len(predicted):,} rows sampled; RMSE {m['rmse']:.4g})")
    elif task == "clustering":
        sizes = details.get("cluster_sizes") or []
        fig, ax = plt.subplots(figsize=(max(5.0, min(14.0, 0.3 * len(sizes) + 3)), 4.2), dpi=110)
        ax.bar(range(len(sizes)), sizes)
        ax.set(xlabel="cluster", ylabel="rows", title=f"cluster sizes (inertia per row {m['inertia_per_row']:.4g})")
    elif task == "components":
        import numpy as np

        comps = details.get("components") or []
        ratio = np.array([c["explained_variance_ratio"] for c in comps])
        training = np.array([c["training_explained_variance_ratio"] for c in comps])
        x = np.arange(len(comps))
        fig, ax = plt.subplots(figsize=(max(5.5, min(14.0, 0.35 * len(comps) + 3)), 4.4), dpi=110)
        ax.bar(x - 0.2, ratio, width=0.4, label="these rows")
        ax.bar(x + 0.2, training, width=0.4, label="training", alpha=0.6)
        ax.plot(x, np.cumsum(ratio), marker="o", color="C3", label="cumulative (these rows)")
        ax.set(xlabel="component", ylabel="explained variance ratio", ylim=(0, 1.02),
               title="explained variance per component")
        ax.legend()
    else:  # topics
        topics = details.get("topics") or []
        fig, ax = plt.subplots(figsize=(max(5.5, min(14.0, 0.35 * len(topics) + 3)), 4.2), dpi=110)
        ax.bar(range(len(topics)), [t["npmi"] for t in topics])
        ax.axhline(0, color="grey", lw=1)
        ax.set(xlabel="topic", ylabel="NPMI of the top words", title=f"topic coherence (mean {m.get('npmi', 0):.3f})")
    if task in ("clustering", "components", "topics"):  # bars: one per cluster, component, topic
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)
