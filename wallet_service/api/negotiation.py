"""Content negotiation for a JSON-only API: every response is JSON, whatever ``Accept`` says.

Refusing a request with 406 because a client sent ``Accept: text/html`` helps nobody; the
contract says "JSON in, JSON out".
"""

from rest_framework.negotiation import DefaultContentNegotiation


class JSONOnlyContentNegotiation(DefaultContentNegotiation):
    def select_renderer(self, request, renderers, format_suffix=None):
        renderer = renderers[0]
        return renderer, renderer.media_type
