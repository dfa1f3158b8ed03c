"""Who is asking: the client's address as the login lock and the rate limit count it.

Its own module because both count per address (auth/loginlock.py, auth/ratelimit.py), and
neither should import the other for it.
"""

from __future__ import annotations

import ipaddress

import falcon

UNKNOWN_ADDRESS = "0.0.0.0"  # noqa: S104 (a bucket for a front that names no client, not a bind)


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


def front_networks(forwarded_allow_ips: tuple[str, ...]) -> Networks:
    """``FORWARDED_ALLOW_IPS`` (checked by config.py) as networks."""
    return tuple(ipaddress.ip_network(item, strict=False) for item in forwarded_allow_ips)


def client_address(req: falcon.Request, fronts: Networks = ()) -> str:
    """The client's address: the TCP peer; or, when the peer is the nginx front, the
    ``X-Forwarded-For`` it set to its own client's address (overwriting whatever that client
    sent). The front is a peer that is not a TCP one (gunicorn's Unix socket, which only nginx
    reaches: bin/serve) or a TCP peer in ``fronts`` (``FORWARDED_ALLOW_IPS``: bin/cluster,
    whose nginx reaches its instances over TCP). Any other client cannot name another address:
    its headers are not read. In-process tests set ``REMOTE_ADDR``."""
    peer = _address(req.env.get("REMOTE_ADDR", ""))
    if peer is not None and not any(peer in network for network in fronts):
        return str(peer)
    forwarded = (req.get_header("X-Forwarded-For") or "").rsplit(",", 1)[-1]
    client = _address(forwarded)
    return str(client) if client is not None else str(peer or UNKNOWN_ADDRESS)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None
