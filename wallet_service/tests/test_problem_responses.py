"""Every error is an RFC 9457 problem document; no input produces a 500; paths work with or without a slash."""

from __future__ import annotations

import pytest

from wallet_service.tests.utils import assert_problem
from wallets.models import Operation, Wallet
from wallets.tests.factories import WalletFactory


@pytest.mark.django_db
def test_unknown_path_is_a_problem_not_html(api_client):
    assert_problem(api_client.get("/no/such/path"), 404, "not_found")


@pytest.mark.django_db
def test_wrong_method_is_405_with_allow_header(client_api):
    response = client_api.get("/wallet/deposit")
    assert_problem(response, 405, "method_not_allowed")
    assert "POST" in response["Allow"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "raw_body",
    [
        "{",
        '{"wallet": }',
        '{"amount": NaN}',
        '{"amount": Infinity}',
        '{"amount": -Infinity}',
        '{"summary": "\\ud800"}',  # a lone surrogate
        "[" * 30_000 + "]" * 30_000,  # nesting deep enough to exhaust the recursion limit
        '{"amount": 1' + "0" * 5000 + "}",  # an integer over Python's digit limit
        '{"amount": 1e999999999999999999999}',  # an exponent too large for Decimal
    ],
)
def test_malformed_json_is_a_validation_error_and_stores_nothing(client_api, raw_body):
    wallet = WalletFactory(owner=client_api.user)
    response = client_api.post("/wallet/deposit", data=raw_body, content_type="application/json")
    body = assert_problem(response, 400, "validation_error")
    assert "body" in body["errors"]
    assert not Operation.objects.exists()
    wallet.refresh_from_db()
    assert wallet.balance == 0


@pytest.mark.django_db
def test_invalid_utf8_is_a_validation_error(client_api):
    response = client_api.post("/wallet/deposit", data=b'{"wallet": "\xff"}', content_type="application/json")
    assert_problem(response, 400, "validation_error")


@pytest.mark.django_db
@pytest.mark.parametrize("raw_body", ["[]", '"text"', "5", "null"])
def test_a_body_that_is_not_an_object_is_a_validation_error(client_api, raw_body):
    response = client_api.post("/wallet/create", data=raw_body, content_type="application/json")
    assert_problem(response, 400, "validation_error")
    assert not Wallet.objects.exists()


@pytest.mark.django_db
def test_a_body_without_content_type_is_read_as_json(client_api):
    wallet = WalletFactory(owner=client_api.user)
    response = client_api.generic(
        "POST", "/wallet/deposit", data=f'{{"wallet": "{wallet.token}", "amount": "5"}}', content_type=""
    )
    assert response.status_code == 200, response.content
    assert response.json()["balance"] == "5.00"


@pytest.mark.django_db
def test_a_body_of_another_media_type_is_415(client_api):
    response = client_api.post("/wallet/create", data="wallet=x", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "unsupported_media_type")
    assert not Wallet.objects.exists()


@pytest.mark.django_db
def test_an_oversized_body_is_413(client_api):
    response = client_api.post("/wallet/create", data={"padding": "x" * (4 * 1024 * 1024)}, format="json")
    assert_problem(response, 413, "payload_too_large")
    assert not Wallet.objects.exists()


@pytest.mark.django_db
def test_responses_are_json_whatever_accept_says(client_api):
    response = client_api.get("/wallet/list", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/client/signup"),
        ("post", "/client/login"),
        ("post", "/client/logout"),
        ("post", "/company/signup"),
        ("post", "/company/login"),
        ("post", "/company/logout"),
        ("post", "/wallet/create"),
        ("post", "/wallet/deposit"),
        ("post", "/wallet/charge"),
        ("get", "/wallet/list"),
        ("get", "/wallet/info/sometoken"),
        ("get", "/wallet/history/sometoken"),
        ("get", "/status"),
    ],
)
def test_every_path_answers_with_and_without_trailing_slash_without_redirect(api_client, method, path):
    without_slash = getattr(api_client, method)(path, {}, format="json")
    with_slash = getattr(api_client, method)(path + "/", {}, format="json")
    assert without_slash.status_code not in (301, 302, 307, 308, 404)
    assert with_slash.status_code == without_slash.status_code


@pytest.mark.django_db
def test_problem_types_are_documented_at_their_uri(api_client):
    response = api_client.get("/problems/insufficient_funds")
    assert response.status_code == 200
    assert response.json()["status"] == 402
    assert_problem(api_client.get("/problems/no_such_problem"), 404, "not_found")


@pytest.mark.django_db
def test_a_host_outside_allowed_hosts_gets_a_400_problem(api_client):
    body = assert_problem(api_client.get("/status", HTTP_HOST="evil.example.com"), 400, "validation_error")
    assert body["errors"] == {"Host": ["This host is not served here."]}


@pytest.mark.django_db
def test_too_many_query_parameters_is_a_validation_error_naming_the_query(client_api):
    response = client_api.get("/wallet/history/any?" + "&".join(["a="] * 1001))
    body = assert_problem(response, 400, "validation_error")
    assert body["errors"] == {"query": ["At most 1000 parameters are accepted."]}


@pytest.mark.django_db
def test_options_describes_the_endpoint_it_allows(client_api):
    response = client_api.options("/wallet/deposit")
    assert response.status_code == 200
    assert "OPTIONS" in response["Allow"] and "POST" in response["Allow"]


@pytest.mark.django_db
def test_cors_preflight_from_an_allowed_origin_may_send_the_authorization_header(api_client):
    response = api_client.options(
        "/wallet/charge",
        HTTP_ORIGIN="http://localhost:8000",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type, idempotency-key",
    )
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "http://localhost:8000"
    allowed = {header.strip() for header in response["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed


@pytest.mark.django_db
def test_cors_refuses_an_origin_not_configured(api_client):
    response = api_client.get("/status", HTTP_ORIGIN="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("raw_body", "detail"),
    [
        ("{", "The body is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)."),
        ('{"amount": NaN}', "The body is not valid JSON: NaN is not a JSON value."),
        ('{"summary": "\\ud800"}', "The body contains an invalid Unicode escape (a lone surrogate)."),
        ('{"amount": 1' + "0" * 5000 + "}", "The body contains a number too large to read."),
        ("[" * 30_000 + "]" * 30_000, "The body is nested too deeply."),
    ],
)
def test_parse_errors_say_what_is_wrong_in_plain_words(client_api, raw_body, detail):
    response = client_api.post("/wallet/deposit", data=raw_body, content_type="application/json")
    body = assert_problem(response, 400, "validation_error")
    assert body["detail"] == detail
    assert body["errors"] == {"body": [detail]}
