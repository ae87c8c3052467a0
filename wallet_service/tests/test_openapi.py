"""The OpenAPI schema: committed, served at /schema, true to the code, and its docs page at /docs."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal

import pytest
import yaml
from django.core.management import call_command
from django.urls import resolve
from drf_spectacular.validation import validate_schema
from hypothesis import example, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from idempotency.apis import IdempotentApiMixin
from wallet_service.api.fields import AmountField
from wallet_service.api.problems import PROBLEM_CONTENT_TYPE, PROBLEM_TYPES
from wallet_service.api.schema import AMOUNT_PATTERN, IDEMPOTENCY_KEY_PATTERN, problem_component_name
from wallet_service.config import BASE_DIR
from wallet_service.money import MAX_AMOUNT

COMMITTED = BASE_DIR / "docs" / "openapi.yaml"


@pytest.fixture(scope="module")
def schema() -> dict:
    return yaml.safe_load(COMMITTED.read_text())


def test_committed_schema_is_the_one_the_code_generates(tmp_path):
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", str(generated), "--validate", "--fail-on-warn")
    assert generated.read_text() == COMMITTED.read_text(), (
        "docs/openapi.yaml differs from the schema the code generates: run `make schema` and commit the result."
    )


def test_committed_schema_is_valid_openapi(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")


@pytest.mark.parametrize("path", ["/schema", "/schema/"])
def test_schema_is_served_as_yaml_without_authentication(api_client, path):
    response = api_client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.decode() == COMMITTED.read_text()


@pytest.mark.parametrize("path", ["/schema", "/docs"])
def test_schema_and_docs_ignore_a_stale_key(api_client, path):
    api_client.credentials(HTTP_AUTHORIZATION="Token logged-out-or-expired")
    assert api_client.get(path).status_code == 200


def test_schema_is_served_as_json_on_request(api_client, schema):
    response = api_client.get("/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert json.loads(response.content)["paths"].keys() == schema["paths"].keys()


def test_every_path_is_documented_once_without_its_trailing_slash(schema):
    assert set(schema["paths"]) == {
        "/client/signup",
        "/client/login",
        "/client/logout",
        "/company/signup",
        "/company/login",
        "/company/logout",
        "/wallet/create",
        "/wallet/deposit",
        "/wallet/charge",
        "/wallet/charges",
        "/wallet/info/{token}",
        "/wallet/list",
        "/wallet/history/{token}",
        "/wallet/hold",
        "/wallet/hold/{hold_id}",
        "/wallet/hold/{hold_id}/capture",
        "/wallet/hold/{hold_id}/void",
        "/wallet/refund",
        "/events",
        "/webhooks",
        "/webhooks/{webhook_id}",
        "/status",
        "/problems/{code}",
    }


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def problem_codes(schema, response: dict) -> set[str]:
    content = response["content"][PROBLEM_CONTENT_TYPE]["schema"]
    refs = [item["$ref"] for item in content.get("oneOf", [content])]
    components = schema["components"]["schemas"]
    return {components[ref.rsplit("/", 1)[1]]["properties"]["code"]["enum"][0] for ref in refs}


def test_every_error_response_is_a_problem_document_naming_its_codes(schema):
    for label, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            assert set(response["content"]) == {PROBLEM_CONTENT_TYPE}, label
            for code in problem_codes(schema, response):
                assert PROBLEM_TYPES[code].status == int(status), (label, code)


def test_charge_documents_every_answer_the_contract_gives_it(schema):
    responses = schema["paths"]["/wallet/charge"]["post"]["responses"]
    assert {status: problem_codes(schema, response) for status, response in responses.items() if status >= "400"} == {
        "400": {"validation_error", "same_wallet"},
        "401": {"not_authenticated", "authentication_failed"},
        "402": {"insufficient_funds"},
        "403": {"permission_denied"},
        "404": {"not_found"},
        "409": {"merchant_wallet_missing", "idempotency_key_in_use"},
        "429": {"throttled"},
        "413": {"payload_too_large"},
        "415": {"unsupported_media_type"},
        "422": {"idempotency_key_reused"},
        "500": {"server_error"},
        "503": {"service_unavailable"},
    }
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ChargeOutput"}
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert responses["200"]["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]
    assert responses["402"]["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]


def test_signup_and_login_document_throttling_and_no_key(schema):
    for path in ("/client/signup", "/company/signup", "/client/login", "/company/login"):
        operation = schema["paths"][path]["post"]
        assert problem_codes(schema, operation["responses"]["429"]) == {"throttled"}
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        assert "401" not in operation["responses"]
        assert operation["security"] == [{}]


def test_authenticated_operations_use_the_token_scheme(schema):
    assert schema["components"]["securitySchemes"] == {
        "tokenAuth": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": schema["components"]["securitySchemes"]["tokenAuth"]["description"],
        }
    }
    assert "Token <key>" in schema["components"]["securitySchemes"]["tokenAuth"]["description"]
    # Generated clients default to Bearer: the scheme says how to send Token instead.
    assert 'prefix="Token"' in schema["components"]["securitySchemes"]["tokenAuth"]["description"]
    for label, operation in operations(schema):
        if label.startswith(("POST /wallet", "GET /wallet", "POST /client/logout", "POST /company/logout")):
            assert operation["security"] == [{"tokenAuth": []}], label
            assert problem_codes(schema, operation["responses"]["401"]) == {
                "not_authenticated",
                "authentication_failed",
            }


@pytest.mark.parametrize("path", ["/wallet/charge", "/wallet/deposit", "/wallet/create"])
def test_money_moving_operations_take_an_idempotency_key(schema, path):
    operation = schema["paths"][path]["post"]
    (key,) = [parameter for parameter in operation["parameters"] if parameter.get("name") == "Idempotency-Key"]
    assert key["in"] == "header"
    assert not key.get("required", False)
    assert key["schema"]["pattern"] == IDEMPOTENCY_KEY_PATTERN
    assert problem_codes(schema, operation["responses"]["422"]) == {"idempotency_key_reused"}
    assert "idempotency_key_in_use" in problem_codes(schema, operation["responses"]["409"])


def test_exactly_the_views_that_take_an_idempotency_key_document_it(schema):
    for label, operation in operations(schema):
        path = label.split(" ", 1)[1].replace("{token}", "any").replace("{code}", "not_found")
        view = resolve(path).func.view_class
        documented = any(parameter.get("name") == "Idempotency-Key" for parameter in operation.get("parameters", []))
        assert documented is issubclass(view, IdempotentApiMixin), label


@pytest.mark.parametrize(
    ("key", "valid"),
    [("a", True), ("x" * 255, True), ("order 1234/retry-2", True), ("x" * 256, False), ("", False)]
    + [(" a", False), ("a ", False), ("caf\u00e9", False), ("a\tb", False)],
)
def test_idempotency_key_pattern(key, valid):
    assert bool(re.fullmatch(IDEMPOTENCY_KEY_PATTERN, key)) is valid


def test_history_documents_its_query_parameters_and_link_header(schema):
    operation = schema["paths"]["/wallet/history/{token}"]["get"]
    parameters = {parameter["name"]: parameter for parameter in operation["parameters"] if "name" in parameter}
    assert parameters.keys() == {"token", "limit", "from", "to", "cursor"}
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
    # An empty cursor is refused like any cursor the service did not issue (found by schemathesis).
    assert parameters["cursor"]["schema"] == {"type": "string", "minLength": 1}
    assert {item["format"] for item in parameters["from"]["schema"]["oneOf"]} == {"date-time", "date"}
    assert 'rel="next"' in operation["responses"]["200"]["headers"]["Link"]["description"]
    assert problem_codes(schema, operation["responses"]["400"]) == {"validation_error"}


def test_amount_limits_are_written_as_exact_decimals():
    text = COMMITTED.read_text()
    # Decimals, not floats: the YAML holds the server's limits digit for digit.
    assert "maximum: 1000000000.00\n" in text
    assert "multipleOf: 0.01\n" in text
    number = yaml.safe_load(text)["components"]["schemas"]["MoneyMovementInputRequest"]["properties"]["amount"]
    assert Decimal(str(number["oneOf"][1]["maximum"])) == MAX_AMOUNT


def amount_field_accepts(value) -> bool:
    try:
        AmountField().to_internal_value(value)
    except serializers.ValidationError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789.", max_size=14))
@example("0")
@example("0.00")
@example("0.01")
@example("00.10")
@example("1000000000")
@example("1000000000.00")
@example("1000000000.01")
@example("0001000000000.0")
@example("999999999.99")
@example("12.")
@example(".5")
@example("1.005")
def test_amount_pattern_accepts_exactly_the_strings_the_amount_field_accepts(value):
    assert bool(re.fullmatch(AMOUNT_PATTERN, value)) is amount_field_accepts(value)


def test_every_problem_type_has_a_component_with_its_constants(schema):
    components = schema["components"]["schemas"]
    for code, problem in PROBLEM_TYPES.items():
        component = components[problem_component_name(code)]
        assert component["properties"]["code"]["enum"] == [code]
        assert component["properties"]["status"]["enum"] == [problem.status]
        assert component["properties"]["type"]["enum"] == [problem.type_uri]


@pytest.mark.parametrize("path", ["/docs", "/docs/"])
def test_docs_page_loads_its_assets_from_the_service_itself(api_client, path):
    response = api_client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert '<script src="/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js">' in html
    assert 'url: "/schema"' in html
    # No CDN: every script, stylesheet and icon is a path on this server.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_every_operation_takes_and_answers_a_request_id_and_documents_500(schema):
    for label, operation in operations(schema):
        assert {"$ref": "#/components/parameters/XRequestID"} in operation["parameters"], label
        for status, response in operation["responses"].items():
            assert response["headers"]["X-Request-ID"] == {"$ref": "#/components/headers/XRequestID"}, (label, status)
        assert problem_codes(schema, operation["responses"]["500"]) == {"server_error"}, label
    header = schema["components"]["headers"]["XRequestID"]["schema"]
    assert re.fullmatch(header["pattern"], uuid.uuid4().hex)
    # Any incoming value is taken (an implausible one replaced), so the request header has no pattern.
    assert schema["components"]["parameters"]["XRequestID"]["schema"] == {"type": "string"}


def test_several_problems_of_one_status_are_told_apart_by_code(schema):
    components = schema["components"]["schemas"]
    seen = 0
    for label, operation in operations(schema):
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get(PROBLEM_CONTENT_TYPE, {}).get("schema", {})
            if "oneOf" not in content:
                continue
            seen += 1
            mapping = content["discriminator"]["mapping"]
            assert content["discriminator"]["propertyName"] == "code", (label, status)
            assert sorted(mapping.values()) == sorted(ref["$ref"] for ref in content["oneOf"]), (label, status)
            for code, ref in mapping.items():
                assert components[ref.rsplit("/", 1)[1]]["properties"]["code"]["enum"] == [code]
    assert seen > 10


def test_problem_components_are_titled_with_their_own_names(schema):
    # Generated clients name their classes after a schema's title: it must be the component's name.
    for code in PROBLEM_TYPES:
        name = problem_component_name(code)
        assert schema["components"]["schemas"][name]["title"] == name


def test_method_not_allowed_is_a_components_response(schema):
    response = schema["components"]["responses"]["MethodNotAllowed"]
    assert response["content"][PROBLEM_CONTENT_TYPE]["schema"] == {
        "$ref": "#/components/schemas/ProblemMethodNotAllowed"
    }
    assert "Allow" in response["headers"]


def request_example(schema, path: str) -> dict:
    (example,) = schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["examples"].values()
    return example["value"]


def test_examples_use_each_account_s_own_email_and_phone(schema):
    client = request_example(schema, "/client/signup")
    company = request_example(schema, "/company/signup")
    assert request_example(schema, "/client/login")["email"] == client["email"]
    assert request_example(schema, "/company/login")["email"] == company["email"] != client["email"]
    assert company["company"]["phone_number"] != client["client"]["phone_number"]
    assert company["company"]["last_name"] != client["client"]["last_name"]


def test_amount_recommends_strings_and_still_takes_numbers(schema):
    amount = schema["components"]["schemas"]["MoneyMovementInputRequest"]["properties"]["amount"]
    assert "Send a string" in amount["description"]
    assert isinstance(amount["example"], str)
    assert [branch["type"] for branch in amount["oneOf"]] == ["string", "number"]
