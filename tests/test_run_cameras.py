"""Several cameras in one ``edgecnn run`` (``[[cameras]]``): one model, every output naming its camera, and
a camera whose stream stalls and comes back while the others go on."""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from edgecnn.errors import ConfigError
from edgecnn.run.cameras import CAMERA_KEYS
from edgecnn.run.config import load_run_config, validate_run_options
from edgecnn.tasks.options import TASK_OPTIONS
from tests.conftest import MOBILENET, error_lines, run_cli
from tests.run_support import MjpegServer, http_get, numbered_frame, wait_until, write_video
from tests.test_run_clips import square_video


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cameras.toml"
    path.write_text(text)
    return path


def first_mjpeg_part(url: str) -> bytes:
    """The first JPEG of an MJPEG stream (read from a plain socket: the stream never ends)."""
    host, _, rest = url.removeprefix("http://").partition("/")
    name, port = host.rsplit(":", 1)
    with socket.create_connection((name, int(port)), timeout=10) as sock:
        sock.sendall(f"GET /{rest} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        data = b""
        while data.count(b"\xff\xd9") < 1:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    start = data.index(b"\xff\xd8")
    return data[start : data.index(b"\xff\xd9", start) + 2]


def test_three_cameras_one_stalls_and_comes_back(detectors, tmp_path):
    from tests.test_run_process import start_run

    square_video(tmp_path / "door.mp4", 45, set(range(15, 30)), seed=1)
    write_video(tmp_path / "yard.mp4", [numbered_frame(i, 96, 96) for i in range(30)], fps=15)
    street = MjpegServer([numbered_frame(i, 160, 120) for i in range(10)], fps=15).start()
    jsonl = tmp_path / "results.jsonl"
    path = config(
        tmp_path,
        f"""
model = "{detectors["yolo_int8"]}"
serve = "127.0.0.1:0"
jsonl = "results.jsonl"
clips = "clips"
clip_labels = ["square"]
clip_pre = 0.5
clip_post = 0.5
reconnect = true
realtime = true
loop = true
stall_timeout = 1.0
quiet = true

[[cameras]]
name = "door"
source = "door.mp4"

[[cameras]]
name = "yard"
source = "yard.mp4"
fps = 10

[[cameras]]
name = "street"
source = "{street.url}"
fps = 5
""",
    )
    proc, out, err = start_run("--config", str(path))
    try:
        serving = err.wait_for(lambda line: line.startswith("serving http://"))
        base = serving.split()[1].rstrip("/")

        def health() -> tuple[int, dict]:
            status, _, body = http_get(base + "/healthz")
            return status, json.loads(body)

        def frames(body: dict) -> dict[str, int]:
            return {name: cam["frames"] for name, cam in body["cameras"].items()}

        _, body = wait_until(lambda: (h := health())[0] == 200 and min(frames(h[1]).values()) >= 5 and h)
        assert set(body["cameras"]) == {"door", "yard", "street"} and body["down"] == []
        # street sends 15 fps; its fps = 5 caps what it takes of the shared model (the rest is dropped)
        _, body = wait_until(lambda: (h := health())[1]["cameras"]["street"]["frames"] >= 12 and h)
        street_state = body["cameras"]["street"]
        assert 3.0 <= street_state["fps"] <= 5.5 and street_state["dropped"] >= 12, street_state

        street.paused.set()  # the stream stays connected but sends nothing: a stalled camera
        _, body = wait_until(lambda: (h := health())[0] == 503 and h, timeout=30)
        assert body["down"] == ["street"] and "street" in body["detail"]
        assert body["cameras"]["street"]["status"] in ("stalled", "reconnecting")
        during = frames(body)
        # The others go on while street is down.
        wait_until(
            lambda: (
                (f := frames(health()[1]))["door"] > during["door"] + 10 and f["yard"] > during["yard"] + 5
            )
        )
        assert health()[1]["down"] == ["street"]

        street.paused.clear()  # the camera comes back
        _, body = wait_until(
            lambda: (
                (h := health())[0] == 200 and h[1]["cameras"]["street"]["frames"] > during["street"] + 5 and h
            ),
            timeout=40,
        )
        assert body["cameras"]["street"]["reconnects"] >= 1 and body["down"] == []

        metrics = http_get(base + "/metrics")[2].decode()
        for name in ("door", "yard", "street"):
            assert f'edgecnn_frames_total{{camera="{name}"}}' in metrics
        assert 'edgecnn_reconnects_total{camera="street"}' in metrics
        assert 'edgecnn_reconnects_total{camera="door"} 0.0' in metrics
        latest = json.loads(http_get(base + "/camera/street/latest")[2])
        assert latest["camera"] == "street" and latest["source"] == street.url
        every = json.loads(http_get(base + "/latest")[2])["cameras"]  # the root names every camera's
        assert set(every) == {"door", "yard", "street"}
        assert all(every[n]["camera"] == n for n in every), every
        assert json.loads(http_get(base + "/camera/yard/healthz")[2])["source"].endswith("yard.mp4")
        page = http_get(base + "/")[2].decode()
        assert all(f'src="camera/{n}/stream.mjpg"' in page for n in ("door", "yard", "street"))
        assert b"stream.mjpg" in http_get(base + "/camera/door/")[2]
        jpeg = first_mjpeg_part(base + "/camera/yard/stream.mjpg")
        assert jpeg.startswith(b"\xff\xd8") and len(jpeg) > 500
        assert http_get(base + "/camera/nowhere/latest")[0] == 404
        listed = wait_until(
            lambda: (
                (c := json.loads(http_get(base + "/clips")[2])["clips"])
                and any(x["camera"] == "door" for x in c)
                and c
            ),
            timeout=30,
        )
        served = {c["camera"] for c in listed}
        clips = [c for c in listed if c["camera"] == "door"]
        video = http_get(base + "/clips/" + clips[0]["video"])[2]
        assert video[:4] == b"RIFF" and video == (tmp_path / "clips" / clips[0]["video"]).read_bytes()
        assert http_get(base + "/clips/door/../../cameras.toml")[0] == 404  # only listed files are served
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        street.stop()
    text = out.text()
    for name in ("door", "yard", "street"):
        assert f"camera {name} summary:" in text
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    by_camera = {name: [r for r in records if r["camera"] == name] for name in ("door", "yard", "street")}
    assert all(len(found) > 10 for found in by_camera.values()), {k: len(v) for k, v in by_camera.items()}
    # A camera has clips exactly when its results show a square (clip_labels): door's video shows one; the
    # numbered frames of yard and street show none, unless this machine's detector sees one in a digit.
    squares = {
        n
        for n, found in by_camera.items()
        if any(o["label"] == "square" for r in found for o in r["objects"])
    }
    assert "door" in squares and served <= squares
    assert {n for n, found in by_camera.items() if any("clip" in r for r in found)} == squares
    started = [r["clip"] for r in by_camera["door"] if "clip" in r]
    assert started and all(c["video"].startswith("door/door-") for c in started)
    assert (tmp_path / "clips" / started[0]["video"]).exists()
    assert "Traceback" not in err.text()


def test_camera_tables_are_checked_with_the_file_and_camera_named(tmp_path, coral):
    bad = [
        ('[[cameras]]\nname = "a b"\nsource = "demo"', "name must be 1-64 letters"),
        ('[[cameras]]\nname = "a"\nsource = "demo"\n[[cameras]]\nname = "a"\nsource = "demo"', "used twice"),
        ('[[cameras]]\nname = "a"\nsource = "demo"\ndevice = "cpu"', "'device' cannot be set per camera"),
        ('[[cameras]]\nname = "a"\nsource = "demo"\nfps = "fast"', "cameras[0] (a): fps must be a number"),
        ("cameras = 3", "cameras must be [[cameras]] tables"),
    ]
    for text, words in bad:
        path = config(tmp_path, f'model = "{MOBILENET}"\n{text}\n')
        with pytest.raises(ConfigError) as info:
            load_run_config(path)
        assert str(info.value).startswith(f"{path}: ") and words in str(info.value), str(info.value)
    checked = [
        (
            '[[cameras]]\nname = "a"\nsource = "demo"\nmin_score = 2',
            "camera 'a': min_score (--min-score): must be",
        ),
        (
            '[[cameras]]\nname = "a"\nsource = "demo"\nobject_threshold = 1.5',
            "camera 'a': object_threshold (--object-threshold): must be",
        ),
        (
            '[[cameras]]\nname = "a"\nsource = "demo"\nlines = ["0.5,0"]',
            "camera 'a': lines (--line): line 1",
        ),
        ('[[cameras]]\nname = "a"\nsource = "nowhere.mp4"', "camera 'a': source (--source):"),
        ('[[cameras]]\nname = "a"\nfps = 5', "camera 'a' has no source"),
        (
            'source = "demo"\n[[cameras]]\nname = "a"\nsource = "demo"',
            "source (--source): with [[cameras]] tables",
        ),
    ]
    for text, words in checked:
        path = config(tmp_path, f'model = "{MOBILENET}"\n{text}\n')
        with pytest.raises(ConfigError) as info:
            validate_run_options(load_run_config(path))
        assert words in str(info.value), str(info.value)
    # Every task option (edgecnn.tasks.options) may be set per camera, as may its lines and zones.
    assert set(TASK_OPTIONS) | {"lines", "zones", "track"} <= set(CAMERA_KEYS)
    result = run_cli("run", "--config", config(tmp_path, f'model = "{MOBILENET}"\ncameras = []\n'))
    assert result.code != 0 and len(error_lines(result.stderr)) == 1 and "Traceback" not in result.stderr


def test_each_camera_publishes_under_its_own_topic(detectors, tmp_path):
    from tests.test_run_mqtt import HOSTNAME, Broker, Subscriber, needs_broker

    if needs_broker.args[0]:  # mosquitto missing: the same skip as the MQTT tests
        pytest.skip(needs_broker.kwargs["reason"])
    broker = Broker(tmp_path).start()
    sub = None
    try:
        sub = Subscriber(broker.port, "edgecnn/#")
        square_video(tmp_path / "door.mp4", 20, set(range(5, 10)))
        write_video(tmp_path / "yard.mp4", [numbered_frame(i, 96, 96) for i in range(12)], fps=15)
        path = config(
            tmp_path,
            f'model = "{detectors["yolo_int8"]}"\nquiet = true\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n'
            '[[cameras]]\nname = "door"\nsource = "door.mp4"\n[[cameras]]\nname = "yard"\nsource = "yard.mp4"\n',
        )
        result = run_cli("run", "--config", path)
        assert result.code == 0, result.stderr
        prefix = f"edgecnn/{HOSTNAME}/cameras"  # the file is cameras.toml: the instance is "cameras"
        offline = [f"{prefix}/{name}/availability" for name in ("door", "yard")]
        wait_until(
            lambda: all(any(m.topic == t and m.payload == "offline" for m in sub.messages) for t in offline)
        )
        results = {name: [json.loads(m.payload) for m in sub.on("result") if m.topic == f"{prefix}/{name}/result"]
                   for name in ("door", "yard")}  # fmt: skip
        assert len(results["door"]) == 20 and len(results["yard"]) == 12
        assert {r["camera"] for r in results["door"]} == {"door"} and {
            r["camera"] for r in results["yard"]
        } == {"yard"}
        assert [r["frame"] for r in results["door"] if r["objects"]] == list(range(5, 10))
    finally:
        if sub is not None:
            sub.close()
        broker.stop()


def test_camera_pages_and_clips_need_the_token(detectors, tmp_path):
    from tests.test_run_process import start_run

    square_video(tmp_path / "door.mp4", 30, set(range(5, 10)))
    path = config(
        tmp_path,
        f'model = "{detectors["yolo_int8"]}"\nquiet = true\nloop = true\nrealtime = true\nserve = "127.0.0.1:0"\n'
        'clips = "clips"\n[[cameras]]\nname = "door"\nsource = "door.mp4"\n',
    )
    proc, _out, err = start_run("--config", str(path), "--serve-token", "s3cret-token-for-tests")
    try:
        base = err.wait_for(lambda line: line.startswith("serving http://")).split()[1].rstrip("/")
        wait_until(lambda: http_get(base + "/healthz")[0] == 200)  # open, as in a one-camera run
        for where in ("/", "/camera/door/", "/camera/door/latest", "/camera/door/stream.mjpg", "/clips"):
            assert http_get(base + where)[0] == 401, where
        import http.client

        host, port = base.removeprefix("http://").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/camera/door/latest", headers={"Authorization": "Bearer s3cret-token-for-tests"})
        answer = conn.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["camera"] == "door"
        conn.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        proc.kill()


def test_systemd_hears_from_the_run_while_any_camera_delivers(detectors, tmp_path):
    """One camera that never opens must not get every camera restarted: the watchdog follows the shared
    model's progress, READY comes with the first result of any camera."""
    import threading
    import time

    from edgecnn.run.cameras import run_cameras
    from edgecnn.run.options import RunOptions

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(0.2)
    video = write_video(tmp_path / "door.mp4", [numbered_frame(i, 96, 96) for i in range(30)], fps=15)
    options = RunOptions(
        model=detectors["yolo_int8"],
        cameras=[{"name": "door", "source": str(video)}, {"name": "gone", "camera": 99}],
        realtime=True,
        loop=True,
        reconnect=True,
        duration=2.5,
        quiet=True,
    )
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}  # ping every 0.1 s
    messages: list[str] = []
    done = threading.Event()

    def read() -> None:  # as systemd does, all along: a datagram queue holds only about 10 messages
        while not done.is_set():
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                continue

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    summaries = run_cameras(options, stop_event=threading.Event(), env=env)
    time.sleep(0.5)
    done.set()
    reader.join(5)
    sock.close()
    assert (
        summaries["door"].frames > 20 and summaries["gone"].frames == 0 and summaries["gone"].reconnects >= 1
    )
    lines = [line for m in messages for line in m.split("\n") if line]
    assert lines.count("READY=1") == 1 and lines.index("READY=1") < lines.index("WATCHDOG=1")
    assert lines.count("WATCHDOG=1") >= 10  # 2.5 s at one ping per 0.1 s while door delivers
    assert lines[-1] == "STOPPING=1" or "STOPPING=1" in lines
