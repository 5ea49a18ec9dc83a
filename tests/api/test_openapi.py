"""openapi.json is generated from the routes (Powertools) and must not drift from them."""

from __future__ import annotations

import json

from local.openapi import OPENAPI_PATH, main, render
from tests.api.conftest import ApiCaller

EXPECTED_OPERATIONS = {
    ("/accounts", "get"),
    ("/accounts/{user_id}", "put"),
    ("/accounts/{user_id}", "get"),
    ("/accounts/{user_id}", "delete"),
    ("/accounts/{user_id}/top", "get"),
    ("/accounts/{user_id}/metrics", "get"),
    ("/oauth/start", "get"),
    ("/oauth/callback", "get"),
    ("/tweets", "post"),
    ("/tweets", "get"),
    ("/tweets/{tweet_id}", "get"),
    ("/tweets/{tweet_id}", "delete"),
    ("/tweets/{tweet_id}/metrics", "get"),
    ("/engagement/{endpoint}", "post"),
    ("/jobs/{job_id}", "get"),
    ("/statuses/{status}", "get"),
    ("/app/status", "get"),
    ("/usage", "get"),
    ("/collection/health", "get"),
    ("/dashboard", "get"),
    ("/dashboard/assets/{name}", "get"),
}


def test_committed_openapi_json_matches_the_routes() -> None:
    # Given the committed file and the document the routes produce now
    # When they are compared
    # Then they are identical (run `make openapi` after changing a route or model)
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render(), "openapi.json drifted: run `make openapi`"
    assert main(["--check"]) == 0


def test_every_route_is_documented_with_its_models() -> None:
    document = json.loads(render())
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == EXPECTED_OPERATIONS
    metrics = document["paths"]["/tweets/{tweet_id}/metrics"]["get"]
    assert set(metrics["responses"]["200"]["content"]) == {"application/json", "text/csv"}
    assert metrics["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    body = document["components"]["schemas"]["TrackIn"]["properties"]["tweet_ids"]
    # Bulk tracking: up to 10,000 ids judged one by one (no pattern), as JSON or CSV, 503 when the deadline cuts it
    assert body["maxItems"] == 10_000 and body["items"] == {"type": "string"}
    track = document["paths"]["/tweets"]["post"]
    assert set(track["requestBody"]["content"]) == {"application/json", "text/csv"}
    assert track["responses"]["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/TrackIncomplete")
    live = document["paths"]["/engagement/{endpoint}"]["post"]["responses"]
    # 200: the results; 202: the job that finishes what did not fit; 429 and 503: errors only
    assert live["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/LiveQueryOut")
    assert live["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobOut")
    job = document["paths"]["/jobs/{job_id}"]["get"]["responses"]
    assert job["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/JobOut")
    usage = document["paths"]["/usage"]["get"]["responses"]
    assert usage["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/UsageOut")
    assert set(document["components"]["schemas"]["CallCounts"]["properties"]) == {"totals", "28hr", "historical"}
    for status in ("429", "503"):
        assert live[status]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert live["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/AccountErrorResponse")
    token = document["components"]["schemas"]["AccountTokensIn"]["properties"]["access_token"]
    assert token.get("format") == "password" and token.get("writeOnly") is True


def test_get_openapi_json_serves_the_same_document(api: ApiCaller) -> None:
    reply = api("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.json() == json.loads(render())


def test_unknown_route_is_a_json_404_and_a_known_path_with_another_method_a_405(api: ApiCaller) -> None:
    # Given no such route (or no such method on a route)
    # When they are called
    missing = api("GET", "/nothing/here")
    wrong_method = api("PATCH", "/accounts")

    # Then the answer is the API's error format naming the route
    assert missing.status == 404 and missing.error_code == "route_not_found"
    assert missing.json()["error"]["message"] == "no route GET /nothing/here"
    assert wrong_method.status == 405 and wrong_method.error_code == "method_not_allowed"
    assert wrong_method.headers["Allow"] == "GET"


def test_every_operation_documents_its_success_the_boundarys_answers_and_errors_in_the_project_shape() -> None:
    document = json.loads(render())
    for path, item in document["paths"].items():
        for method, operation in item.items():
            answers = operation["responses"]
            # Then each has its 200, the catch-all 500, and the 422 of validation
            assert {"200", "422", "500"} <= set(answers), (method, path)
            # And a route with a body also documents the boundary's refusals of it
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(answers), (method, path)
    # And the 422 Powertools documents has the shape the API answers: error, plus detail
    validation = document["components"]["schemas"]["HTTPValidationError"]
    assert validation["required"] == ["error"] and set(validation["properties"]) == {"error", "detail"}
    assert "ValidationIssue" in document["components"]["schemas"]
