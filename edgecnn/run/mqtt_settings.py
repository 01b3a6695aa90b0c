"""The MQTT settings of a run: the ``[mqtt]`` table and ``--mqtt*`` flags checked and resolved into
:class:`MqttSettings` (broker, port, TLS, topic prefix, credentials file, QoS, queue size).

Split from the output (:mod:`edgecnn.run.mqtt`) so the config validator and installers check MQTT settings
without importing the sink or paho-mqtt: nothing here connects, imports paho or reads secrets.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import EdgecnnError
from edgecnn.run.options import MqttOptions, check_value, declared
from edgecnn.safeio import FileKind, file_problem

if TYPE_CHECKING:
    from edgecnn.run.options import RunOptions

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_QUEUE_SIZE: int = declared(MqttOptions)["queue_size"].default

Fail = Callable[[str, str], EdgecnnError]


@dataclass(frozen=True)
class MqttSettings:
    """A checked ``[mqtt]`` table. Build it with :func:`mqtt_settings`; the last four fields are tuning
    knobs that are not config keys."""

    host: str
    port: int
    topic: str  # prefix, without a trailing '/'
    client_id: str
    tls: bool = False
    ca: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    qos: int = 1
    queue_size: int = DEFAULT_QUEUE_SIZE
    keepalive: int = 30
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    discovery: bool = False  # Home Assistant discovery for tracking's counts (edgecnn.track.hass)
    flush_timeout_s: float = 3.0  # on exit, how long queued results may take to reach a connected broker

    @property
    def result_topic(self) -> str:
        return f"{self.topic}/result"

    @property
    def availability_topic(self) -> str:
        return f"{self.topic}/availability"

    @property
    def stats_topic(self) -> str:
        return f"{self.topic}/stats"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


def _segment(text: str) -> str:
    """A hostname or instance name as one topic level: no wildcards, separators or spaces."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "edgecnn"


def instance_name(opts: RunOptions) -> str | None:
    """The service instance: the config file's stem (``/etc/edgecnn/door.toml`` -> ``door``), if any."""
    return Path(opts.config_path).stem if opts.config_path else None


def default_topic(opts: RunOptions) -> str:
    """``edgecnn/HOSTNAME``, or ``edgecnn/HOSTNAME/NAME`` for a config file ``NAME.toml``: the hostname keeps
    a fleet's devices apart (they all run the same instance name), the name keeps one device's instances
    apart."""
    name = instance_name(opts)
    host = _segment(socket.gethostname())
    return f"edgecnn/{host}/{_segment(name)}" if name else f"edgecnn/{host}"


def parse_broker(value: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT``, ``[IPV6]:PORT`` or a bare IPv6 address -> (host, port or None).

    Raises ValueError with the problem; the caller names the flag or key.
    """
    from edgecnn.run.address import BracketError, split_address

    try:
        host_part, port_text = split_address(value, lone="host")
    except BracketError:
        raise ValueError(f"bad broker address {value!r}: use [IPV6]:PORT, e.g. [::1]:1883.") from None
    host = host_part or ""
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ValueError(f"bad broker address {value!r}: use HOST or HOST:PORT, e.g. broker.lan:1883.")
    if port_text is not None and not (
        port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535
    ):
        raise ValueError(f"bad port in {value!r}: use HOST:PORT with a port 1-65535, e.g. broker.lan:1883.")
    return host, None if port_text is None else int(port_text)


def _check_types(table: dict[str, Any], fail: Fail) -> None:
    """Known keys with values of the declared type (the CLI's are typed already; a file's may not be)."""
    keys = declared(MqttOptions)
    for key, value in table.items():
        if key not in keys:
            raise fail(f"mqtt.{key}", f"unknown key; the [mqtt] table takes {', '.join(keys)}.")
        problem = check_value(keys[key], value)  # type, finiteness and range, as for the --mqtt* flags
        if problem is not None:
            raise fail(f"mqtt.{key}", problem)


def _broker(opts: RunOptions, table: dict[str, Any], fail: Fail) -> tuple[str, int | None]:
    """Host and port from ``host`` (HOST[:PORT]) and ``port``, which must agree; the port may stay open."""
    host_value = table.get("host")
    if not host_value:
        cli_keys = sorted(k for k in opts.from_cli if k.startswith("mqtt."))
        raise fail(
            cli_keys[0] if cli_keys else "mqtt.host",
            "the MQTT options need a broker: pass --mqtt HOST[:PORT] or set host in the [mqtt] table.",
        )
    try:
        host, port = parse_broker(host_value)
    except ValueError as exc:
        raise fail("mqtt.host", str(exc)) from None
    if table.get("port") is not None:
        if port is not None and port != table["port"]:
            raise fail("mqtt.port", f"{table['port']} contradicts the port in host {host_value!r}: keep one.")
        port = table["port"]  # in range: _check_types
    return host, port


def _topic(opts: RunOptions, table: dict[str, Any], fail: Fail) -> str:
    """The topic prefix (default edgecnn/HOSTNAME[/NAME]): no wildcards or empty levels, under 1000 bytes."""
    topic: str = table.get("topic") or default_topic(opts)
    if any(c in topic for c in "+#\0") or topic.startswith("/") or topic.endswith("/") or "//" in topic:
        raise fail(
            "mqtt.topic",
            f"{topic!r} is not a topic prefix: no '+', '#', empty levels or leading/trailing '/', e.g. edgecnn/door.",
        )
    if len(topic.encode()) > 1000:
        raise fail("mqtt.topic", "is too long (keep it under 1000 bytes).")
    return topic


def _password_file(table: dict[str, Any], username: str | None, fail: Fail) -> Path | None:
    password_file = Path(table["password_file"]).expanduser() if table.get("password_file") else None
    if password_file is not None:
        if username is None:
            raise fail(
                "mqtt.password_file", "a password needs a username: set username (--mqtt-username) too."
            )
        problem = file_problem(password_file, FileKind.SECRET)  # a FIFO or a folder is not "not found"
        if problem is not None:
            if problem.endswith("not found"):
                problem += ": write the password into it (one line)"
            raise fail("mqtt.password_file", f"{problem}.")
    return password_file


def _client_id(opts: RunOptions, table: dict[str, Any], fail: Fail) -> str:
    client_id: str | None = table.get("client_id")
    if client_id is None:
        # The pid keeps two runs of one instance from kicking each other off the broker in turn.
        parts = [_segment(socket.gethostname()), *filter(None, [instance_name(opts)]), str(os.getpid())]
        return "edgecnn-" + "-".join(_segment(p) for p in parts)
    if not client_id or len(client_id.encode()) > 256:
        raise fail("mqtt.client_id", "must be 1 to 256 bytes.")
    return client_id


def mqtt_settings(opts: RunOptions, fail: Fail) -> MqttSettings | None:
    """Check ``opts.mqtt`` (the ``[mqtt]`` table merged with the ``--mqtt*`` flags); ``None`` when MQTT is off.

    ``fail(key, problem)`` builds the error for a key such as ``mqtt.topic`` (it names the flag for a CLI
    value, the file and key for a config value). No side effects: nothing is connected or imported; files
    are only checked to exist.
    """
    table = dict(opts.mqtt or {})
    if not table:
        return None
    keys = declared(MqttOptions)
    _check_types(table, fail)
    host, port = _broker(opts, table, fail)
    ca = Path(table["ca"]).expanduser() if table.get("ca") else None
    if ca is not None and (problem := file_problem(ca, FileKind.CERTIFICATE)) is not None:
        if problem.endswith("not found"):
            problem = f"CA certificate {problem}: give the PEM file that signed the broker's certificate"
        raise fail("mqtt.ca", f"{problem}.")
    tls = bool(table.get("tls")) or ca is not None
    if port is None:
        port = DEFAULT_TLS_PORT if tls else DEFAULT_PORT
    topic = _topic(opts, table, fail)
    username = table.get("username") or None
    password_file = _password_file(table, username, fail)
    qos = table.get("qos", keys["qos"].default)  # both in range: _check_types
    queue_size = table.get("queue_size", DEFAULT_QUEUE_SIZE)
    client_id = _client_id(opts, table, fail)
    return MqttSettings(
        host=host,
        port=port,
        topic=topic,
        client_id=client_id,
        tls=tls,
        ca=ca,
        username=username,
        password_file=password_file,
        qos=qos,
        queue_size=queue_size,
        discovery=bool(table.get("discovery")),
    )
