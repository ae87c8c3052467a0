"""OpenAPI descriptions of the event feed (see wallet_service/api/schema.py)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from events import apis
from events.models import EVENT_TYPES
from wallet_service.api.schema import LIMIT, document, next_link_header


class EventOutputSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="The event's id: what `after` takes, and the webhook's `webhook-id`.")
    type = serializers.ChoiceField(choices=list(EVENT_TYPES))
    created = serializers.DateTimeField()
    data = serializers.DictField(
        help_text="The operation as a history item (as the caller's own history shows it: the other party's "
        "token masked), or the hold body for `hold.*` events (the failed operation's item for `hold.failed`)."
    )


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
            responses={200: OpenApiResponse(EventOutputSerializer(many=True), description="One page of events.")},
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
