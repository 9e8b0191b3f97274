"""Where a webhook may be sent: the server-side request forgery rule.

A receiver's address must be public. Loopback, private, link-local, shared (CGNAT),
multicast, reserved and unspecified addresses are refused unless an admin allowed private
networks for the endpoint; cloud metadata services are refused even then, since no
receiver lives there and they hand out the server's credentials.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

import idna

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task credentials
        "169.254.170.23",  # AWS EKS Pod Identity
        "fd00:ec2::254",  # AWS over IPv6
        "fd00:ec2::23",  # AWS EKS Pod Identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
        "192.0.0.192",  # Oracle Cloud
    )
)

# IPv6 prefixes whose last 32 bits are an IPv4 address a translator connects to: NAT64's
# well-known prefix and its local-use one (RFC 6052, RFC 8215), and the deprecated
# IPv4-compatible addresses (::a.b.c.d).
_IPV4_IN_LAST_32_BITS = tuple(
    ipaddress.IPv6Network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96")
)

# host, port -> the addresses the name resolves to
Resolver = Callable[[str, int], Awaitable[list[str]]]


class SystemResolver:
    """The system's resolver (getaddrinfo), on a few threads of its own.

    getaddrinfo blocks its thread until the lookup ends, and a caller's timeout stops the
    waiting, not the thread. On the event loop's default pool, which password hashing also
    uses, a name server that hangs would take every thread and stall sign-ins; here it can
    take at most `threads`. Once `in_flight` lookups are running or queued, further ones
    are refused at once (and the delivery retried later); a running lookup counts until its
    thread is free, whether or not anyone still waits for it."""

    def __init__(self, *, threads: int = 4, in_flight: int = 8) -> None:
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="userdesk-resolver")
        self._in_flight = in_flight
        self._running = 0  # submitted and not yet ended, whoever still waits for them
        self._lock = threading.Lock()

    async def __call__(self, host: str, port: int) -> list[str]:
        with self._lock:
            if self._running >= self._in_flight:
                raise OSError(f"{self._in_flight} name lookups are in flight already")
            self._running += 1
        try:
            lookup = self._executor.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        except BaseException:
            self._ended()
            raise
        lookup.add_done_callback(lambda _: self._ended())
        infos = await asyncio.wrap_future(lookup)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))

    def _ended(self) -> None:
        with self._lock:
            self._running -= 1


def _embedded(address: Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries and that a relay or translator on the way
    would connect to: IPv4-mapped, 6to4, both ends of Teredo, NAT64, IPv4-compatible."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    embedded = [a for a in (address.ipv4_mapped, address.sixtofour) if a is not None]
    if address.teredo is not None:
        embedded.extend(address.teredo)
    if any(address in network for network in _IPV4_IN_LAST_32_BITS):
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return embedded


def _own_kind(address: Address) -> str | None:
    for kind, matches in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        # Site-local (fec0::/10) was deprecated, not reused: networks still route it privately.
        ("private", isinstance(address, ipaddress.IPv6Address) and address.is_site_local),
        ("reserved", address.is_reserved),
    ):
        if matches:
            return kind
    return None if address.is_global else "non-public"


def _kind(address: Address) -> str | None:
    """What makes an address private, or None for a public one. An IPv6 address that
    carries an IPv4 address is as private as the one it carries (2002:7f00:1:: is 6to4 for
    127.0.0.1); an IPv4-mapped one is nothing but the address it maps."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _own_kind(address.ipv4_mapped)
    own = _own_kind(address)
    if own is not None:
        return own
    return next(filter(None, map(_own_kind, _embedded(address))), None)


def refusal(address: Address, *, allow_private_network: bool) -> str | None:
    """Why a request to `address` is refused ("a loopback address; ..."), or None when it
    may be sent."""
    if address in METADATA_ADDRESSES or any(a in METADATA_ADDRESSES for a in _embedded(address)):
        return "a cloud metadata address"
    kind = _kind(address)
    if kind is None or allow_private_network:
        return None
    return (
        f"a {kind} address; an admin may allow private networks for this endpoint "
        "(allow_private_network)"
    )


def literal_address(host: str) -> Address | None:
    """The address a URL's host names literally (1.2.3.4, [::1]), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def ascii_host(host: str) -> str:
    """The host as it goes on the wire (DNS, the Host header, the TLS server name): an
    internationalised name in its IDNA form (bücher.test -> xn--bcher-kva.test, full-width
    letters folded by UTS #46); raises ValueError for a name IDNA cannot express."""
    if host.isascii():
        return host
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(str(exc) or "not a valid internationalised name") from None


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host names in one of the older numeric forms that inet_aton, and
    so the system's resolver, accepts (2130706433, 0x7f.1, 017700000001, 127.1), or None."""
    if not host.isascii():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


class AddressRefused(Exception):
    """The receiver's host resolves to an address the rule refuses, or to none."""


async def checked_address(
    host: str, port: int, *, allow_private_network: bool, resolver: Resolver
) -> Address:
    """The address to connect to: the host's, each of which must pass the rule (a name with
    one private address among public ones is refused, since a connection could reach it)."""
    literal = literal_address(host)
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        try:
            addresses = [ipaddress.ip_address(a) for a in await resolver(host, port)]
        except (OSError, ValueError) as exc:
            raise AddressRefused(f"cannot resolve {host}: {exc}") from exc
        if not addresses:
            raise AddressRefused(f"{host} resolves to no address")
    for address in addresses:
        reason = refusal(address, allow_private_network=allow_private_network)
        if reason is not None:
            if literal is not None:
                raise AddressRefused(f"refused: {address} is {reason}")
            raise AddressRefused(f"refused: {host} resolves to {address}, {reason}")
    return addresses[0]
