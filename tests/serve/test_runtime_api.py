"""SageMaker Runtime's InvokeEndpoint against ``onepass serve``: boto3's own
``sagemaker-runtime`` client, given the server's URL as ``endpoint_url`` and made-up
credentials, gets the answers ``POST /invocations`` gives, for every model kind."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.serve.conftest import Server
from tests.serve.test_server import JSON_KEY, X, assert_rows_equal, csv_body, expected_rows, jsonl_body

boto3 = pytest.importorskip("boto3")
botocore_config = pytest.importorskip("botocore.config")


def runtime(server: Server):  # noqa: ANN201
    return boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id="any", aws_secret_access_key="any",
                        config=botocore_config.Config(retries={"max_attempts": 1}))


@pytest.mark.parametrize("accept", ["application/json", "text/csv"])
def test_boto3_invoke_endpoint_gets_the_invocations_answer(server: Server, accept: str) -> None:
    answer = runtime(server).invoke_endpoint(EndpointName="my-endpoint", Body=csv_body(X), ContentType="text/csv",
                                             Accept=accept)
    assert answer["ContentType"] == accept
    body = answer["Body"].read()
    direct = httpx.post(server.url + "/invocations", content=csv_body(X),
                        headers={"content-type": "text/csv", "accept": accept}, timeout=30)
    assert body == direct.content
    if accept == "application/json":
        records = json.loads(body)[JSON_KEY[server.model.kind]]
        got = [[float(x) for v in rec.values() for x in (v if isinstance(v, list) else [v])] for rec in records]
        assert_rows_equal(got, expected_rows(server, X))


def test_a_client_error_through_boto3_is_its_4xx(server: Server) -> None:
    client = runtime(server)
    with pytest.raises(client.exceptions.ClientError) as caught:
        client.invoke_endpoint(EndpointName="e", Body=b"1,2\n", ContentType="text/csv")
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    answer = client.invoke_endpoint(EndpointName="e", Body=jsonl_body(X[:2]), ContentType="application/jsonlines",
                                    Accept="application/jsonlines")
    assert len(answer["Body"].read().splitlines()) == 2


def test_only_the_runtime_path_shape_is_an_alias(server: Server) -> None:
    for path in ("/endpoints//invocations", "/endpoints/a/b/invocations", "/endpoints/a/ping"):
        r = httpx.post(server.url + path, content=csv_body(X[:1]), headers={"content-type": "text/csv"})
        assert r.status_code == 404, path
