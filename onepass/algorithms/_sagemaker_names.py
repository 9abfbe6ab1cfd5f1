"""SageMaker's hyperparameter names, and the one translator that takes them to onepass's.

Each algorithm declares, in one table below, every hyperparameter SageMaker's built-in
algorithm of the same name has, and where it goes in onepass:

- a keyword argument of the algorithm's state (``k`` -> ``n_clusters``);
- a finalize setting, ``finalize:NAME`` (K-Means' ``local_lloyd_max_iter`` -> ``max_iter``);
- a setting of the training loop, ``train:NAME``: ``epochs``, ``batch_size``
  (``mini_batch_size`` where onepass's batch size is the loop's), ``feature_dim``
  (where onepass infers the width: checked against the data's width);
- nowhere (``to=None``): accepted and checked, for a value onepass already behaves as,
  and refused with the reason for any other.

The registry entry of each algorithm holds its table (``Algorithm.sagemaker_names``), so
the CLI (``--k``, ``--hyperparameters FILE``), :func:`translate_hyperparameters` and the
README's table all read the same declaration. Values come as SageMaker writes them, all
strings (``"10"``, ``"true"``, ``"[3, 2]"``, ``"0.001"``, ``"auto"``), or already typed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onepass.errors import InvalidParameterError

__all__ = ["Hyper", "SageMakerHyperparameters", "load_hyperparameters", "markdown_table", "translate_hyperparameters"]

#: the training loop's settings a hyperparameter can set (``train:NAME``)
TRAIN_SETTINGS = ("epochs", "batch_size", "feature_dim")


@dataclass(frozen=True)
class Hyper:
    """How one SageMaker hyperparameter reaches onepass.

    ``to``: the onepass name (a state keyword, ``finalize:NAME`` or ``train:NAME``), or
    None when onepass has no such setting. ``kind``: int, float, bool, str, ints (a
    list of integers, ``"[3, 2]"`` or ``"3,2"``) or strs (a list of strings). ``choices``: SageMaker's valid values
    (str kinds). ``values``: SageMaker's value -> onepass's (``regular`` -> ``exact``).
    ``defaults``: values that mean "the algorithm's own default" (``auto``), so nothing is
    passed. ``keep``: string values passed as they are (``auto`` where onepass has one).
    ``refuse``: value -> why onepass cannot honour it. ``unsupported``: why onepass
    cannot honour any value but ``defaults`` and ``accept``. ``accept``: values onepass
    already behaves as (with ``to=None``).
    """

    to: str | None
    kind: str = "str"
    choices: tuple[Any, ...] = ()
    values: Mapping[Any, Any] = field(default_factory=dict)
    defaults: tuple[Any, ...] = ()
    keep: tuple[str, ...] = ()
    refuse: Mapping[Any, str] = field(default_factory=dict)
    unsupported: str = ""
    accept: tuple[Any, ...] = ()
    note: str = ""


def _parse(name: str, raw: Any, spec: Hyper) -> Any:
    """``raw`` (a string as SageMaker writes it, or a typed value) as ``spec.kind``."""
    text = raw.strip() if isinstance(raw, str) else None
    if text is not None and (text in spec.keep or text.lower() in spec.keep):
        return text.lower()
    kind = spec.kind
    what = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
            "ints": "a list of integers such as [3, 2]", "strs": 'a list such as ["msd"]'}[kind]
    bad = InvalidParameterError(f"{name}={raw!r} must be {what}"
                                + (f" or {' or '.join(spec.keep)}" if spec.keep else ""))
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if text is not None and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise bad
    if kind == "int":
        if isinstance(raw, bool):
            raise bad
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        try:
            return int(text) if text is not None else _fail(bad)
        except ValueError:
            try:  # "10.0" is how some tools write an integer
                value = float(text)  # type: ignore[arg-type]
            except ValueError:
                raise bad from None
            if value.is_integer():
                return int(value)
            raise bad from None
    if kind == "float":
        if isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        try:
            return float(text) if text is not None else _fail(bad)  # "Inf", "1e-3"
        except ValueError:
            raise bad from None
    if kind == "ints":
        value = raw
        if text is not None:
            try:
                value = json.loads(text if text.startswith("[") else f"[{text}]")
            except ValueError:
                raise bad from None
        if not isinstance(value, (list, tuple)) or not value or any(
                isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise bad
        return [int(v) for v in value]
    if kind == "strs":  # '["msd", "ssd"]' (JSON, or Python's quotes) or "msd,ssd"
        value = raw
        if text is not None:
            inner = text.strip("[]")
            value = [v.strip().strip("'\"") for v in inner.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
            raise bad
        return list(value)
    if text is None:
        raise bad
    return text


def _fail(error: Exception) -> Any:
    raise error


def _convert(name: str, raw: Any, spec: Hyper) -> tuple[bool, Any]:
    """(whether to pass it on, the onepass value) for SageMaker's ``name=raw``."""
    if isinstance(raw, str) and raw.strip().lower() in spec.defaults:
        return False, None
    value = _parse(name, raw, spec)
    for item in value if isinstance(value, list) else [value]:
        if spec.choices and item not in spec.choices and item not in spec.keep:
            raise InvalidParameterError(f"{name}={raw!r} must be one of {', '.join(map(str, spec.choices))}")
        if isinstance(item, (str, int, float)) and item in spec.refuse:
            raise InvalidParameterError(f"{name}={raw!r} is not available in onepass: {spec.refuse[item]}")
    if spec.unsupported and value not in spec.accept:
        allowed = [*spec.defaults, *spec.accept]
        raise InvalidParameterError(
            f"{name}={raw!r} is not available in onepass: {spec.unsupported}"
            + (f"; leave it out or give {' or '.join(map(str, allowed))}" if allowed else "; leave it out"))
    if spec.to is None:
        return False, None
    return True, spec.values.get(value, value) if isinstance(value, (str, int, float, bool)) else value


@dataclass
class SageMakerHyperparameters:
    """Hyperparameters translated to where onepass takes them.

    Attributes
    ----------
    algorithm : str
        The registered algorithm.
    params : dict
        Keyword arguments of the algorithm's state (and estimator).
    finalize : dict
        Settings of ``state.model(...)``.
    train : dict
        Settings of :func:`onepass.train`: ``epochs``, ``batch_size``, ``feature_dim``
        (checked against the data's width).
    origins : dict
        onepass name -> the name it was given as (``n_clusters`` -> ``k``), for messages.
    """

    algorithm: str
    params: dict[str, Any] = field(default_factory=dict)
    finalize: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def train_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`onepass.train` (``params``, ``finalize`` and the
        loop's settings)."""
        return {"params": dict(self.params), "finalize": dict(self.finalize), **self.train}


def translate_hyperparameters(algorithm: str, *hyperparameters: Mapping[str, Any]) -> SageMakerHyperparameters:
    """Translate hyperparameters given by SageMaker's names (or onepass's) for ``algorithm``.

    Each mapping may use SageMaker's names, in SageMaker's string form
    (``{"k": "10", "mini_batch_size": "500", "init_method": "kmeans++"}``, what a
    ``hyperparameters.json`` holds) or typed, and onepass's own names (state keywords,
    finalize settings, ``epochs``, ``batch_size``). Two names that set
    the same onepass setting to different values (``k=5`` and ``n_clusters=6``, or one
    name in two mappings) are a contradiction and an error.

    Parameters
    ----------
    algorithm : str
        A registered algorithm, e.g. ``"kmeans"``.
    *hyperparameters : mapping of str to str or value
        One or more sets of hyperparameters (e.g. a file's and the command line's).

    Returns
    -------
    SageMakerHyperparameters
        ``params`` for the state, ``finalize`` for ``state.model``, ``train`` for the
        training loop; ``train_kwargs()`` gives all three to :func:`onepass.train`.

    Raises
    ------
    InvalidParameterError
        An unknown name, a value of the wrong type (naming the hyperparameter and the
        value), a value onepass cannot honour (saying why), or a contradiction.

    Examples
    --------
    >>> from onepass import KMeansState, translate_hyperparameters
    >>> hp = translate_hyperparameters("kmeans", {"k": "10", "mini_batch_size": "500", "feature_dim": "3",
    ...                                           "local_lloyd_max_iter": "100", "init_method": "kmeans++"})
    >>> hp.params, hp.finalize, hp.train
    ({'n_clusters': 10}, {'max_iter': 100}, {'batch_size': 500, 'feature_dim': 3})
    >>> KMeansState(**hp.params, seed=0).n_clusters
    10
    >>> translate_hyperparameters("pca", {"num_components": "3", "algorithm_mode": "randomized"}).params
    {'n_components': 3, 'mode': 'sketch'}
    """
    import inspect

    from onepass.state import get_algorithm

    algo = get_algorithm(algorithm)
    table: Mapping[str, Hyper] = algo.sagemaker_names
    state_names = [n for n in inspect.signature(algo.state.__init__).parameters if n not in ("self", "seed")]
    finalize_names = [n for n in inspect.signature(algo.state.model).parameters if n != "self"]
    out = SageMakerHyperparameters(algorithm=algo.name)
    given: dict[str, tuple[str, Any, Any]] = {}  # target -> (name given, raw value, onepass value)
    for mapping in hyperparameters:
        for name, raw in mapping.items():
            if name in table:
                keep, value = _convert(name, raw, table[name])
                if not keep:
                    continue
                target = table[name].to
                assert target is not None
            elif name in state_names:
                target, value = name, _onepass_value(raw)
            elif name in finalize_names:
                target, value = f"finalize:{name}", _onepass_value(raw)
            elif name in TRAIN_SETTINGS:
                target, value = f"train:{name}", _onepass_value(raw)
            else:
                known = sorted({*table, *state_names, *finalize_names})
                raise InvalidParameterError(
                    f"unknown hyperparameter {name}={raw!r} for {algo.name}; SageMaker's names and onepass's: "
                    f"{', '.join(known)}")
            if target in given and given[target][2] != value:
                first, first_raw, _ = given[target]
                what = "given twice" if first == name else f"both set {target.rpartition(':')[2]}"
                raise InvalidParameterError(
                    f"{first}={first_raw!r} and {name}={raw!r} contradict ({what}); give one value")
            given[target] = (name, raw, value)
    for target, (name, _, value) in given.items():
        where, _, setting = target.rpartition(":")
        {"": out.params, "finalize": out.finalize, "train": out.train}[where][setting] = value
        if name != setting:
            out.origins[setting] = name
    if any(n in out.params for n in out.origins):  # the state's own checks, naming what was given
        try:
            algo.state(**out.params)
        except InvalidParameterError as exc:
            raise name_the_origin(exc, out.origins) from None
    return out


def load_hyperparameters(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON object of a ``hyperparameters.json`` (SageMaker writes every value as a
    string), or a clear error naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidParameterError(f"{path}: cannot read the hyperparameters file: {exc.strerror}") from None
    try:
        loaded = json.loads(text)
    except ValueError as exc:
        raise InvalidParameterError(f"{path}: not valid JSON ({exc}); write an object such as "
                                    '{"k": "10", "mini_batch_size": "500"}') from None
    if not isinstance(loaded, dict):
        raise InvalidParameterError(f"{path}: hyperparameters must be a JSON object of name: value, "
                                    f"got a {type(loaded).__name__}")
    return loaded


def _onepass_value(raw: Any) -> Any:
    """A value given by onepass's own name: strings as the CLI reads them ("3" -> 3)."""
    if isinstance(raw, str):
        from onepass.tune._space import parse_value

        return parse_value(raw)
    return raw


def name_the_origin(error: InvalidParameterError, origins: Mapping[str, str]) -> InvalidParameterError:
    """``error`` from a state, with the SageMaker name its setting was given as."""
    message = str(error)
    for setting, name in origins.items():
        if message.startswith(f"{setting}="):
            return InvalidParameterError(f"{name} (onepass's {setting}): {message}")
    return error


def check_width(feature_dim: int, width: int, where: str) -> None:
    """The data's width must be the declared ``feature_dim``."""
    if width != feature_dim:
        raise InvalidParameterError(
            f"feature_dim={feature_dim} but {where} has {width} features; give the data's width, or leave "
            "feature_dim out (onepass infers it)")


def markdown_table(table: Mapping[str, Hyper]) -> str:
    """The README's table of one algorithm's SageMaker names."""
    rows = ["| SageMaker | onepass | notes |", "|---|---|---|"]
    for name, spec in table.items():
        if spec.to is None:
            target = "(none)"
        else:
            where, _, setting = spec.to.rpartition(":")
            target = {"": f"`{setting}`", "finalize": f"`{setting}` (finalize)",
                      "train": {"epochs": "`--epochs`", "batch_size": "`--batch-size`",
                                "feature_dim": "checked: the data's width"}.get(setting, setting)}[where]
        notes = [spec.note] if spec.note else []
        if spec.values:
            notes.append(", ".join(f"{k} -> {v}" for k, v in spec.values.items()))
        notes.extend(f"{value}: refused, {why}" for value, why in spec.refuse.items())
        if spec.unsupported:
            ok = [str(v).lower() if isinstance(v, bool) else str(v) for v in (*spec.defaults, *spec.accept)]
            notes.append(f"refused{' unless ' + ' or '.join(ok) if ok else ''}: {spec.unsupported}")
        elif spec.defaults:
            notes.append(f"{' or '.join(spec.defaults)}: onepass's default")
        rows.append(f"| `{name}` | {target} | {'; '.join(notes)} |")
    return "\n".join(rows)


# -- the declarations ------------------------------------------------------------------

_WIDTH = Hyper("train:feature_dim", "int", note="onepass infers the width; a given one must match the data's")
_EPOCHS = Hyper("train:epochs", "int")
_LOOP_BATCH = Hyper("train:batch_size", "int", note="rows per mini-batch of the training loop")
_AUTO = ("auto",)

KMEANS: dict[str, Hyper] = {
    "feature_dim": _WIDTH,
    "k": Hyper("n_clusters", "int"),
    "epochs": _EPOCHS,
    "eval_metrics": Hyper(None, "strs", choices=("msd", "ssd"), refuse={
        "ssd": "onepass's metrics report msd, the mean squared distance; ssd is msd times the rows"},
        note="msd: what onepass's metrics report"),
    "extra_center_factor": Hyper("extra_center_factor", "float", keep=_AUTO),
    "half_life_time_size": Hyper("half_life", "int", values={0: None}, note="0 is no decay"),
    "init_method": Hyper(None, "str", choices=("random", "kmeans++"), refuse={
        "random": "onepass seeds its kept centers by k-means++ over the first init_size rows; give kmeans++ "
                  "or leave init_method out"}, note="kmeans++: what onepass does"),
    "local_lloyd_init_method": Hyper(None, "str", choices=("random", "kmeans++"), refuse={
        "random": "onepass's finalize starts each Lloyd trial from weighted k-means++; give kmeans++ or "
                  "leave it out"}, note="kmeans++: what onepass does"),
    "local_lloyd_max_iter": Hyper("finalize:max_iter", "int"),
    "local_lloyd_num_trials": Hyper("finalize:n_trials", "int", keep=_AUTO),
    "local_lloyd_tol": Hyper("finalize:tol", "float"),
    "mini_batch_size": _LOOP_BATCH,
}

PCA: dict[str, Hyper] = {
    "feature_dim": _WIDTH,
    "mini_batch_size": _LOOP_BATCH,
    "num_components": Hyper("n_components", "int"),
    "algorithm_mode": Hyper("mode", "str", choices=("regular", "randomized"),
                            values={"regular": "exact", "randomized": "sketch"}),
    "extra_components": Hyper("extra_components", "int", values={-1: "auto"}, keep=_AUTO,
                              note="SageMaker's -1 keeps max(10, num_components) more rows; onepass's auto keeps "
                                   "max(4 x num_components, 64); sketch mode only"),
    "subtract_mean": Hyper("subtract_mean", "bool"),
}

_NO_SCHEDULE = ("onepass's steps shrink as rows are learned (mini-batches grow from 32 rows to "
                "mini_batch_size), it has no learning-rate schedule")
_ZERO_START = "onepass starts every model at zero weights (the losses are convex: the start matters little)"

LINEAR_LEARNER: dict[str, Hyper] = {
    "predictor_type": Hyper("predictor_type", "str"),
    "num_classes": Hyper("num_classes", "int"),
    "feature_dim": _WIDTH,
    "epochs": _EPOCHS,
    "mini_batch_size": Hyper("mini_batch_size", "int", keep=_AUTO),
    "num_models": Hyper("num_models", "int", defaults=_AUTO),
    "loss": Hyper("loss", "str", keep=_AUTO),
    "optimizer": Hyper("optimizer", "str", keep=_AUTO, refuse={
        "rmsprop": "onepass's Linear Learner steps with adam, sgd or adagrad"}),
    "learning_rate": Hyper("learning_rate", "float", keep=_AUTO),
    "l1": Hyper("l1", "float", defaults=_AUTO),
    "wd": Hyper("wd", "float", defaults=_AUTO),
    "momentum": Hyper("momentum", "float", defaults=_AUTO),
    "beta_1": Hyper("beta_1", "float", defaults=_AUTO),
    "beta_2": Hyper("beta_2", "float", defaults=_AUTO),
    "bias_lr_mult": Hyper(None, "float", defaults=_AUTO, accept=(1.0,),
                          unsupported="the bias steps with the weights' learning rate"),
    "bias_wd_mult": Hyper(None, "float", defaults=_AUTO, accept=(0.0,),
                          unsupported="the bias is never regularized"),
    "use_bias": Hyper("use_bias", "bool"),
    "init_method": Hyper(None, "str", choices=("uniform", "normal"), unsupported=_ZERO_START),
    "init_scale": Hyper(None, "float", unsupported=_ZERO_START),
    "init_sigma": Hyper(None, "float", unsupported=_ZERO_START),
    "init_bias": Hyper(None, "float", accept=(0.0,), unsupported=_ZERO_START),
    "use_lr_scheduler": Hyper(None, "bool", accept=(False,), unsupported=_NO_SCHEDULE),
    "lr_scheduler_step": Hyper(None, "int", defaults=_AUTO, unsupported=_NO_SCHEDULE),
    "lr_scheduler_factor": Hyper(None, "float", defaults=_AUTO, unsupported=_NO_SCHEDULE),
    "lr_scheduler_minimum_lr": Hyper(None, "float", defaults=_AUTO, unsupported=_NO_SCHEDULE),
    "normalize_data": Hyper("normalize_data", "bool"),
    "normalize_label": Hyper("normalize_label", "bool", keep=_AUTO),
    "unbias_data": Hyper(None, "bool", defaults=_AUTO, accept=(True,),
                         unsupported="normalize_data centers dense features whenever it scales them"),
    "unbias_label": Hyper(None, "bool", defaults=_AUTO, accept=(True,),
                          unsupported="normalize_label centers labels whenever it scales them"),
    "num_point_for_scaler": Hyper("num_point_for_scaler", "int"),
    "binary_classifier_model_selection_criteria": Hyper("binary_classifier_model_selection_criteria", "str"),
    "target_precision": Hyper("target_precision", "float"),
    "target_recall": Hyper("target_recall", "float"),
    "f_beta": Hyper("f_beta", "float"),
    "positive_example_weight_mult": Hyper("positive_example_weight_mult", "float", keep=("balanced", "auto"), refuse={
        "auto": "SageMaker searches for the weight; give a number or balanced (negatives / positives)"}),
    "balance_multiclass_weights": Hyper("balance_multiclass_weights", "bool"),
    "accuracy_top_k": Hyper(None, "int", defaults=_AUTO, accept=(3,),
                            unsupported="onepass reports no top-k accuracy"),
    "margin": Hyper("margin", "float"),
    "quantile": Hyper("quantile", "float"),
    "loss_insensitivity": Hyper(None, "float", unsupported="onepass has no epsilon-insensitive losses"),
    "huber_delta": Hyper("huber_delta", "float"),
    "early_stopping_patience": Hyper("early_stopping_patience", "int",
                                     note="counted in scorings (every validation_every_rows), not epochs"),
    "early_stopping_tolerance": Hyper("early_stopping_tolerance", "float"),
    "num_calibration_samples": Hyper(None, "int", defaults=_AUTO,
                                     unsupported="the threshold is tuned on the validation rows "
                                                 "(max_validation_rows)"),
}

_FM_GROUPS = ("bias", "linear", "factors")
FACTORIZATION_MACHINES: dict[str, Hyper] = {
    "feature_dim": Hyper("feature_dim", "int"),
    "num_factors": Hyper("num_factors", "int"),
    "predictor_type": Hyper("predictor_type", "str"),
    "epochs": _EPOCHS,
    "mini_batch_size": Hyper("mini_batch_size", "int"),
    **{f"{g}_{what}": Hyper(f"{g}_{what}", "str" if what == "init_method" else "float",
                            defaults=("none",) if what in ("init_scale", "init_value") else ())
       for g in _FM_GROUPS for what in ("init_method", "init_sigma", "init_scale", "init_value", "lr", "wd")},
    "clip_gradient": Hyper(None, "float", defaults=("none",),
                           unsupported="onepass's Factorization Machines do not clip gradients"),
    "eps": Hyper("epsilon", "float", defaults=("none",)),
    "rescale_grad": Hyper(None, "float", defaults=("none",), accept=(1.0,),
                          unsupported="gradients are means over the mini-batch, never rescaled"),
}

NTM: dict[str, Hyper] = {
    "feature_dim": Hyper("feature_dim", "int"),
    "num_topics": Hyper("num_topics", "int"),
    "encoder_layers": Hyper("encoder_layers", "ints", keep=_AUTO),
    "encoder_layers_activation": Hyper("encoder_layers_activation", "str"),
    "epochs": _EPOCHS,
    "mini_batch_size": Hyper("mini_batch_size", "int", note="documents per gradient step"),
    "learning_rate": Hyper("learning_rate", "float"),
    "optimizer": Hyper("optimizer", "str"),
    "batch_norm": Hyper("batch_norm", "bool"),
    "clip_gradient": Hyper("clip_gradient", "float"),
    "rescale_gradient": Hyper("rescale_gradient", "float"),
    "sub_sample": Hyper("sub_sample", "float"),
    "num_patience_epochs": Hyper("num_patience_epochs", "int"),
    "tolerance": Hyper("tolerance", "float"),
    "weight_decay": Hyper("weight_decay", "float"),
}


DEEPAR: dict[str, Hyper] = {
    "prediction_length": Hyper("prediction_length", "int"),
    "context_length": Hyper("context_length", "int"),
    "time_freq": Hyper("time_freq", "str"),
    "epochs": _EPOCHS,
    "mini_batch_size": Hyper("mini_batch_size", "int", note="windows per gradient step"),
    "learning_rate": Hyper("learning_rate", "float"),
    "num_cells": Hyper("num_cells", "int"),
    "num_layers": Hyper("num_layers", "int"),
    "dropout_rate": Hyper("dropout_rate", "float"),
    "likelihood": Hyper("likelihood", "str",
                        choices=("student-T", "gaussian", "negative-binomial", "beta", "deterministic-L1")),
    "cardinality": Hyper("cardinality", "ints", keep=("auto", "ignore")),
    "embedding_dimension": Hyper("embedding_dimension", "int", keep=("auto",)),
    "num_dynamic_feat": Hyper("num_dynamic_feat", "int", keep=("auto", "ignore")),
    "early_stopping_patience": Hyper("early_stopping_patience", "int"),
    "num_eval_samples": Hyper("num_eval_samples", "int"),
    "test_quantiles": Hyper("test_quantiles", "str", note="a list such as [0.1, 0.5, 0.9]"),
}

