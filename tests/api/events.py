"""API Gateway REST (v1) proxy events, shaped like what the `/{proxy+}` ANY integration delivers."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_HOST = "abc123defg.execute-api.us-east-1.amazonaws.com"
STAGE = "v1"


def rest_event(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: Any = None,
    headers: dict[str, str] | None = None,
    host: str = API_HOST,
    stage: str = STAGE,
    raw_body: bytes | None = None,
) -> dict[str, Any]:
    """`path` may carry a query string (`/tweets?cursor=x`); `body` is JSON-encoded unless it is already a str.

    `raw_body` is sent as bytes, base64-encoded when it is not UTF-8 (as the local stack's API Gateway does).
    """
    parts = urlsplit(path)
    params = dict(parse_qsl(parts.query, keep_blank_values=True))
    params.update(query or {})
    all_headers = {"Host": host, "X-Forwarded-Proto": "https", "Accept": "application/json"}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    encoded = body if isinstance(body, str) or body is None else json.dumps(body)
    is_base64 = False
    if raw_body is not None:
        try:
            encoded = raw_body.decode("utf-8")
        except UnicodeDecodeError:
            encoded, is_base64 = base64.b64encode(raw_body).decode(), True
    return {
        "resource": "/{proxy+}",
        "path": parts.path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": params or None,
        "multiValueQueryStringParameters": {name: [value] for name, value in params.items()} or None,
        "pathParameters": {"proxy": parts.path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "path": f"/{stage}{parts.path}",
            "stage": stage,
            "domainName": host,
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "accountId": "123456789012",
            "apiId": host.split(".", 1)[0],
            "protocol": "HTTP/1.1",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": "pytest"},
            "requestTimeEpoch": 1764093600000,
        },
        "body": encoded,
        "isBase64Encoded": is_base64,
    }


COLLECT_QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:xengage-CollectQueue"


def sqs_event(bodies: list[str], *, message_ids: list[str] | None = None) -> dict[str, Any]:
    """Lambda's SQS event for these message bodies, every field as the event source mapping sends it (the local
    stack's own record builder, from what ReceiveMessage would answer)."""
    from local.stack.sqs_poller import sqs_record

    ids = message_ids or [f"m{index}" for index in range(len(bodies))]
    sent = "1795630502000"
    attributes = {
        "ApproximateReceiveCount": "1",
        "SentTimestamp": sent,
        "SenderId": "AROAEXAMPLE:PlannerFunction",
        "ApproximateFirstReceiveTimestamp": sent,
    }
    received = [
        {
            "MessageId": message_id,
            "ReceiptHandle": f"receipt-{message_id}",
            "Body": body,
            "Attributes": attributes,
            "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        }
        for message_id, body in zip(ids, bodies, strict=True)
    ]
    return {"Records": [sqs_record(message, queue_arn=COLLECT_QUEUE_ARN, region="us-east-1") for message in received]}
