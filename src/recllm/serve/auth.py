"""Bearer-token authentication of write endpoints, and the rule that a non-loopback bind needs a token."""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets

from recllm.errors import UserInputError

__all__ = ["TOKEN_ENV", "check_bearer", "is_loopback", "resolve_token"]

TOKEN_ENV = "RECLLM_TOKEN"
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(given: str | None, host: str) -> tuple[str, bool]:
    """The token writes need -> (token, generated). ``--token`` first, then $RECLLM_TOKEN; on a loopback bind with
    neither, a random one is generated (and printed by the caller); any other bind refuses to start."""
    token = given if given is not None else os.environ.get(TOKEN_ENV)
    if token is not None:
        # visible ASCII only: HTTP headers arrive as latin-1, so a token with other characters could never match
        if len(token) < MIN_TOKEN_LENGTH or not all("!" <= c <= "~" for c in token):
            raise UserInputError(f"the token is shorter than {MIN_TOKEN_LENGTH} characters or holds spaces or "
                                 "characters other than visible ASCII",
                                 f"--token / ${TOKEN_ENV}", "use e.g. `python -c 'import secrets; "
                                 "print(secrets.token_urlsafe(32))'`")
        return token, False
    if not is_loopback(host):
        raise UserInputError(f"refusing to listen on {host} without a token", "--host",
                             f"pass --token or set ${TOKEN_ENV}, or bind to 127.0.0.1")
    return secrets.token_urlsafe(24), True


def check_bearer(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <token>`` (the scheme in any case, as HTTP has it;
    constant-time comparison of the token)."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
