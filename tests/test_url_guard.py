"""Webhook URLs: only public HTTPS (and loopback, for development); the check is on every
address the host resolves to. Resolution is injected: these tests use no DNS."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from domain.errors import DomainError, ErrorCode
from domain.notifications.url_guard import (
    IPAddress,
    WebhookTarget,
    check_webhook_url,
    resolve_host,
)

PUBLIC = "93.184.215.14"
PUBLIC6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"

DNS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC, PUBLIC6],
    "internal.example.com": ["10.1.2.3"],
    "split.example.com": [PUBLIC, "192.168.1.10"],
    "metadata.example.com": ["169.254.169.254"],
    "rebind.example.com": ["127.0.0.1"],
    "localhost": ["127.0.0.1", "::1"],
    "2130706433": ["127.0.0.1"],  # what getaddrinfo makes of the decimal form
    "0x7f.1": ["127.0.0.1"],
    "167772161": ["10.0.0.1"],
    "mapped.example.com": ["::ffff:10.0.0.1"],
    "xn--bcher-kva.example": [PUBLIC],
}


class FakeResolver:
    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[IPAddress]:
        self.asked.append((host, port))
        if host not in DNS:
            raise OSError(f"no such host {host}")
        return [ipaddress.ip_address(a) for a in DNS[host]]


async def check(
    url: str, *, allow_private: bool = False, allow_loopback: bool = True
) -> WebhookTarget:
    return await check_webhook_url(
        url, resolve=FakeResolver(), allow_private=allow_private, allow_loopback=allow_loopback
    )


async def refused(url: str, *, allow_private: bool = False, allow_loopback: bool = True) -> str:
    with pytest.raises(DomainError) as caught:
        await check(url, allow_private=allow_private, allow_loopback=allow_loopback)
    assert caught.value.code is ErrorCode.INVALID_INPUT
    assert caught.value.field == "url"
    return caught.value.message


async def test_public_https_is_accepted_with_every_resolved_address() -> None:
    resolver = FakeResolver()
    target = await check_webhook_url("https://Hooks.Example.com/in?x=1", resolve=resolver)
    assert resolver.asked == [("hooks.example.com", 443)]
    assert target.url == "https://Hooks.Example.com/in?x=1"
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert target.resolved_addresses == (
        ipaddress.ip_address(PUBLIC),
        ipaddress.ip_address(PUBLIC6),
    )


async def test_a_public_ip_literal_and_an_explicit_port() -> None:
    target = await check(f"https://{PUBLIC}:8443/hook")
    assert (target.host, target.port) == (PUBLIC, 8443)
    assert target.resolved_addresses == (ipaddress.ip_address(PUBLIC),)
    target = await check(f"https://[{PUBLIC6}]/hook")
    assert target.host == PUBLIC6


async def test_an_international_host_name_is_resolved_in_its_ascii_form() -> None:
    target = await check("https://bücher.example/hook")
    assert target.host == "xn--bcher-kva.example"


async def test_http_to_a_public_host_is_refused() -> None:
    assert "https://" in await refused("http://hooks.example.com/in")
    assert "https://" in await refused(f"http://{PUBLIC}/in")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "https://127.0.0.1/hook",  # loopback is the development case whatever the scheme
        "https://localhost/hook",
    ],
)
async def test_loopback_is_accepted_for_development(url: str) -> None:
    target = await check(url)
    assert all(address.is_loopback for address in target.resolved_addresses)


async def test_loopback_can_be_switched_off() -> None:
    assert "this server" in await refused("http://localhost:8080/", allow_loopback=False)
    assert "this server" in await refused("https://127.0.0.1/", allow_loopback=False)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://10.0.0.1/", "private"),
        ("https://172.16.5.4/", "private"),
        ("https://192.168.1.1/", "private"),
        ("https://100.64.0.1/", "private"),  # carrier-grade NAT
        ("https://[fd00::1]/", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://[::ffff:169.254.169.254]/", "link-local"),
        ("https://[2002:a9fe:a9fe::]/", "link-local"),  # 6to4 of 169.254.169.254
        ("https://[64:ff9b::a00:1]/", "private"),  # NAT64 of 10.0.0.1
        ("https://0.0.0.0/", "unspecified"),
        ("https://[::]/", "unspecified"),
        ("https://224.0.0.1/", "multicast"),
        ("https://240.0.0.1/", "reserved"),
        ("https://internal.example.com/", "resolves to 10.1.2.3"),
        ("https://metadata.example.com/", "link-local"),
        ("https://mapped.example.com/", "private"),
        ("https://167772161/", "private"),  # decimal 10.0.0.1, as getaddrinfo reads it
    ],
)
async def test_non_public_addresses_are_refused(url: str, reason: str) -> None:
    message = await refused(url)
    assert reason in message
    assert "public internet" in message


async def test_one_private_address_among_public_ones_is_enough_to_refuse() -> None:
    assert "resolves to 192.168.1.10" in await refused("https://split.example.com/")


async def test_a_name_resolving_to_loopback_is_only_the_development_case() -> None:
    # Accepted as loopback (development) - and refused once loopback is off.
    assert (await check("https://rebind.example.com/")).host == "rebind.example.com"
    assert "this server" in await refused("https://rebind.example.com/", allow_loopback=False)


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "https://2130706433/"])
async def test_numeric_host_forms_are_judged_by_what_they_resolve_to(url: str) -> None:
    resolver = FakeResolver()
    target = await check_webhook_url(url, resolve=resolver, allow_loopback=True)
    assert resolver.asked  # not parsed by us: resolved, and the result checked
    assert target.resolved_addresses == (ipaddress.ip_address("127.0.0.1"),)
    with pytest.raises(DomainError, match="this server"):
        await check_webhook_url(url, resolve=FakeResolver(), allow_loopback=False)


async def test_allow_private_lets_private_networks_through_but_not_metadata() -> None:
    target = await check("https://10.0.0.1/hook", allow_private=True)
    assert target.resolved_addresses == (ipaddress.ip_address("10.0.0.1"),)
    await check("https://split.example.com/", allow_private=True)
    await check("https://[fd00::1]/", allow_private=True)
    assert "link-local" in await refused("https://169.254.169.254/", allow_private=True)
    assert "link-local" in await refused("https://[fe80::1]/", allow_private=True)
    assert "unspecified" in await refused("https://0.0.0.0/", allow_private=True)
    assert "https://" in await refused("http://10.0.0.1/", allow_private=True)
    # Metadata services outside link-local, and IPv6 site-local: never.
    for url in ("https://[fd00:ec2::254]/", "https://100.100.100.200/", "https://[fec0::1]/"):
        assert "metadata or site-local" in await refused(url, allow_private=True)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pass@hooks.example.com/", "user name or password"),
        ("https://user@hooks.example.com/", "user name or password"),
        ("http://user:pass@localhost/", "user name or password"),
        ("https://hooks.example.com/in#part", "fragment"),
        ("https://hooks.example.com/in#", "fragment"),
        ("ftp://hooks.example.com/", "https://"),
        ("javascript:alert(1)", "https://"),
        ("hooks.example.com/in", "https://"),
        ("", "Enter the URL"),
        ("   ", "Enter the URL"),
        ("https:///path", "no host"),
        ("https://hooks.example.com:0/", "port"),
        ("https://hooks.example.com:99999/", "not valid"),
        ("https://hooks.example.com:http/", "not valid"),
        ("https://[::1/", "not valid"),
        ("https://hooks example.com/", "spaces"),
        ("https://hooks.example.com/\r\nX: y", "control"),
        ("https://hooks.example.com\\@10.0.0.1/", "'\\'"),
        ("https://%31%30.0.0.1/", "host name"),
        ("https://-bad-.example.com/", "host name"),
        ("https://nowhere.invalid/", "could not be found"),
        ("https://hooks.example.com/" + "a" * 3000, "too long"),
    ],
)
async def test_malformed_urls_are_refused_with_a_reason(url: str, expected: str) -> None:
    assert expected in await refused(url)


async def test_the_field_name_can_be_given() -> None:
    with pytest.raises(DomainError) as caught:
        await check_webhook_url("http://10.0.0.1/", resolve=FakeResolver(), field="endpoint.url")
    assert caught.value.field == "endpoint.url"


async def test_the_system_resolver_reads_numeric_forms_without_dns() -> None:
    # getaddrinfo parses numeric hosts itself (no network): the forms ipaddress refuses.
    assert await resolve_host("2130706433", 80) == [ipaddress.ip_address("127.0.0.1")]
    assert await resolve_host("127.1", 80) == [ipaddress.ip_address("127.0.0.1")]
    target = await check_webhook_url("http://2130706433:9/hook", allow_loopback=True)
    assert target.resolved_addresses == (ipaddress.ip_address("127.0.0.1"),)
    with pytest.raises(DomainError, match="this server"):
        await check_webhook_url("http://2130706433:9/hook", allow_loopback=False)
