"""The training side of SageMaker's container contract.

A SageMaker training job starts the image with ``train`` and mounts:

- ``input/config/hyperparameters.json``: the job's hyperparameters, every value a string
  (translated by :func:`onepass.translate_hyperparameters`: SageMaker's names or onepass's);
- ``input/config/inputdataconfig.json``: the channels (``train``, ``validation``,
  ``test``), each with its ``ContentType`` and ``TrainingInputMode``;
- ``input/data/<channel>/`` in File mode, the FIFO ``input/data/<channel>_<epoch>`` in
  Pipe mode (epoch ``e`` reads ``train_e``: each epoch is a run that goes on from the last
  one's checkpoint; a job started again reads its FIFO forward to its checkpoint's offset);
- ``checkpoints/``, synced with S3: the job checkpoints there and, started again after
  a spot interruption (a SIGKILL), resumes from the newest checkpoint;
- ``model/``: the model (and its final state) when training ends;
- ``output/failure``: why the job failed, with a non-zero exit.

The algorithm is the image's: ``--algorithm``, else the ``ONEPASS_ALGORITHM``
environment variable (a Dockerfile's ``ENV``), else the hyperparameter
``onepass_algorithm``. A ``test`` channel scores the model as ``onepass tune`` scores
models, printed as SageMaker's built-ins print it (``#test_score (algo-1) : ('auc', 0.93)``).
The hyperparameter ``seed`` (default 0) seeds the state. CSV channels follow SageMaker's convention: no header, and for
supervised algorithms the label in the first column. Each data record's errors name
the file and line (or byte offset), as every onepass source does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onepass.errors import InvalidParameterError, OnePassError, exit_code

if TYPE_CHECKING:
    from onepass.training import TrainingRun

__all__ = ["OptML", "TrainingJob", "run_training_job"]

#: Content types SageMaker channels declare, and the onepass source format each is read as
CONTENT_TYPES = {
    "text/csv": "csv",
    "application/x-recordio-protobuf": "recordio-protobuf",
    "application/jsonlines": "jsonl",
    "application/x-jsonlines": "jsonl",
    "application/x-parquet": "parquet",
    "application/vnd.apache.parquet": "parquet",
    "application/x-libsvm": "libsvm",
    "text/libsvm": "libsvm",
    "application/x-npy": "npy",
}
CHANNELS = ("train", "validation", "test")
ENV_ALGORITHM = "ONEPASS_ALGORITHM"
ENV_CHECKPOINT_ROWS = "ONEPASS_CHECKPOINT_EVERY_ROWS"
ENV_CHECKPOINT_SECONDS = "ONEPASS_CHECKPOINT_EVERY_SECONDS"
DEFAULT_CHECKPOINT_SECONDS = 60.0
#: a job's seed unless the hyperparameter ``seed`` says another: a job started again
#: after an interruption must draw what the first start drew
DEFAULT_SEED = 0


@dataclass(frozen=True)
class OptML:
    """The ``/opt/ml`` tree (``root`` elsewhere for tests)."""

    root: Path

    @property
    def hyperparameters(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    @property
    def input_data_config(self) -> Path:
        return self.root / "input" / "config" / "inputdataconfig.json"

    def channel(self, name: str) -> Path:
        return self.root / "input" / "data" / name

    def pipe(self, name: str, epoch: int) -> Path:
        return self.root / "input" / "data" / f"{name}_{epoch}"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"


@dataclass
class Channel:
    name: str
    format: str | None
    mode: str  # "File" or "Pipe"
    label_size: int | None = None  # text/csv;label_size=N

    def data(self, opt_ml: OptML, epoch: int = 0) -> str:
        path = opt_ml.pipe(self.name, epoch) if self.mode == "Pipe" else opt_ml.channel(self.name)
        if not path.exists():
            where = "FIFO" if self.mode == "Pipe" else "folder"
            raise InvalidParameterError(f"channel {self.name!r} ({self.mode} mode): its {where} {path} does not exist")
        return str(path)


def _channel(name: str, config: Any, path: Path) -> Channel:
    if not isinstance(config, dict):
        raise InvalidParameterError(f"{path}: channel {name!r} must be an object, got {type(config).__name__}")
    mode = str(config.get("TrainingInputMode", "File"))
    if mode == "FastFile":
        mode = "File"  # the same folder, filled lazily
    if mode not in ("File", "Pipe"):
        raise InvalidParameterError(f"{path}: channel {name!r} has TrainingInputMode {mode!r}; File, FastFile and "
                                    "Pipe are read")
    content = config.get("ContentType")
    label_size = None
    fmt: str | None = None
    if content:
        media, *params = (p.strip() for p in str(content).split(";"))
        media = media.lower()
        if media not in CONTENT_TYPES:
            raise InvalidParameterError(f"{path}: channel {name!r} has ContentType {content!r}; onepass reads "
                                        f"{', '.join(sorted(CONTENT_TYPES))}")
        fmt = CONTENT_TYPES[media]
        for p in params:
            key, _, value = p.partition("=")
            if key.strip().lower() == "label_size":
                try:
                    label_size = int(value)
                except ValueError:
                    raise InvalidParameterError(f"{path}: channel {name!r}: label_size={value!r} must be 0 or 1") from None
                if label_size not in (0, 1):
                    raise InvalidParameterError(f"{path}: channel {name!r}: label_size={label_size} must be 0 or 1")
    elif mode == "Pipe":
        fmt = "recordio-protobuf"  # SageMaker's built-ins read RecordIO-protobuf when no type is given
    return Channel(name, fmt, mode, label_size)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidParameterError(f"{path} is missing: a SageMaker training job writes its {what} there") from None
    except ValueError as exc:
        raise InvalidParameterError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(loaded, dict):
        raise InvalidParameterError(f"{path}: must hold a JSON object, got {type(loaded).__name__}")
    return loaded


@dataclass
class TrainingJob:
    """A training job as the ``/opt/ml`` tree describes it; :meth:`training_run` is the run it asks for."""

    algorithm: str
    channels: dict[str, Channel]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def read(cls, opt_ml: OptML, algorithm: str | None = None) -> TrainingJob:
        from onepass.algorithms._sagemaker_names import load_hyperparameters

        hyper = load_hyperparameters(opt_ml.hyperparameters) if opt_ml.hyperparameters.exists() else {}
        named = hyper.pop("onepass_algorithm", None)
        seed = hyper.pop("seed", None)
        algorithm = algorithm or os.environ.get(ENV_ALGORITHM) or named
        if not algorithm:
            raise InvalidParameterError(
                f"which algorithm to train: give --algorithm, set {ENV_ALGORITHM} in the image, or the hyperparameter "
                "onepass_algorithm")
        config = _read_json(opt_ml.input_data_config, "channels (inputdataconfig.json)")
        unknown = sorted(set(config) - set(CHANNELS))
        if unknown:
            raise InvalidParameterError(f"{opt_ml.input_data_config}: channels {unknown} are not read; onepass reads "
                                        f"{', '.join(CHANNELS)}")
        if "train" not in config:
            raise InvalidParameterError(f"{opt_ml.input_data_config}: there is no 'train' channel")
        channels = {name: _channel(name, c, opt_ml.input_data_config) for name, c in config.items()}
        try:
            seed = DEFAULT_SEED if seed is None else int(seed)
        except ValueError:
            raise InvalidParameterError(f"{opt_ml.hyperparameters}: seed={seed!r} must be a whole number") from None
        return cls(str(algorithm), channels, hyper, seed)

    def training_run(self, opt_ml: OptML, epoch: int | None = None) -> TrainingRun:
        """The training run of this job: its hyperparameters, its ``train`` channel (in Pipe
        mode epoch ``epoch``'s FIFO, a run of ``epoch + 1`` epochs going on from the last
        one's checkpoint), checkpoints in ``checkpoints/``, the model in ``model/``."""
        from dataclasses import replace

        from onepass.algorithms._sagemaker_names import translate_hyperparameters
        from onepass.state import get_algorithm
        from onepass.training import TrainingRun

        algo = get_algorithm(self.algorithm)
        train = self.channels["train"]
        source: dict[str, Any] = {"format": self._format(train)}
        if train.format == "csv":
            source["header"] = False  # SageMaker's CSV channels have no header
            supervised = "labels" in algo.tags
            if supervised and train.label_size != 0:
                source["label_column"] = 0  # SageMaker's convention: the label first
            elif not supervised and train.label_size == 1:
                raise InvalidParameterError(f"{self.algorithm} learns without labels; the train channel says "
                                            "label_size=1")
        rows = os.environ.get(ENV_CHECKPOINT_ROWS)
        seconds = os.environ.get(ENV_CHECKPOINT_SECONDS)
        try:
            every_rows = int(rows) if rows else None
            every_seconds = float(seconds) if seconds else (None if rows else DEFAULT_CHECKPOINT_SECONDS)
        except ValueError:
            raise InvalidParameterError(f"{ENV_CHECKPOINT_ROWS}={rows!r} / {ENV_CHECKPOINT_SECONDS}={seconds!r} must be "
                                        "numbers") from None
        validation = None
        if "validation" in self.channels:
            if not hasattr(algo.state, "add_validation"):
                raise InvalidParameterError(f"{self.algorithm} takes no validation channel; drop it from the job")
            validation = self.channels["validation"].data(opt_ml)
        spec = TrainingRun.of(
            self.algorithm, train.data(opt_ml, epoch or 0), **source, seed=self.seed, out=str(opt_ml.model),
            checkpoint_dir=str(opt_ml.checkpoints), resume=True, checkpoint_every_rows=every_rows,
            checkpoint_every_seconds=every_seconds, validation=validation,
            **translate_hyperparameters(self.algorithm, self.hyperparameters).train_kwargs())
        return spec if epoch is None else replace(spec, epochs=epoch + 1)

    def _format(self, channel: Channel) -> str | None:
        """The source format of a channel: its content type's, but JSON lines are series for a
        forecaster (DeepAR's channels are JSON lines of series)."""
        from onepass.state import get_algorithm

        own = get_algorithm(self.algorithm).tags.get("source_format")
        return own if own is not None and channel.format in (None, "jsonl") else channel.format

    def score_test(self, opt_ml: OptML, run: TrainingRun, model: Any) -> dict[str, float]:
        """The model's scores on the ``test`` channel (read once, as the train channel is read:
        same columns), by the scorer ``onepass tune`` ranks models with."""
        from onepass.tune._from_state import score_models
        from onepass.tune._scorers import SCORERS

        if model.kind not in SCORERS:
            raise InvalidParameterError(f"{self.algorithm} has no test score yet; drop the test channel from the job")
        test = self.channels["test"]
        if self._format(test) != self._format(self.channels["train"]):
            raise InvalidParameterError(f"the test channel's ContentType differs from the train channel's; give both "
                                        f"the same ({self.channels['train'].format})")
        rows = run.data.read_as(test.data(opt_ml))
        return score_models([model], rows.target, seed=self.seed, batch_size=run.batch_size, **rows.options())[0]

    def host(self, opt_ml: OptML) -> str:
        """This host's name in the job (``resourceconfig.json``'s ``current_host``), as SageMaker's log lines name it."""
        path = opt_ml.root / "input" / "config" / "resourceconfig.json"
        try:
            return str(json.loads(path.read_text(encoding="utf-8")).get("current_host", "algo-1"))
        except (OSError, ValueError, AttributeError):
            return "algo-1"


def run_training_job(opt_ml: str | os.PathLike[str] = "/opt/ml", algorithm: str | None = None) -> int:
    """Run the training job ``opt_ml`` describes; returns the exit code. A failure's reason
    goes to ``output/failure`` (and stderr) and the exit code is non-zero."""
    tree = OptML(Path(opt_ml))
    try:
        job = TrainingJob.read(tree, algorithm)
        spec = job.training_run(tree)
        if job.channels["train"].mode == "Pipe":
            # one FIFO per epoch, train_0, train_1...: each epoch a run that goes on from the last one's checkpoint
            for epoch in range(spec.epochs):
                result = job.training_run(tree, epoch).run()
                if getattr(result.state, "is_stopped", False):  # early stopping ended training
                    break
        else:
            result = spec.run()
        scores = job.score_test(tree, spec, result.model) if "test" in job.channels else {}
    except (OnePassError, OSError) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        tree.failure.parent.mkdir(parents=True, exist_ok=True)
        tree.failure.write_text(reason + "\n", encoding="utf-8")
        print(f"onepass: error: {reason}", file=sys.stderr)
        return exit_code(exc) if isinstance(exc, OnePassError) else 3
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    print("#metrics " + json.dumps({"rows": result.n_rows_seen, "epochs": result.epochs, **metrics,
                                    **{f"test:{k}": v for k, v in scores.items()}}))
    host = job.host(tree)
    for name, value in scores.items():  # the lines SageMaker's built-in algorithms print, scraped by regex
        print(f"#test_score ({host}) : ('{name}', {value!r})")
    return 0
