"""Where webhooks may go: https to public addresses only (no SSRF into the service's own network).

A host is refused when it is, or resolves to, any address that is not public: loopback, private,
link-local, multicast, reserved, unspecified, shared (CGNAT), documentation ranges, and the IPv6 forms
that embed an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, IPv4-compatible, 6to4, Teredo, NAT64),
judged by the IPv4 address they carry. ``WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE=True`` lifts this (and
allows ``http``) for development and tests.

The check is made at registration and again at every delivery, on the addresses the delivery then
connects to (events.webhooks.client): a name that resolved to a public address at registration and
to 127.0.0.1 later is refused then.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import SplitResult, urlsplit

from django.conf import settings

MAX_URL_LENGTH = 2048
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class RefusedURL(ValueError):
    """A URL webhooks may not be sent to; the message says why."""


def allow_private() -> bool:
    return bool(getattr(settings, "WALLET_SERVICE_WEBHOOK_ALLOW_PRIVATE", False))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(int(address))
    return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return False
        inner = embedded_ipv4(address)
        if inner is not None:
            return is_public(inner)
        if address in NAT64_LOCAL:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def parse_url(url: str) -> SplitResult:
    """The parts of a URL webhooks may be sent to, or RefusedURL (no resolution here)."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedURL(f"Must be at most {MAX_URL_LENGTH} characters.")
    if any(ord(char) <= 32 or ord(char) == 127 for char in url):
        raise RefusedURL("Must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise RefusedURL("Not a valid URL.") from None
    schemes = ("https", "http") if allow_private() else ("https",)
    if parts.scheme not in schemes:
        raise RefusedURL("Must be an https:// URL.")
    if not parts.hostname:
        raise RefusedURL("Must name a host.")
    if parts.username is not None or parts.password is not None:
        raise RefusedURL("Must not contain a user name or password.")
    if parts.fragment:
        raise RefusedURL("Must not contain a fragment (#…).")
    return parts


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (TCP), checked: RefusedURL when it resolves to nothing, or
    to any address that is not public (unless private addresses are allowed)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedURL(f"The host {host!r} cannot be resolved ({error}).") from None
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        if sockaddr[0] not in addresses:
            addresses.append(sockaddr[0])
    if not addresses:
        raise RefusedURL(f"The host {host!r} cannot be resolved.")
    if not allow_private():
        for address in addresses:
            if not is_public(ipaddress.ip_address(address.split("%", 1)[0])):
                raise RefusedURL(f"The host {host!r} is or resolves to a non-public address ({address}).")
    return addresses


def check_url(url: str) -> str:
    """``url`` if webhooks may be sent to it now, else RefusedURL."""
    parts = parse_url(url)
    resolve(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    return url
