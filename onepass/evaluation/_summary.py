"""``onepass inspect``: a manifest for people.

What was trained, on what, with which settings, and what it learned: each algorithm's
headline numbers as its model wrote them into the manifest (K-Means inertia in total and
per row and the cluster sizes, PCA's explained variance per component, the chosen linear
model and its leaderboard, a topic model's top words, a forecaster's settings), then the
arrays, one line each (no checksums). Thresholds are shown as ``predict``'s score
(:mod:`onepass.evaluation._units`).

Only the manifest is read, and only pure Python runs: ``inspect`` starts fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from onepass.evaluation._text import format_number, format_table
from onepass.evaluation._units import is_probability_score, shown_threshold

__all__ = ["HEADLINES", "summarize"]

_MAX_ROWS = 50  # rows of a table shown before "... N more"
_QUIET_METRICS = ("time", "event")  # a metrics record's fields nobody reads in a summary


def _kv(pairs: dict[str, Any], indent: str = "  ", *, settings: bool = False) -> list[str]:
    """``name  value`` lines, names aligned; ``settings`` as given (``none``, ``12``)."""
    if not pairs:
        return [indent + "(none)"]
    width = max(len(k) for k in pairs)
    return [f"{indent}{k.ljust(width)}  {_setting(v) if settings else _value(v)}" for k, v in pairs.items()]


def _grid(pairs: dict[str, str], indent: str = "  ", width: int = 100) -> list[str]:
    """``name value`` cells in as many columns as fit in ``width`` characters, filled
    down each column, names and values aligned within a column (many settings, few lines)."""
    if not pairs:
        return [indent + "(none)"]
    items = list(pairs.items())
    for n_cols in range(min(4, len(items)), 0, -1):
        n_rows = -(-len(items) // n_cols)
        columns = [items[i * n_rows:(i + 1) * n_rows] for i in range(n_cols)]
        columns = [c for c in columns if c]
        names = [max(len(k) for k, _ in col) for col in columns]
        cells = [[f"{k.ljust(w)}  {v}" for k, v in col] for col, w in zip(columns, names, strict=True)]
        widths = [max(len(c) for c in col) + 3 for col in cells]
        if n_cols == 1 or len(indent) + sum(widths) - 3 <= width:
            break
    return [(indent + "".join(col[r].ljust(w) for col, w in zip(cells, widths, strict=True) if r < len(col))).rstrip()
            for r in range(n_rows)]


def _setting(v: Any) -> str:
    """A hyperparameter as the command line takes it."""
    if v is None:
        return "none"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float, str)):
        return str(v)
    return _value(v)


def _value(v: Any) -> str:
    if isinstance(v, (dict, list)):
        text = json.dumps(v, separators=(", ", ": "))
        return text if len(text) <= 100 else text[:97] + "..."
    return format_number(v)


def _capped(records: list[dict[str, Any]], columns: list[str] | None = None, what: str = "rows") -> list[str]:
    lines = format_table(records[:_MAX_ROWS], columns, indent="  ").splitlines()
    if len(records) > _MAX_ROWS:
        lines.append(f"  ... {len(records) - _MAX_ROWS} more {what} (--json shows them all)")
    return lines


def _not_recorded(what: str) -> list[str]:
    return [f"  {what}: not recorded in this manifest (a model written by an older onepass); "
            "'onepass evaluate MODEL --data ...' measures it"]


# -- each algorithm's headline numbers, from its model's meta ---------------------------------


def _kmeans(meta: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    sizes = meta.get("cluster_sizes")
    inertia = meta.get("inertia")
    per_row = meta.get("inertia_per_row")
    lines = [f"  {len(sizes) if sizes else _n_rows(manifest, 'cluster_centers')} clusters"]
    lines += _kv({"inertia": inertia, "inertia_per_row": per_row if per_row is not None else "(not recorded)"})
    lines.append("  (on the training rows, estimated: inertia is the sum of squared distances to the closest "
                 "center; per row, over the rows' total weight)")
    if sizes:
        total = sum(sizes) or 1.0
        lines += ["", "cluster sizes (training rows, weighted)"]
        lines += _capped([{"cluster": c, "rows": float(n), "share": f"{100 * n / total:.1f}%"}
                          for c, n in enumerate(sizes)], what="clusters")
    return lines


def _pca(meta: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    ratios = meta.get("explained_variance_ratio")
    ratios = [float("nan") if r is None else r for r in ratios] if isinstance(ratios, list) else None
    if not ratios:
        return [f"  {_n_rows(manifest, 'components')} components", *_not_recorded("explained variance ratio")]
    lines = [f"  {len(ratios)} components explain {sum(ratios):.4g} of the training variance "
             f"({100 * sum(ratios):.2f}%)", ""]
    cumulative, rows = 0.0, []
    for j, r in enumerate(ratios):
        cumulative += r
        rows.append({"component": j, "explained_variance_ratio": r, "cumulative": cumulative})
    return lines + ["explained variance ratio per component (training)", *_capped(rows, what="components")]


def _supervised(meta: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    predictor_type = meta.get("predictor_type", "?")
    loss = meta.get("loss")  # Linear Learner's; Factorization Machines: logistic for binary
    lines = [f"  {predictor_type.replace('_', ' ')}" + (f", {loss} loss" if loss else "")]
    chosen = meta.get("chosen") or {}
    if chosen:
        criterion = chosen.get("criterion")
        where = chosen.get("scored_on")
        lines.append(f"  chosen: model {chosen.get('model')} (rank {chosen.get('rank')} of "
                     f"{len(meta.get('leaderboard') or [chosen])}), {criterion} {format_number(chosen.get('value'))}"
                     + (f", loss {format_number(chosen.get('loss'))}" if chosen.get("loss") is not None else "")
                     + (f", scored on {_SCORED_ON.get(where, where)}" if where else ""))
    if predictor_type == "binary_classifier":
        shown = shown_threshold(meta.get("threshold"), loss)
        unit = "probability" if is_probability_score(loss) else "raw score"
        lines.append(f"  decision threshold: {format_number(shown, 4)} (on the {unit} predict writes: rows at or "
                     "above are labelled 1)")
    board = meta.get("leaderboard") or []
    if board:
        lines += ["", "leaderboard (validation scores; thresholds on predict's score)"]
        lines += _leaderboard(board, loss)
    return lines


_SCORED_ON = {"progressive": "progressive validation (each row before it was learned)",
              "validation": "validation rows", "none": "nothing (no rows to score)"}


def _leaderboard(board: list[dict[str, Any]], loss: str | None) -> list[str]:
    """The state's leaderboard as a table: the columns that differ, the same ones above it."""
    rows = []
    for rec in board:
        row = dict(rec)
        if "threshold" in row:
            row["threshold"] = shown_threshold(row["threshold"], loss)
        rows.append(row)
    found = list(dict.fromkeys(k for r in rows for k in r))
    scores = [c for c in _SCORE_COLUMNS if c in found]
    columns = [c for c in ("rank", "model") if c in found]
    columns += [c for c in found if c not in columns and c not in scores] + scores  # settings, then scores
    same = {c: rows[0].get(c) for c in columns
            if len(rows) > 1 and all(r.get(c) == rows[0].get(c) for r in rows) and c not in ("rank", "model")}
    lines = [f"  same for every model: {', '.join(f'{k} {_setting(v)}' for k, v in same.items())}"] if same else []
    kept = [c for c in columns if c not in same]
    table = format_table(rows[:_MAX_ROWS], kept, digits=4, indent="  ").splitlines()
    more = [f"  ... {len(rows) - _MAX_ROWS} more models (--json shows them all)"] if len(rows) > _MAX_ROWS else []
    return lines + table + more


#: a leaderboard's score columns, shown after the models' settings
_SCORE_COLUMNS = ("value", "loss", "accuracy", "threshold", "is_active", "stopped_at_rows")


def _topics(meta: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    topics = meta.get("topics") or []
    lines = [f"  {meta.get('num_topics', len(topics))} topics, {meta.get('decoder', '?')} decoder"]
    if topics:
        lines += ["", "top words per topic"]
        lines += _capped([{"topic": k, "top words": " ".join(map(str, words))} for k, words in enumerate(topics)],
                         what="topics")
    return lines


def _forecast(meta: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    keys = ("prediction_length", "context_length", "time_freq", "likelihood", "num_layers", "num_samples",
            "quantiles", "cardinality", "n_dynamic")
    return _kv({k: meta[k] for k in keys if k in meta}, settings=True)


#: kind -> the headline lines of a model of that kind (a kind not here gets its scalar meta)
HEADLINES: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]] = {
    "kmeans": _kmeans,
    "pca": _pca,
    "linear-learner": _supervised,
    "factorization-machines": _supervised,
    "ntm": _topics,
    "forecast": _forecast,
}


def _scalars(meta: dict[str, Any], manifest: dict[str, Any]) -> list[str]:
    return _kv({k: v for k, v in meta.items() if isinstance(v, (int, float, str, bool)) or v is None})


def _n_rows(manifest: dict[str, Any], array: str) -> Any:
    shape = (manifest.get("arrays") or {}).get(array, {}).get("shape") or ["?"]
    return shape[0]


# -- the rest of the manifest ------------------------------------------------------------------

_DTYPES = {"f": "float", "i": "int", "u": "uint", "b": "bool", "c": "complex"}


def _dtype(text: Any) -> str:
    """``<f4`` -> ``float32``, ``<U12`` -> ``str (12 chars)``."""
    text = str(text).lstrip("<>|=")
    if text[:1] in _DTYPES and text[1:].isdigit():
        return f"{_DTYPES[text[0]]}{8 * int(text[1:]) if text[0] != 'b' else ''}"
    if text[:1] == "U" and text[1:].isdigit():
        return f"str ({text[1:]} chars)"
    return text


def _arrays(manifest: dict[str, Any]) -> list[str]:
    arrays = manifest.get("arrays") or {}
    if not arrays:
        return []
    rows = [{"array": name, "dtype": _dtype(spec.get("dtype")),
             "shape": " x ".join(str(n) for n in spec.get("shape", [])) or "scalar"}
            for name, spec in sorted(arrays.items())]
    return ["", f"arrays ({len(rows)})", *_capped(rows, what="arrays")]


def _trained(manifest: dict[str, Any]) -> list[str]:
    rows = manifest.get("rows_seen", manifest.get("meta", {}).get("n_rows_seen"))
    parts = [f"trained on {format_number(rows)} rows" if rows is not None else "rows seen: not recorded"]
    if manifest.get("epochs") is not None:
        parts.append(f"{manifest['epochs']} epoch(s)")
    bad = [f"{manifest[k]:,} {k}" for k in ("skipped", "quarantined") if manifest.get(k)]
    if bad:
        parts.append(", ".join(bad) + " bad records")
    sources = manifest.get("sources")
    line = ", ".join(parts)
    if sources:
        shown = ", ".join(map(str, sources[:3])) + (f" and {len(sources) - 3} more" if len(sources) > 3 else "")
        line += f", from {shown}"
    lines = ["  " + line]
    schema = manifest.get("schema") or {}
    if schema:
        names = schema.get("feature_names")
        width = len(names) if names else schema.get("n_features")
        features = f"{width} features" if width is not None else "features: width not recorded"
        if names:
            features += ": " + ", ".join(map(str, names[:8])) + (" ..." if len(names) > 8 else "")
        extra = [f"{what} column {schema[key]!r}" for key, what in (("label_column", "label"),
                                                                    ("weight_column", "weight"))
                 if schema.get(key) is not None]
        lines.append("  " + "; ".join([features, *extra]) + (f"; format {schema['format']}" if schema.get("format")
                                                              else ""))
    if manifest.get("finalized_from"):
        lines.append(f"  finalized from {manifest['finalized_from']}")
    return lines


def _tuned(tune: dict[str, Any]) -> list[str]:
    """A model written by ``onepass tune --out``: how it was chosen, the best few."""
    records = tune.get("records") or []
    params = tune.get("params") or []
    chosen = next((r for r in records if r.get("chosen")), None)
    lines = ["", f"tuned: {len(records)} settings of {', '.join(params)} scored by {tune.get('metric')} "
                 f"({'lower' if tune.get('direction') == 'min' else 'higher'} is better), chosen by {tune.get('select')}"
                 + (f": {', '.join(f'{p}={chosen.get(p)}' for p in params)}" if chosen else "")]
    old = "threshold_unit" not in tune  # written before thresholds were shown as predict's score
    rows = []
    for rec in sorted(records, key=lambda r: r.get("place", 0))[:10]:
        row = {k: v for k, v in rec.items() if k not in ("chosen", "history")}
        if old:
            row.update({k: shown_threshold(v) for k, v in row.items() if k.startswith("threshold_")})
        row[""] = "<- chosen" if rec.get("chosen") else ""
        rows.append(row)
    first = ["place", *params]
    columns = [c for c in first if any(c in r for r in rows)] + [c for c in dict.fromkeys(k for r in rows for k in r)
                                                                 if c not in first]
    return lines + format_table(rows, columns, digits=4, indent="  ").splitlines() + (
        [f"  ... {len(records) - 10} more (--json shows them all)"] if len(records) > 10 else [])


def _metrics(manifest: dict[str, Any]) -> list[str]:
    metrics = {k: v for k, v in (manifest.get("metrics") or {}).items() if k not in _QUIET_METRICS}
    if not metrics:
        return []
    shown = {k: format_number(v, 4) if isinstance(v, float) else _value(v) for k, v in metrics.items()}
    return ["", "last training metrics", *_grid(shown)]


def headline(manifest: dict[str, Any]) -> list[str]:
    """A model's headline numbers (the first block of what ``inspect`` says it learned,
    without tables): what ``onepass train`` says when it ends."""
    lines = HEADLINES.get(manifest.get("kind", ""), _scalars)(manifest.get("meta") or {}, manifest)
    return lines[:lines.index("")] if "" in lines else lines


def summarize(manifest: dict[str, Any], *, path: Any = None, has_state: bool = False) -> str:
    """The manifest of a model, state or checkpoint for people (``onepass inspect``):
    read from ``path``; ``has_state`` when a model directory keeps its state beside it.

    Examples
    --------
    >>> print(summarize({"algorithm": "kmeans", "kind": "kmeans", "role": "model", "rows_seen": 1000,
    ...                  "meta": {"inertia": 2000.0, "inertia_per_row": 2.0, "cluster_sizes": [600.0, 400.0]},
    ...                  "hyperparameters": {"n_clusters": 2}}))
    kmeans model
      trained on 1,000 rows
    <BLANKLINE>
    hyperparameters
      n_clusters  2
    <BLANKLINE>
    what it learned
      2 clusters
      inertia          2,000
      inertia_per_row  2
      (on the training rows, estimated: inertia is the sum of squared distances to the closest center; per row, over the rows' total weight)
    <BLANKLINE>
    cluster sizes (training rows, weighted)
      cluster  rows  share
            0   600  60.0%
            1   400  40.0%
    """
    role = manifest.get("role", "?")
    name = manifest.get("algorithm") or manifest.get("kind", "?")
    meta = manifest.get("meta") or {}
    head = f"{name} {role}" + (f" at {path}" if path is not None else "")
    lines = [head, *_trained(manifest)]
    if role == "model" and has_state:
        lines.append("  its state is kept in state/: 'onepass finalize' and 'onepass tune' start from it")
    if role != "model":
        if manifest.get("finished"):
            lines.append(f"  finished reading its data (epoch {manifest.get('epoch', '?')})")
        elif manifest.get("cursor") is not None:
            lines.append(f"  paused; --resume goes on from its cursor {_value(manifest['cursor'])}")
        lines.append(f"  a {role}: 'onepass finalize' makes a model of it, 'onepass tune' many")
    hyper = manifest.get("hyperparameters") or meta.get("hyperparameters") or {}
    lines += ["", "hyperparameters", *_grid({k: _setting(v) for k, v in hyper.items()})]
    if manifest.get("finalize"):
        lines += ["", "finalize settings", *_kv(manifest["finalize"], settings=True)]
    if role == "model":
        lines += ["", "what it learned", *HEADLINES.get(manifest.get("kind", ""), _scalars)(meta, manifest)]
        if isinstance(manifest.get("tune"), dict):
            lines += _tuned(manifest["tune"])
    lines += _metrics(manifest)
    lines += _arrays(manifest)
    return "\n".join(lines)
