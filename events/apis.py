"""The event feed: GET /events. (Webhook endpoints: events/webhooks.)"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from events import selectors
from events.models import EventType
from wallet_service.api.pagination import PAGE_DEFAULT_LIMIT, next_link, parse_limit
from wallet_service.api.shapes import Doc, Instant
from wallets.items import format_date


class EventQuerySerializer(serializers.Serializer):
    after = serializers.CharField(required=False, trim_whitespace=False, max_length=40)
    limit = serializers.CharField(required=False, trim_whitespace=False)

    def validate_limit(self, value: str) -> int:
        return parse_limit(value)


class EventOutput(TypedDict):
    """An event of the feed, and the body of its webhook deliveries."""

    id: Annotated[str, Doc("The event's id: what `after` takes, and the webhook's `webhook-id`.")]
    type: EventType
    created: Instant
    data: Annotated[
        dict[str, Any],
        Doc(
            "The operation as a history item (as the caller's own history shows it: the other party's "
            "token masked), or the hold body for `hold.*` events (the failed operation's item for `hold.failed`)."
        ),
    ]


def event_body(event: selectors.EventRow) -> EventOutput:
    return {"id": event.public_id, "type": event.type, "created": format_date(event.created_at), "data": event.data}


class EventListApi(APIView):
    """The caller's events, oldest first after ``after``; the next page's URL is in ``Link``."""

    def get(self, request):
        query = EventQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        limit = query.validated_data.get("limit", PAGE_DEFAULT_LIMIT)
        try:
            events = selectors.event_list(owner=request.user, after=query.validated_data.get("after"), limit=limit + 1)
        except selectors.UnknownEvent:
            raise serializers.ValidationError({"after": ["This is not one of your event ids."]}) from None
        headers = {}
        if len(events) > limit:
            events = events[:limit]
            headers = next_link(request, ("limit",), events[-1].public_id, parameter="after")
        return Response([event_body(event) for event in events], headers=headers)
