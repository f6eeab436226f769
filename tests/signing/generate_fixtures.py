#!/usr/bin/env python3
"""Generates tests/fixtures/signing.json with Huawei Cloud's official Python SDK signer.

The Rust signer (src/modelarts/signer.rs) is tested against every case in that file by its
unit tests. `make test` runs this script against the pinned SDK (`make signing-fixtures-check`)
and fails when its output differs from the committed file; to regenerate it:

    make python-tools
    "$POOLWATCH_PYTHON" tests/signing/generate_fixtures.py > tests/fixtures/signing.json

Each case builds an SdkRequest the way the SDK's own client does, pins X-Sdk-Date (the signer
only adds the current time when the header is absent), signs it through BasicCredentials (which
adds X-Project-Id and X-Security-Token, as in a real call) and records what the SDK produced.
"""

import json
import sys
from importlib import metadata

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer import signer as sdk_signer

AK = "HPUAXM5EWHU3KYQLGT7N"
SK = "dJ3yYtQWz0ZoSfKq2rVnXb8pLc4MeHgA1iUk7TsF"
PROJECT = "0123456789abcdef0123456789abcdef"
DATE = "20250327T114855Z"
MODELARTS = "modelarts.cn-north-4.myhuaweicloud.com"
STATS = "/v2/%s/statistics/pools" % PROJECT

CASES = [
    dict(name="no_query", description="statistics call without workspaceId",
         method="GET", host=MODELARTS, path=STATS, query=[], project_id=PROJECT),
    dict(name="workspace_query", description="statistics call with workspaceId",
         method="GET", host=MODELARTS, path=STATS, query=[["workspaceId", "0"]], project_id=PROJECT),
    dict(name="workspace_query_with_content_type",
         description="as the SDK client sends it: Content-Type application/json on a GET",
         method="GET", host=MODELARTS, path=STATS, query=[["workspaceId", "ws-1"]],
         headers=[["Content-Type", "application/json"]], project_id=PROJECT),
    dict(name="awkward_query",
         description="upper-case keys, repeated keys, spaces, /, *, ~, +, &, = and non-ASCII values",
         method="GET", host=MODELARTS, path=STATS,
         query=[["workspaceId", "a b"], ["Zeta", "x/y*z~w"], ["alpha", "\u00e9\u4e2d"],
                ["alpha", "+&="], ["Alpha", "1"], ["alpha", "A"], ["marker", "~tilde"],
                ["empty", ""]],
         project_id=PROJECT),
    dict(name="trailing_slash", description="a path that already ends with /",
         method="GET", host=MODELARTS, path="/v2/%s/statistics/pools/" % PROJECT,
         query=[["workspaceId", "0"]], project_id=PROJECT),
    dict(name="special_path_segment", description="a path segment with a space and non-ASCII",
         method="GET", host=MODELARTS, path="/v1/%s/notebooks/my nb\u00e9" % PROJECT, query=[],
         project_id=PROJECT),
    dict(name="non_default_port", description="the host carries a non-default port",
         method="GET", host="modelarts.private.example.com:8443", path=STATS,
         query=[["workspaceId", "0"]], project_id=PROJECT),
    dict(name="loopback_simulator", description="a local simulator on 127.0.0.1",
         method="GET", host="127.0.0.1:18443", path=STATS, query=[["workspaceId", "0"]],
         project_id=PROJECT),
    dict(name="security_token", description="temporary credentials add X-Security-Token",
         method="GET", host=MODELARTS, path=STATS, query=[["workspaceId", "0"]],
         project_id=PROJECT,
         security_token="gQpjbi1ub3J0aC00iL0Vt7M2Qxcu-temporary+token/with=chars"),
    dict(name="iam_projects", description="the IAM project lookup: no X-Project-Id",
         method="GET", host="iam.cn-north-4.myhuaweicloud.com", path="/v3/projects",
         query=[["name", "cn-north-4"]]),
    dict(name="post_json_body", description="a POST with a JSON body",
         method="POST", host=MODELARTS, path="/v2/%s/pools" % PROJECT, query=[],
         headers=[["Content-Type", "application/json;charset=UTF-8"]],
         body='{"kind":"Pool","metadata":{"name":"pool-\u00e9"},"spec":{"size":2}}',
         project_id=PROJECT),
    dict(name="post_form_body_unsigned_payload",
         description="a body that is neither JSON nor BSON is sent with UNSIGNED-PAYLOAD",
         method="POST", host=MODELARTS, path="/v1/%s/upload" % PROJECT, query=[],
         headers=[["Content-Type", "application/x-www-form-urlencoded"]], body="a=1&b=2",
         project_id=PROJECT),
    dict(name="header_value_whitespace", description="header values are trimmed before signing",
         method="GET", host=MODELARTS, path=STATS, query=[["workspaceId", "0"]],
         headers=[["X-Custom-Header", "  padded value  "], ["X_Not_Signed", "underscore"]],
         project_id=PROJECT),
    dict(name="huawei_published_example",
         description="the example in Huawei's API request signing guide",
         access_key_id="QTWAOYTTINDUT2QVKYUC",
         secret_access_key="MFyfvK41ba2giqM7Uio6PznpdUKGpownRZlmVmHc",
         date="20191115T033655Z", method="GET", host="service.region.example.com",
         path="/v1/77b6a44cba5143ab91d13ab9a8ff44fd/vpcs",
         query=[["marker", "13551d6b-755d-4757-b956-536f674975c0"], ["limit", "2"]],
         headers=[["Content-Type", "application/json"]]),
]


def sign(case):
    ak = case.get("access_key_id", AK)
    sk = case.get("secret_access_key", SK)
    date = case.get("date", DATE)
    headers = {name: value for name, value in case.get("headers", [])}
    headers["X-Sdk-Date"] = date
    request = SdkRequest(
        method=case["method"], schema="https", host=case["host"], resource_path=case["path"],
        query_params=[(k, v) for k, v in case["query"]], header_params=headers,
        body=case.get("body", ""))
    credentials = BasicCredentials(ak, sk, case.get("project_id"))
    if case.get("security_token"):
        credentials = credentials.with_security_token(case["security_token"])

    captured = {}
    original = sdk_signer.Signer._process_string_to_sign

    def capture(self, canonical_request, t):
        captured["canonical_request"] = canonical_request
        captured["string_to_sign"] = original(self, canonical_request, t)
        return captured["string_to_sign"]

    sdk_signer.Signer._process_string_to_sign = capture
    try:
        signed = credentials.sign_request(request)
    finally:
        sdk_signer.Signer._process_string_to_sign = original

    out = {
        "name": case["name"],
        "description": case["description"],
        "access_key_id": ak,
        "secret_access_key": sk,
        "security_token": case.get("security_token"),
        "project_id": case.get("project_id"),
        "date": date,
        "method": case["method"],
        "host": case["host"],
        "path": case["path"],
        "query": case["query"],
        "headers": case.get("headers", []),
        "body": case.get("body", ""),
        "expected": {
            "authorization": signed.header_params["Authorization"],
            "uri": signed.uri,
            "canonical_request": captured["canonical_request"],
            "string_to_sign": captured["string_to_sign"],
        },
    }
    return out


def main():
    fixtures = {
        "generated_by": "tests/signing/generate_fixtures.py",
        "sdk": "huaweicloudsdkcore %s" % metadata.version("huaweicloudsdkcore"),
        "cases": [sign(case) for case in CASES],
    }
    json.dump(fixtures, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
