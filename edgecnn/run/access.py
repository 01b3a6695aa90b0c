"""Who may see the preview: a token for anything that leaves loopback.

``--serve 0.0.0.0:8080`` publishes the camera picture and the results to the whole network, so binding
anything but loopback needs a token (``--serve-token``, ``EDGECNN_SERVE_TOKEN``, or ``serve_token_file`` in
the config, which ``edgecnn service install`` generates) or an explicit ``--serve-insecure``. With a token,
``/``, ``/latest`` and ``/stream.mjpg`` (and with ``--serve-token-all`` also ``/healthz`` and
``/metrics``, which monitoring usually scrapes without credentials) need one of:

- ``Authorization: Bearer TOKEN`` (curl, scripts);
- the ``edgecnn_token`` cookie, which a browser gets by opening ``/?token=TOKEN`` once (the answer is a
  redirect that sets the cookie and drops the token from the address bar).

Comparison is constant-time (:func:`hmac.compare_digest`). Parsing uses the standard library
(``http.cookies``, ``urllib.parse``).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from edgecnn.errors import ConfigError, UsageError
from edgecnn.safeio import FileKind, read_text

COOKIE = "edgecnn_token"
TOKEN_ENV = "EDGECNN_SERVE_TOKEN"
OPEN_PATHS = ("/healthz", "/metrics")  # open unless token_all: monitoring scrapes them
MIN_TOKEN_CHARS = 16


def new_token() -> str:
    """A fresh token: 32 random bytes, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


CREDENTIAL = "serve-token"  # the name `service install` gives it in LoadCredential=


def credential_token_path() -> Path | None:
    """``$CREDENTIALS_DIRECTORY/serve-token`` when systemd passed one to this service, else None."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    path = Path(folder) / CREDENTIAL if folder else None
    return path if path is not None and path.exists() else None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to may be reachable from elsewhere


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in ``path``: its first line, stripped; a file that is empty or too short is an error."""
    lines = read_text(path, FileKind.SECRET).splitlines()
    token = lines[0].strip() if lines else ""
    return check_token(token, f"the token in {path}")


# RFC 3986's unreserved characters: a token travels unchanged in a cookie (RFC 6265 forbids ';', '"', ',',
# '\\' and spaces there), in ``?token=`` (where '+' would read as a space, '&' and '#' split it) and in an
# ``Authorization: Bearer`` header. secrets.token_urlsafe() (what ``service install`` writes) uses only these.
TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
MAX_TOKEN_CHARS = 1024  # a browser keeps a cookie of up to 4 KB; a request head is capped at 16 KiB


def check_token(token: str, where: str) -> str:
    """``token`` if it works in every way it is sent (see :data:`TOKEN_CHARS`), else one UsageError line.

    A token with ';', '"', non-ASCII or whitespace used to be accepted and then never matched the browser's
    cookie, so the preview could not be opened: it is refused at start-up instead.
    """
    bad = sorted({c for c in token if c not in TOKEN_CHARS})
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS or bad:
        what = f"it has {', '.join(repr(c) for c in bad[:5])}; " if bad else ""
        raise UsageError(
            f"{where} must be {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters from A-Z, a-z, 0-9, '-', '_', "
            f"'.', '~' (it travels in a cookie, a URL and a header): {what}make one with "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`."
        )
    return token


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    redirect: str | None = None  # answer 303 to this location (after a ?token= login)


@dataclass(frozen=True)
class Access:
    """The endpoint's access rule; ``Access()`` (no token) lets everyone in, for loopback or --serve-insecure."""

    token: str | None = None
    token_all: bool = False

    def _matches(self, candidate: str | None) -> bool:
        assert self.token is not None
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    def check(self, path: str, query: str, headers: Message) -> Decision:
        if self.token is None or (path in OPEN_PATHS and not self.token_all):
            return Decision(True)
        auth = headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer" and self._matches(credentials.strip()):
            return Decision(True)
        try:
            cookie = SimpleCookie(headers.get("Cookie", ""))
        except CookieError:
            cookie = SimpleCookie()
        if COOKIE in cookie and self._matches(cookie[COOKIE].value):
            return Decision(True)
        params = parse_qs(query, keep_blank_values=True)
        given = params.pop("token", [None])[-1]
        if self._matches(given):
            rest = urlencode(params, doseq=True)
            set_cookie = f"{COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000"
            return Decision(
                True, headers={"Set-Cookie": set_cookie}, redirect=path + (f"?{rest}" if rest else "")
            )
        wrong = "the token in the address (?token=) is not this server's; " if given is not None else ""
        return Decision(
            False,
            f"{wrong}this endpoint needs the serve token: send 'Authorization: Bearer TOKEN', or open "
            "/?token=TOKEN once in a browser",
            {"WWW-Authenticate": 'Bearer realm="edgecnn"'},
        )


def resolve_access(
    host: str,
    *,
    token: str | None,
    token_file: str | os.PathLike[str] | None,
    token_all: bool,
    insecure: bool,
    serve: str,
) -> Access:
    """The access rule for ``--serve HOST:...``, or :class:`UsageError` for a non-loopback bind with no token.

    ``token`` (the flag) wins over ``token_file`` (the config), then ``EDGECNN_SERVE_TOKEN``, then the
    ``serve-token`` credential systemd passes to a service (``LoadCredential=``, set by ``service install``).
    """
    if token:
        value: str | None = check_token(token, "--serve-token")
    elif token_file:
        if not Path(token_file).exists():
            raise ConfigError(
                f"serve_token_file {token_file} not found: `edgecnn service install` writes one."
            )
        value = read_token_file(token_file)
    elif os.environ.get(TOKEN_ENV, "").strip():
        value = check_token(os.environ[TOKEN_ENV].strip(), TOKEN_ENV)
    elif credential_token_path() is not None:
        value = read_token_file(credential_token_path())  # type: ignore[arg-type]
    else:
        value = None
    if value is None and token_all:
        raise UsageError(
            "--serve-token-all needs a token: pass --serve-token TOKEN (or set serve_token_file)."
        )
    if value is None and not is_loopback(host) and not insecure:
        raise UsageError(
            f"serving on {serve} makes the camera preview and results reachable from the network: protect them with "
            f"--serve-token TOKEN (or {TOKEN_ENV}, or serve_token_file in the config; `edgecnn service install` "
            "generates one), or pass --serve-insecure to accept the risk."
        )
    return Access(token=value, token_all=token_all)
