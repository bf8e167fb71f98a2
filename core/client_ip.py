"""The client's IP address, for the login lockout (django-axes) and the API rate limit: one rule for both.

Behind a reverse proxy every request comes from the proxy's address, and `X-Forwarded-For` holds the client's, but
anyone can send that header too. So it is read only when the operator says how many proxies of theirs stand in front
(`EVALSTUDIO_TRUSTED_PROXY_COUNT`): each appends the address it received the request from, so the client is the
N-th address from the right; whatever a client wrote further left is ignored.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = getattr(settings, "EVALSTUDIO_TRUSTED_PROXY_COUNT", 0)
    if not proxies:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < proxies:
        # Fewer hops than proxies: the request did not come through all of them (or a proxy is misconfigured);
        # the socket's address is the only one not written by the client.
        return remote
    candidate = hops[-proxies]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return remote


def parse_networks(entries: list[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """CIDRs or single addresses (`10.0.0.0/8`, `127.0.0.1`, `::1`) for an allow-list; ValueError naming a bad one."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def ip_in(address: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    """Whether `address` (a client_ip) is in one of `networks`; False for an empty or unreadable address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
