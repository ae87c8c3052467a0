"""Webhook endpoints: POST /webhooks, GET /webhooks, DELETE /webhooks/<id>. Any authenticated user."""

from __future__ import annotations

from typing import Annotated, TypedDict

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from events.models import EVENT_TYPES, EventType, WebhookEndpoint
from events.webhooks import services
from events.webhooks.addresses import MAX_URL_LENGTH, RefusedURL, check_url
from wallet_service.api.fields import StrictCharField
from wallet_service.api.shapes import Doc, Instant
from wallets.items import format_date


class WebhookInputSerializer(serializers.Serializer):
    url = StrictCharField(max_length=MAX_URL_LENGTH, trim_whitespace=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)), required=False, allow_empty=False, max_length=100
    )

    def validate_url(self, value: str) -> str:
        try:
            return check_url(value)
        except RefusedURL as refused:
            raise serializers.ValidationError(str(refused)) from None


WEBHOOK_CREATED = Doc("Events created after this are delivered to it.")


class WebhookEndpointOutput(TypedDict):
    """What both webhook bodies begin with (not documented alone)."""

    id: Annotated[str, Doc("The endpoint's id (`DELETE /webhooks/{webhook_id}`).")]
    url: str
    events: list[EventType]


class WebhookOutput(WebhookEndpointOutput):
    created: Annotated[Instant, WEBHOOK_CREATED]
    disabled: Annotated[bool, Doc("True once the endpoint was disabled for failing every attempt.")]
    disabled_at: Annotated[Instant | None, Doc("When it was disabled (null: it is not).")]


class WebhookCreated(WebhookEndpointOutput):
    secret: Annotated[
        str,
        Doc(
            "`whsec_<base64>`: the signing secret, shown in this response only. Verify each delivery's "
            "signature with it (any Standard Webhooks library does)."
        ),
    ]
    created: Annotated[Instant, WEBHOOK_CREATED]


def webhook_body(endpoint: WebhookEndpoint) -> WebhookOutput:
    return {
        "id": endpoint.public_id,
        "url": endpoint.url,
        "events": list(endpoint.event_types),
        "created": format_date(endpoint.created_at),
        "disabled": endpoint.disabled_at is not None,
        "disabled_at": format_date(endpoint.disabled_at) if endpoint.disabled_at else None,
    }


class WebhookListApi(APIView):
    """The caller's webhook endpoints (GET), or a new one (POST)."""

    def get(self, request):
        return Response([webhook_body(endpoint) for endpoint in services.webhook_list(owner=request.user)])

    def post(self, request):
        serializer = WebhookInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        endpoint, secret = services.webhook_create(owner=request.user, url=data["url"], event_types=data.get("events"))
        body = webhook_body(endpoint)
        created: WebhookCreated = {
            "id": body["id"],
            "url": body["url"],
            "events": body["events"],
            "secret": secret,
            "created": body["created"],
        }
        return Response(created, status=201)


class WebhookDetailApi(APIView):
    """Remove one of the caller's webhook endpoints."""

    def delete(self, request, webhook_id: str):
        services.webhook_delete(owner=request.user, public_id=webhook_id)
        return Response(status=204)
