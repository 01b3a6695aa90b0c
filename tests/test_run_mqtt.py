"""``edgecnn run --mqtt``: results, availability and drop counts against a real broker (Debian's mosquitto).

Each test starts its own mosquitto on a free loopback port with a generated config and subscribes with a
real paho-mqtt client; runs are real ``edgecnn run`` processes (or the library pipeline in a thread where
the test needs its summary object) on real videos and the digits model.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgecnn.errors import ConfigError, UsageError
from edgecnn.run.config import load_run_config, merge_cli, validate_run_options
from edgecnn.run.mqtt_settings import default_topic, mqtt_settings, parse_broker
from edgecnn.run.options import RunOptions
from edgecnn.run.pipeline import Pipeline
from tests.conftest import error_lines, run_cli
from tests.run_support import LineReader, digit_frame, free_port, http_get, wait_until, write_video

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
needs_broker = pytest.mark.skipif(
    not os.access(MOSQUITTO, os.X_OK),
    reason="mosquitto is not installed (apt install mosquitto, or tools/system-deps as root)",
)
HOSTNAME = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-")


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """mosquitto on 127.0.0.1:``port``; ``persistence`` keeps sessions and queued messages across a restart
    (written on SIGTERM, read on start), as a broker in production would."""

    def __init__(
        self, folder: Path, *, persistence: bool = False, users: dict[str, str] | None = None
    ) -> None:
        self.folder = folder
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        auth = "allow_anonymous true\n"
        if users:
            passwords = folder / "passwords"
            for user, password in users.items():
                create = [] if passwords.exists() else ["-c"]
                argv = [shutil.which("mosquitto_passwd") or "mosquitto_passwd", "-b", *create]
                subprocess.run([*argv, str(passwords), user, password], check=True, capture_output=True)
            auth = f"allow_anonymous false\npassword_file {passwords}\n"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n" + auth + f"persistence {'true' if persistence else 'false'}\n"
            f"persistence_location {folder}/\n"
            f"user {getpass.getuser()}\n"  # as root, mosquitto would switch to its own user
        )
        self.log = folder / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Broker:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=log, stderr=log)
        wait_until(lambda: accepts(self.port) or self._died(), timeout=20)
        return self

    def _died(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"mosquitto exited {self.proc.returncode}: {self.log.read_text()[-2000:]}")
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            assert self.proc.wait(timeout=20) == 0, self.log.read_text()[-2000:]
        self.proc = None


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@dataclass(frozen=True)
class Message:
    topic: str
    payload: str
    retain: bool


class Subscriber:
    """A real paho client subscribed to ``pattern`` (QoS 1), resubscribing after each reconnect."""

    def __init__(
        self,
        port: int,
        pattern: str,
        *,
        client_id: str = "",
        persistent: bool = False,
        auth: tuple[str, str] | None = None,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        client.reconnect_delay_set(0.2, 1)  # type: ignore[arg-type]
        if auth is not None:
            client.username_pw_set(*auth)

        def on_connect(c, userdata, flags, reason_code, properties):
            c.subscribe(pattern, qos=1)

        def on_subscribe(c, userdata, mid, reason_codes, properties):
            self.subscribed.set()

        def on_message(c, userdata, msg):
            with self._lock:
                self.messages.append(Message(msg.topic, msg.payload.decode(), bool(msg.retain)))

        client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
        client.connect_async("127.0.0.1", port, keepalive=10)
        client.loop_start()
        self.client = client
        assert self.subscribed.wait(20), "the test subscriber could not subscribe"

    def on(self, suffix: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if m.topic.endswith("/" + suffix)]

    def results(self) -> list[dict]:
        return [json.loads(m.payload) for m in self.on("result")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribers():
    made: list[Subscriber] = []

    def make(*args, **kwargs) -> Subscriber:
        made.append(Subscriber(*args, **kwargs))
        return made[-1]

    yield make
    for sub in made:
        sub.close()


@pytest.fixture(scope="module")
def digits_clip(digits_model, tmp_path_factory):
    """30 frames of held-out digits (30 fps: one second)."""
    path = tmp_path_factory.mktemp("mqtt_video") / "digits.avi"
    return write_video(path, [digit_frame(image) for image in digits_model.images[:30]])


def summary_mqtt(text: str) -> dict[str, int]:
    match = re.search(r"mqtt: published (\d+)\s+dropped (\d+)\s+connects (\d+)", text)
    assert match, text
    return dict(zip(("published", "dropped", "connects"), map(int, match.groups()), strict=True))


# -- against a real broker ---------------------------------------------------------------------------------


@needs_broker
def test_results_are_the_jsonl_records_honouring_every(
    broker, subscribers, digits_model, digits_clip, tmp_path
):
    sub = subscribers(broker.port, "edgecnn/t1/#")
    jsonl = tmp_path / "r.jsonl"
    result = run_cli(
        "run", digits_model.tflite, "--source", digits_clip, "--crop", "center", "--top-k", "2",
        "--jsonl", jsonl, "--every", "3",
        "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-topic", "edgecnn/t1",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert not error_lines(result.stderr), result.stderr
    wait_until(lambda: [m.payload for m in sub.on("availability")][-1:] == ["offline"], timeout=20)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["n"] for r in records] == list(range(3, 31, 3))
    assert sub.results() == records  # the same objects, in order: the JSONL format over MQTT
    assert [m.payload for m in sub.on("availability")] == ["online", "offline"]
    stats = json.loads(sub.on("stats")[-1].payload)
    assert stats == {"published": 10, "dropped": 0, "queued": 0, "connects": 1}
    assert summary_mqtt(result.stdout) == {"published": 10, "dropped": 0, "connects": 1}
    # A client that subscribes later still learns the state: availability and stats are retained.
    late = subscribers(broker.port, "edgecnn/t1/+")
    wait_until(lambda: late.on("stats") and late.on("availability"), timeout=10)
    assert [(m.payload, m.retain) for m in late.on("availability")] == [("offline", True)]
    assert not late.on("result")  # results are events, not state: never retained


@needs_broker
def test_config_table_qos0_and_default_topic(broker, subscribers, digits_model, digits_clip, tmp_path):
    sub = subscribers(broker.port, "edgecnn/#")
    config = tmp_path / "door.toml"
    config.write_text(
        f'model = "{digits_model.tflite}"\nsource = "{digits_clip}"\nmax_frames = 12\nquiet = true\n\n'
        f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\nqos = 0\n'
    )
    result = run_cli("run", "--config", config)
    assert result.code == 0, result.stderr
    prefix = f"edgecnn/{HOSTNAME}/door"  # NAME.toml: the service instance, on this host
    wait_until(lambda: [m.payload for m in sub.on("availability")][-1:] == ["offline"], timeout=20)
    assert {m.topic for m in sub.messages} == {
        f"{prefix}/result",
        f"{prefix}/availability",
        f"{prefix}/stats",
    }
    assert [r["n"] for r in sub.results()] == list(range(1, 13))
    assert summary_mqtt(result.stdout) == {"published": 12, "dropped": 0, "connects": 1}


@needs_broker
def test_last_will_says_offline_when_the_runner_is_killed(broker, subscribers, digits_model, tmp_path):
    video = write_video(
        tmp_path / "long.avi", [digit_frame(image) for image in digits_model.images[:60]], fps=10.0
    )  # six seconds at --realtime: still running when killed
    sub = subscribers(broker.port, "edgecnn/t2/#")
    env = {k: v for k, v in os.environ.items() if k not in ("EDGECNN_DEBUG", "NOTIFY_SOCKET")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "run", str(digits_model.tflite), "--source", str(video), "--realtime",
         "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-topic", "edgecnn/t2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    out, err = LineReader(proc.stdout), LineReader(proc.stderr)
    try:
        wait_until(lambda: sub.results() or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, err.text()
        assert [m.payload for m in sub.on("availability")] == ["online"]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=20) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # No clean DISCONNECT reached the broker: it publishes the will.
    wait_until(lambda: [m.payload for m in sub.on("availability")] == ["online", "offline"], timeout=20)
    assert "summary:" not in out.text()
    late = subscribers(broker.port, "edgecnn/t2/availability")
    wait_until(lambda: late.on("availability"), timeout=10)
    assert [(m.payload, m.retain) for m in late.on("availability")] == [("offline", True)]


@needs_broker
def test_broker_restart_loses_at_most_the_queue_and_never_stalls_frames(digits_model, subscribers, tmp_path):
    broker = Broker(tmp_path, persistence=True).start()
    pipeline: Pipeline | None = None
    try:
        # A persistent session: the broker keeps what arrives for this subscriber while it reconnects.
        sub = subscribers(broker.port, "edgecnn/t3/#", client_id="edgecnn-test-t3", persistent=True)
        jsonl = tmp_path / "r.jsonl"
        options = RunOptions(
            model=digits_model.tflite, source="demo", fps=20, duration=120, quiet=True, jsonl=str(jsonl),
            serve="127.0.0.1:0",
            mqtt={"host": "127.0.0.1", "port": broker.port, "topic": "edgecnn/t3", "queue_size": 10},
        )  # fmt: skip
        pipeline = Pipeline(options)
        outcome: dict = {}
        thread = threading.Thread(target=lambda: outcome.update(summary=pipeline.run()), daemon=True)
        thread.start()
        assert pipeline.serving.wait(30)
        base = "http://{}:{}".format(*pipeline.server_address)

        def metric(name: str) -> float:
            body = http_get(base + "/metrics")[2].decode()
            return float(re.search(rf"^{name} (\S+)$", body, re.M).group(1))

        wait_until(lambda: len(sub.results()) >= 5, timeout=30)
        assert metric("edgecnn_mqtt_connected") == 1
        before = max(r["n"] for r in sub.results())
        broker.stop()
        wait_until(lambda: metric("edgecnn_mqtt_connected") == 0, timeout=10)
        frames_down = metric("edgecnn_frames_total")
        # Broker down: frames keep being classified and the queue overflows (counted, oldest first).
        wait_until(lambda: metric("edgecnn_mqtt_dropped_total") >= 20, timeout=20)
        assert metric("edgecnn_frames_total") > frames_down
        assert metric("edgecnn_mqtt_queued") >= 10
        broker.start()
        wait_until(lambda: metric("edgecnn_mqtt_connected") == 1, timeout=20)
        frames_up = metric("edgecnn_frames_total")
        # Publishing resumes: the queued results, then new ones.
        wait_until(lambda: any(r["n"] > frames_up + 5 for r in sub.results()), timeout=20)
        pipeline.stop()  # like SIGTERM: the run finishes, flushes and says offline
        thread.join(timeout=60)
        assert not thread.is_alive(), "the run did not finish"
        summary = outcome["summary"]
        wait_until(lambda: [m.payload for m in sub.on("availability")][-1:] == ["offline"], timeout=20)
    finally:
        if pipeline is not None:
            pipeline.stop()
        broker.stop()
    assert summary.stopped == "signal" and summary.frames > frames_up + 5
    expected = {json.loads(line)["n"] for line in jsonl.read_text().splitlines()}
    received = {r["n"] for r in sub.results()}  # QoS 1 may deliver a re-sent result twice
    missing = sorted(expected - received)
    mqtt = summary.mqtt
    assert mqtt["dropped"] > 0 and mqtt["connects"] == 2 and mqtt["queued"] == 0
    # Exactly the results the full queue pushed out are missing, and they are one run of consecutive
    # results from the outage: the oldest ones. Everything else arrived, queued ones after the reconnect.
    assert len(missing) == mqtt["dropped"]
    assert missing == list(range(missing[0], missing[0] + len(missing)))
    assert before < missing[0] and missing[-1] <= frames_up - 10  # the queue kept the newest 10
    assert received <= expected and mqtt["published"] == len(received)


@needs_broker
def test_username_and_password_file(subscribers, digits_model, digits_clip, tmp_path):
    broker = Broker(tmp_path, users={"cam": "right horse", "watcher": "w"}).start()
    try:
        sub = subscribers(broker.port, "edgecnn/t5/#", auth=("watcher", "w"))
        good, bad = tmp_path / "good", tmp_path / "bad"
        good.write_text("right horse\n")
        bad.write_text("wrong horse\n")
        common = ["run", digits_model.tflite, "--source", digits_clip, "--max-frames", "5", "--quiet",
                  "--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-topic", "edgecnn/t5", "--mqtt-username", "cam"]  # fmt: skip
        ok = run_cli(*common, "--mqtt-password-file", good)
        assert ok.code == 0 and not error_lines(ok.stderr), ok.stderr
        assert summary_mqtt(ok.stdout) == {"published": 5, "dropped": 0, "connects": 1}
        wait_until(lambda: [m.payload for m in sub.on("availability")][-1:] == ["offline"], timeout=20)
        assert [r["n"] for r in sub.results()] == [1, 2, 3, 4, 5]
        refused = run_cli(*common, "--mqtt-password-file", bad)
    finally:
        broker.stop()
    assert refused.code == 0, refused.stderr  # the run goes on without the broker
    assert summary_mqtt(refused.stdout) == {"published": 0, "dropped": 5, "connects": 0}
    warnings = error_lines(refused.stderr)
    assert "refused the connection" in warnings[0] and "Check mqtt username and password_file" in warnings[0]
    assert "wrong horse" not in refused.stderr + refused.stdout


@needs_broker
def test_unreachable_broker_neither_blocks_nor_fails_the_run(digits_model, digits_clip, tmp_path):
    port = free_port()  # nothing listens here
    jsonl = tmp_path / "r.jsonl"
    result = run_cli(
        "run", digits_model.tflite, "--source", digits_clip, "--jsonl", jsonl, "--quiet",
        "--mqtt", f"127.0.0.1:{port}",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "30 frames" in result.stdout and len(jsonl.read_text().splitlines()) == 30
    assert summary_mqtt(result.stdout) == {"published": 0, "dropped": 30, "connects": 0}
    warnings = error_lines(result.stderr)
    assert warnings[0].startswith(
        f"edgecnn: warning: MQTT: cannot connect to mqtt://127.0.0.1:{port}; retrying"
    )
    assert "30 result(s) not delivered" in warnings[-1]
    assert not [line for line in warnings if "error" in line]


# -- options, config and errors: no broker needed ----------------------------------------------------------


def test_parse_broker_forms():
    assert parse_broker("broker.lan") == ("broker.lan", None)
    assert parse_broker("10.0.0.2:1884") == ("10.0.0.2", 1884)
    assert parse_broker("[::1]:1883") == ("::1", 1883)
    assert parse_broker("::1") == ("::1", None)
    for bad in ("", ":1883", "h:0", "h:99999", "h:x", "[::1", "a b"):
        with pytest.raises(ValueError):
            parse_broker(bad)


def test_defaults_topic_port_client_id(tmp_path):
    def fail(key, problem):
        return ConfigError(f"{key}: {problem}")

    plain = mqtt_settings(RunOptions(mqtt={"host": "broker.lan"}), fail)
    assert (plain.topic, plain.port, plain.qos, plain.queue_size, plain.tls) == (
        f"edgecnn/{HOSTNAME}",
        1883,
        1,
        1000,
        False,
    )
    assert plain.client_id == f"edgecnn-{HOSTNAME}-{os.getpid()}"
    service = RunOptions(mqtt={"host": "broker.lan"}, config_path=Path("/etc/edgecnn/door.toml"))
    assert default_topic(service) == f"edgecnn/{HOSTNAME}/door"
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until connecting\n")
    tls = mqtt_settings(RunOptions(mqtt={"host": "b", "ca": str(ca)}), fail)
    assert (tls.tls, tls.port, tls.url) == (True, 8883, "mqtts://b:8883")
    assert mqtt_settings(RunOptions(), fail) is None and mqtt_settings(RunOptions(mqtt={}), fail) is None


def test_config_table_paths_and_cli_overrides(tmp_path):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "pw").write_text("s3cret\n")
    (tmp_path / "m.tflite").write_bytes(b"")
    config = tmp_path / "cam.toml"
    config.write_text(
        'model = "m.tflite"\nsource = "demo"\n[mqtt]\nhost = "broker.lan"\nport = 1884\n'
        'username = "cam"\npassword_file = "secrets/pw"\nqos = 0\nqueue_size = 50\n'
    )
    opts = load_run_config(config)
    assert opts.mqtt["password_file"] == str(tmp_path / "secrets" / "pw")
    settings = mqtt_settings(opts, lambda k, p: ConfigError(p))
    assert (settings.host, settings.port, settings.qos, settings.queue_size, settings.username) == (
        "broker.lan", 1884, 0, 50, "cam"
    )  # fmt: skip
    # --mqtt replaces the file's host and port; other flags replace single keys.
    merged = merge_cli(opts, {"mqtt": {"host": "10.0.0.9", "topic": "site/cam", "qos": None}})
    settings = mqtt_settings(merged, lambda k, p: ConfigError(p))
    assert (settings.host, settings.port, settings.topic, settings.qos) == ("10.0.0.9", 1883, "site/cam", 0)
    assert {"mqtt.host", "mqtt.topic"} <= merged.from_cli and "mqtt.qos" not in merged.from_cli
    assert merge_cli(opts, {"mqtt": {"host": None}}).mqtt == opts.mqtt


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ('hots = "b"', ["unknown key 'hots' in [mqtt]", "did you mean 'host'"]),
        ('host = "b"\nport = "1883"', ["mqtt.port must be an integer", "string"]),
        ('host = "b"\ntls = "yes"', ["mqtt.tls must be true or false"]),
        ('host = "b"\nqos = 2', ["mqtt.qos (--mqtt-qos)", "between 0 and 1"]),
        ('host = "b"\ntopic = "home/+/cam"', ["mqtt.topic (--mqtt-topic)", "'+'"]),
        ('host = "b"\ntopic = "home/"', ["mqtt.topic", "trailing '/'"]),
        ('host = "b:1884"\nport = 1885', ["mqtt.port (--mqtt)", "contradicts"]),
        ('host = "b:70000"', ["mqtt.host (--mqtt)", "port 1-65535"]),
        ('topic = "edgecnn/door"', ["mqtt.host (--mqtt)", "need a broker"]),
        ('host = "b"\npassword_file = "pw"', ["mqtt.password_file", "needs a username"]),
        ('host = "b"\nusername = "u"\npassword_file = "nope"', ["mqtt.password_file", "not found"]),
        ('host = "b"\nca = "nope.pem"', ["mqtt.ca (--mqtt-ca)", "not found"]),
        ('host = "b"\nqueue_size = 0', ["mqtt.queue_size", "between 1 and"]),
    ],
)
def test_bad_mqtt_tables_are_one_line_naming_the_key(tmp_path, table, words):
    (tmp_path / "m.tflite").write_bytes(b"")
    config = tmp_path / "cam.toml"
    config.write_text(f'model = "m.tflite"\nsource = "demo"\n[mqtt]\n{table}\n')
    with pytest.raises(ConfigError) as info:
        validate_run_options(load_run_config(config), check_model=False)
    message = str(info.value)
    assert message.startswith(str(config)) and "\n" not in message
    for word in words:
        assert word in message, message


def test_cli_flag_errors_name_the_flag(tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(b"")
    with pytest.raises(UsageError, match=r"^--mqtt-topic: .*need a broker"):
        validate_run_options(merge_cli(RunOptions(model=model, source="demo"), {"mqtt": {"topic": "a/b"}}))
    result = run_cli("run", model, "--source", "demo", "--mqtt", "localhost", "--mqtt-topic", "a/#")
    assert result.code == 2
    assert error_lines(result.stderr) == [
        "edgecnn: error: --mqtt-topic: 'a/#' is not a topic prefix: no '+', '#', empty levels or "
        "leading/trailing '/', e.g. edgecnn/door."
    ]


def test_without_paho_the_run_says_which_extra_to_install(tmp_path, digits_model, digits_clip):
    """paho-mqtt hidden from the import system, as on a device installed without the [mqtt] extra."""
    probe = (
        "import sys\n"
        "sys.modules['paho'] = None\n"
        "from edgecnn.cli import main\n"
        f"sys.argv = ['edgecnn', 'run', {str(digits_model.tflite)!r}, '--source', {str(digits_clip)!r}, "
        "'--mqtt', '127.0.0.1:1']\n"
        "main()\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 8, out.stderr
    assert error_lines(out.stderr) == [
        "edgecnn: error: --mqtt needs paho-mqtt 2.x (not installed, or older): pip install 'edgecnn[mqtt]'."
    ]
    assert "Traceback" not in out.stderr


def test_a_ca_file_that_is_not_a_certificate_is_a_config_error(tmp_path):
    from edgecnn.run.mqtt import MqttSink

    ca = tmp_path / "ca.pem"
    ca.write_text("this is not a certificate\n")
    settings = mqtt_settings(
        RunOptions(mqtt={"host": "127.0.0.1", "ca": str(ca)}), lambda k, p: ConfigError(p)
    )
    with pytest.raises(ConfigError, match=r"^mqtt.ca .*ca.pem: not a usable PEM CA certificate"):
        MqttSink(settings)


@pytest.mark.parametrize(
    ("flag", "kind", "reason"),
    [
        ("--mqtt-password-file", "fifo", "is a FIFO (named pipe), not a regular file"),
        ("--mqtt-password-file", "dir", "is a directory, not a regular file"),
        ("--mqtt-password-file", "missing", "not found: write the password into it"),
        ("--mqtt-ca", "fifo", "is a FIFO (named pipe), not a regular file"),
        ("--mqtt-ca", "dir", "is a directory, not a regular file"),
    ],
)
def test_password_and_ca_files_that_are_not_files_say_what_they_are(tmp_path, flag, kind, reason):
    """A FIFO or a folder given as a file is named as what it is, not "not found" (and never blocked on)."""
    from tests.conftest import MOBILENET

    path = tmp_path / "secret"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    extra = ["--mqtt-username", "u"] if flag == "--mqtt-password-file" else []
    result = run_cli(
        "run", MOBILENET, "--source", "demo", "--max-frames", "1", "--mqtt", "127.0.0.1", *extra, flag, path,
        timeout=60,
    )  # fmt: skip
    assert result.code == UsageError.exit_code, result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith(f"edgecnn: error: {flag}: {path} {reason}"), line
    assert "Traceback" not in result.stderr
