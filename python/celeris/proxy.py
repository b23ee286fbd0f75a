"""Proxy headers with uvicorn's exact semantics (--proxy-headers,
--forwarded-allow-ips, uvicorn/middleware/proxy_headers.py).

The C scope builder (src/binding/scope.c) finds X-Forwarded-Proto /
X-Forwarded-For itself and asks this object only (a) once per connection
whether the peer is a trusted proxy and (b) per request carrying those headers,
what scheme/client they resolve to -- an lru_cache'd call, so a proxy sending
the same few client addresses costs a dict lookup.  Both tiers get the result:
the native tier builds its scope through the same C function.
"""
from __future__ import annotations

import functools
import ipaddress
import os

DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1,::1"


def forwarded_allow_ips(value: list[str] | str | None) -> list[str] | str:
    """--forwarded-allow-ips, else $FORWARDED_ALLOW_IPS, else uvicorn's default."""
    if value is None:
        return os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_FORWARDED_ALLOW_IPS)
    return value


def _parse_raw_hosts(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")]


def _parse_host_port(value: str) -> tuple[str, int]:
    """A forwarded host value: bare IP, IPv4 host:port, or [IPv6]:port; anything
    malformed is returned whole without a port (as uvicorn)."""
    if value.startswith("["):
        end = value.find("]")
        if end == -1:
            return value, 0
        host = value[1:end]
        rest = value[end + 1:]
        if not rest:
            return host, 0
        if not rest.startswith(":"):
            return value, 0
        try:
            return host, int(rest[1:])
        except ValueError:
            return host, 0
    if value.count(":") == 1:
        host, port = value.rsplit(":", 1)
        try:
            return host, int(port)
        except ValueError:
            return value, 0
    return value, 0


class TrustedHosts:
    """IP addresses, networks and literals (e.g. a Unix socket path) to trust;
    "*" trusts everything."""

    def __init__(self, trusted_hosts: list[str] | str) -> None:
        self.always_trust = trusted_hosts in ("*", ["*"])
        self.literals: set[str] = set()
        self.hosts: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
        self.networks: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
        if not self.always_trust:
            if isinstance(trusted_hosts, str):
                trusted_hosts = _parse_raw_hosts(trusted_hosts)
            for host in trusted_hosts:
                if "/" in host:
                    try:
                        self.networks.add(ipaddress.ip_network(host))
                    except ValueError:
                        self.literals.add(host)
                else:
                    try:
                        self.hosts.add(ipaddress.ip_address(host))
                    except ValueError:
                        self.literals.add(host)
        self._trusts = functools.lru_cache(maxsize=4096)(self._compute)

    def __contains__(self, host: str | None) -> bool:
        if self.always_trust:
            return True
        if not host:
            return False
        if len(host) > 253:
            return self._compute(host)
        return self._trusts(host)

    def _compute(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
            return ip in self.hosts or any(ip in net for net in self.networks)
        except ValueError:
            return host in self.literals

    def client_address(self, x_forwarded_for: str) -> tuple[str, int]:
        """The first untrusted host from the right (each proxy appends)."""
        hosts = _parse_raw_hosts(x_forwarded_for)
        if self.always_trust:
            return _parse_host_port(hosts[0])
        for host_port in reversed(hosts):
            host, port = _parse_host_port(host_port)
            if host not in self:
                return host, port
        return _parse_host_port(hosts[0])


class ProxyHeaders:
    """What the C server calls: trusts(peer_host) and resolve(xfp, xff)."""

    def __init__(self, trusted_hosts: list[str] | str) -> None:
        self.trusted = TrustedHosts(trusted_hosts)
        self.resolve = functools.lru_cache(maxsize=4096)(self._resolve)

    def trusts(self, host: str | None) -> bool:
        return host in self.trusted

    def _resolve(self, xfp: bytes | None, xff: bytes | None) -> tuple[str | None, tuple[str, int] | None]:
        scheme = None
        if xfp is not None:
            proto = xfp.decode("latin1").strip()
            if proto in ("http", "https", "ws", "wss"):
                scheme = proto
        client = None
        if xff is not None:
            host, port = self.trusted.client_address(xff.decode("latin1"))
            if host:
                client = (host, port)
        return scheme, client
