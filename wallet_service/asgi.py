"""ASGI entry point, served by granian (see wallet_service/serve.py).

Granian reads a request's headers in Rust, within its header timeout, before any Python runs. The
body is read here, on the worker's event loop, within ``BODY_READ_TIMEOUT_SECONDS`` and at most
``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes. Only then is the complete request handed to Django's WSGI
handler (wallet_service/wsgi.py), on the worker's one thread for it, and its whole answer sent back
from the loop: a client that sends or reads slowly holds a socket, never that thread.

One thread, as under gunicorn's sync workers before: requests are CPU-bound in Python, so more
threads add nothing under the GIL (docs/PERFORMANCE.md), and the thread keeps its persistent
database connection. (Django's own ASGI handler runs each request in a thread of its own, with a
connection of its own.) The thread never waits on the loop, so a worker that stops while a request
runs finishes that request, and then exits.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import os
from concurrent.futures import ThreadPoolExecutor

from a2wsgi.wsgi import build_environ

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wallet_service.settings")

BODY_READ_TIMEOUT_SECONDS = 10.0


class Application:
    """Reads the whole body with a deadline and a size cap, then runs Django's WSGI handler on it.

    Too slow: ``408 request_timeout``, and the connection is closed. A ``Content-Length`` over the
    limit: nothing is read and Django answers its own ``413``; a body without one (chunked) that
    grows over the limit: ``413 payload_too_large`` from here, and the connection is closed.
    """

    def __init__(self, wsgi_app, *, timeout: float, limit: int):
        self.wsgi_app = wsgi_app
        self.timeout = timeout
        self.limit = limit
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="django")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return None  # no websockets, no lifespan events
        length = dict(scope["headers"]).get(b"content-length", b"")
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                # A declared length over the limit: Django answers 413 from the header alone, unread.
                while not (length.isdigit() and int(length) > self.limit):
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limit:
                        return await self.problem(send, "payload_too_large", "The request body is too large.")
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            return await self.problem(
                send, "request_timeout", f"The request body did not arrive within {self.timeout:g} seconds."
            )
        environ = build_environ(scope, io.BytesIO(b"".join(chunks)))
        run = contextvars.copy_context().run
        status, headers, body = await asyncio.get_running_loop().run_in_executor(self.executor, run, self.run, environ)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return None

    def run(self, environ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The WSGI call, on the Django thread: status, headers and the whole body."""
        started: list = []
        written: list[bytes] = []

        def start_response(status: str, headers, exc_info=None):
            if exc_info and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [
                int(status.split(" ", 1)[0]),
                [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            ]
            return written.append

        iterable = self.wsgi_app(environ, start_response)
        try:
            written.extend(iterable)
        finally:
            if hasattr(iterable, "close"):
                iterable.close()
        return started[0], started[1], b"".join(written)

    @staticmethod
    async def problem(send, code: str, detail: str) -> None:
        from wallet_service.api.problems import PROBLEM_CONTENT_TYPE, problem_body

        document = problem_body(code, detail)
        payload = json.dumps(document).encode()
        headers = [
            (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
            (b"content-length", str(len(payload)).encode()),
            # The rest of the body is not read: the connection cannot carry another request.
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": document["status"], "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _application():
    from django.conf import settings

    from wallet_service.wsgi import application as django_wsgi

    return Application(django_wsgi, timeout=BODY_READ_TIMEOUT_SECONDS, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


application = _application()
