"""Who may reach the board: loopback by default; any other address only behind a share token."""
from __future__ import annotations

import ipaddress
import socket

from base.errors import AdaptError

MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """True when every address `host` names is a loopback one (127.0.0.0/8, ::1, localhost)."""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return bool(addresses) and all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses)


def check_bind(host: str, share_token: str | None) -> None:
    """Refuse a non-loopback bind without a token, and a token too short to resist guessing."""
    if share_token is not None and len(share_token) < MIN_TOKEN_CHARS:
        raise AdaptError(f"--share-token must be at least {MIN_TOKEN_CHARS} characters", field="--share-token",
                         hint='e.g. --share-token "$(openssl rand -hex 16)"')
    if not is_loopback(host) and not share_token:
        raise AdaptError(f"binding {host} makes the board reachable from other machines: give --share-token",
                         field="--host", hint='--share-token "$(openssl rand -hex 16)" (visitors log in with it), or keep the default 127.0.0.1')
