"""Hostile input at the console API's edge: every answer under /api/ is JSON in the error shape.

Out-of-range pages, unknown query parameters, non-numeric and huge ids, unknown URLs, deeply
nested JSON, oversized bodies and crashes, with DEBUG off (the tests' settings) and on
(``make run``). None may answer 5xx or an HTML page.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from billing_backoffice.api_parsers import MAX_JSON_DEPTH, json_depth
from payments.api.clients import api_client_token_issue
from tests.factories import AccountFactory, CardMethodFactory, PayPalMethodFactory

pytestmark = pytest.mark.django_db

BIGINT_PAST = "99999999999999999999"  # > 2**63 - 1


@pytest.fixture
def api() -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_client_token_issue(name='edge-test').key}")
    return client


@pytest.fixture
def account_with_methods():
    account = AccountFactory()
    cards = [CardMethodFactory(account=account) for _ in range(3)]
    return account, cards


def assert_json_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert {"code", "rule", "detail"} <= set(body), body
    assert body["rule"] is None and body["detail"]
    if code is not None:
        assert body["code"] == code
    return body


def schema_operations(*, with_body: bool | None = None):
    """(method, path template) of every console operation in the OpenAPI schema."""
    schema = json.loads(APIClient().get("/api/v1/schema/", {"format": "json"}).content)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if with_body is None or ("requestBody" in operation) == with_body:
                yield method, path


def concrete(path: str, value: str = "1") -> str:
    """The path template with every ``{param}`` replaced by ``value``."""
    out, rest = "", path
    while "{" in rest:
        head, _, tail = rest.partition("{")
        out += head + value
        rest = tail.partition("}")[2]
    return out + rest


# --- pages and query parameters ------------------------------------------------------------------


@pytest.mark.parametrize("param", ["limit", "offset"])
@pytest.mark.parametrize("value", [BIGINT_PAST, "-1", "1.5", "abc", "", "1e3", "٣"])
def test_page_parameters_out_of_range_or_not_integers_are_400(api, account_with_methods, param, value):
    account, _ = account_with_methods
    response = api.get(f"/api/v1/accounts/{account.pk}/payment-methods/", {param: value})
    body = assert_json_error(response, 400, "invalid")
    assert list(body["fields"]) == [param]


def test_limit_zero_and_past_the_maximum_are_400(api, account_with_methods):
    account, _ = account_with_methods
    url = f"/api/v1/accounts/{account.pk}/payment-methods/"
    assert_json_error(api.get(url, {"limit": "0"}), 400)
    assert_json_error(api.get(url, {"limit": "201"}), 400)
    assert_json_error(api.get(url, {"offset": "1000001"}), 400)


def test_limit_and_offset_within_bounds_page_the_list(api, account_with_methods):
    account, cards = account_with_methods
    url = f"/api/v1/accounts/{account.pk}/payment-methods/"
    everything = api.get(url).json()
    assert everything["count"] == 3
    page = api.get(url, {"limit": "1", "offset": "1"})
    assert page.status_code == 200
    assert [item["id"] for item in page.json()["results"]] == [everything["results"][1]["id"]]
    assert api.get(url, {"limit": "200", "offset": "1000000"}).json()["results"] == []


def test_filters_still_work_next_to_the_page_parameters(api, account_with_methods):
    account, _ = account_with_methods
    PayPalMethodFactory(account=account)
    url = f"/api/v1/accounts/{account.pk}/payment-methods/"
    response = api.get(url, {"kind": "paypal", "status": "active", "limit": "10"})
    assert response.status_code == 200
    assert [item["kind"] for item in response.json()["results"]] == ["paypal"]


def test_unknown_query_parameter_is_400_on_every_operation(api, account_with_methods):
    account, _ = account_with_methods
    for method, path in schema_operations():
        response = api.generic(method.upper(), concrete(path, str(account.pk)) + "?stauts=removed")
        body = assert_json_error(response, 400, "invalid")
        assert body["fields"] == {"stauts": ["Unknown query parameter."]}, (method, path)


def test_query_parameter_sent_twice_is_400(api, account_with_methods):
    account, _ = account_with_methods
    response = api.get(f"/api/v1/accounts/{account.pk}/payment-methods/?status=active&status=removed")
    assert assert_json_error(response, 400)["fields"] == {"status": ["Send this query parameter once."]}


def test_empty_query_parameter_is_400_not_an_unfiltered_list(api, account_with_methods):
    account, _ = account_with_methods
    response = api.get(f"/api/v1/accounts/{account.pk}/payment-methods/?status=")
    assert list(assert_json_error(response, 400)["fields"]) == ["status"]


def test_unknown_query_parameter_needs_a_token_first(account_with_methods):
    account, _ = account_with_methods
    response = APIClient().get(f"/api/v1/accounts/{account.pk}/?foo=1")
    assert_json_error(response, 401)


def test_sec_1_a_card_number_as_query_parameter_name_is_not_echoed(api, account_with_methods):
    account, _ = account_with_methods
    response = api.get(f"/api/v1/accounts/{account.pk}/?4242424242424242=1")
    assert_json_error(response, 400)
    assert b"4242424242424242" not in response.content


# --- ids in the path -----------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("bad_id", ["abc", BIGINT_PAST, "9223372036854775808", "0", "-1", "1.0"])
def test_non_numeric_zero_and_huge_ids_answer_json_404_on_every_operation(api, debug, bad_id):
    with override_settings(DEBUG=debug):
        for method, path in schema_operations():
            if "{" not in path:
                continue
            response = api.generic(method.upper(), concrete(path, bad_id), "{}", content_type="application/json")
            assert_json_error(response, 404, "not_found")


def test_largest_bigint_id_is_an_unknown_object_not_an_error(api):
    response = api.get("/api/v1/accounts/9223372036854775807/")
    assert_json_error(response, 404)


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("path", ["/api/v1/nope/", "/api/v2/accounts/", "/api/", "/api/v1/accounts/1/nope/"])
def test_unknown_api_url_is_json_404_with_debug_on_and_off(api, debug, path):
    with override_settings(DEBUG=debug):
        assert_json_error(api.get(path), 404, "not_found")


def test_unknown_url_outside_the_api_keeps_the_html_404():
    response = APIClient().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_wrong_method_is_json_405_with_allow_header(api):
    response = api.put("/api/v1/accounts/", {}, format="json")
    assert_json_error(response, 405)
    assert "POST" in response["Allow"]


# --- bodies --------------------------------------------------------------------------------------


def test_json_depth_counts_nesting_and_ignores_brackets_in_strings():
    assert json_depth('{"a": 1}') == 1
    assert json_depth('[[{"a": [1]}]]') == 4
    assert json_depth('"[[[[[["') == 0
    assert json_depth('{"a": "\\"[[[", "b": ["]]]"]}') == 2
    assert json_depth("12") == 0


@pytest.mark.parametrize("debug", [False, True])
def test_json_nested_20000_levels_is_400_on_every_json_endpoint(api, debug):
    body = "[" * 20000 + "]" * 20000  # 40 kB: under the body limit, past the recursion limit
    with override_settings(DEBUG=debug):
        for method, path in schema_operations(with_body=True):
            response = api.generic(method.upper(), concrete(path), body, content_type="application/json")
            assert_json_error(response, 400, "parse_error")
            object_body = '{"a":' * 20000 + "1" + "}" * 20000
            response = api.generic(method.upper(), concrete(path), object_body, content_type="application/json")
            assert_json_error(response, 400, "parse_error")


def test_json_nested_to_the_bound_is_parsed_and_one_deeper_refused(api):
    within = '{"name": ' + "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1) + "}"
    response = api.generic("POST", "/api/v1/accounts/", within, content_type="application/json")
    body = assert_json_error(response, 400, "invalid")  # parsed: the field is malformed, not the JSON
    assert "name" in body["fields"]
    deeper = '{"name": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}"
    response = api.generic("POST", "/api/v1/accounts/", deeper, content_type="application/json")
    assert_json_error(response, 400, "parse_error")


@pytest.mark.parametrize("body", [b"\xff\xfe{}", b"NaN", b'{"name": Infinity}', b"{bad"])
def test_undecodable_or_invalid_json_is_400(api, body):
    response = api.generic("POST", "/api/v1/accounts/", body, content_type="application/json")
    assert_json_error(response, 400, "parse_error")


@pytest.mark.parametrize("debug", [False, True])
def test_body_over_the_upload_limit_is_json_413_with_debug_on_and_off(api, debug):
    body = json.dumps({"name": "x" * (3 * 1024 * 1024), "kind": "individual", "country": "US"})
    with override_settings(DEBUG=debug):
        for method, path in schema_operations(with_body=True):
            response = api.generic(method.upper(), concrete(path), body, content_type="application/json")
            assert_json_error(response, 413, "request_too_large")


def test_body_in_an_unsupported_media_type_is_json_415(api):
    response = api.generic("POST", "/api/v1/accounts/", "name=x", content_type="text/plain")
    assert_json_error(response, 415)


# --- crashes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True])
def test_crash_under_api_is_json_500_without_traceback_with_debug_on_and_off(api, monkeypatch, debug):
    from payments import services

    def crash(**kwargs):
        raise RuntimeError("the gateway adapter crashed")

    monkeypatch.setattr(services, "account_create", crash)
    with override_settings(DEBUG=debug):
        response = api.post("/api/v1/accounts/", {"name": "A", "kind": "individual", "country": "US"}, format="json")
    assert_json_error(response, 500, "server_error")
    assert b"Traceback" not in response.content and b"crashed" not in response.content
