"""Response shapes (wallet_service/api/shapes.py): every body the API renders is what its declaration says.

The declarations document the API (drf-spectacular reads the serializers generated from them), while
the bodies are dict literals built by each render function. These tests tie the two together on real
bodies: a walk through every endpoint checks each 2xx body against the shape documented for that
operation and status (no key the shape lacks, every required key, values of the declared types), and
fails if a documented shape, or one of its keys, never appeared in the walk. Problem documents, built
by ``problem_body`` from the catalogue, are checked against their components on the way.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import pytest
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from events.models import WebhookEndpoint
from wallet_service.api.schema import problem_component_name
from wallet_service.api.shapes import DOCUMENTED, Doc, Instant, Money, keys_of, serializer_for, shape_errors
from wallets.items import HoldOutput, OperationOutput

PUBLIC_HOOK = "https://93.184.215.14/hooks"  # a literal public address: nothing to resolve offline
PASSWORD = "s3cure-Passw0rd"
PHONE = {"client": "+34666666666", "company": "+34666666667"}
# An event's data, by type: the hold body for what happens to a hold, else the operation's history item.
HOLD_EVENTS = {"hold.created", "hold.captured", "hold.voided", "hold.expired"}


class Inner(TypedDict):
    kind: Literal["a", "b"]


class Sample(TypedDict):
    count: Annotated[int, Doc("How many.")]
    money: Money
    at: Instant
    flag: bool
    note: str | None
    inner: Inner | None
    items: list[Inner]
    data: dict[str, Any]
    extra: NotRequired[str]


GOOD = {
    "count": 1,
    "money": "1.50",
    "at": "2026-12-05T12:00:00.000000Z",
    "flag": True,
    "note": None,
    "inner": {"kind": "a"},
    "items": [{"kind": "b"}],
    "data": {},
}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"surprise": 1}, "body.surprise: not declared by Sample"),
        ({"count": None}, "body.count: null, not nullable"),
        ({"count": "1"}, "body.count: str, not int"),
        ({"count": True}, "body.count: bool, not int"),
        ({"money": "1.5"}, "body.money: '1.5' does not match"),
        ({"at": "yesterday"}, "body.at: 'yesterday' is not an ISO 8601 date-time"),
        ({"inner": {"kind": "c"}}, "body.inner.kind: 'c' not one of"),
        ({"inner": {"kind": "a", "name": "x"}}, "body.inner.name: not declared by Inner"),
        ({"items": [{"kind": "a"}, {}]}, "body.items.1.kind: required by Inner, missing"),
        ({"items": {"kind": "a"}}, "body.items: dict, not a list"),
        ({"data": []}, "body.data: list, not dict"),
        ({"extra": 3}, "body.extra: int, not str"),
    ],
)
def test_shape_errors_name_what_breaks_the_declaration(change, error):
    assert shape_errors(Sample, GOOD) == []
    assert shape_errors(Sample, GOOD | {"extra": "here"}) == []  # NotRequired: may be present
    errors = shape_errors(Sample, GOOD | change)
    assert len(errors) == 1 and errors[0].startswith(error), errors


@pytest.mark.parametrize("missing", ["count", "money", "at", "flag", "note", "inner", "items", "data"])
def test_shape_errors_name_a_missing_required_key(missing):
    body = {key: value for key, value in GOOD.items() if key != missing}
    assert shape_errors(Sample, body) == [f"body.{missing}: required by Sample, missing"]


def test_the_documenting_serializer_carries_the_declaration():
    fields = serializer_for(Sample)().fields
    assert list(fields) == list(keys_of(Sample))
    assert fields["count"].help_text == "How many." and fields["count"].required
    assert not fields["extra"].required and fields["note"].allow_null and not fields["count"].allow_null
    assert [v.regex.pattern for v in fields["money"].validators if hasattr(v, "regex")] == [r"^[0-9]+\.[0-9]{2}$"]
    assert type(fields["at"]).__name__ == "DateTimeField"
    assert list(fields["inner"].fields["kind"].choices) == ["a", "b"] and fields["inner"].allow_null
    assert fields["items"].many and type(fields["items"].child).__name__ == "InnerSerializer"


@pytest.fixture(scope="module")
def documented() -> dict:
    """The schema the service documents (generating it registers every documented shape)."""
    return SchemaGenerator().get_schema(request=None, public=True)


class Walk:
    """An API client that checks every 2xx JSON body against the shape documented for its operation."""

    def __init__(self, schema: dict):
        self.schema = schema
        self.templates = [
            (re.compile("^" + re.sub(r"\{[^/]+\}", "[^/]+", path) + "$"), path) for path in schema["paths"]
        ]
        self.seen: dict[str, set[str]] = {}  # component -> the keys seen in its bodies
        self.operations: set[tuple[str, str, str]] = set()

    def call(self, api: APIClient, method: str, path: str, body=None, status: int = 200, **params):
        response = getattr(api, method)(path, body if body is not None else params, format="json" if body else None)
        assert response.status_code == status, response.content
        if response.status_code == 204:
            return None
        template = next(template for regex, template in self.templates if regex.match(path.split("?")[0]))
        self.operations.add((method, template, str(status)))
        content = self.schema["paths"][template][method]["responses"][str(status)]["content"]["application/json"]
        declared, rendered = content["schema"], response.json()
        if declared.get("type") == "array":
            declared, items = declared["items"], rendered
            assert isinstance(items, list)
        else:
            items = [rendered]
        component = declared["$ref"].rsplit("/", 1)[1]
        for item in items:
            self.check(DOCUMENTED[component], item, f"{method.upper()} {template} {status}")
        return rendered

    def problem(self, response, status: int, code: str):
        """A problem document: the members of its component (wallet_service/api/schema.py), the required ones."""
        assert response.status_code == status, response.content
        component = self.schema["components"]["schemas"][problem_component_name(code)]
        body = response.json()
        assert set(body) <= set(component["properties"]) and set(component["required"]) <= set(body), body
        return body

    def check(self, shape, body, label: str):
        assert shape_errors(shape, body) == [], label
        self.seen.setdefault(shape.__name__, set()).update(body)
        for name, key in keys_of(shape).items():
            value = body.get(name)
            nested = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
            for item in nested:
                inner = key.item.kind if key.item is not None else key.kind
                if isinstance(item, dict) and inner in DOCUMENTED.values():
                    self.check(inner, item, f"{label} {name}")


def signup(walk: Walk, kind: str) -> APIClient:
    person = {"first_name": "Ana", "last_name": "García", "phone_number": PHONE[kind]}
    if kind == "company":
        person |= {"name": "Shop", "url": "https://shop.example.com"}
    email = f"{kind}@example.com"
    api = APIClient()
    walk.call(api, "post", f"/{kind}/signup", {"email": email, "password": PASSWORD, kind: person}, status=201)
    key = walk.call(api, "post", f"/{kind}/login", {"email": email, "password": PASSWORD})["token"]
    api.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return api


@pytest.mark.django_db
def test_every_rendered_body_is_its_documented_shape(documented):
    walk = Walk(documented)
    anonymous = APIClient()
    walk.call(anonymous, "get", "/status")
    walk.call(anonymous, "get", "/problems/not_found")
    client, shop = signup(walk, "client"), signup(walk, "company")

    wallet = walk.call(client, "post", "/wallet/create", {}, status=201)["wallet"]
    other = walk.call(client, "post", "/wallet/create", {}, status=201)["wallet"]
    shop_wallet = walk.call(shop, "post", "/wallet/create", {}, status=201)["wallet"]
    walk.call(client, "post", "/wallet/deposit", {"wallet": wallet, "amount": "100.00", "summary": "Top-up"})
    walk.call(client, "get", f"/wallet/info/{wallet}")
    walk.call(client, "get", "/wallet/list", limit="1")
    charge = walk.call(shop, "post", "/wallet/charge", {"wallet": wallet, "amount": "30.00"})["operation"]
    failed = shop.post("/wallet/charge", {"wallet": wallet, "amount": "500.00"}, format="json")
    assert "operation" in walk.problem(failed, 402, "insufficient_funds")  # a failed charge, in both histories
    charges = [
        {"wallet": wallet, "amount": "1.00"},
        {"wallet": other, "amount": "1.00"},  # 402
        {"wallet": "no-such-wallet", "amount": "1.00"},  # 404
        {"wallet": shop_wallet, "amount": "1.00"},  # 400 same_wallet
    ]
    walk.call(shop, "post", "/wallet/charges", {"charges": charges})
    hold = walk.call(shop, "post", "/wallet/hold", {"wallet": wallet, "amount": "20.00"}, status=201)["hold"]
    failed = shop.post("/wallet/hold", {"wallet": other, "amount": "5.00"}, format="json")
    walk.problem(failed, 402, "insufficient_funds")  # a failed hold: an item with "hold": null
    walk.problem(shop.post("/wallet/hold", {"wallet": other}, format="json"), 400, "validation_error")
    walk.call(shop, "get", f"/wallet/hold/{hold}")
    walk.call(shop, "post", f"/wallet/hold/{hold}/capture", {"amount": "5.00", "final": False})
    walk.call(shop, "post", f"/wallet/hold/{hold}/void", {})
    walk.call(shop, "post", "/wallet/refund", {"operation": charge, "amount": "10.00"})
    for api, token in ((client, wallet), (shop, shop_wallet)):  # each side sees the other masked
        walk.call(api, "get", f"/wallet/history/{token}")

    hook = walk.call(client, "post", "/webhooks", {"url": PUBLIC_HOOK}, status=201)["id"]
    walk.call(client, "post", "/webhooks", {"url": PUBLIC_HOOK + "/2"}, status=201)
    WebhookEndpoint.objects.filter(public_id=hook).update(disabled_at=timezone.now() - timedelta(days=1))
    walk.call(client, "get", "/webhooks")
    walk.call(client, "delete", f"/webhooks/{hook}", status=204)
    for api in (client, shop):
        for event in walk.call(api, "get", "/events"):
            data_shape = HoldOutput if event["type"] in HOLD_EVENTS else OperationOutput
            walk.check(data_shape, event["data"], f"event {event['type']}")
    walk.call(client, "post", "/client/logout", status=204)

    # Every documented 2xx body was rendered and checked, and every key of every shape appeared.
    documented_bodies = {
        (method, path, status)
        for path, item in documented["paths"].items()
        for method, operation in item.items()
        for status, response in operation["responses"].items()
        if status.startswith("2") and "application/json" in response.get("content", {})
    }
    assert documented_bodies - walk.operations == set()
    shapes = [DOCUMENTED[name] for name in documented["components"]["schemas"] if name in DOCUMENTED]
    assert len(shapes) == 14
    assert set(walk.seen) == {shape.__name__ for shape in shapes}
    for shape in shapes:
        assert set(keys_of(shape)) - walk.seen[shape.__name__] == set(), shape.__name__
