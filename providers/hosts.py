"""Where a provider may be reached: its own public hosts, and what an admin allowed.

A connection's addresses are typed by the people who add it, so they are not trusted to
point anywhere: an address must name one of the provider's public hosts (over https), or a
host, pattern or network an admin listed (``LETHE_PROVIDER_HOSTS`` in the dashboard; there
http is allowed too, for gateways and local fakes), and must carry no credentials. Checked
when a connection is saved, and again for every connection made: the addresses a host
resolves to must be public ones (not loopback, private, link-local, multicast or otherwise
special) unless an admin allowed that host by name or the address's network, and the
request goes to the very address that was checked, so a name that resolves differently a
moment later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from .errors import PermanentError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# Shared address space (carrier-grade NAT) is not in Python's is_private.
_SHARED = ipaddress.ip_network("100.64.0.0/10")


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified
                or address in _SHARED or not address.is_global)


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class HostRules:
    """``public``: the provider's own hosts (``fnmatch`` patterns such as
    ``*.myhuaweicloud.com``). ``allowed``: an admin's additions, host names, patterns,
    addresses or networks (``10.0.0.0/8``)."""

    public: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()

    def _listed(self, host: str) -> bool:
        host = host.lower()
        found = _address(host)
        for entry in self.allowed:
            entry = entry.strip().lower()
            if not entry:
                continue
            if "/" in entry or _address(entry):
                try:
                    if found and found in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
            elif fnmatch.fnmatchcase(host, entry):
                return True
        return False

    def _public_host(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host.lower(), pattern) for pattern in self.public)

    def check_url(self, url: str, label: str) -> str:
        """The URL without a trailing slash, or PermanentError saying what is wrong."""
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise PermanentError(f"{label}: an address must be an https URL")
        if parts.username or parts.password:
            raise PermanentError(f"{label}: an address must not contain credentials")
        listed = self._listed(host)
        if not (listed or self._public_host(host)):
            raise PermanentError(
                f"{label}: {host} is not one of the provider's own hosts; an admin can allow it "
                "(LETHE_PROVIDER_HOSTS)")
        if parts.scheme != "https" and not listed:
            raise PermanentError(f"{label}: {host} must be reached over https")
        return url.strip().rstrip("/")

    def address_ok(self, host: str, address: str) -> bool:
        """Whether a connection to ``address``, which ``host`` resolved to, may be made."""
        found = _address(address)
        if found is None:
            return False
        if is_public(found):
            return True
        # An internal address only where an admin said so: by the host's name, or by
        # listing the address or its network.
        return self._listed(address) or (_address(host) is None and self._listed(host))
