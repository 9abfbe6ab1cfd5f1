"""Training: a run described (:class:`TrainingRun`) and the one loop that runs it.

Every way to train builds a :class:`TrainingRun`: :func:`onepass.train` from its keyword
arguments, ``onepass train`` from its options, tuning for each trial,
:func:`onepass.distributed.train_distributed` with :class:`Workers`, and the SageMaker
container from ``/opt/ml``. :func:`run` (or ``TrainingRun.run()``) runs it, in this
process or on Ray workers, with the same checkpoints, metrics and output.
"""

from onepass.training._loop import TrainResult, run
from onepass.training._report import MetricsWriter
from onepass.training._run import Checkpoints, Data, Reporting, TrainingRun, Workers
from onepass.training._states import make_state, state_parameters
from onepass.training._train import train

__all__ = [
    "Checkpoints",
    "Data",
    "MetricsWriter",
    "Reporting",
    "TrainResult",
    "TrainingRun",
    "Workers",
    "make_state",
    "run",
    "state_parameters",
    "train",
]
