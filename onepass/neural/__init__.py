"""The torch foundation of the neural algorithms (Neural Topic Model, DeepAR).

A neural state is a network's parameters and its optimizer's moments, held by PyTorch
while training and written as named float32 arrays in onepass's own checkpoint format
(never ``torch.save``, never pickle). :class:`TorchState` gives an algorithm everything
but its network and its loss: seeded initialization from the state's own NumPy
generator, SageMaker's optimizers by name (``_optimizers``), gradient rescaling and
clipping, the arrays of a checkpoint, merge by averaging, the device and the threads
(``_device``), and early stopping on validation loss (``_early_stopping``).

PyTorch is an optional extra (``pip install 'onepass[torch]'``): importing this package
does not import torch; building a state does, and says how to install it if it cannot.
"""

from onepass.neural._early_stopping import EarlyStopping
from onepass.neural._state import TorchState

__all__ = ["EarlyStopping", "TorchState"]
