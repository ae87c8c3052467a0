"""POST/GET/DELETE /webhooks: registration, the secret shown once and stored encrypted, the limit, SSRF refusals."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks import Webhook

from accounts.tests.factories import ClientFactory
from conftest import authenticated_client
from events.models import EVENT_TYPES, MAX_WEBHOOKS_PER_USER, WebhookEndpoint
from events.webhooks.addresses import RefusedURL, check_url
from events.webhooks.secrets import UndecryptableSecret, decrypt_secret
from wallet_service.tests.utils import assert_problem

PUBLIC = "https://93.184.215.14/hooks"  # a literal public address: nothing to resolve offline


def create(api, body, status=201) -> dict:
    response = api.post("/webhooks", body, format="json")
    assert response.status_code == status, response.content
    return response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/webhooks", "/webhooks/"])
def test_an_endpoint_is_created_with_a_secret_shown_once(client_api, path):
    response = client_api.post(path, {"url": PUBLIC, "events": ["charge.succeeded", "deposit.succeeded"]})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body.keys() == {"id", "url", "events", "secret", "created"}
    assert body["url"] == PUBLIC and sorted(body["events"]) == ["charge.succeeded", "deposit.succeeded"]
    assert body["secret"].startswith("whsec_") and len(base64.b64decode(body["secret"][6:])) == 32
    Webhook(body["secret"])  # the Standard Webhooks library takes it as it is
    listed = client_api.get(path).json()
    assert [item["id"] for item in listed] == [body["id"]]
    assert listed[0] == {key: body[key] for key in ("id", "url", "events", "created")} | {
        "disabled": False, "disabled_at": None
    }  # fmt: skip
    assert "secret" not in str(listed)
    # At rest: encrypted, not the secret, and bound to its endpoint.
    row = WebhookEndpoint.objects.get(public_id=body["id"])
    assert body["secret"] not in row.secret_encrypted and body["secret"][6:] not in row.secret_encrypted
    assert decrypt_secret(row.public_id, row.secret_encrypted) == body["secret"]
    with pytest.raises(UndecryptableSecret):
        decrypt_secret("we_another", row.secret_encrypted)


@pytest.mark.django_db
def test_events_omitted_means_every_type(client_api):
    assert create(client_api, {"url": PUBLIC})["events"] == list(EVENT_TYPES)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": PUBLIC, "events": ["charge.refunded"]}, "events.0"),
        ({"url": PUBLIC, "events": []}, "events"),
        ({"url": PUBLIC, "events": "charge.succeeded"}, "events"),
        ({}, "url"),
        ({"url": 42}, "url"),
        ({"url": "http://93.184.215.14/hooks"}, "url"),
        ({"url": "ftp://93.184.215.14/hooks"}, "url"),
        ({"url": "https://user:pw@93.184.215.14/hooks"}, "url"),
        ({"url": "https:///nohost"}, "url"),
        ({"url": "https://127.0.0.1/hooks"}, "url"),
        ({"url": "https://localhost:8443/hooks"}, "url"),  # a name that resolves to loopback
        ({"url": "https://10.0.0.7/hooks"}, "url"),
        ({"url": "https://192.168.1.1/hooks"}, "url"),
        ({"url": "https://172.16.0.1/hooks"}, "url"),
        ({"url": "https://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "https://100.64.0.1/hooks"}, "url"),
        ({"url": "https://0.0.0.0/hooks"}, "url"),
        ({"url": "https://224.0.0.1/hooks"}, "url"),
        ({"url": "https://[::1]/hooks"}, "url"),
        ({"url": "https://[::ffff:127.0.0.1]/hooks"}, "url"),
        ({"url": "https://[::ffff:7f00:1]/hooks"}, "url"),
        ({"url": "https://[::ffff:10.0.0.1]/hooks"}, "url"),
        ({"url": "https://[fe80::1]/hooks"}, "url"),
        ({"url": "https://[fd00::1]/hooks"}, "url"),
        ({"url": "https://[2002:7f00:1::]/hooks"}, "url"),  # 6to4 around 127.0.0.1
        ({"url": "https://2130706433/hooks"}, "url"),  # 127.0.0.1 as one number
        ({"url": "https://host.invalid/hooks"}, "url"),  # does not resolve
    ],
)
def test_bad_bodies_and_non_public_urls_are_refused_on_their_field(client_api, body, field):
    problem = assert_problem(client_api.post("/webhooks", body, format="json"), 400, "validation_error")
    assert field in problem["errors"], problem
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_private_urls_and_http_are_accepted_when_allowed(client_api, settings):
    settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = True
    assert create(client_api, {"url": "http://localhost:9/hooks"})["url"] == "http://localhost:9/hooks"
    assert check_url("https://[::ffff:127.0.0.1]/x")
    settings.WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(RefusedURL):
        check_url("http://localhost:9/hooks")


@pytest.mark.django_db
def test_at_most_16_endpoints_per_user(client_api, company_api):
    for _ in range(MAX_WEBHOOKS_PER_USER):
        create(client_api, {"url": PUBLIC})
    assert_problem(client_api.post("/webhooks", {"url": PUBLIC}, format="json"), 409, "webhook_limit_reached")
    assert WebhookEndpoint.objects.filter(owner=client_api.user).count() == MAX_WEBHOOKS_PER_USER
    create(company_api, {"url": PUBLIC})  # the limit is per user
    client_api.delete(f"/webhooks/{client_api.get('/webhooks').json()[0]['id']}")
    create(client_api, {"url": PUBLIC})


@pytest.mark.django_db
@pytest.mark.parametrize("slash", ["", "/"])
def test_delete_removes_only_ones_own_endpoint(client_api, slash):
    mine = create(client_api, {"url": PUBLIC})
    other = authenticated_client(ClientFactory().user)
    theirs = create(other, {"url": PUBLIC})
    assert_problem(client_api.delete(f"/webhooks/{theirs['id']}{slash}"), 404, "not_found")
    assert_problem(client_api.delete(f"/webhooks/we_nope{slash}"), 404, "not_found")
    assert client_api.delete(f"/webhooks/{mine['id']}{slash}").status_code == 204
    assert client_api.get("/webhooks").json() == []
    assert [item["id"] for item in other.get("/webhooks").json()] == [theirs["id"]]
    assert_problem(client_api.delete(f"/webhooks/{mine['id']}{slash}"), 404, "not_found")


@pytest.mark.django_db
@pytest.mark.parametrize("webhook_id", ["%00", "wh_%00", "a%00b", "wh_" + "x" * 70, "wh_%C3%A9"])
def test_delete_of_what_cannot_be_a_webhook_id_is_not_found(client_api, webhook_id):
    """Not a 500: PostgreSQL refuses a NUL byte in text, so the id is checked before any statement."""
    mine = create(client_api, {"url": PUBLIC})
    assert_problem(client_api.delete(f"/webhooks/{webhook_id}"), 404, "not_found")
    assert [item["id"] for item in client_api.get("/webhooks").json()] == [mine["id"]]


@pytest.mark.django_db
def test_webhooks_require_authentication(api_client):
    assert_problem(api_client.get("/webhooks"), 401, "not_authenticated")
    assert_problem(api_client.post("/webhooks", {"url": PUBLIC}, format="json"), 401, "not_authenticated")
    assert_problem(api_client.delete("/webhooks/we_x"), 401, "not_authenticated")
