"""Streaming K-Means: the design SageMaker uses, one pass, fixed memory.

Keep ``n_clusters * extra_center_factor`` weighted centers, update them online as
batches arrive (a web-scale mini-batch k-means after Sculley 2010, with streaming
k-means++ seeding of new centers), and at finalize reduce them to exactly ``n_clusters``
with weighted k-means++ seeding and Lloyd iterations on the kept centers.

The state (``_state.py``), the model (``_model.py``) and the scikit-learn estimator
(``_estimator.py``, imported only when used: scikit-learn takes a second and a half to
import, which the CLI and the server need not pay) live in this package.
"""

from onepass._lazy import lazy_getattr
from onepass.algorithms import _sagemaker_names
from onepass.algorithms.kmeans._model import KMeansModel
from onepass.algorithms.kmeans._state import KMeansState
from onepass.state import Algorithm, register

__all__ = ["KMeans", "KMeansModel", "KMeansState"]


__getattr__ = lazy_getattr(__name__, {"KMeans": "onepass.algorithms.kmeans._estimator"})


register(Algorithm(
    "kmeans", KMeansState, KMeansModel, "onepass.algorithms.kmeans._estimator:KMeans", finalize_settings=("n_clusters",),
    tags={"test_params": {"n_clusters": 4, "extra_center_factor": 4}, "merge_rtol": 0.03},
    sagemaker_names=_sagemaker_names.KMEANS,
))
