"""The client's IP address, for per-address rate limits.

The peer of the connection, unless that peer is one of TRUSTED_PROXIES (a load balancer
of ours): then X-Forwarded-For is read from its right end, each trusted proxy having
appended the address it saw, and the client is the right-most address that is not a
trusted proxy. Anything left of that was written by the client and may be made up; a
header from a peer we do not trust is ignored whole.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.types import Scope

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

UNKNOWN = "unknown"  # no peer address (a test transport, a Unix socket)


def parse_address(text: str) -> Address | None:
    """An address as proxies write it: bare, `1.2.3.4:port`, `[::1]:port`, IPv4-mapped
    IPv6 as IPv4; None when it is none of these (`unknown`, obfuscated names)."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address in network for network in trusted)


def client_ip(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[Network]) -> str:
    """The client's address: see the module's docstring. `forwarded_for` holds every
    X-Forwarded-For header of the request, in order."""
    address = parse_address(peer) if peer else None
    if address is None:
        return peer or UNKNOWN
    if not _trusted(address, trusted):
        return str(address)
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        found = parse_address(hop)
        if found is None:
            break  # not an address: the last proxy's own view is all we know
        address = found
        if not _trusted(address, trusted):
            break
    return str(address)


def client_ip_of(scope: Scope, trusted: Sequence[Network]) -> str:
    """The client's address for an ASGI connection (HTTP or WebSocket)."""
    peer = scope.get("client")
    forwarded = [
        value.decode("latin-1")
        for name, value in scope.get("headers") or ()
        if name.lower() == b"x-forwarded-for"
    ]
    return client_ip(peer[0] if peer else None, forwarded, trusted)
