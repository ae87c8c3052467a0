"""Container health check: GET /status from the server inside this container; exit 0 only on 200.

Run by the image's HEALTHCHECK. It asks with a Host the service accepts (the first entry of
WALLET_SERVICE_ALLOWED_HOSTS) and says the request came over HTTPS, so that neither a host check nor
a redirect to HTTPS behind a proxy is mistaken for an unhealthy service.
"""

import http.client
import os
import sys


def main() -> int:
    port = int(os.environ.get("PORT") or 8000)
    hosts = (os.environ.get("WALLET_SERVICE_ALLOWED_HOSTS") or "localhost").split()
    host = next((name.lstrip(".") for name in hosts if name != "*"), "localhost")
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=4)
    try:
        connection.request("GET", "/status", headers={"Host": host, "X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        body = response.read(512)
    except OSError as error:
        print(f"unhealthy: {error}")
        return 1
    finally:
        connection.close()
    if response.status != 200:
        print(f"unhealthy: /status answered {response.status}: {body!r}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
