"""One splitter for ``HOST:PORT`` addresses (``--serve`` and ``--mqtt``), so that both agree on brackets.

The two callers differ only in what a lone word means: for ``--serve`` it is a port (``8080``), for
``--mqtt`` a host (``broker.lan``, or a bare IPv6 address). Each caller checks the port range and words
its own error, naming its flag.
"""

from __future__ import annotations

from typing import Literal


class BracketError(ValueError):
    """``[IPV6`` without ``]``, or ``]`` followed by something other than ``:PORT``."""


def split_address(value: str, *, lone: Literal["host", "port"]) -> tuple[str | None, str | None]:
    """``HOST:PORT``, ``[IPV6]:PORT``, ``[IPV6]``, ``:PORT`` or a lone word -> (host, port text).

    Either part is ``None`` when absent (``:PORT`` gives an empty host). With ``lone="host"`` text with
    several colons is a bare IPv6 address; with ``lone="port"`` the last colon splits. Raises
    :class:`BracketError` for a malformed bracket; the port text is not checked.
    """
    text = value.strip()
    if text.startswith("["):
        end = text.find("]")
        rest = text[end + 1 :] if end >= 0 else ""
        if end < 0 or (rest and not rest.startswith(":")):
            raise BracketError(value)
        return text[1:end], (rest[1:] if rest else None)
    if lone == "host":
        if text.count(":") == 1:
            host, port = text.split(":")
            return host, port
        return text, None  # a name, an IPv4 address or a bare IPv6 address
    if ":" in text:
        host, port = text.rsplit(":", 1)
        return host, port
    return None, text
