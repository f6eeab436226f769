#!/usr/bin/env python3
"""Gets temporary credentials from the simulator's keyless-credential endpoints the way Huawei
Cloud's official Python SDK (huaweicloudsdkcore) does on its own, then reads pool statistics
with them, and prints what happened as one JSON object.

The simulator implements IAM federation, CCE Pod Identity and the ECS metadata service from
Huawei's wire formats; the SDK's own accessors (FederalAccessor, PodIdentityAccessor,
MetadataAccessor) are the independent client that proves it: nothing here builds a request or
parses an answer by hand.

Usage: keyless_sdk.py SCENARIO, one of
  federation      HUAWEICLOUD_SDK_IDP_ID + HUAWEICLOUD_SDK_ID_TOKEN_FILE +
                  HUAWEICLOUD_SDK_IAM_ENDPOINT (+ HUAWEICLOUD_SDK_PROJECT_ID) through the default
                  credential provider chain; then BasicCredentials with idp_id and id_token_file,
                  once with the project resolved by IAM (region SIM_OTHER_REGION) and once with a
                  token (SIM_NARROW_TOKEN_FILE) whose subject may not read SIM_OTHER_PROJECT.
  pod_identity    HC_CONTAINER_CREDENTIALS_FULL_URI + HC_CONTAINER_AUTHORIZATION_TOKEN_FILE, and
                  a wrong authorization token (SIM_WRONG_TOKEN_FILE).
  metadata        MetadataAccessor pointed at the simulator (SIM_URL), for SIM_PROJECT and
                  SIM_OTHER_PROJECT.
  wrong_audience  federation through the environment with a token for another audience.

Environment: SIM_URL, SIM_PROJECT, SIM_OTHER_PROJECT, SIM_OTHER_REGION, and the variables the
scenario names. No secret is printed: only statuses, error codes and messages, and counts.
"""

import json
import os
import sys

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.auth.internal import MetadataAccessor
from huaweicloudsdkcore.auth.provider import MetadataCredentialProvider, PodIdentityCredentialProvider
from huaweicloudsdkcore.exceptions.exceptions import SdkException, ServiceResponseException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkmodelarts.v1 import ModelArtsClient, ShowPoolStatisticsRequest

ENV = os.environ
URL = ENV["SIM_URL"]
CONFIG = HttpConfig.get_default_config()
CONFIG.timeout = (5, 10)


def statistics(name, credentials=None, region=None, calls=1):
    """Reads workspace 0's statistics `calls` times with one client; records the last answer.
    Without credentials the SDK's default provider chain finds them in the environment."""
    try:
        builder = ModelArtsClient.new_builder().with_http_config(CONFIG)
        if credentials is not None:
            builder = builder.with_credentials(credentials)
        builder = builder.with_region(Region(region, URL)) if region else builder.with_endpoints([URL])
        client = builder.build()
        for _ in range(calls):
            response = client.show_pool_statistics(ShowPoolStatisticsRequest(workspace_id="0"))
        status = response.statistics.status
        used = client.get_credentials()
        return {"name": name, "ok": True, "httpStatus": response.status_code,
                "creating": status.creating, "created": status.created, "failed": status.failed,
                "pending": status.pending, "projectId": used.project_id,
                "accessor": type(used.sts_accessor).__name__,
                "hasSecurityToken": bool(used.security_token)}
    except ServiceResponseException as e:
        return {"name": name, "ok": False, "httpStatus": e.status_code,
                "errorCode": e.error_code, "errorMsg": e.error_msg}
    except SdkException as e:
        return {"name": name, "ok": False, "sdkError": str(e)}


def federation():
    narrow = BasicCredentials(project_id=ENV["SIM_OTHER_PROJECT"]) \
        .with_idp_id(ENV["HUAWEICLOUD_SDK_IDP_ID"]) \
        .with_id_token_file(ENV["SIM_NARROW_TOKEN_FILE"]) \
        .with_iam_endpoint(URL)
    resolved = BasicCredentials() \
        .with_idp_id(ENV["HUAWEICLOUD_SDK_IDP_ID"]) \
        .with_id_token_file(ENV["HUAWEICLOUD_SDK_ID_TOKEN_FILE"]) \
        .with_iam_endpoint(URL)
    return [
        statistics("environment", calls=2),
        statistics("iam_resolved_project", resolved, region=ENV["SIM_OTHER_REGION"]),
        statistics("not_allowed_project", narrow),
    ]


def pod_identity():
    credentials = PodIdentityCredentialProvider.get_basic().get_credentials() \
        .with_project_id(ENV["SIM_PROJECT"])
    results = [statistics("pod_identity", credentials)]
    os.environ["HC_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = ENV["SIM_WRONG_TOKEN_FILE"]
    try:
        PodIdentityCredentialProvider.get_basic().get_credentials()
        results.append({"name": "wrong_token", "ok": True})
    except SdkException as e:
        results.append({"name": "wrong_token", "ok": False, "sdkError": str(e)})
    return results


def metadata():
    MetadataAccessor._METADATA_ENDPOINT = URL
    results = []
    for name, project in (("metadata", ENV["SIM_PROJECT"]),
                          ("metadata_other_project", ENV["SIM_OTHER_PROJECT"])):
        credentials = MetadataCredentialProvider.get_basic().get_credentials().with_project_id(project)
        results.append(statistics(name, credentials))
    return results


def wrong_audience():
    return [statistics("wrong_audience")]


SCENARIOS = {"federation": federation, "pod_identity": pod_identity, "metadata": metadata,
             "wrong_audience": wrong_audience}

if __name__ == "__main__":
    print(json.dumps({"results": SCENARIOS[sys.argv[1]]()}))
