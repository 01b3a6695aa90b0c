"""One small HTTP GET over a real socket, for the places edgecnn asks its own server something.

``edgecnn demo`` polls ``/healthz`` and ``/latest`` of the ``run`` it started; ``service status`` asks
an installed instance whether it is healthy. Both want every status back as data (a 503 is an answer,
not an error) and only "nothing answers" as an exception, which ``urllib`` does not give.
:func:`free_port` finds a port for a server edgecnn starts and then asks (the demo's ``run --serve``).
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def content_type(self) -> str:
        """The media type without parameters (``application/json``), lower case."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def get(url: str, *, timeout: float = 5.0, limit: int | None = None) -> Response:
    """GET ``url`` (``http://host:port/path``, IPv6 hosts in brackets); any status is returned.

    ``limit`` caps how much of the body is read (a misbehaving peer cannot make us buffer much).
    Raises OSError when nothing answers in ``timeout`` seconds.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not an http://host:port/ URL: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read() if limit is None else resp.read(limit)
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
    except http.client.HTTPException as exc:  # a peer that speaks something else is as good as none
        raise OSError(f"bad HTTP answer from {url}: {type(exc).__name__}") from exc
    finally:
        conn.close()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """``get`` as a (status, lower-case headers, body) tuple, the shape tests and the demo unpack."""
    response = get(url, timeout=timeout)
    return response.status, response.headers, response.body


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_get_json(url: str, timeout: float = 2.0) -> tuple[int, dict[str, Any]]:
    """GET ``url``; (status, JSON body), or (0, {}) while nothing listens yet."""
    try:
        status, _headers, body = http_get(url, timeout)
    except OSError:
        return 0, {}
    try:
        data = json.loads(body) if body else {}
    except ValueError:
        data = {}
    return status, data if isinstance(data, dict) else {}
