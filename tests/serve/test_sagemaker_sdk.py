"""The SageMaker Python SDK v2 as the client: its own Predictors (``KMeansPredictor``,
``PCAPredictor``, ``LinearLearnerPredictor``, ``FactorizationMachinesPredictor``), whose
default is RecordIO-protobuf both ways, on a session whose ``sagemaker-runtime`` client
points at ``onepass serve``, get each row's outputs as the model computes them."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tests.serve.conftest import Server
from tests.serve.test_server import X

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
sagemaker = pytest.importorskip("sagemaker", reason="the SageMaker Python SDK v2 is a dev dependency")
boto3 = pytest.importorskip("boto3")


def predictor(server: Server):  # noqa: ANN201
    from sagemaker.amazon.factorization_machines import FactorizationMachinesPredictor
    from sagemaker.amazon.kmeans import KMeansPredictor
    from sagemaker.amazon.linear_learner import LinearLearnerPredictor
    from sagemaker.amazon.pca import PCAPredictor

    boto = boto3.Session(aws_access_key_id="any", aws_secret_access_key="any", region_name="us-east-1")
    session = sagemaker.Session(boto_session=boto, sagemaker_client=boto.client("sagemaker"),
                                sagemaker_runtime_client=boto.client("sagemaker-runtime", endpoint_url=server.url))
    kind = {"kmeans": KMeansPredictor, "pca": PCAPredictor, "linear-learner": LinearLearnerPredictor,
            "factorization-machines": FactorizationMachinesPredictor}[server.model.kind]
    return kind("onepass-endpoint", sagemaker_session=session)


def test_the_sdks_predictor_gets_the_models_outputs(server: Server) -> None:
    records = predictor(server).predict(X.astype(np.float32))
    assert len(records) == len(X)
    want = server.model.outputs(X)
    for name, values in want.items():
        got = np.array([list(r.label[name].float32_tensor.values) for r in records])
        np.testing.assert_allclose(got, np.asarray(values, dtype=np.float32).reshape(len(X), -1), rtol=1e-5,
                                   atol=1e-5, err_msg=name)


def test_sparse_records_written_by_the_sdk_get_the_same_outputs(server: Server) -> None:
    """The SDK's Predictors serialize dense arrays only; a sparse body is what its
    ``write_spmatrix_to_sparse_tensor`` writes, sent with InvokeEndpoint."""
    import io

    import scipy.sparse as sp
    from sagemaker.amazon.common import read_records, write_spmatrix_to_sparse_tensor

    buf = io.BytesIO()
    write_spmatrix_to_sparse_tensor(buf, sp.csr_matrix(X.astype(np.float32)))
    client = predictor(server).sagemaker_session.sagemaker_runtime_client
    answer = client.invoke_endpoint(EndpointName="e", Body=buf.getvalue(), ContentType="application/x-recordio-protobuf",
                                    Accept="application/x-recordio-protobuf")
    assert answer["ContentType"] == "application/x-recordio-protobuf"
    records = read_records(io.BytesIO(answer["Body"].read()))
    for name, values in server.model.outputs(X).items():
        got = np.array([list(r.label[name].float32_tensor.values) for r in records])
        np.testing.assert_allclose(got, np.asarray(values, dtype=np.float32).reshape(len(X), -1), rtol=1e-5,
                                   atol=1e-5, err_msg=name)


def test_onepass_predict_to_rec_gives_what_the_sdks_predictor_gets(server: Server, tmp_path) -> None:  # noqa: ANN001
    """A file the SDK wrote, through ``onepass predict --out x.rec``, read back by the SDK:
    the records the endpoint answers the same rows with."""
    import io
    import subprocess
    import sys

    from sagemaker.amazon.common import read_records, write_numpy_to_dense_tensor

    rows = tmp_path / "rows.rec"
    with open(rows, "wb") as fh:
        write_numpy_to_dense_tensor(fh, X.astype(np.float32))
    out = tmp_path / "out.rec"
    done = subprocess.run([sys.executable, "-m", "onepass.cli", "predict", str(server.model_dir), "--data", str(rows),
                           "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = read_records(io.BytesIO(out.read_bytes()))
    served = predictor(server).predict(X.astype(np.float32))
    assert len(written) == len(served) == len(X)
    for a, b in zip(written, served, strict=True):
        assert set(a.label) == set(b.label)
        for name in a.label:
            np.testing.assert_allclose(a.label[name].float32_tensor.values, b.label[name].float32_tensor.values,
                                       rtol=1e-6, err_msg=name)
