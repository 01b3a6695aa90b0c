"""Results over MQTT: one more result sink, for dashboards and home-automation hubs that already speak MQTT.

Topics under one prefix (``--mqtt-topic``, default ``edgecnn/HOSTNAME``, or ``edgecnn/HOSTNAME/NAME`` for
``--config NAME.toml`` so that every instance of every device has its own):

    PREFIX/result         each result that passes --every/--min-score/--on-change: the --jsonl object
    PREFIX/availability   retained "online" on connect, "offline" on a clean exit and, through the broker's
                          last will, when the process dies or the network goes (Home Assistant's convention)
    PREFIX/stats          retained JSON {"published", "dropped", "queued", "connects"}: updated on connect,
                          at most every 10 s while it changes, and on exit

Inference never waits for the network. :meth:`MqttSink.emit` appends to a bounded queue; a worker thread
hands results to paho-mqtt only while connected, with at most :data:`MAX_IN_FLIGHT` unacknowledged, so
paho's own unbounded store stays small. paho's network thread reconnects with capped exponential backoff
and re-sends unacknowledged QoS 1 messages after a reconnect. While the broker is away the queue keeps the
newest ``queue_size`` results and counts the oldest ones it drops; those counts go to ``/metrics``
(``edgecnn_mqtt_dropped_total``), the stats topic and the run summary.

This module imports paho-mqtt (the ``[mqtt]`` extra) only inside :class:`MqttSink`, so
:func:`mqtt_settings` is safe for the config validator and installers on machines without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import ConfigError, EdgecnnError, RuntimeMissing
from edgecnn.run.options import MqttOptions, check_value, declared
from edgecnn.safeio import FileKind, file_problem

if TYPE_CHECKING:
    from edgecnn.run.options import RunOptions
    from edgecnn.run.results import FrameResult
    from edgecnn.run.stats import RunSummary

log = logging.getLogger("edgecnn.run.mqtt")

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883
DEFAULT_QUEUE_SIZE: int = declared(MqttOptions)["queue_size"].default
MAX_IN_FLIGHT = 20  # results handed to paho and not yet acknowledged
STATS_EVERY_S = 10.0
ONLINE, OFFLINE = "online", "offline"

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


@dataclass(frozen=True)
class MqttCounts:
    published: int  # results the broker acknowledged (QoS 1) or that were written to it (QoS 0)
    dropped: int  # results lost: oldest ones pushed out of a full queue, or still unsent at exit
    queued: int  # results waiting for the broker
    connects: int  # successful connections (1 + reconnects)
    connected: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    )


def _import_paho() -> Any:
    try:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
    except ImportError:
        raise RuntimeMissing(
            "--mqtt needs paho-mqtt 2.x (not installed, or older): pip install 'edgecnn[mqtt]'."
        ) from None
    return mqtt, CallbackAPIVersion


def _read_password(path: Path) -> str:
    from edgecnn.safeio import read_text

    text = read_text(path, FileKind.SECRET)
    lines = text.splitlines()
    return lines[0] if lines else ""


class MqttSink:
    """Publishes results to an MQTT broker from its own threads; see the module docstring for the topics.

    Starts connecting at once, in the background: a broker that is down or unreachable delays nothing.
    :meth:`finish` (called by the pipeline before it builds the summary) flushes what it can and freezes
    the counts; :meth:`close` then says ``offline`` and disconnects cleanly.
    """

    def __init__(self, settings: MqttSettings, *, clock: Callable[[], float] = time.monotonic) -> None:
        mqtt, api = _import_paho()
        self.settings = settings
        self.clock = clock
        self._ok = mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS
        self._queue_full = mqtt.MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
        self._cond = threading.Condition()
        self._queue: deque[FrameResult] = deque()
        # mid -> "result" | "control" | "stale": handed to paho and not acknowledged yet.
        self._pending: dict[int, str] = {}
        self._early: set[int] = set()  # mids paho confirmed before publish() returned to us
        self._results_in_flight = 0
        self._published = self._dropped = self._connects = 0
        self._connected = self._finished = self._stopping = False
        self._outage_logged = False
        self._last_stats: tuple[int, ...] | None = None

        client = mqtt.Client(
            api.VERSION2, client_id=settings.client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
        client.will_set(settings.availability_topic, OFFLINE, qos=1, retain=True)
        if settings.username is not None:
            password = _read_password(settings.password_file) if settings.password_file else None
            client.username_pw_set(settings.username, password)
        if settings.tls:
            try:
                client.tls_set(ca_certs=str(settings.ca) if settings.ca else None)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                raise ConfigError(
                    f"mqtt.ca {settings.ca}: not a usable PEM CA certificate ({exc}); give the CA that signed "
                    "the broker's certificate."
                ) from None
        client.reconnect_delay_set(settings.reconnect_min_s, settings.reconnect_max_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        log.info(
            "publishing results to %s topic %s/result (availability, stats beside it)",
            settings.url,
            settings.topic,
        )
        self._client = client
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive)
        client.loop_start()
        self._worker = threading.Thread(target=self._pump, name="edgecnn-mqtt", daemon=True)
        self._worker.start()

    # -- the inference thread's side: never blocks on the network ----------------------------------------

    def emit(self, result: FrameResult) -> None:
        with self._cond:
            if self._finished:
                return
            if len(self._queue) >= self.settings.queue_size:
                self._queue.popleft()  # keep the newest: after an outage, recent results matter most
                self._dropped += 1
            self._queue.append(result)
            self._cond.notify_all()

    def counts(self) -> MqttCounts:
        with self._cond:
            return self._counts()

    def _counts(self) -> MqttCounts:
        return MqttCounts(
            published=self._published,
            dropped=self._dropped,
            queued=len(self._queue) + self._results_in_flight,
            connects=self._connects,
            connected=self._connected,
        )

    def finish(self, timeout: float | None = None) -> MqttCounts:
        """Stop taking results; give the queue up to ``timeout`` (default ``flush_timeout_s``) to reach the
        broker if it is connected; count what is left as dropped. Returns the final counts."""
        with self._cond:
            if not self._finished:
                deadline = self.clock() + (self.settings.flush_timeout_s if timeout is None else timeout)
                while (self._queue or self._results_in_flight) and self._connected:
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.1))
                left = len(self._queue) + self._results_in_flight
                if left:
                    log.warning(
                        "MQTT: %d result(s) not delivered to %s at exit (%s).",
                        left,
                        self.settings.url,
                        "broker too slow" if self._connected else "not connected to the broker",
                    )
                self._dropped += left
                self._queue.clear()
                self._results_in_flight = 0
                # Results paho may still deliver are no longer counted (they are counted as dropped).
                self._pending = {
                    mid: ("stale" if kind == "result" else kind) for mid, kind in self._pending.items()
                }
                self._finished = True
                self._cond.notify_all()
            return self._counts()

    def close(self, summary: RunSummary | None) -> None:
        self.finish()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._worker.join(timeout=5)
        client = self._client
        if self.counts().connected:
            self._publish_stats(force=True)
            self._publish(self.settings.availability_topic, OFFLINE, qos=1, retain=True, kind="control")
            with self._cond:  # wait (briefly) for the broker to take both
                deadline = self.clock() + 1.0
                while self._connected and any(k == "control" for k in self._pending.values()):
                    remaining = deadline - self.clock()
                    if remaining <= 0:
                        break
                    self._cond.wait(min(remaining, 0.1))
        client.disconnect()  # a clean DISCONNECT: the broker discards the last will
        client.loop_stop()

    # -- the worker thread: queue -> paho, only while connected -------------------------------------------

    def _pump(self) -> None:
        next_stats = self.clock() + STATS_EVERY_S
        while True:
            with self._cond:
                while True:
                    if self._stopping:
                        return
                    if self._connected and self._queue and self._results_in_flight < MAX_IN_FLIGHT:
                        result: FrameResult | None = self._queue.popleft()
                        self._results_in_flight += 1  # in hand: finish() must count it
                        break
                    wait = next_stats - self.clock()
                    if wait <= 0:
                        result = None
                        break
                    self._cond.wait(wait)
            if result is None:
                self._publish_stats()
                next_stats = self.clock() + STATS_EVERY_S
                continue
            payload = json.dumps(result.to_dict(), separators=(",", ":"))
            if not self._publish(self.settings.result_topic, payload, qos=self.settings.qos, kind="result"):
                with self._cond:  # QoS 0 and the connection went in between: put it back for the next one
                    if not self._finished:  # (else finish() counted it as dropped already)
                        self._results_in_flight -= 1
                        if len(self._queue) < self.settings.queue_size:
                            self._queue.appendleft(result)
                        else:
                            self._dropped += 1

    def _publish(self, topic: str, payload: str, *, qos: int, kind: str, retain: bool = False) -> bool:
        """Hand one message to paho (never while holding our lock: paho calls on_publish under its own).
        False when paho did not take it (QoS 0 while disconnected). A result must already be counted in
        ``_results_in_flight``."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        # paho stores QoS 1 messages before sending: without a connection they go after the next connect.
        taken = info.rc == self._ok or (qos > 0 and info.rc != self._queue_full)
        with self._cond:
            if not taken:
                return False
            if kind == "result" and self._finished:
                kind = "stale"  # finish() counted it as dropped while we were publishing it
            if info.mid in self._early:
                self._early.discard(info.mid)
                if kind == "result":
                    self._results_in_flight -= 1
                self._acknowledged(kind)
            else:
                self._pending[info.mid] = kind
        return True

    def _acknowledged(self, kind: str) -> None:
        if kind == "result" and not self._finished:
            self._published += 1
        self._cond.notify_all()

    def _publish_stats(self, force: bool = False) -> None:
        with self._cond:
            counts = self._counts()
            key = (counts.published, counts.dropped, counts.queued, counts.connects)
            if not counts.connected or (key == self._last_stats and not force):
                return
            self._last_stats = key
        payload = {k: v for k, v in counts.to_dict().items() if k != "connected"}
        self._publish(
            self.settings.stats_topic,
            json.dumps(payload, separators=(",", ":")),
            qos=1,
            kind="control",
            retain=True,
        )

    # -- paho's network thread ----------------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            with self._cond:
                first, self._outage_logged = not self._outage_logged, True
            hint = (
                " Check mqtt username and password_file."
                if "authori" in str(reason_code).lower() or "password" in str(reason_code).lower()
                else ""
            )
            (log.warning if first else log.debug)(
                "MQTT broker %s refused the connection: %s.%s Retrying.", self.settings.url, reason_code, hint
            )
            return
        with self._cond:
            self._connected = True
            self._connects += 1
            again = self._connects > 1
            self._outage_logged = False
            self._cond.notify_all()
        (log.info if again else log.debug)("MQTT: connected to %s", self.settings.url)
        self._publish(self.settings.availability_topic, ONLINE, qos=1, kind="control", retain=True)
        self._publish_stats(force=True)

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        with self._cond:
            first, self._outage_logged = not self._outage_logged, True
        if first:
            log.warning(
                "MQTT: cannot connect to %s; retrying in the background (backoff %g s to %g s), keeping the "
                "newest %d results meanwhile.",
                self.settings.url,
                self.settings.reconnect_min_s,
                self.settings.reconnect_max_s,
                self.settings.queue_size,
            )

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        with self._cond:
            was_connected, self._connected = self._connected, False
            stopping = self._stopping
            if self.settings.qos == 0:
                # paho forgets unsent QoS 0 packets on reconnect: those results are lost.
                lost = [mid for mid, kind in self._pending.items() if kind == "result"]
                for mid in lost:
                    del self._pending[mid]
                self._results_in_flight -= len(lost)
                if not self._finished:
                    self._dropped += len(lost)
            self._outage_logged = True
            self._cond.notify_all()
        if was_connected and not stopping:
            log.warning(
                "MQTT: lost the connection to %s (%s); reconnecting in the background, keeping the newest %d "
                "results meanwhile.",
                self.settings.url,
                reason_code,
                self.settings.queue_size,
            )

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        with self._cond:
            kind = self._pending.pop(mid, None)
            if kind is None:
                self._early.add(mid)
                return
            if kind == "result":
                self._results_in_flight -= 1
            self._acknowledged(kind)


def open_mqtt_sink(opts: RunOptions, fail: Fail) -> MqttSink | None:
    """The MQTT sink ``opts`` ask for (``None`` when MQTT is off); raises RuntimeMissing without paho-mqtt."""
    settings = mqtt_settings(opts, fail)
    return None if settings is None else MqttSink(settings)
