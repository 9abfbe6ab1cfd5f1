"""The ``onepass`` command: a thin layer that parses, calls the library, and formats.

Algorithm options are not written here: ``onepass train ALGO`` offers the keyword
arguments of the algorithm's state, with the help text of its docstring, and
``onepass finalize`` those of its ``model`` method. Errors map to exit codes in one
place (:func:`onepass.errors.exit_code`): 0 success, 2 usage, 3 bad input data, 1 else.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from onepass.errors import ArtifactError, InvalidParameterError, OnePassError, exit_code
from onepass.tune._space import parse_value as _coerce  # "3" -> 3, "none" -> None, "true" -> True

_ALGO_EPILOG = "Run 'onepass train ALGO --help' for the options of one algorithm."


def _plain(text: str) -> str:
    """Docstring text as help: Sphinx roles and literals without their markup."""
    return re.sub(r":\w+:`~?([^`]*)`", r"\1", text).replace("``", "")


def _doc_params(obj: Any) -> dict[str, str]:
    """Parameter descriptions from a numpydoc ``Parameters`` section, as plain text."""
    doc = inspect.getdoc(obj) or ""
    match = re.search(r"Parameters\n-+\n(.*?)(?:\n\n[A-Z][a-z]+\n-+\n|\Z)", doc, re.S)
    if not match:
        return {}
    texts: dict[str, list[str]] = {}
    name = None
    for line in match.group(1).splitlines():
        head = re.match(r"^(\w+) :(.*)$", line)
        if head:
            name = head.group(1)
            texts[name] = []
        elif name and line.strip():
            texts[name].append(line.strip())
    return {n: _plain(" ".join(words)) for n, words in texts.items()}


def _with_default(text: str, param: inspect.Parameter, none: str = "none") -> str:
    """``text`` ending with the parameter's default (``none`` says what None means),
    unless it already says it."""
    if param.default is inspect.Parameter.empty:
        return f"{text} (required)".strip()
    if re.search(r"\(default\b|\bdefaults? (?:to|is)\b|\bdefault:", text, re.I):
        return text
    shown = none if param.default is None else param.default
    return f"{text} (default: {shown})".strip()


def _param_options(func: Callable[..., Any], skip: tuple[str, ...], doc_source: Any) -> list[click.Option]:
    """One ``--name`` option per keyword parameter of ``func``, typed by its default, its
    help the docstring's with the default."""
    docs = _doc_params(doc_source)
    options = []
    for name, param in inspect.signature(func).parameters.items():
        if name in skip or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            continue
        default = param.default
        if isinstance(default, bool):
            ptype: Any = bool
        elif isinstance(default, int) and not isinstance(default, bool):
            ptype = int
        elif isinstance(default, float):
            ptype = float
        else:
            ptype = str
        options.append(click.Option(
            [f"--{name.replace('_', '-')}", name], type=ptype, default=None,
            help=_with_default(docs.get(name, ""), param),
        ))
    return options


def _collect(options: dict[str, Any], names: list[str]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = options.pop(name, None)
        if value is not None:
            out[name] = _coerce(value) if isinstance(value, str) else value
    return out


def _run(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; turn onepass errors into a message on stderr and an exit code."""
    try:
        return fn()
    except OnePassError as exc:
        click.echo(f"onepass: error: {exc}", err=True)
        sys.exit(exit_code(exc))
    except FileNotFoundError as exc:
        click.echo(f"onepass: error: {exc}", err=True)
        sys.exit(3)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="onepass")
def main() -> None:
    """onepass: machine learning on data that never stops arriving.

    Every algorithm reads its data once, in mini-batches, with memory fixed by its
    hyperparameters. Training writes a state that can be checkpointed, resumed and
    finalized into many models.

    \b
    Typical use:
      onepass train kmeans --data 'data/*.csv' --n-clusters 10 --out model/
      onepass finalize model/ --n-clusters 5 --out model-k5/
      onepass predict model/ --data new.csv --out predictions.csv
      onepass serve model/ --port 8080
      onepass inspect model/
    """
    import warnings

    from onepass.errors import OnePassWarning

    plain = warnings.showwarning

    def show(message: Any, category: type, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
        if issubclass(category, OnePassWarning):  # said to people, not as a Python warning with its source line
            click.echo(f"onepass: warning: {message}", err=True)
        else:
            plain(message, category, filename, lineno, file, line)

    warnings.showwarning = show


_VOCAB_HELP = ("Vocabulary file, one word per line (UTF-8, as SageMaker NTM's vocab.txt): the words --format text "
               "counts (required there), or the names of the data's columns for any other format (as many as it "
               "has). Build one with 'onepass vocab'.")
_DOCUMENT_HELP = ("With --format text: one document (one row) per line, or per file (for a folder or glob of "
                  "files). Blank lines and files are not documents; one without a word of the vocabulary is a "
                  "bad record (--on-bad-record).")

_SOURCE_OPTIONS = [
    click.Option(["--data", "data"], multiple=True, required=True,
                 help="Input: a file, folder, glob, '-' for stdin, or an fsspec URL (memory://, s3://...). Repeat for several."),
    click.Option(["--format", "format"], default=None,
                 help="csv, parquet, jsonl, libsvm, npy, recordio-protobuf (.rec, .pbr), series or text (default: from the file extension; csv for stdin). "
                 "text (raw documents in, word counts out, with --vocab) is never inferred: .txt reads as csv. "
                 "series (time series: SageMaker DeepAR's JSON lines, or a long CSV or Parquet table, see "
                 "--series-id-column) is a forecaster's default."),
    click.Option(["--batch-size"], type=click.IntRange(min=1), default=8192, show_default=True,
                 help="Rows per mini-batch."),
    click.Option(["--label-column"], default=None,
                 help="Label column by name (needs a header) or 0-based index; not a feature."),
    click.Option(["--weight-column"], default=None, help="Per-row weight column, by name or index."),
    click.Option(["--header/--no-header", "header"], default=None, show_default=False,
                 help="Whether CSV files have a header line (default: detected from the first line)."),
    click.Option(["--n-features"], type=int, default=None,
                 help="Declared width of sparse (libsvm) data."),
    click.Option(["--zero-based/--one-based", "zero_based"], default=False, show_default=False,
                 help="Whether libsvm feature indices start at 0 (default: at 1, as libsvm writes them)."),
    click.Option(["--on-bad-record"], type=click.Choice(["fail", "skip", "quarantine"]), default="fail",
                 show_default=True, help="What a malformed record does: stop with an error that says where, "
                 "be dropped and counted, or be written to --quarantine-file and counted."),
    click.Option(["--quarantine-file"], type=click.Path(dir_okay=False), default=None,
                 help="Where quarantined records go (JSON lines with the reason)."),
    click.Option(["--vocab"], default=None,
                 help=_VOCAB_HELP),
    click.Option(["--document"], type=click.Choice(["line", "file"]), default="line", show_default=True,
                 help=_DOCUMENT_HELP),
    click.Option(["--series-id-column"], default=None,
                 help="Series in a long table (--format series from CSV or Parquet, one row per series and time "
                 "step): the series id column, by name or 0-based index (default: id or item_id)."),
    click.Option(["--timestamp-column"], default=None,
                 help="Long table: the time of each row, ISO 8601 text or a Parquet timestamp or date "
                 "(default: timestamp, time or date)."),
    click.Option(["--target-column"], default=None,
                 help="Long table: the value of each row; an empty cell is a missing value (default: target or value)."),
    click.Option(["--dynamic-feat-columns"], default=None, metavar="A,B",
                 help="Long table: covariate columns (dynamic_feat), known at every row, comma-separated."),
    click.Option(["--cat-columns"], default=None, metavar="C,D",
                 help="Long table: category columns (cat, whole numbers >= 0; a series' first row gives them), "
                 "comma-separated."),
    click.Option(["--stream"], default=None,
                 help="Redis (--data redis://HOST:PORT/DB): the stream read (or ?stream= in the URI)."),
    click.Option(["--group"], default=None,
                 help="Redis: the consumer group (created at the stream's start when missing; default onepass)."),
    click.Option(["--consumer"], default=None,
                 help="Redis: this consumer's name in the group (default: the host name and process id)."),
    click.Option(["--query"], default=None,
                 help="PostgreSQL (--data postgresql://USER@HOST:PORT/DB): the SELECT whose rows are read, "
                 "streamed and never fetched whole."),
    click.Option(["--key-column"], default=None,
                 help="PostgreSQL: the column ordering the query's rows, for exact resume (a checkpoint keeps "
                 "the last key) and --follow."),
    click.Option(["--follow/--no-follow", "follow"], default=False, show_default=False,
                 help="Redis or PostgreSQL: keep training as entries or rows arrive, until SIGTERM (which ends "
                 "with a checkpoint, exit 0); else stop at the last one there was at the start."),
    click.Option(["--null"], type=click.Choice(["nan", "bad"]), default="nan", show_default=True,
                 help="Redis or PostgreSQL: a missing value (NULL, an absent field) is NaN, or makes its record "
                 "a bad record (--on-bad-record)."),
]


def _source_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    label = opts.pop("label_column")
    weight = opts.pop("weight_column")
    return {
        "format": opts.pop("format"),
        "label_column": _coerce(label) if label is not None else None,
        "weight_column": _coerce(weight) if weight is not None else None,
        "header": opts.pop("header"),
        "n_features": opts.pop("n_features"),
        "zero_based": opts.pop("zero_based"),
        "on_bad_record": opts.pop("on_bad_record"),
        "quarantine_file": opts.pop("quarantine_file"),
        **_text_kwargs(opts.pop("vocab"), opts.pop("document")),
        **_table_kwargs(opts),
        **_transport_kwargs(opts),
    }


def _paused_why(spec: Any, result: Any) -> str:
    """Why a run paused before the end of its data: which of --max-rows, a stop signal
    (--follow) or the end of a stream (read once: new entries come with --resume)."""
    if spec.max_rows is not None and result.n_rows_seen >= spec.max_rows:
        return "paused at --max-rows"
    if spec.data.follow:
        return "stopped"
    return "at the stream's end"


def _transport_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """A record transport's options (redis://, postgresql://), only those given."""
    out = {name: value for name in ("stream", "group", "consumer", "query", "key_column")
           if (value := opts.pop(name, None)) is not None}
    if opts.pop("follow", False):
        out["follow"] = True
    if (null := opts.pop("null", "nan")) != "nan":
        out["null"] = null
    return out


def _table_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """The columns of a long table of series, only those given: one by name or index,
    the lists comma-separated."""
    def column(text: str) -> str | int:
        try:
            return int(text)
        except ValueError:
            return text.strip()

    out: dict[str, Any] = {}
    for name in ("series_id_column", "timestamp_column", "target_column"):
        if (value := opts.pop(name, None)) is not None:
            out[name] = column(value)
    for name in ("dynamic_feat_columns", "cat_columns"):
        if (value := opts.pop(name, None)) is not None:
            out[name] = [column(v) for v in value.split(",") if v.strip()]
    return out


def _text_kwargs(vocab: str | None, document: str) -> dict[str, Any]:
    """``vocab``/``document`` for open_source, only when given (so a callee that does not
    take them yet still works without them)."""
    out: dict[str, Any] = {}
    if vocab is not None:
        out["vocab"] = vocab
    if document != "line":
        out["document"] = document
    return out


class _TrainGroup(click.Group):
    """Lists and builds one ``train`` subcommand per registered algorithm."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from onepass.algorithms import PACKAGES  # names only: no algorithm is imported

        return sorted(PACKAGES)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        from onepass.algorithms import PACKAGES

        name = cmd_name if cmd_name in PACKAGES else cmd_name.replace("_", "-")
        if name not in PACKAGES:
            return None
        return _make_train_command(name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The algorithms with a line each, from their packages' docstrings (read, not imported)."""
        from onepass.algorithms import PACKAGES

        rows = [(name, _package_summary(package)) for name, (package, _) in sorted(PACKAGES.items())]
        with formatter.section("Algorithms"):
            formatter.write_dl(rows)


def _package_summary(package: str) -> str:
    """The first line of a package's docstring, read from its source without importing it."""
    import ast
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return ""
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
    return doc.split("\n")[0]


@main.group(cls=_TrainGroup, epilog=_ALGO_EPILOG)
def train() -> None:
    """Train an algorithm on a stream, in one pass (or --epochs passes)."""


def _make_train_command(name: str) -> click.Command:
    from onepass.state import get_algorithm
    from onepass.training import state_parameters

    algo = get_algorithm(name)
    hyper = list(state_parameters(algo.state))
    finalize_names = [n for n in inspect.signature(algo.state.model).parameters if n != "self"]
    extra_finalize = [n for n in finalize_names if n not in hyper]

    def callback(**opts: Any) -> None:
        from onepass.training import Checkpoints, Data, Reporting, TrainingRun, Workers

        opts.setdefault("validation", ())
        if opts["out"] is None and opts["checkpoint_dir"] is None:
            raise click.UsageError("nothing would be kept: give --out DIR for the model (and its state), or "
                                   "--checkpoint-dir DIR for the state alone")
        # SageMaker's names onepass uses too reach the translation as given ("auto", "None")
        shared = {n: v for n in sagemaker_shared if (v := opts.pop(n)) is not None}
        params = _collect(opts, hyper)
        finalize = _collect(opts, extra_finalize)
        data = Data.of(list(opts.pop("data")), **_source_kwargs(opts))
        params, finalize, loop = _sagemaker_names(name, opts, sagemaker_flags, params, finalize, shared)
        opts.update(loop)
        workers = None
        if opts["workers"] is not None:
            pool = {k: opts[k] for k in ("ray_address", "strategy", "sync_every_rows", "max_staleness", "stall_timeout")
                    if opts[k] is not None}
            workers = Workers(opts["workers"], **pool)
        else:
            for flag in ("ray_address", "strategy", "sync_every_rows", "max_staleness", "stall_timeout"):
                if opts[flag] is not None:
                    raise click.UsageError(f"--{flag.replace('_', '-')} needs --workers N")
        validation = opts.get("validation") or ()
        spec = TrainingRun(
            name, data, params=params, finalize=finalize, seed=opts["seed"], batch_size=opts["batch_size"],
            epochs=opts["epochs"], max_rows=opts["max_rows"], feature_dim=loop.get("feature_dim"),
            validation=data.read_as(list(validation)) if validation else None,
            checkpoints=Checkpoints(opts["checkpoint_dir"], opts["checkpoint_every_rows"],
                                    opts["checkpoint_every_seconds"], opts["resume"], opts["keep_checkpoints"]),
            reporting=Reporting(opts["metrics_file"], progress=False if opts["quiet"] else None),
            out=opts["out"], workers=workers,
        )
        result = _run(spec.run)
        test = opts.get("test") or ()
        if test:
            _report_test(result.model, spec.resolved().data.read_as(list(test)), spec, opts["metrics_file"])
        if not opts["quiet"]:
            click.echo(_train_summary(name, spec, result), err=True)

    params = [
        *_SOURCE_OPTIONS,
        click.Option(["--out"], type=click.Path(file_okay=False), default=None,
                     help="Directory for the finalized model (the final state goes in OUT/state)."),
        click.Option(["--checkpoint-dir"], type=click.Path(file_okay=False), default=None,
                     help="Directory for checkpoints (numbered, with a LATEST pointer; written atomically)."),
        click.Option(["--keep-checkpoints"], type=click.IntRange(min=1), default=3, show_default=True,
                     help="Checkpoints kept in --checkpoint-dir, newest first: --resume falls back to an older one "
                          "when the newest is damaged."),
        click.Option(["--checkpoint-every-rows"], type=click.IntRange(min=1), default=None,
                     help="Checkpoint after this many rows."),
        click.Option(["--checkpoint-every-seconds"], type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Checkpoint after this many seconds."),
        click.Option(["--resume"], is_flag=True, default=False,
                     help="Continue from the newest checkpoint in --checkpoint-dir that verifies (a damaged newer one is "
                          "skipped, with a warning) if there is one; start fresh otherwise."),
        click.Option(["--epochs"], type=click.IntRange(min=1), default=1, show_default=True,
                     help="Passes over a persistent source (not stdin)."),
        click.Option(["--max-rows"], type=click.IntRange(min=1), default=None,
                     help="Pause after this many rows in all (at a batch boundary), checkpointed; --resume goes on."),
        click.Option(["--seed"], type=int, default=None, help="Seed: same data and seed give the same model."),
        click.Option(["--metrics", "--metrics-file", "metrics_file"], default=None,
                     help="Append metrics as JSON lines to this file, or '-' for stdout."),
        click.Option(["--quiet", "-q"], is_flag=True, default=False, help="No progress bar, no summary."),
        click.Option(["--test", "test"], multiple=True, default=(),
                     help="Test data (same format and columns as --data) the model is scored on once trained, "
                     "as SageMaker's test channel: e.g. a forecaster's series, each one's last prediction_length "
                     "points forecast from the ones before (test:RMSE, test:mean_wQuantileLoss, test:MASE). "
                     "Repeat for several."),
        *([click.Option(["--validation", "validation"], multiple=True, default=(),
                        help="Validation data (same format and columns as --data) every model is scored on; "
                             "repeat for several. Without it, models are judged on rows held out "
                             "(--validation-fraction) or by progressive validation.")]
          if hasattr(algo.state, "add_validation") else []),
        click.Option(["--workers"], type=click.IntRange(min=1), default=None,
                     help="Train on N worker processes with Ray (pip install 'onepass[ray]'): the data is cut into "
                     "shards handed out as workers become free; a worker that dies costs only its unmerged rows."),
        click.Option(["--backend"], type=click.Choice(["ray"]), default="ray", show_default=True,
                     help="The engine --workers run on."),
        click.Option(["--ray-address"], default=None,
                     help="With --workers: an existing Ray cluster ('auto', 'HOST:6379', 'ray://HOST:10001'); "
                     "default: start a local one."),
        click.Option(["--strategy"], type=click.Choice(["merge", "parameter-server", "average"]), default=None,
                     help="With --workers: merge workers' states (default; K-Means, PCA), or for gradient-trained "
                     "algorithms an asynchronous parameter server or periodic model averaging."),
        click.Option(["--sync-every-rows"], type=click.IntRange(min=1), default=None,
                     help="With --workers: rows a worker learns between commits of its state and cursor "
                     "(default 1,000,000)."),
        click.Option(["--max-staleness"], type=click.IntRange(min=0), default=None,
                     help="With --strategy parameter-server: pushes a worker's weights may lag behind (default 4)."),
        click.Option(["--stall-timeout"], type=click.FloatRange(min=0, min_open=True), default=None,
                     help="With --workers: seconds without a piece back or a batch learned before the job "
                     "checkpoints and stops with an error, instead of waiting on a lost cluster (default 600)."),
        *_param_options(algo.state.__init__, ("self", "seed"), algo.state),
        *_param_options(algo.state.model, ("self", *hyper), algo.state.model),
        click.Option(["--hyperparameters", "hyperparameters"], type=click.Path(dir_okay=False), default=None,
                     help="A JSON object of hyperparameters by SageMaker's names or onepass's, values as strings "
                     "as SageMaker writes them ({\"k\": \"10\", \"mini_batch_size\": \"500\"}). A name also "
                     "given as an option must have the same value."),
    ]
    taken = {flag for p in params for flag in getattr(p, "opts", [])}
    sagemaker_flags = [n for n in algo.sagemaker_names if f"--{n.replace('_', '-')}" not in taken]
    sagemaker_shared = [n for n in algo.sagemaker_names if n in hyper or n in extra_finalize]
    for option in params:
        if option.name in sagemaker_shared:  # converted by the SageMaker declaration, from its strings
            option.metavar = option.type.name.upper()
            option.type = click.STRING
    params += [_sagemaker_option(n, algo.sagemaker_names[n]) for n in sagemaker_flags]
    package = sys.modules[algo.state.__module__.rpartition(".")[0]]
    summary = (inspect.getdoc(package) or name).split("\n")[0]
    return click.Command(name, callback=callback, params=params, help=summary,
                         context_settings={"max_content_width": 100})




def _train_summary(name: str, spec: Any, result: Any) -> str:
    """What ``onepass train`` says when it ends: rows, time, rows/s, what the model
    learned (the headline numbers ``inspect`` shows first) and where it went."""
    from onepass.evaluation import headline

    metrics = result.metrics or {}
    elapsed, rate = metrics.get("elapsed_s"), metrics.get("rows_per_s")
    lines = [f"trained {name} on {result.n_rows_seen:,} rows"
             + (f" in {elapsed:.1f} s ({rate:,.0f} rows/s this run)" if elapsed is not None and rate else "")
             + f", {result.epochs} epoch(s); skipped {result.n_skipped}, quarantined {result.n_quarantined}"
             + (f"; {_paused_why(spec, result)}, --resume goes on from {result.checkpoint}"
                if result.paused and result.checkpoint else "")]
    if result.out is not None:
        from onepass.io._artifact import read_manifest

        manifest = read_manifest(result.out)
    else:
        meta, _ = result.model.to_arrays()
        manifest = {"kind": result.model.kind, "meta": meta}
    lines += ["what it learned", *headline(manifest)]
    if result.out is not None:
        lines.append(f"model in {result.out} (its state in {Path(result.out) / 'state'}); "
                     f"'onepass inspect {result.out}' tells more, 'onepass evaluate {result.out} --data ...' "
                     "measures it")
    elif result.checkpoint is not None:
        lines.append(f"state in {result.checkpoint}; 'onepass finalize {result.checkpoint} --out DIR' makes the model")
    return "\n".join(lines)


def _sagemaker_option(name: str, spec: Any) -> click.Option:
    """``--NAME`` for a SageMaker hyperparameter whose name onepass does not use itself."""
    if spec.to is None:
        where = "accepted when onepass already behaves so, refused with the reason otherwise"
    else:
        setting = spec.to.rpartition(":")[2]
        where = ("checked against the data's width" if setting == "n_features"
                 else f"sets --{setting.replace('_', '-')}")
    return click.Option([f"--{name.replace('_', '-')}", f"sagemaker_{name}"], default=None, metavar="TEXT",
                        help=f"SageMaker's {name}: {where}.")


def _sagemaker_names(name: str, opts: dict[str, Any], flags: list[str], params: dict[str, Any],
                     finalize: dict[str, Any], shared: dict[str, Any]) -> tuple[dict, dict, dict]:
    """Translate SageMaker's names (``--k``, ``--hyperparameters FILE``) with onepass's own
    options; a setting given twice must agree. Returns (params, finalize, the loop's
    settings: epochs, batch_size, feature_dim)."""
    from onepass.algorithms._sagemaker_names import load_hyperparameters, translate_hyperparameters

    ctx = click.get_current_context()
    given = {**shared, **{n: v for n in flags if (v := opts.pop(f"sagemaker_{n}")) is not None}}
    path = opts.pop("hyperparameters")
    explicit = {k: opts[k] for k in ("epochs", "batch_size")
                if ctx.get_parameter_source(k) is not click.core.ParameterSource.DEFAULT}
    if not given and path is None:
        return params, finalize, {}

    def translate() -> Any:
        from_file = load_hyperparameters(path) if path is not None else {}
        return translate_hyperparameters(name, from_file, {**params, **finalize, **explicit}, given)

    hp = _run(translate)
    return hp.params, hp.finalize, hp.train


def _report_test(model: Any, test: Any, spec: Any, metrics_file: str | None) -> None:
    """Score ``model`` on the test data (the scorer ``onepass tune`` ranks models with) and
    say each measure as ``test:NAME`` on stderr, and in the metrics file when there is one."""
    from onepass.training import MetricsWriter
    from onepass.tune._from_state import score_models

    scores = _run(lambda: score_models([model], test.target, seed=spec.seed or 0, batch_size=spec.batch_size,
                                       **test.options())[0])
    record = {f"test:{k}": v for k, v in scores.items()}
    for key, value in record.items():
        click.echo(f"{key} = {value:.6g}", err=True)
    writer = MetricsWriter(metrics_file)
    writer.write({"event": "test", **record})
    writer.close()


class _FinalizeCommand(click.Command):
    """``finalize`` accepts any algorithm's finalize settings as ``--name value``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        settings: dict[str, Any] = {}
        rest: list[str] = []
        known = {o for p in self.get_params(ctx) for o in (*getattr(p, "opts", []), *getattr(p, "secondary_opts", []))}
        i = 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("--") and arg.split("=")[0] not in known:
                key, _, value = arg[2:].partition("=")
                if not value:
                    if i + 1 >= len(args):
                        raise click.UsageError(f"option {arg} needs a value")
                    value = args[i + 1]
                    i += 1
                settings[key.replace("-", "_")] = _coerce(value)
            else:
                rest.append(arg)
            i += 1
        ctx.meta["finalize_settings"] = settings
        return super().parse_args(ctx, rest)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Each algorithm's finalize settings, with their help, from its ``model`` method."""
        from onepass.algorithms import load_all
        from onepass.state import ALGORITHMS

        load_all()
        for name in sorted(ALGORITHMS):
            model = ALGORITHMS[name].state.model
            docs = _doc_params(model)
            rows = []
            for setting, param in inspect.signature(model).parameters.items():
                if setting != "self":
                    rows.append((f"--{setting.replace('_', '-')}",
                                 _with_default(docs.get(setting, ""), param, none="as trained")))
            if rows:
                with formatter.section(f"Finalize settings of {name}"):
                    formatter.write_dl(rows)


@main.command(cls=_FinalizeCommand, context_settings={"ignore_unknown_options": False})
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), required=True, help="Directory for the model.")
@click.pass_context
def finalize(ctx: click.Context, checkpoint: str, out: str) -> None:
    """Finalize a state into a model, without reading any data.

    CHECKPOINT is a checkpoint directory, one checkpoint, or a model directory written
    by 'onepass train --out' (its state is used). Finalize settings are the algorithm's,
    e.g. for kmeans '--n-clusters K' (any K up to the centers kept).
    """
    from onepass.io import save_model
    from onepass.io._models import load_state
    from onepass.state import ALGORITHMS

    settings = ctx.meta.get("finalize_settings", {})

    def run() -> Path:
        state, manifest = load_state(checkpoint)
        algo = next(a for a in ALGORITHMS.values() if a.state.kind == state.kind)
        allowed = [n for n in inspect.signature(algo.state.model).parameters if n != "self"]
        unknown = sorted(set(settings) - set(allowed))
        if unknown:
            raise InvalidParameterError(
                f"unknown finalize setting(s) {', '.join('--' + u.replace('_', '-') for u in unknown)} "
                f"for {algo.name}; valid: {', '.join('--' + a.replace('_', '-') for a in allowed)}"
            )
        model = state.model(**settings)
        return save_model(out, model, extra={
            "algorithm": algo.name,
            "finalize": settings,
            "hyperparameters": state.to_arrays()[0].get("hyperparameters", {}),
            "rows_seen": state.n_rows_seen_,
            "finalized_from": str(checkpoint),
        })

    path = _run(run)
    click.echo(f"model written to {path}", err=True)


@main.command("tune", epilog="Ranges: 2:64 (integers, both ends), 0.1:0.9:0.2 (a step), log:1e-4:1e-1 "
              "(log-uniform, searches), log:1e-4:1e-1:4 (4 values), a,b,c (a list).")
@click.argument("checkpoint", required=False, type=click.Path(exists=True, file_okay=False))
@click.option("--validation", required=True, help="Validation data, read once for all candidates (any source URI).")
@click.option("--param", "params", multiple=True, required=True, metavar="NAME=RANGE",
              help="A setting to tune and its range; repeat for several.")
@click.option("--metric", default=None, help="Rank by this metric (default per kind: K-Means bic, PCA reconstruction_error).")
@click.option("--select", type=click.Choice(["best", "elbow", "target"]), default="best", show_default=True,
              help="From a state: the best score, the elbow of the curve, or the first setting reaching --target.")
@click.option("--target", type=float, default=None, help="With --select target: the score to reach.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write the chosen model here.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Draw the leaderboard into this PNG.")
@click.option("--json", "as_json", is_flag=True, default=False, help="Print the leaderboard as JSON.")
@click.option("--search", "search", default=None, metavar="ALGO",
              help="Search by training (successive halving) instead of tuning a state's finalize settings.")
@click.option("--data", "data", multiple=True, help="With --search: the training data.")
@click.option("--budget-rows", type=click.IntRange(min=1), default=None, help="With --search: rows all trials may train on in all.")
@click.option("--workdir", type=click.Path(file_okay=False), default=None,
              help="With --search: where trials, checkpoints and scores are kept; the same --workdir resumes a search.")
@click.option("--trials", type=click.IntRange(min=1), default=None,
              help="With --search: trials per bracket (default 8; with --sampler grid, the grid's size).")
@click.option("--eta", type=click.IntRange(min=2), default=2, show_default=True, help="With --search: keep 1/eta per round.")
@click.option("--brackets", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --search: brackets; each later one's draws learn from the earlier scores.")
@click.option("--sampler", type=click.Choice(["tpe", "random", "grid"]), default="tpe", show_default=True,
              help="With --search: how trials are drawn; grid takes each point of grid ranges once.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, help="With --search: trials trained at once (default: cores).")
@click.option("--set", "fixed", multiple=True, metavar="NAME=VALUE", help="With --search: a fixed hyperparameter.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--format", "format", default=None, help="Format of the data and validation files (default: from the extension).")
@click.option("--batch-size", type=click.IntRange(min=1), default=8192, show_default=True)
@click.option("--label-column", default=None, help="Label column by name or 0-based index.")
@click.option("--header/--no-header", "header", default=None)
@click.option("--n-features", type=int, default=None, help="Width of sparse (libsvm) data.")
@click.option("--zero-based/--one-based", "zero_based", default=None,
              help="Whether libsvm feature indices start at 0 (default: at 1).")
def tune_command(checkpoint: str | None, validation: str, params: tuple[str, ...], metric: str | None, select: str,
                 target: float | None, out: str | None, plot: str | None, as_json: bool, search: str | None,
                 data: tuple[str, ...], budget_rows: int | None, workdir: str | None, trials: int | None, eta: int,
                 brackets: int, sampler: str, jobs: int | None, fixed: tuple[str, ...], seed: int, format: str | None,
                 batch_size: int, label_column: str | None, header: bool | None, n_features: int | None,
                 zero_based: bool | None) -> None:
    """Tune: many models from one state, or a search that pauses and resumes trials.

    \b
    From a state (no training data read again):
      onepass tune ckpt/ --validation val.csv --param n_clusters=2:64 --plot k.png --out best/
    By search, for settings that change training:
      onepass tune --search kmeans --data train.csv --validation val.csv \\
        --param half_life=log:1e4:1e7 --set n_clusters=10 --budget-rows 2000000 --workdir search/
    """
    from onepass.tune import tune as run_tune

    source = {"format": format, "label_column": _coerce(label_column) if label_column is not None else None,
              "header": header, "n_features": n_features, "zero_based": zero_based}
    source = {k: v for k, v in source.items() if v is not None}

    def go() -> Any:
        if search is not None:
            if checkpoint is not None:
                raise InvalidParameterError("give a CHECKPOINT to tune from, or --search ALGO, not both")
            missing = [n for n, v in (("--data", data), ("--budget-rows", budget_rows), ("--workdir", workdir)) if not v]
            if missing:
                raise InvalidParameterError(f"--search needs {', '.join(missing)}")
            settings = {}
            for item in fixed:
                name, sep, value = item.partition("=")
                if not sep:
                    raise InvalidParameterError(f"--set {item!r}: write NAME=VALUE")
                settings[name.strip().replace("-", "_")] = _coerce(value)
            return run_tune(search=search, data=list(data) if len(data) > 1 else data[0], validation=validation,
                            params=list(params), budget_rows=budget_rows, workdir=workdir, metric=metric,
                            n_trials=trials, eta=eta, brackets=brackets, sampler=sampler, jobs=jobs, fixed=settings,
                            seed=seed, batch_size=batch_size, out=out, plot=plot, source=source,
                            validation_source=source)
        if checkpoint is None:
            raise InvalidParameterError("give a CHECKPOINT (or model directory with its state) to tune, or --search ALGO")
        return run_tune(checkpoint, validation=validation, params=list(params), metric=metric, select=select,
                        target=target, out=out, plot=plot, seed=seed, batch_size=batch_size, **source)

    board = _run(go)
    if as_json:
        click.echo(json.dumps(board.to_json(), indent=1))
    else:
        click.echo(board.table())
    chosen = {k: board.chosen[k] for k in board.params}
    click.echo(f"chosen by {board.select} {board.metric}: {chosen}" + (f"; model in {out}" if out else ""), err=True)


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data", multiple=True, required=True,
              help="Rows to predict: file, folder, glob, '-' for stdin, or fsspec URL.")
@click.option("--out", required=True,
              help="Output file; its extension picks the format (.csv, .jsonl, .parquet, .rec); '-' for stdout.")
@click.option("--output-format", type=click.Choice(["csv", "jsonl", "parquet", "recordio-protobuf"]), default=None,
              help="Output format (needed with --out -).")
@click.option("--format", "format", default=None,
              help="Input format: csv, parquet, jsonl, libsvm, npy, recordio-protobuf or text (default: from the extension).")
@click.option("--batch-size", type=click.IntRange(min=1), default=65536, show_default=True,
              help="Rows predicted at a time (memory is one batch).")
@click.option("--label-column", default=None, help="A label column in the input to leave out of the features.")
@click.option("--header/--no-header", "header", default=None, help="Whether CSV input has a header line.")
@click.option("--n-features", type=int, default=None, help="Width of sparse (libsvm) input.")
@click.option("--zero-based/--one-based", "zero_based", default=False,
              help="Whether libsvm feature indices start at 0 (default: at 1, as libsvm writes them).")
@click.option("--on-bad-record", type=click.Choice(["fail", "skip", "quarantine"]), default="fail",
              show_default=True, help="What a malformed input record does.")
@click.option("--quarantine-file", default=None, help="Where quarantined input records go.")
@click.option("--vocab", default=None, help=_VOCAB_HELP)
@click.option("--document", type=click.Choice(["line", "file"]), default="line", show_default=True,
              help=_DOCUMENT_HELP)
@click.option("--quantiles", default=None,
              help="Forecasters: the quantiles of each forecast, e.g. 0.1,0.5,0.9 (default: the model's test_quantiles).")
@click.option("--num-samples", type=click.IntRange(min=1), default=None,
              help="Forecasters: sample paths per series (default: the model's num_eval_samples).")
@click.option("--samples/--no-samples", "with_samples", default=False,
              help="Forecasters: write the sample paths too (one list per path).")
@click.option("--seed", type=int, default=0, show_default=True, help="Forecasters: seeds the sample paths.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Forecasters: draw the first series and their forecast bands into this PNG.")
def predict(model_dir: str, data: tuple[str, ...], out: str, output_format: str | None, format: str | None,
            batch_size: int, label_column: str | None, header: bool | None, n_features: int | None,
            zero_based: bool, on_bad_record: str, quarantine_file: str | None, vocab: str | None,
            document: str, quantiles: str | None, num_samples: int | None, with_samples: bool, seed: int,
            plot: str | None) -> None:
    """Predict every row of --data with the model in MODEL_DIR, streaming, in input order.

    A forecaster (DeepAR) reads series (SageMaker's JSON lines) and writes one line per
    series: the mean forecast, its quantiles and, with --samples, the sample paths."""
    from onepass.io import load_model
    from onepass.serve import predict_file

    forecast: dict[str, Any] = {"seed": seed, "output_types": ["mean", "quantiles"] + (["samples"] if with_samples else [])}
    if num_samples is not None:
        forecast["num_samples"] = num_samples
    if quantiles is not None:
        try:
            forecast["quantiles"] = [float(q) for q in quantiles.split(",") if q.strip()]
        except ValueError:
            raise click.BadParameter(f"{quantiles!r} must be numbers separated by commas, e.g. 0.1,0.5,0.9",
                                     param_hint="--quantiles") from None

    def run() -> Any:
        from onepass.errors import FeatureCountError
        from onepass.schema import InputSchema

        model, manifest = load_model(model_dir)
        schema = InputSchema.of(manifest)
        label = _coerce(label_column) if label_column is not None else None
        target = list(data) if len(data) > 1 else data[0]
        options = dict(format=format, header=header, n_features=n_features, zero_based=zero_based,
                       on_bad_record=on_bad_record, quarantine_file=quarantine_file, **_text_kwargs(vocab, document))
        if label is None and not hasattr(model, "forecast") and (found := schema.label_in(target, **options)) is not None:
            label = found  # rows without a header still holding the label, where training had it
            click.echo(f"onepass: left out column {found}, the model's label ({schema.label_column})", err=True)
        try:
            return predict_file(model, target, out, output_format=output_format, batch_size=batch_size,
                                forecast=forecast, plot=plot, **options, **schema.source_options(label_column=label))
        except FeatureCountError as exc:
            raise FeatureCountError(schema.explain(exc, label_given=label is not None)) from None

    summary = _run(run)
    where = "stdout" if out == "-" else out
    if summary.unused_columns:
        click.echo("onepass: left out column(s) the model was not trained on: "
                   + ", ".join(summary.unused_columns), err=True)
    message = f"{summary.n_rows:,} predictions written to {where}"
    if summary.n_skipped or summary.n_quarantined:
        message += (f"; skipped {summary.n_skipped}, quarantined {summary.n_quarantined} bad input records "
                    "(they have no output row)")
    click.echo(message, err=True)


@main.command("evaluate")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--data", "data", multiple=True, required=True,
              help="Rows to measure the model on: file, folder, glob, '-' for stdin, or fsspec URL. Repeat for several.")
@click.option("--label-column", default=None,
              help="The labels' column, by name or 0-based index (default: the one the model was trained with, "
                   "when its manifest records it). Needed by classifiers and regressors, unless the format carries "
                   "labels (libsvm, RecordIO-protobuf); other models leave it out of the features.")
@click.option("--format", "format", default=None,
              help="Input format: csv, parquet, jsonl, libsvm, npy, recordio-protobuf, series or text "
                   "(default: from the extension; series for a forecaster).")
@click.option("--header/--no-header", "header", default=None, help="Whether CSV input has a header line.")
@click.option("--n-features", type=int, default=None, help="Width of sparse (libsvm) input.")
@click.option("--zero-based/--one-based", "zero_based", default=False,
              help="Whether libsvm feature indices start at 0 (default: at 1, as libsvm writes them).")
@click.option("--on-bad-record", type=click.Choice(["fail", "skip", "quarantine"]), default="fail",
              show_default=True, help="What a malformed input record does (skipped ones are not measured, and counted).")
@click.option("--quarantine-file", default=None, help="Where quarantined input records go.")
@click.option("--batch-size", type=click.IntRange(min=1), default=8192, show_default=True,
              help="Rows measured at a time (memory is one batch and the measures' fixed sums).")
@click.option("--vocab", default=None, help=_VOCAB_HELP)
@click.option("--document", type=click.Choice(["line", "file"]), default="line", show_default=True,
              help=_DOCUMENT_HELP)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seeds the silhouette's row sample and a forecaster's sample paths.")
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print one JSON object (measures, details, counts) instead of the table.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Draw into this PNG: ROC and calibration curves (binary classifiers), the confusion matrix "
                   "(multiclass), residuals (regressors), explained variance per component (PCA), cluster sizes "
                   "(K-Means), NPMI per topic (NTM). Needs the 'plot' extra.")
def evaluate_command(model_dir: str, data: tuple[str, ...], label_column: str | None, format: str | None,
                     header: bool | None, n_features: int | None, zero_based: bool, on_bad_record: str,
                     quarantine_file: str | None, batch_size: int, vocab: str | None, document: str, seed: int,
                     as_json: bool, plot: str | None) -> None:
    """Measure the model in MODEL_DIR on --data, read once, with its algorithm's own measures.

    \b
    Classifiers: AUC, log loss (cross_entropy), and at the model's decision threshold
    accuracy, F1, precision, recall and the confusion matrix. Regressors: RMSE, MAE, R2.
    K-Means: inertia in total and per row, BIC, silhouette, cluster sizes. PCA: the
    explained variance ratio of these rows, per component and in all, reconstruction
    error. NTM: perplexity, loss, NPMI, topic uniqueness. DeepAR: each series' last
    prediction_length points forecast from the ones before: mean_wQuantileLoss, RMSE,
    MASE, ND. The same measures 'onepass tune' ranks models by.

    \b
    Example:
      onepass evaluate model/ --data test.csv --label-column label --plot roc.png
    """
    from onepass.evaluation._evaluate import evaluate
    from onepass.io import load_model

    def run() -> Any:
        model, manifest = load_model(model_dir)
        if plot is not None:  # before reading any data: matplotlib, and something to draw
            from onepass.evaluation._evaluate import _task
            from onepass.evaluation._plot import check_plot

            check_plot(_task(model))
        result = evaluate(
            model, list(data) if len(data) > 1 else data[0], manifest=manifest,
            label_column=_coerce(label_column) if label_column is not None else None, format=format,
            header=header, n_features=n_features, zero_based=zero_based, on_bad_record=on_bad_record,
            quarantine_file=quarantine_file, batch_size=batch_size, seed=seed, **_text_kwargs(vocab, document))
        if plot is not None:
            result.plot(plot)
        return result

    result = _run(run)
    click.echo(json.dumps(result.to_json(), indent=1) if as_json else result.table())
    if plot is not None:
        click.echo(f"plot written to {plot}", err=True)


@main.command("vocab")
@click.option("--data", "data", multiple=True, required=True,
              help="Text documents: a file, folder, glob, '-' for stdin, or fsspec URL. Repeat for several.")
@click.option("--out", required=True,
              help="Where the vocabulary goes: one word per line, most frequent first; '-' for stdout.")
@click.option("--size", type=click.IntRange(min=1), default=20000, show_default=True, help="Words kept at most.")
@click.option("--sketch-size", type=click.IntRange(min=1), default=None,
              help="Words the sketch monitors, at least --size (default: 10 x --size). Memory grows with it, "
                   "not with the corpus; a larger sketch counts the rarer kept words more precisely.")
@click.option("--min-df", type=click.IntRange(min=1), default=1, show_default=True,
              help="Keep only words certainly in at least this many documents (the sketch's lower bound).")
@click.option("--stop-words", default="english", show_default=True,
              help="Words left out: english (scikit-learn's list), none, or a file of one word per line.")
@click.option("--keep-numbers/--no-numbers", "keep_numbers", default=False,
              help="Keep tokens without a letter (2019, 3_14); left out by default.")
@click.option("--document", type=click.Choice(["line", "file"]), default="line", show_default=True,
              help="One document per line, or per file; a word counts once per document.")
def vocab_command(data: tuple[str, ...], out: str, size: int, sketch_size: int | None, min_df: int,
                  stop_words: str, keep_numbers: bool, document: str) -> None:
    """Build a vocabulary: the --size words found in most documents, in one pass.

    Words are lowercased runs of 2 or more letters or digits (scikit-learn's default
    tokens), the same words --format text counts. Each is counted once per document in a
    Space-Saving sketch of --sketch-size words, so memory is fixed whatever the corpus:
    every word in more than (documents / sketch size) documents is kept, and when the
    corpus has fewer distinct words than the sketch the counts are exact. Ties in
    frequency are broken by word, so the same data gives the same file.

    \b
    Example: build a vocabulary, then train a topic model on word counts:
      onepass vocab --data 'docs/*.txt' --size 20000 --out vocab.txt
      onepass train ntm --data 'docs/*.txt' --format text --vocab vocab.txt --out model/
    One document per file (a folder of articles):
      onepass vocab --data articles/ --document file --min-df 5 --out vocab.txt
    """
    from onepass.text import build_vocabulary

    def run() -> Any:
        built = build_vocabulary(list(data) if len(data) > 1 else data[0], size=size, sketch_size=sketch_size,
                                 min_df=min_df, stop_words=stop_words, keep_numbers=keep_numbers,
                                 document=document)
        if out == "-":
            click.echo("".join(w + "\n" for w in built.words), nl=False)
        else:
            built.write(out)
        return built

    built = _run(run)
    where = "stdout" if out == "-" else out
    if built.is_exact:
        precision = "exact counts"
    else:
        worst = int(built.errors.max()) if len(built) else 0
        precision = (f"a sketch of {built.sketch_size:,} words let {built.n_evicted:,} go; the kept words' counts "
                     f"are at most {worst:,} above the truth")
    click.echo(f"{len(built):,} words written to {where} from {built.n_documents:,} documents ({precision})",
               err=True)


def _env_number(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value and value.isdigit() else default


@main.command()
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface (in a container).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port to listen on (default: $SAGEMAKER_BIND_TO_PORT, else 8080).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes; each loads the model and they share the port.")
@click.option("--max-payload-mb", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Largest request body accepted, in MiB; larger ones get 413 "
                   "(default: $SAGEMAKER_MAX_PAYLOAD_IN_MB, else 6, as SageMaker).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]),
              default="info", show_default=True, help="Server log level (requests are not logged; see /metrics).")
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Seconds a request has to arrive whole (headers and body) from its first byte; a slower one "
                   "gets 408 and its connection is closed.")
@click.option("--timeout-keep-alive", type=click.IntRange(min=1), default=65, show_default=True,
              help="Seconds an idle connection is kept open (longer than load balancers' 60 s idle timeout).")
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="A file of API keys, one a line (16+ characters): every request but GET /ping must send "
                   "'Authorization: Bearer KEY', else 401.")
@click.option("--ssl-certfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Serve HTTPS with this certificate (PEM; with --ssl-keyfile).")
@click.option("--ssl-keyfile", type=click.Path(exists=True, dir_okay=False), default=None,
              help="The private key of --ssl-certfile (PEM).")
@click.option("--exposure-warning/--no-exposure-warning", "warn_exposure", default=True, hidden=True)
def serve(model_dir: str, host: str, port: int | None, workers: int, max_payload_mb: float | None,
          log_level: str, request_timeout: float, timeout_keep_alive: int, api_key_file: str | None,
          ssl_certfile: str | None, ssl_keyfile: str | None, warn_exposure: bool = True) -> None:
    """Serve the model in MODEL_DIR over HTTP, as a SageMaker inference container does.

    \b
    GET  /ping           200 once the model is loaded (503 before)
    POST /invocations    rows as text/csv, application/json or application/jsonlines;
                         the answer's type follows Accept (application/json by default)
    GET  /metrics        Prometheus text: requests, latency, rows predicted, model
    GET  /openapi.json   the OpenAPI description
    SIGTERM lets in-flight requests finish, then stops.

    \b
    It listens on 127.0.0.1 unless told otherwise. Beyond this machine, guard it:
    --api-key-file (bearer tokens) and --ssl-certfile/--ssl-keyfile (HTTPS).

    \b
    Example:
      onepass serve model/ --port 8080 &
      curl -s -H 'Content-Type: text/csv' --data-binary $'1,2,3\\n4,5,6' localhost:8080/invocations
    """
    try:
        from onepass.serve._server import run_server
    except ImportError as exc:  # the web stack is an extra
        click.echo(f"onepass: error: onepass serve needs the 'serve' extra ({exc.name} is missing): "
                   "pip install 'onepass[serve]'", err=True)
        sys.exit(1)

    from onepass.serve._guard import exposure_warning

    if (ssl_certfile is None) != (ssl_keyfile is None):
        raise click.UsageError("--ssl-certfile and --ssl-keyfile go together: give both to serve HTTPS")
    if port is None:
        port = _env_number("SAGEMAKER_BIND_TO_PORT", 8080)
    if max_payload_mb is None:
        max_payload_mb = _env_number("SAGEMAKER_MAX_PAYLOAD_IN_MB", 6)
    warning = exposure_warning(host, port, has_keys=api_key_file is not None, has_tls=ssl_certfile is not None)
    if warning and warn_exposure:
        click.echo(f"onepass serve: warning: {warning}", err=True)
    _run(lambda: run_server(model_dir, host=host, port=port, workers=workers,
                            max_payload_bytes=int(max_payload_mb * 1024 * 1024), log_level=log_level,
                            request_timeout=request_timeout, timeout_keep_alive=timeout_keep_alive,
                            api_key_file=api_key_file, ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile))


@main.command("inspect")
@click.argument("path", type=click.Path(exists=True, file_okay=False))
@click.option("--json", "as_json", is_flag=True, default=False,
              help="Print the whole manifest as one JSON object (for tools) instead of the summary.")
@click.option("--verify", is_flag=True, default=False,
              help="Also read every array and check its checksum and what the algorithm declares (without it, "
                   "only that each array file is there with the size its shape makes).")
def inspect_command(path: str, as_json: bool, verify: bool) -> None:
    """Say what a model, checkpoint or checkpoint directory holds, from its manifest; a
    damaged array file (missing, truncated, another size) is said on stderr, exit 3.

    \b
    The summary: the algorithm, what it was trained on, its hyperparameters, what it
    learned (K-Means inertia in total and per row and the cluster sizes, PCA's explained
    variance per component, the chosen linear model and its leaderboard, a topic
    model's top words, a forecaster's settings), the last training metrics and the
    arrays. Thresholds are shown as the probability predict writes. To measure a model
    on data: onepass evaluate MODEL --data FILE.
    """
    from onepass.io._artifact import read_manifest
    from onepass.io._checkpoints import is_checkpoint_dir, latest_checkpoint

    def run() -> tuple[Path, dict[str, Any]]:
        target = Path(path)
        if not (target / "manifest.json").exists() and is_checkpoint_dir(target):
            found = latest_checkpoint(target)
            if found is None:
                raise ArtifactError(f"{target}: no complete checkpoint in this checkpoint directory")
            target = found
        return target, read_manifest(target)

    target, manifest = _run(run)
    if as_json:
        click.echo(json.dumps({**manifest, "path": str(target)}, indent=2, sort_keys=True))
    else:
        from onepass.evaluation._summary import summarize

        click.echo(summarize(manifest, path=target, has_state=(target / "state" / "manifest.json").is_file()))
    _inspect_arrays(target, manifest, verify)


def _inspect_arrays(target: Path, manifest: dict[str, Any], verify: bool) -> None:
    """Say on stderr, exit 3, when the array files do not fit the manifest (sizes, always;
    checksums and what the algorithm declares, with ``verify``)."""
    from onepass.io._artifact import array_files_problems

    problems = array_files_problems(target, manifest)
    if not problems and verify:
        from onepass.io import load

        try:
            load(target)
        except ArtifactError as exc:
            problems = [str(exc)]
    if problems:
        for problem in problems:
            click.echo(f"onepass: error: damaged: {problem}", err=True)
        click.echo(f"onepass: error: {target} cannot be loaded as it is", err=True)
        sys.exit(3)
    if verify:
        click.echo(f"verified: every array of {target} matches its checksum and what {manifest.get('kind')} declares",
                   err=True)


@main.group("sagemaker")
def sagemaker_group() -> None:
    """SageMaker's container contract: 'docker run IMAGE train' and 'docker run IMAGE serve'.

    \b
    train  reads /opt/ml/input/config/{hyperparameters,inputdataconfig}.json and the
           channels under /opt/ml/input/data (File or Pipe mode), checkpoints to
           /opt/ml/checkpoints and resumes from it, writes the model to /opt/ml/model,
           and on failure the reason to /opt/ml/output/failure (non-zero exit)
    serve  serves /opt/ml/model on $SAGEMAKER_BIND_TO_PORT, else 8080, every interface
    """


@sagemaker_group.command("train")
@click.option("--opt-ml", default="/opt/ml", show_default=True, type=click.Path(file_okay=False),
              help="The /opt/ml tree SageMaker mounts (elsewhere for a local run or a test).")
@click.option("--algorithm", default=None,
              help="The algorithm to train (default: $ONEPASS_ALGORITHM, else the hyperparameter onepass_algorithm).")
def sagemaker_train(opt_ml: str, algorithm: str | None) -> None:
    """Run the SageMaker training job the --opt-ml tree describes."""
    from onepass.sagemaker import run_training_job

    sys.exit(run_training_job(opt_ml, algorithm))


@sagemaker_group.command("serve")
@click.option("--opt-ml", default="/opt/ml", show_default=True, type=click.Path(file_okay=False),
              help="The /opt/ml tree; the model is read from its model/ folder.")
@click.option("--host", default="0.0.0.0", show_default=True,
              help="Address to listen on (a container listens on every interface; 127.0.0.1 for a local test).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help="Port (default: $SAGEMAKER_BIND_TO_PORT, else 8080).")
@click.pass_context
def sagemaker_serve(ctx: click.Context, opt_ml: str, host: str, port: int | None) -> None:
    """Serve the model of the --opt-ml tree as a SageMaker inference container."""
    model_dir = Path(opt_ml) / "model"
    if not model_dir.is_dir():
        click.echo(f"onepass: error: {model_dir} does not exist: SageMaker extracts the model there", err=True)
        sys.exit(3)
    # a SageMaker endpoint's container listens on every interface without keys by contract (the
    # platform admits the callers): the exposure warning would only be noise in its logs
    ctx.invoke(serve, model_dir=str(model_dir), host=host, port=port, workers=1, max_payload_mb=None,
               log_level="info", warn_exposure=False)


if __name__ == "__main__":  # pragma: no cover
    main()
