"""SageMaker's container contract: onepass as a training image and an inference image.

``onepass sagemaker train`` is what ``docker run IMAGE train`` runs in a SageMaker
training job, ``onepass sagemaker serve`` what ``docker run IMAGE serve`` runs on an
endpoint. Both read the ``/opt/ml`` tree SageMaker mounts (``--opt-ml`` elsewhere, as
the tests do). See :mod:`onepass.sagemaker._training` for the training side.
"""

from __future__ import annotations

from onepass.sagemaker._training import OptML, TrainingJob, run_training_job

__all__ = ["OptML", "TrainingJob", "run_training_job"]
