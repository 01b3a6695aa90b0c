"""Results over MQTT: one more result sink, for dashboards and home-automation hubs that already speak MQTT.

Topics under one prefix (``--mqtt-topic``, default ``edgecnn/HOSTNAME``, or ``edgecnn/HOSTNAME/NAME`` for
``--config NAME.toml`` so that every instance of every device has its own):

    PREFIX/result         each result that passes --every/--min-score/--on-change: the --jsonl object
    PREFIX/availability   retained "online" on connect, "offline" on a clean exit and, through the broker's
                          last will, when the process dies or the network goes (Home Assistant's convention)
    PREFIX/stats          retained JSON {"published", "dropped", "queued", "connects"}: updated on connect,
                          at most every 10 s while it changes, and on exit
    PREFIX/events         with tracking (results with boxes): each event (cross, enter, exit, dwell), QoS 1
    PREFIX/counts         with lines or zones: retained JSON {"lines": {...}, "zones": {...}} on each change
    homeassistant/sensor/...   with discovery = true: retained Home Assistant configs for the counts

Inference never waits for the network. :meth:`MqttSink.emit` appends to a bounded queue; a worker thread
hands results to paho-mqtt only while connected, with at most :data:`MAX_IN_FLIGHT` unacknowledged, so
paho's own unbounded store stays small. paho's network thread reconnects with capped exponential backoff
and re-sends unacknowledged QoS 1 messages after a reconnect. While the broker is away the queue keeps the
newest ``queue_size`` results and counts the oldest ones it drops; those counts go to ``/metrics``
(``edgecnn_mqtt_dropped_total``), the stats topic and the run summary.

The settings (:mod:`edgecnn.run.mqtt_settings`) are checked without this module; this module imports
paho-mqtt (the ``[mqtt]`` extra) only inside :class:`MqttSink`, and the run imports this module only when
MQTT is configured.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.errors import ConfigError, RuntimeMissing
from edgecnn.run.mqtt_settings import Fail, MqttSettings, mqtt_settings
from edgecnn.safeio import FileKind

if TYPE_CHECKING:
    from edgecnn.run.options import RunOptions
    from edgecnn.run.results import FrameResult
    from edgecnn.run.stats import RunSummary

log = logging.getLogger("edgecnn.run.mqtt")

MAX_IN_FLIGHT = 20  # results handed to paho and not yet acknowledged
STATS_EVERY_S = 10.0
ONLINE, OFFLINE = "online", "offline"


@dataclass(frozen=True)
class MqttCounts:
    published: int  # results the broker acknowledged (QoS 1) or that were written to it (QoS 0)
    dropped: int  # results lost: oldest ones pushed out of a full queue, or still unsent at exit
    queued: int  # results waiting for the broker
    connects: int  # successful connections (1 + reconnects)
    connected: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        self._last_counts: str | None = None  # the tracking counts last published (retained)
        self._announce: list[tuple[str, str]] = []  # retained discovery configs, sent on every connect

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

    def track_step(self, step: Any, stage: Any) -> None:
        """A listener of the track stage (edgecnn.track): each event to ``PREFIX/events`` (QoS 1), and the
        line counts and zone occupancy, retained, to ``PREFIX/counts`` when they change. Events are few, so
        they go straight to paho (which keeps QoS 1 messages while the broker is away)."""
        with self._cond:
            if self._finished:
                return
        topic = self.settings.topic
        for event in step.events:
            payload = json.dumps(event.to_json(), separators=(",", ":"))
            self._publish(f"{topic}/events", payload, qos=1, kind="control")
        if not stage.scene.empty:
            counts = json.dumps(stage.scene.counts(), separators=(",", ":"), sort_keys=True)
            if counts != self._last_counts:
                self._last_counts = counts
                self._publish(f"{topic}/counts", counts, qos=1, kind="control", retain=True)

    def announce(self, messages: list[tuple[str, str]], counts: str | None = None) -> None:
        """Retained (topic, payload) messages sent now if connected and again on every connect (Home
        Assistant discovery); ``counts`` the first retained ``PREFIX/counts`` (so sensors start at 0)."""
        with self._cond:
            self._announce = list(messages)
            connected = self._connected
            if counts is not None:
                self._last_counts = counts
        if connected:
            self._send_announce()

    def _send_announce(self) -> None:
        with self._cond:
            messages, counts = list(self._announce), self._last_counts
        for topic, payload in messages:
            self._publish(topic, payload, qos=1, kind="control", retain=True)
        if messages and counts is not None:
            self._publish(f"{self.settings.topic}/counts", counts, qos=1, kind="control", retain=True)

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
        self._send_announce()

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
