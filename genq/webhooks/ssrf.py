"""Refuse webhook URLs that would make genq reach into its own network (SSRF).

A webhook URL is chosen by whoever submits a job, so without this check a job could make a
worker POST to cloud metadata (169.254.169.254), Redis on loopback or anything else inside the
deployment. ``check_url`` resolves the host once and refuses it if *any* address is not
public; the sender then connects to exactly the addresses checked here, so a name that
resolves elsewhere a moment later (DNS rebinding) changes nothing.
"""

from __future__ import annotations

import ipaddress
import socket
import string
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# Checked in order; the first match names the reason. ``is_global`` catches the rest.
_BLOCKED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = (
    (_V4("0.0.0.0/8"), "a 'this network' address"),
    (_V4("10.0.0.0/8"), "a private address"),
    (_V4("100.64.0.0/10"), "a carrier-grade NAT address"),
    (_V4("127.0.0.0/8"), "a loopback address"),
    (_V4("169.254.0.0/16"), "a link-local address (cloud metadata lives here)"),
    (_V4("172.16.0.0/12"), "a private address"),
    (_V4("192.0.0.0/24"), "an IETF protocol assignment address"),
    (_V4("192.0.2.0/24"), "a documentation (TEST-NET-1) address"),
    (_V4("192.88.99.0/24"), "a 6to4 relay anycast address"),
    (_V4("192.168.0.0/16"), "a private address"),
    (_V4("198.18.0.0/15"), "a benchmarking address"),
    (_V4("198.51.100.0/24"), "a documentation (TEST-NET-2) address"),
    (_V4("203.0.113.0/24"), "a documentation (TEST-NET-3) address"),
    (_V4("224.0.0.0/4"), "a multicast address"),
    (_V4("255.255.255.255/32"), "the broadcast address"),
    (_V4("240.0.0.0/4"), "a reserved address"),
)
_BLOCKED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (_V6("::/128"), "the unspecified address"),
    (_V6("::1/128"), "a loopback address"),
    (_V6("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (_V6("100::/64"), "a discard-only address"),
    (_V6("2001:db8::/32"), "a documentation address"),
    (_V6("fc00::/7"), "a unique-local (private) address"),
    (_V6("fe80::/10"), "a link-local address"),
    (_V6("fec0::/10"), "a site-local address"),
    (_V6("ff00::/8"), "a multicast address"),
)
_NAT64 = _V6("64:ff9b::/96")


class UnsafeURL(ValueError):
    """The URL may not be called; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked URL: the sender connects to ``addresses``, never re-resolving ``host``."""

    scheme: str
    host: str
    port: int
    path_with_query: str
    addresses: list[str]


def check_url(url: str, allow_hosts: frozenset[str] = frozenset()) -> Target:
    """Parse, resolve and vet ``url``; raise UnsafeURL unless every address is public.

    Hosts named in ``allow_hosts`` (names or IPs, any case) skip the public-address check, for
    tests and private deployments, but must still resolve.
    """
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise UnsafeURL("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL(f"URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        got = f"not {parts.scheme!r}" if parts.scheme else "and is missing"
        raise UnsafeURL(f"URL scheme must be http or https, {got}")
    if "@" in parts.netloc:
        raise UnsafeURL("URL may not contain credentials (user:password@)")
    host = parts.hostname or ""
    if not host:
        raise UnsafeURL("URL has no host")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if port == 0:
        raise UnsafeURL("URL port 0 is not valid")

    literal = ip_literal(host)
    allowed = _allowed(host, literal, allow_hosts)
    addresses = [literal] if literal is not None else _resolve(host, port)
    for address in [] if allowed else addresses:
        reason = blocked_reason(address)
        if reason is None:
            continue
        if literal is None:
            raise UnsafeURL(f"host {host!r} resolves to {address}: {reason}")
        shown = host if str(literal) == host else f"{host} ({literal})"
        raise UnsafeURL(f"host {shown} is {reason}")

    path = parts.path or "/"
    return Target(
        scheme=scheme,
        host=host,
        port=port,
        path_with_query=f"{path}?{parts.query}" if parts.query else path,
        addresses=[str(a) for a in addresses],
    )


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form a resolver accepts, or None for a name.

    Besides dotted quads and IPv6 this reads the legacy ``inet_aton`` forms (``127.1``,
    ``0x7f000001``, ``2130706433``, ``0177.0.0.1``) that libc and browsers treat as
    addresses, so they are judged as addresses and never sent to DNS.
    """
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    labels = host.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()  # a trailing dot, as in "127.0.0.1."
    if not 1 <= len(labels) <= 4:
        return None
    numbers = [_inet_number(label) for label in labels]
    if any(n is None for n in numbers):
        return None
    *head, last = [n for n in numbers if n is not None]
    if any(n > 255 for n in head) or last >= 256 ** (4 - len(head)):
        raise UnsafeURL(f"host {host!r} is an out-of-range IPv4 address")
    value = 0
    for n in head:
        value = value * 256 + n
    return ipaddress.IPv4Address(value * 256 ** (4 - len(head)) + last)


def blocked_reason(address: IPAddress) -> str | None:
    """Why connecting to ``address`` is refused, or None when it is public."""
    if isinstance(address, ipaddress.IPv4Address):
        for network, reason in _BLOCKED_V4:
            if address in network:
                return reason
        return None if address.is_global else "not a public address"

    embedded, via = _embedded_v4(address)
    if embedded is not None:
        inner = blocked_reason(embedded)
        if inner is not None:
            return f"{via} {embedded}, {inner}"
        if via == "an IPv4-mapped form of":
            return None  # the socket reaches the (public) IPv4 address itself
    for network, reason in _BLOCKED_V6:
        if address in network:
            return reason
    if address.is_multicast or address.is_reserved or address.is_site_local:
        return "a reserved address"
    return None if address.is_global else "not a public address"


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address | None, str]:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped, "an IPv4-mapped form of"
    if address.sixtofour is not None:
        return address.sixtofour, "a 6to4 form of"
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF), "a NAT64 form of"
    return None, ""


def _inet_number(label: str) -> int | None:
    """One ``inet_aton`` part: decimal, ``0x`` hex or leading-zero octal."""
    if label[:2].lower() == "0x":
        digits, base, allowed = label[2:], 16, string.hexdigits
        if not digits:
            return 0
    elif len(label) > 1 and label[0] == "0":
        digits, base, allowed = label[1:], 8, string.octdigits
    else:
        digits, base, allowed = label, 10, string.digits
    if not digits or any(ch not in allowed for ch in digits):
        return None
    return int(digits, base)


def _allowed(host: str, literal: IPAddress | None, allow_hosts: frozenset[str]) -> bool:
    if not allow_hosts:
        return False
    names = {h.strip().strip("[]").lower() for h in allow_hosts}
    if host.lower() in names:
        return True
    if literal is None:
        return False
    for name in names:
        try:
            if ipaddress.ip_address(name) == literal:
                return True
        except ValueError:
            continue
    return False


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to, in resolver order; UnsafeURL when none."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        try:
            address = ipaddress.ip_address(str(sockaddr[0]))
        except ValueError:
            raise UnsafeURL(f"host {host!r} resolves to an unreadable address") from None
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnsafeURL(f"host {host!r} does not resolve to any IP address")
    return addresses
