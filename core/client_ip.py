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
