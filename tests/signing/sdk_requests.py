#!/usr/bin/env python3
"""Sends requests signed by Huawei Cloud's official Python SDK to the simulator, then every
one-byte change of each, and prints what the simulator answered as one JSON object.

The simulator checks signatures with the same canonicalisation code the Rust client signs with,
so a bug shared by both would pass every Rust test. This script makes the simulator answerable
to Huawei's own signer instead: each request is built and signed by `huaweicloudsdkcore`
exactly as its service clients do (path parameters quoted with `quote(v, safe='')`, the query
sent as the signer's canonical query string), then written to the socket byte for byte with
`http.client`, so nothing re-encodes it on the way.

Each case must be accepted (answered as an authenticated request). Each mutation replaces one
byte of the request target or of a signed header's value (Host, X-Sdk-Date, X-Project-Id,
X-Security-Token) or of the Authorization header with a different byte that changes what it
means (a letter or digit with the next one of its kind, anything else with `x`), and must be
refused: 401, or 404 from the gateway when the path no longer names an API, or 400 when the
request line is no longer HTTP.

Environment: SIM_HOST (host:port of the simulator), SIM_AK, SIM_SK, SIM_TEMP_AK, SIM_TEMP_SK,
SIM_TOKEN, SIM_PROJECT, SIM_WORKSPACE (a workspace of SIM_PROJECT with counts), SIM_SKEW_SECONDS
(the simulator's clock-skew limit).
"""

import datetime
import http.client
import json
import os
from urllib.parse import quote

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest

ENV = os.environ
HOST = ENV["SIM_HOST"]
PROJECT = ENV["SIM_PROJECT"]
WORKSPACE = ENV["SIM_WORKSPACE"]
SKEW = int(ENV["SIM_SKEW_SECONDS"])
SIGNED_HEADERS = ("Host", "X-Sdk-Date", "X-Project-Id", "X-Security-Token", "Authorization")


def permanent():
    return BasicCredentials(ENV["SIM_AK"], ENV["SIM_SK"], PROJECT)


def temporary():
    return BasicCredentials(ENV["SIM_TEMP_AK"], ENV["SIM_TEMP_SK"], PROJECT) \
        .with_security_token(ENV["SIM_TOKEN"])


def stats_path(project=PROJECT, trailing=""):
    # As the SDK's clients fill a path parameter.
    return "/v2/%s/statistics/pools%s" % (quote(project, safe=""), trailing)


# name, credentials, path, query (in the order given to the SDK), clock offset in seconds, the
# status an accepted request gets.
CASES = [
    ("workspace_with_dash_and_underscore", permanent, stats_path(),
     [("workspaceId", WORKSPACE)], 0, 200),
    ("unsorted_parameters", permanent, stats_path(),
     [("zeta", "1"), ("workspaceId", WORKSPACE), ("Alpha", "2"), ("alpha", "3")], 0, 200),
    ("repeated_and_empty_parameters", permanent, stats_path(),
     [("tag", "b"), ("tag", "a"), ("tag", ""), ("empty", ""), ("workspaceId", WORKSPACE)], 0, 200),
    ("reserved_and_percent_characters", permanent, stats_path(),
     [("q", "a b/c?d=e&f#g"), ("pct", "%41%2F"), ("plus", "1+1"), ("marks", "*~!'();:@$,"),
      ("workspaceId", WORKSPACE)], 0, 200),
    ("unicode_values", permanent, stats_path(),
     [("name", "\u6a21\u578b \u00e9\u2713"), ("workspaceId", WORKSPACE)], 0, 200),
    ("trailing_slash", permanent, stats_path(trailing="/"),
     [("workspaceId", WORKSPACE)], 0, 200),
    # An unknown project, answered by ModelArts itself (404), so signed and verified first.
    ("awkward_path_segment", permanent, stats_path(project="proj ect:@!$\u00e9~-_.%"),
     [("workspaceId", WORKSPACE)], 0, 404),
    ("iam_project_lookup", permanent, "/v3/projects", [("name", "cn-north-4")], 0, 200),
    ("temporary_credentials", temporary, stats_path(),
     [("workspaceId", WORKSPACE), ("b", "x y")], 0, 200),
    ("clock_behind_near_the_limit", permanent, stats_path(),
     [("workspaceId", WORKSPACE)], -(SKEW - 30), 200),
    ("clock_ahead_near_the_limit", temporary, stats_path(),
     [("workspaceId", WORKSPACE)], SKEW - 30, 200),
]

# Signed correctly but outside the clock-skew limit: refused.
BEYOND = [
    ("clock_behind_beyond_the_limit", -(SKEW + 60)),
    ("clock_ahead_beyond_the_limit", SKEW + 60),
]


def signed(credentials, path, query, offset):
    date = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)
    request = SdkRequest(method="GET", schema="http", host=HOST, resource_path=path,
                         query_params=list(query),
                         header_params={"X-Sdk-Date": date.strftime("%Y%m%dT%H%M%SZ")})
    request = credentials().sign_request(request)
    headers = [(k, v) for k, v in request.header_params.items()]
    return request.uri, headers


def send(connection, target, headers):
    connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    for name, value in headers:
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    try:
        code = json.loads(body).get("error_code")
    except ValueError:
        code = None
    return response.status, code


def flipped(char):
    for alphabet in ("0123456789", "abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"):
        if char in alphabet:
            return alphabet[(alphabet.index(char) + 1) % len(alphabet)]
    return "x"


def refused(status, code):
    """Refused by the gateway: a bad signature (401), an API that does not exist (404
    APIGW.0101), or a request line HTTP itself rejects (400)."""
    return status in (400, 401) or (status == 404 and code == "APIGW.0101")


def mutations(target, headers):
    """Every one-byte change of the request target and of the signed headers' values."""
    for i, char in enumerate(target):
        yield "target[%d] %r" % (i, char), target[:i] + flipped(char) + target[i + 1:], headers
    for h, (name, value) in enumerate(headers):
        if name not in SIGNED_HEADERS:
            continue
        for i, char in enumerate(value):
            changed = list(headers)
            changed[h] = (name, value[:i] + flipped(char) + value[i + 1:])
            yield "%s[%d] %r" % (name, i, char), target, changed


def main():
    connection = http.client.HTTPConnection(HOST, timeout=10)
    cases, accepted_mutations, mutation_count = [], [], 0
    for name, credentials, path, query, offset, want in CASES:
        target, headers = signed(credentials, path, query, offset)
        status, code = send(connection, target, headers)
        cases.append({"name": name, "target": target, "status": status, "errorCode": code,
                      "want": want})
        for where, changed_target, changed_headers in mutations(target, headers):
            mutation_count += 1
            status, code = send(connection, changed_target, changed_headers)
            if not refused(status, code):
                accepted_mutations.append({"case": name, "where": where, "status": status,
                                           "errorCode": code})
    beyond = []
    for name, offset in BEYOND:
        target, headers = signed(permanent, stats_path(), [("workspaceId", WORKSPACE)], offset)
        status, code = send(connection, target, headers)
        beyond.append({"name": name, "status": status, "errorCode": code})
    print(json.dumps({"cases": cases, "mutations": mutation_count,
                      "acceptedMutations": accepted_mutations, "beyondSkew": beyond}))


if __name__ == "__main__":
    main()
