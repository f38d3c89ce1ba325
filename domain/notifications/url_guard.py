"""Which URLs a webhook may be sent to: no server-side request forgery.

An organization's OWNER/ADMIN chooses the URL and our server POSTs to it, so an
unchecked URL would let them reach what only the server can: the cloud metadata service
(169.254.169.254), databases and admin pages on the private network or on the server
itself. `check_webhook_url` therefore accepts

- ``https://`` URLs whose host resolves only to public addresses;
- ``http://`` or ``https://`` URLs whose host resolves only to loopback addresses
  (``localhost``, ``127.0.0.1``, ``[::1]``): the contract's development case, while
  ``allow_loopback`` holds (off by default: the sender's own loopback is exactly what
  SSRF aims at; development turns it on by a setting);
- with ``allow_private`` (a setting, for self-hosted installations), ``https://`` hosts on
  private networks too (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7). Link-local
  (169.254/16 and fe80::/10, where cloud metadata lives), multicast, reserved and
  unspecified addresses stay refused whatever the setting.

It refuses user:password@ in the URL (credentials would be stored and shown in clear;
the signature authenticates us to the receiver), fragments (never sent, so misleading),
whitespace, control characters and backslashes (parsers disagree on them), and
non-hostname hosts.

The check is on the *resolved* addresses, every one of them: ``http://2130706433/``,
``http://0x7f.1/`` or a name with a public and a private A record are judged by what
getaddrinfo gives, not by what the text looks like. IPv4 addresses hidden in IPv6 forms
(``::ffff:10.0.0.1``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``) are judged as the IPv4
address they lead to.

DNS rebinding: a name can resolve to a public address now and to 127.0.0.1 a second
later. So the sender must not resolve the name again: it re-runs this check before every
delivery (DNS changes after registration) and connects to one of the returned
`resolved_addresses` itself, sending the original name as the Host header and as TLS SNI
and verifying the certificate against that name (with httpx: a transport whose
connection opens a socket to the pinned IP, ``server_hostname=target.host``). It must not
follow redirects (a 3xx is a failed delivery), as a redirect target is unchecked.

Errors are `DomainError`s (INVALID_INPUT on the ``url`` field) with a sentence the user
can act on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from domain.errors import DomainError, ErrorCode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[IPAddress]]]

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT_SECONDS = 5.0

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT: private in effect
# Cloud metadata services outside link-local (AWS's IPv6 one, Alibaba's) and the old
# IPv6 site-local range: refused even where private networks are allowed.
_NEVER: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("fd00:ec2::254/128"),
    ipaddress.ip_network("100.100.100.200/32"),
    ipaddress.ip_network("fec0::/10"),
)


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked webhook URL. `host` (ASCII, IDNA-encoded) goes in the Host header and TLS
    SNI (an IPv6 literal: in brackets in the Host header, no SNI); the connection goes to
    one of `resolved_addresses` (see the module docstring)."""

    url: str
    scheme: str
    host: str
    port: int
    resolved_addresses: tuple[IPAddress, ...]


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`, as getaddrinfo gives them (it
    also reads numeric forms such as ``2130706433`` or ``0x7f.1``)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


def _invalid(message: str, field: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_INPUT, message, field)


def _effective(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 form leads to, if it is one; the address otherwise."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


PUBLIC = "a public address"
LOOPBACK = "a loopback address (this server itself)"
PRIVATE = "a private network address"


def _kind(address: IPAddress) -> str:
    """PUBLIC, LOOPBACK, PRIVATE, or a reason that no setting overrides."""
    address = _effective(address)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return LOOPBACK
    if address.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if any(address in network for network in _NEVER):
        return "a cloud metadata or site-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_global:
        return PUBLIC
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED):
        return PRIVATE
    return "an address not routable on the internet"


def _ascii_host(hostname: str, field: str) -> str:
    name = hostname[:-1] if hostname.endswith(".") else hostname
    try:
        ascii_name = name.encode("idna").decode("ascii").lower()
    except UnicodeError as error:
        raise _invalid(f"The host name {hostname!r} is not valid.", field) from error
    if not ascii_name or len(ascii_name) > 253:
        raise _invalid(f"The host name {hostname!r} is not valid.", field)
    if not all(_HOST_LABEL.match(label) for label in ascii_name.split(".")):
        raise _invalid(
            f"The host name {hostname!r} is not valid: use letters, digits and hyphens.", field
        )
    return ascii_name


async def check_webhook_url(
    url: str,
    *,
    allow_private: bool = False,
    allow_loopback: bool = False,
    resolve: Resolver = resolve_host,
    field: str = "url",
) -> WebhookTarget:
    """Check that a webhook may be sent to `url` (see the module docstring) and return
    where to connect. Raises DomainError(INVALID_INPUT, field=`field`) otherwise."""
    url = url.strip()
    if not url:
        raise _invalid("Enter the URL the webhooks should be sent to.", field)
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"The URL is too long (at most {MAX_URL_LENGTH} characters).", field)
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise _invalid("The URL must not contain spaces, control characters or '\\'.", field)
    try:
        parts = urlsplit(url)
        port_given = parts.port
    except ValueError as error:
        raise _invalid(f"The URL is not valid: {error}.", field) from error
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise _invalid("The URL must start with https://.", field)
    if parts.username is not None or parts.password is not None:
        raise _invalid(
            "The URL must not contain a user name or password (user:password@); "
            "webhooks are signed with the endpoint's signing secret instead.",
            field,
        )
    if parts.fragment or url.endswith("#"):
        raise _invalid("The URL must not contain a fragment (#...).", field)
    if not parts.hostname:
        raise _invalid("The URL has no host name.", field)
    if port_given == 0:
        raise _invalid("The URL's port must be between 1 and 65535.", field)
    port = port_given or (443 if scheme == "https" else 80)

    try:
        literal: IPAddress | None = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if literal is not None:
        host = literal.compressed
        addresses: list[IPAddress] = [literal]
    else:
        host = _ascii_host(parts.hostname, field)
        try:
            addresses = list(await resolve(host, port))
        except (OSError, TimeoutError) as error:
            raise _invalid(
                f"The host {host!r} could not be found; check the spelling of the URL.", field
            ) from error
        if not addresses:
            raise _invalid(f"The host {host!r} could not be found.", field)

    kinds = [_kind(address) for address in addresses]
    if all(kind == LOOPBACK for kind in kinds):
        if not allow_loopback:
            raise _invalid(f"{host} is this server itself; webhooks can't be sent there.", field)
    else:
        if scheme != "https":
            raise _invalid(
                "The URL must start with https:// (http:// only to localhost, for development).",
                field,
            )
        allowed = (PUBLIC, PRIVATE) if allow_private else (PUBLIC,)
        for address, kind in zip(addresses, kinds, strict=True):
            if kind not in allowed:
                where = host if literal is not None else f"{host} resolves to {address}, which"
                raise _invalid(
                    f"Webhooks can only be sent to addresses on the public internet; {where} "
                    f"is {kind}.",
                    field,
                )
    return WebhookTarget(
        url=url, scheme=scheme, host=host, port=port, resolved_addresses=tuple(addresses)
    )
