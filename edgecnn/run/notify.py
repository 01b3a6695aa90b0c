"""systemd notification (``sd_notify``) with the standard library: no python-systemd on the device.

systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for an abstract socket) to a
``Type=notify`` service; the service sends newline-separated ``KEY=VALUE`` datagrams to it. With
``WatchdogSec=`` systemd also sets ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``) and restarts the service when
no ``WATCHDOG=1`` arrives in time. ``edgecnn run`` sends ``READY=1`` after its first processed frame,
``WATCHDOG=1`` at half the interval only while frames flow (a stalled camera gets the service
restarted), and ``STOPPING=1`` when it shuts down.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("edgecnn.run")


def socket_address(value: str) -> str | bytes | None:
    """The ``sendto`` address for a NOTIFY_SOCKET value: ``@name`` is Linux's abstract namespace."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # vsock: and other transports are not used by service managers we target


class Notifier:
    """Sends notifications when ``NOTIFY_SOCKET`` is set; every method is a cheap no-op otherwise.

    Never raises: a service must not die because its supervisor went away. Failures are logged once.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        raw = env.get("NOTIFY_SOCKET", "")
        self.address = socket_address(raw) if raw else None
        if raw and self.address is None:
            log.warning("NOTIFY_SOCKET=%s is not a unix socket path or @name: not notifying systemd.", raw)
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isascii() and usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = (
                int(usec) / 1e6 / 2
            )  # ping at half the timeout, as sd_watchdog_enabled advises
        self._sock: socket.socket | None = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("Cannot notify systemd at NOTIFY_SOCKET (%s); continuing without it.", exc)
                self._warned = True
            return False

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1", "STATUS=stopping")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
