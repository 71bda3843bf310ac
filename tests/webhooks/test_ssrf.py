"""Webhook URLs may only reach public addresses, however the address is spelled."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from genq.webhooks.ssrf import Target, UnsafeURL, check_url, ip_literal

REFUSED = [
    # loopback, in every spelling a resolver or browser accepts
    ("http://127.0.0.1/", "loopback"),
    ("http://127.255.255.254:8080/x", "loopback"),
    ("https://LOCALHOST/", "loopback"),
    ("http://localhost./", "loopback|does not resolve"),  # resolvers differ on the dot
    ("http://127.0.0.1.:8080/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0X7F000001/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://0x7f.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]:9000/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://[2002:7f00:1::]/", "loopback"),
    ("http://[64:ff9b::127.0.0.1]/", "loopback"),
    ("http://[::127.0.0.1]/", "reserved"),  # deprecated IPv4-compatible
    # private
    ("http://10.0.0.1/", "private"),
    ("http://10.255.255.255/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://172.31.255.255/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://[::ffff:10.1.2.3]/", "private"),
    ("http://[::ffff:192.168.0.1]/", "private"),
    ("http://[64:ff9b::c0a8:1]/", "private"),
    ("http://[2002:c0a8:101::1]/", "private"),
    ("http://[fc00::1]/", "unique-local"),
    ("http://[fd12:3456:789a::1]/", "unique-local"),
    # link-local and cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://169.254.0.1/", "link-local"),
    ("http://0xa9fea9fe/", "link-local"),
    ("http://[::ffff:169.254.169.254]/", "link-local"),
    ("http://[64:ff9b::169.254.169.254]/", "link-local"),
    ("http://[2002:a9fe:a9fe::1]/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fe80::1%25eth0]/", "link-local"),
    ("http://[fec0::1]/", "site-local"),
    # shared, special-purpose and reserved ranges
    ("http://100.64.0.1/", "carrier-grade NAT"),
    ("http://100.127.255.255/", "carrier-grade NAT"),
    ("http://0.0.0.0/", "this network"),
    ("http://0/", "this network"),
    ("http://0.1.2.3/", "this network"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://239.255.255.250/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://[ff0e::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://255.255.255.255/", "broadcast"),
    ("http://198.18.0.1/", "benchmarking"),
    ("http://198.19.255.255/", "benchmarking"),
    ("http://192.0.0.8/", "IETF"),
    ("http://192.0.0.170/", "IETF"),
    ("http://192.0.2.1/", "TEST-NET-1"),
    ("http://198.51.100.7/", "TEST-NET-2"),
    ("http://203.0.113.9/", "TEST-NET-3"),
    ("http://192.88.99.1/", "6to4 relay"),
    ("http://[2001:db8::1]/", "documentation"),
    ("http://[100::1]/", "discard"),
    ("http://[64:ff9b:1::1]/", "NAT64"),
    ("http://[2001::1]/", "not a public address"),  # Teredo
]


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_non_public_addresses_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        check_url(url)


MALFORMED = [
    ("ftp://93.184.216.34/", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://93.184.216.34:70/", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("93.184.216.34/hook", "scheme"),
    ("//93.184.216.34/hook", "scheme"),
    ("http:///hook", "no host"),
    ("http://:80/hook", "no host"),
    ("http://user:pw@93.184.216.34/", "credentials"),
    ("http://user@93.184.216.34/", "credentials"),
    ("http://127.0.0.1@93.184.216.34/", "credentials"),
    ("http://93.184.216.34:99999/", "malformed"),
    ("http://93.184.216.34:http/", "malformed"),
    ("http://93.184.216.34:0/", "port 0"),
    ("http://[::1/", "malformed"),
    ("http://[not-an-ip]/", "malformed"),
    ("http://93.184.216.34/a b", "whitespace"),
    ("http://93.184.216.34/\r\nX-Injected: 1", "whitespace"),
    ("http://93.184.216.34/\x00", "control"),
    ("http://256.1.1.1/", "out-of-range"),
    ("http://1.2.3.256/", "out-of-range"),
    ("http://0x100000000/", "out-of-range"),
]


@pytest.mark.parametrize(("url", "reason"), MALFORMED)
def test_malformed_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURL, match=reason):
        check_url(url)


def test_unsafe_url_is_a_value_error() -> None:
    assert issubclass(UnsafeURL, ValueError)


def test_unresolvable_name_is_refused() -> None:
    with pytest.raises(UnsafeURL, match="does not resolve"):
        check_url("http://nonexistent.invalid/hook")


def test_public_ip_literal_passes_without_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    assert check_url("http://93.184.216.34/") == Target(
        scheme="http",
        host="93.184.216.34",
        port=80,
        path_with_query="/",
        addresses=["93.184.216.34"],
    )


def test_scheme_port_path_and_query_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    target = check_url("HTTPS://93.184.216.34:8443/hooks/genq?a=1&b=two#fragment")
    assert (target.scheme, target.port) == ("https", 8443)
    assert target.path_with_query == "/hooks/genq?a=1&b=two"
    assert check_url("https://93.184.216.34").port == 443
    assert check_url("https://93.184.216.34").path_with_query == "/"


@pytest.mark.parametrize(
    "url",
    ["http://[2606:2800:220:1:248:1893:25c8:1946]/", "http://[::ffff:93.184.216.34]/"],
)
def test_public_ipv6_passes(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _no_dns)
    target = check_url(url)
    assert target.addresses == [str(ipaddress.ip_address(target.host))]


def test_names_resolve_to_every_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", _resolver("93.184.216.34", "2606:2800:220:1::1", "93.184.216.34")
    )
    target = check_url("https://hooks.example.com/x")
    assert target.host == "hooks.example.com"
    assert target.addresses == ["93.184.216.34", "2606:2800:220:1::1"]


@pytest.mark.parametrize("bad", ["10.0.0.7", "127.0.0.1", "169.254.169.254", "fd00::1", "::1"])
def test_any_non_public_address_refuses_the_name(bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver("93.184.216.34", bad))
    with pytest.raises(UnsafeURL, match=f"resolves to {bad}"):
        check_url("https://rebind.example.com/")


def test_a_name_resolving_to_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", _resolver())
    with pytest.raises(UnsafeURL, match="does not resolve"):
        check_url("https://empty.example.com/")


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.1:8080/x", "127.0.0.1"),
        ("http://LOCALHOST:8080/x", "localhost"),
        ("http://localhost:8080/x", "LocalHost"),
        ("http://[::1]:8080/", "[::1]"),
        ("http://[::1]:8080/", "0:0::1"),
        ("http://10.0.0.5/", "10.0.0.5"),
    ],
)
def test_allow_hosts_bypasses_the_public_check(url: str, allow: str) -> None:
    target = check_url(url, allow_hosts=frozenset({allow}))
    assert target.addresses


def test_allow_hosts_is_by_name_not_by_address() -> None:
    with pytest.raises(UnsafeURL, match="loopback"):
        check_url("http://localhost/", allow_hosts=frozenset({"127.0.0.1"}))
    with pytest.raises(UnsafeURL, match="private"):
        check_url("http://10.0.0.6/", allow_hosts=frozenset({"10.0.0.5"}))


def test_allow_hosts_still_resolves_and_still_checks_the_url() -> None:
    allow = frozenset({"nonexistent.invalid", "127.0.0.1"})
    with pytest.raises(UnsafeURL, match="does not resolve"):
        check_url("http://nonexistent.invalid/", allow_hosts=allow)
    with pytest.raises(UnsafeURL, match="credentials"):
        check_url("http://u:p@127.0.0.1/", allow_hosts=allow)
    with pytest.raises(UnsafeURL, match="scheme"):
        check_url("ftp://127.0.0.1/", allow_hosts=allow)


def test_allowed_name_gets_its_resolved_addresses() -> None:
    target = check_url("http://localhost:9/", allow_hosts=frozenset({"localhost"}))
    assert set(target.addresses) <= {"127.0.0.1", "::1"}


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),
        ("0x", "0.0.0.0"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("0x7g", None),
        ("08.1.1.1", None),
        ("123.example", None),
    ],
)
def test_ip_literal_reads_inet_aton_forms(host: str, address: str | None) -> None:
    parsed = ip_literal(host)
    assert (None if parsed is None else str(parsed)) == address


def _no_dns(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("an IP literal must not be looked up")


def _resolver(*addresses: str) -> Any:
    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        infos = []
        for a in addresses:
            if ":" in a:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)))
        return infos

    return getaddrinfo
