"""The one guard for every outbound HTTP request the server makes on a user's behalf (alert webhooks, and anything
added later). Knows no domain.

A URL a member typed could otherwise make the server (or a worker) call the cloud metadata service, a database's
HTTP port or anything else on the internal network, and read the answer back as an error message. So:

- the host is resolved once, and every address it resolves to must be public: loopback, private, link-local,
  multicast, unspecified, reserved and other special-purpose addresses are refused, IPv4 and IPv6 alike, including
  IPv4 carried inside IPv6 (`::ffff:127.0.0.1`, `::127.0.0.1`, 6to4 `2002::/16`, NAT64 `64:ff9b::/96`);
- the host is read the way libc reads it: `2130706433`, `0177.0.0.1`, `0x7f.1` and `127.1` are all 127.0.0.1
  (inet_aton), so they are checked as that address, and a host that looks numeric but is no address is refused;
- unless the host's name, or the address, is in `EVALSTUDIO_OUTBOUND_ALLOWLIST` (hostnames or CIDRs);
- the connection goes to the address that was checked (no second lookup, so DNS rebinding gains nothing), with TLS
  SNI and certificate checks against the URL's hostname;
- redirects are never followed (a 3xx is an outcome), the whole exchange has a deadline and the body a size cap;
- the result carries a generic text for members and the detail for the log, never the other way round.
"""

from __future__ import annotations

import contextlib
import functools
import http.client
import ipaddress
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger(__name__)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Member-facing texts: they say what happened to the delivery, never what is (or is not) listening where.
UNREACHABLE = "could not reach the receiver"
NOT_ALLOWED = "the receiver's address is not allowed by this server (see the rule's URL)"

# Special-purpose ranges refused beyond what `ipaddress` flags (its flags changed across Python patch releases;
# listing them keeps the answer the same on every 3.11.x). IANA special-purpose registries, RFC 6890 and later.
_SPECIAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "100.64.0.0/10",  # carrier-grade NAT
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/96",  # IPv4-compatible (deprecated); the embedded address is checked too
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments (Teredo included)
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fec0::/10",  # site-local (deprecated)
    )
)
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$"
)
# A last label like these makes a host an IPv4 literal to libc (and to browsers): it must then parse as one.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


class OutboundRefused(ValueError):
    """A URL the guard will not call, with the reason (safe to show to whoever typed the URL)."""


class OutboundUnresolved(OutboundRefused):
    """The URL's host does not resolve (now)."""


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (the addresses checked) and what to ask for."""

    scheme: str
    host: str  # as written in the URL (lowercased, no brackets): the Host header, SNI and certificate name
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]  # every address the host resolved to, all allowed, in getaddrinfo's order


@dataclass(frozen=True)
class OutboundResult:
    """What came of one request. `error` is for members ("" when the receiver answered 2xx); `detail` is for the
    log only (addresses, exceptions, a redirect's Location)."""

    status: int | None
    error: str
    detail: str = ""
    body: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and not self.error


# --- addresses -----------------------------------------------------------------------------------------------------


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, SIIT, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    packed = int(address)
    if packed >> 32 == 0 and packed > 1:  # ::a.b.c.d (IPv4-compatible); ::, ::1 are themselves
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if packed >> 32 == 0xFFFF0000:  # ::ffff:0:a.b.c.d (SIIT)
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    if address in ipaddress.IPv6Network("64:ff9b::/96") or address in ipaddress.IPv6Network("64:ff9b:1::/48"):
        return ipaddress.IPv4Address(packed & 0xFFFFFFFF)
    return None


def address_refusal(address: Address) -> str | None:
    """Why the guard refuses this address ("a loopback address"), or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "a scoped (link-local) address"
        inner = _embedded_ipv4(address)
        if inner is not None:
            reason = address_refusal(inner)
            if reason is not None:
                return f"{reason} inside an IPv6 address"
    checks = (
        ("is_unspecified", "an unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_private", "a private address"),
        ("is_reserved", "a reserved address"),
    )
    for flag, reason in checks:
        if getattr(address, flag):
            return reason
    if any(address in network for network in _SPECIAL if network.version == address.version):
        return "a special-purpose address"
    if not address.is_global:
        return "a non-public address"
    return None


# --- the allowlist -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str]
    networks: tuple[Network, ...]

    def allows_host(self, host: str) -> bool:
        return host in self.hosts

    def allows_address(self, address: Address) -> bool:
        candidates: list[Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
            candidates.append(inner)
        return any(a in n for a in candidates for n in self.networks if n.version == a.version)


def parse_allowlist(entries: Iterable[str]) -> Allowlist:
    """Hostnames and CIDRs (a bare address is its own /32 or /128). Raises ValueError naming a bad entry."""
    hosts: set[str] = set()
    networks: list[Network] = []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            continue
        except ValueError:
            pass
        if not _HOSTNAME.match(entry) or _NUMERIC_LABEL.match(entry.rsplit(".", 1)[-1]):
            raise ValueError(f"{raw!r} is neither a hostname nor an IP address or CIDR (like 10.0.0.0/8)")
        hosts.add(entry)
    return Allowlist(frozenset(hosts), tuple(networks))


def allowlist() -> Allowlist:
    """The operator's allowlist, read on each call (settings are validated at start-up)."""
    return parse_allowlist(getattr(settings, "EVALSTUDIO_OUTBOUND_ALLOWLIST", []))


# --- URLs ----------------------------------------------------------------------------------------------------------


def _literal(host: str) -> Address | None:
    """The address a host denotes by itself, read as libc reads it; None for a name. Raises OutboundRefused for a
    host that looks numeric but is no address (`1.2.3.4.5`, `0x1g`), which resolvers treat inconsistently."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
        try:
            # inet_aton accepts what getaddrinfo and browsers accept: 2130706433, 0177.0.0.1, 0x7f.1, 127.1.
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            raise OutboundRefused(f"the host {host!r} is not a valid IPv4 address or hostname") from None
    return None


def _split(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"not a valid URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise OutboundRefused("only http:// and https:// URLs are allowed")
    if parts.username is not None or parts.password is not None:
        raise OutboundRefused("a URL with credentials (user:password@) is not accepted; use the signature instead")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise OutboundRefused("the URL has no host")
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise OutboundRefused(f"the host {host!r} is not a valid IPv6 address") from None
    elif not _HOSTNAME.match(host):
        raise OutboundRefused(f"the host {host!r} is not a valid hostname (non-ASCII names are written in punycode)")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    if any(ord(c) < 33 or ord(c) >= 127 for c in path):
        raise OutboundRefused("the URL's path must be printable ASCII (percent-encode spaces and other characters)")
    return scheme, host, port or (443 if scheme == "https" else 80), path


def check_url(url: str, *, allowed: Allowlist | None = None) -> Target:
    """The URL checked and resolved, ready to call. Raises OutboundRefused saying why not, e.g. "localhost
    resolves to a loopback address 127.0.0.1; ask the operator to allow it in EVALSTUDIO_OUTBOUND_ALLOWLIST"."""
    allowed = allowed if allowed is not None else allowlist()
    scheme, host, port, path = _split(url)
    literal = _literal(host)
    if literal is not None:
        addresses: list[Address] = [literal]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            raise OutboundUnresolved(f"the host {host} could not be resolved ({exc})") from None
        addresses = []
        for info in infos:
            address = ipaddress.ip_address(info[4][0])
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise OutboundUnresolved(f"the host {host} resolves to no address")
    if not allowed.allows_host(host):
        # Every address must pass: the one connected to is then passed whichever of them it is.
        for address in addresses:
            reason = address_refusal(address)
            if reason is None or allowed.allows_address(address):
                continue
            if literal is None:
                where = f"{host} resolves to {reason} {address}"
            elif literal.version == 4 and str(literal) != host:
                where = f"{host} is {address}, {reason}"  # 0x7f.1: say which address libc reads it as
            else:
                where = f"{host} is {reason}"
            raise OutboundRefused(f"{where}; ask the operator to allow it in EVALSTUDIO_OUTBOUND_ALLOWLIST")
    return Target(scheme, host, port, path, tuple(str(a) for a in addresses))


# --- the request ---------------------------------------------------------------------------------------------------


def url_refusal(url: str) -> str | None:
    """Why the guard refuses this URL now, as a form or an API would say it ("localhost resolves to a loopback
    address 127.0.0.1; ask the operator…"), or None. A host that does not resolve now is accepted when the URL is
    saved: it may exist later, and every delivery is checked again at send time."""
    try:
        check_url(url)
    except OutboundUnresolved:
        return None
    except OutboundRefused as exc:
        return str(exc)
    return None


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to an address already checked, whatever DNS says now; Host is still the URL's host."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._create_connection = lambda _where, t, source=None: socket.create_connection((address, port), t, source)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """As _PinnedHTTP; TLS is checked against the URL's hostname (SNI and certificate), not the address."""

    def __init__(self, host: str, port: int, *, address: str, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._create_connection = lambda _where, t, source=None: socket.create_connection((address, port), t, source)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The system's CA store with hostname checks on; loaded once (it is thread-safe to share)."""
    return ssl.create_default_context()


def _exchange(
    target: Target, address: str, method: str, body: bytes, headers: Mapping[str, str], timeout: float, cap: int
) -> tuple[int, str, bytes, bool]:
    """(status, reason, body up to the cap, whether it was cut). Raises OSError/HTTPException on failure."""
    if target.scheme == "https":
        conn: http.client.HTTPConnection = _PinnedHTTPS(
            target.host, target.port, address=address, timeout=timeout, context=_tls_context()
        )
    else:
        conn = _PinnedHTTP(target.host, target.port, address=address, timeout=timeout)
    # The socket timeout bounds each step; the watchdog bounds the whole exchange (a receiver dripping one byte a
    # second would otherwise hold a worker for as long as it likes).
    expired = threading.Event()
    watchdog = threading.Timer(timeout, _abort, args=(conn, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request(method, target.path, body=body, headers={**headers, "Connection": "close"})
        response = conn.getresponse()
        data = response.read(cap + 1)
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise TimeoutError(f"no complete answer within {timeout:.3g}s (timed out)") from exc
        raise
    finally:
        watchdog.cancel()
        conn.close()
    return response.status, response.reason, data[:cap], len(data) > cap


def _abort(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    expired.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing left to stop
            sock.shutdown(socket.SHUT_RDWR)


def request(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    timeout: float,
    max_bytes: int = 65536,
) -> OutboundResult:
    """Send one request through the guard. Never raises and never follows a redirect; logs the detail of any
    failure (logger `core.outbound`) and returns a member-facing error without it."""
    started = time.monotonic()
    sent_headers = {"User-Agent": "EvalStudio", **(headers or {})}
    try:
        target = check_url(url)
    except OutboundUnresolved as exc:
        return _failed(None, UNREACHABLE, f"{method} {url}: {exc}")
    except OutboundRefused as exc:
        return _failed(None, NOT_ALLOWED, f"refused {method} {url}: {exc}")
    problems: list[str] = []
    for address in target.addresses:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            problems.append(f"{address}: deadline of {timeout:g}s passed")
            break
        try:
            status, reason, data, cut = _exchange(target, address, method, body, sent_headers, remaining, max_bytes)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            problems.append(f"{address}: {type(exc).__name__}: {exc}")
            # Once bytes may have been sent, another address would deliver twice; only a refused connect moves on.
            if not isinstance(exc, ConnectionRefusedError | socket.gaierror):
                break
            continue
        note = f" (body cut at {max_bytes} bytes)" if cut else ""
        if 300 <= status < 400:
            # Not followed: the redirect could point anywhere, the internal network included.
            return _failed(
                status,
                f"delivery failed: the receiver answered with a redirect (HTTP {status}), which is not followed",
                f"{method} {url} via {address}: HTTP {status} {reason}, redirect not followed{note}",
                data,
            )
        if not 200 <= status < 300:
            return _failed(
                status,
                f"delivery failed: HTTP {status}",
                f"{method} {url} via {address}: HTTP {status} {reason}{note}",
                data,
            )
        return OutboundResult(status, "", f"{method} {url} via {address}: HTTP {status}{note}", data)
    return _failed(None, UNREACHABLE, f"{method} {url}: " + "; ".join(problems))


def _failed(status: int | None, error: str, detail: str, body: bytes = b"") -> OutboundResult:
    logger.warning("Outbound request failed: %s", detail)
    return OutboundResult(status, error, detail, body)
