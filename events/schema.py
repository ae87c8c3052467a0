"""OpenAPI descriptions of the event feed and the webhook endpoints (see wallet_service/api/schema.py)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from events import apis
from events.models import EVENT_TYPES
from events.webhooks import apis as webhook_apis
from wallet_service.api.problems import PROBLEM_TYPES
from wallet_service.api.schema import (
    LIMIT,
    REQUEST_ID,
    REQUEST_ID_ECHO,
    document,
    next_link_header,
    problem_responses,
)
from wallet_service.api.shapes import serializer_for

EVENTS = serializer_for(apis.EventOutput)(many=True)
WEBHOOKS = serializer_for(webhook_apis.WebhookOutput)(many=True)
WEBHOOK_CREATED = serializer_for(webhook_apis.WebhookCreated)


class EventListSchema(OpenApiViewExtension):
    target_class = apis.EventListApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Your events, oldest first",
            description="Every change of the caller's money or holds, in the order the feed commits to: a new "
            "event always comes after every event already listed, so a consumer that keeps the last `id` it saw "
            "and asks for what comes `after` it misses nothing.",
            tags=("events",),
            responses={
                200: OpenApiResponse(serializer_for(apis.EventOutput)(many=True), description="One page of events.")
            },
            problems=("validation_error",),
            parameters=(
                OpenApiParameter(
                    "after",
                    {"type": "string", "minLength": 1},
                    description="An event id of the caller's: only the events after it (from the first when omitted).",
                ),
                LIMIT,
                next_link_header(("limit",), parameter="after"),
            ),
        )


WEBHOOK_DELIVERY = (
    "Each event of a subscribed type that happens after the endpoint was created is POSTed to its URL at "
    "least once, following the Standard Webhooks specification: the body is the event as `GET /events` shows "
    "it, with headers `webhook-id` (the event id), `webhook-timestamp` (Unix seconds) and `webhook-signature` "
    '(`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>" keyed with the secret\'s decoded bytes>`). '
    "An attempt without a `2xx` within 10 seconds (redirects are not followed) is retried with growing "
    "delays for at least 24 hours; order is not guaranteed, so deduplicate by `webhook-id`. An endpoint "
    "whose every attempt has failed for 5 days is disabled."
)


class WebhookInputSerializer(serializers.Serializer):
    url = serializers.CharField(
        max_length=2048,
        help_text="`https://` to a host that is and resolves to public addresses only (not loopback, private, "
        "link-local or otherwise non-public; IPv4-mapped IPv6 forms included), checked again at each delivery.",
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=list(EVENT_TYPES)),
        required=False,
        min_length=1,
        max_length=100,
        help_text="The event types to send; omitted, every type.",
    )


class WebhookListSchema(OpenApiViewExtension):
    target_class = webhook_apis.WebhookListApi

    def view_replacement(self):
        list_view = document(
            self.target_class,
            summary="Your webhook endpoints",
            description="The caller's endpoints, oldest first, without their secrets.",
            tags=("webhooks",),
            responses={
                200: OpenApiResponse(
                    serializer_for(webhook_apis.WebhookOutput)(many=True), description="The endpoints."
                )
            },
            operation_id="webhooksList",
        )
        return extend_schema_view(
            post=extend_schema(
                operation_id="webhooksCreate",
                summary="Add a webhook endpoint",
                description=WEBHOOK_DELIVERY + " At most 16 endpoints per user.",
                request=WebhookInputSerializer,
                parameters=[REQUEST_ID, REQUEST_ID_ECHO],
                responses={
                    201: OpenApiResponse(
                        serializer_for(webhook_apis.WebhookCreated), description="The endpoint, and its secret."
                    ),
                    **problem_responses(
                        sorted(
                            {
                                "validation_error",
                                "payload_too_large",
                                "unsupported_media_type",
                                "not_authenticated",
                                "authentication_failed",
                                "webhook_limit_reached",
                                "service_unavailable",
                                "server_error",
                            },
                            key=list(PROBLEM_TYPES).index,
                        )
                    ),
                },
                examples=[
                    OpenApiExample(
                        "Charges only",
                        {"url": "https://shop.example.com/hooks", "events": ["charge.succeeded"]},
                        request_only=True,
                    )
                ],
            )
        )(list_view)


class WebhookDetailSchema(OpenApiViewExtension):
    target_class = webhook_apis.WebhookDetailApi

    def view_replacement(self):
        return document(
            self.target_class,
            summary="Remove a webhook endpoint",
            description="Nothing more is sent to it, retries included. Another user's endpoint is 404.",
            tags=("webhooks",),
            responses={204: OpenApiResponse(description="Removed.")},
            problems=("not_found",),
            parameters=(
                OpenApiParameter(
                    "webhook_id", str, OpenApiParameter.PATH, description="An endpoint id of the caller's."
                ),
            ),
            operation_id="webhooksDelete",
        )
