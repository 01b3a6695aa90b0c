"""Does ``edgecnn run --serve`` hold up under load, and does serving slow inference?

One run of this script, all against 127.0.0.1:

1. **unloaded**: ``edgecnn run`` (Coral MobileNet, demo frames at 30 fps, ``--serve``) for ``--seconds``;
   its summary gives the inference frame rate.
2. **loaded**: the same run while ``--clients`` threads (default 50) GET ``/latest`` and ``/metrics`` in
   turn, each on a fresh connection with ``--think-ms`` between requests, and ``--viewers`` (default 5)
   read ``/stream.mjpg``. Measured: ``/latest`` latency p50/p99/max, non-200 answers, the run's peak RSS
   (``VmHWM``) and its thread count (sampled every 100 ms).
3. **idle sockets**: ``--idle`` (default 1,000) connections that send nothing; then ``/healthz`` timed 20
   times and the run's thread count read.

Targets (from the issue): /latest p99 <= 50 ms, loaded fps >= 0.97 x unloaded, peak RSS <= 120 MB, threads
bounded (no thread per connection), /healthz answers with the idle sockets open.

    .venv/bin/python benchmarks/http_load.py [--seconds 20] [--clients 50] [--viewers 5] [--think-ms 100]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "tests" / "data" / "coral" / "mobilenet_v1_0.25_128_quant.tflite"
SUMMARY = re.compile(r"summary: (\d+) frames in ([\d.]+) s \(([\d.]+) fps\)")


def start_run(seconds: float) -> tuple[subprocess.Popen[str], int, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("EDGECNN_DEBUG", "NOTIFY_SOCKET")}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "edgecnn", "run", str(MODEL), "--source", "demo", "--fps", "30", "-q"),
            *("--serve", "127.0.0.1:0", "--duration", str(seconds)),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert proc.stderr is not None
    stderr: list[str] = []
    for line in proc.stderr:
        stderr.append(line)
        if line.startswith("serving http://"):
            port = int(line.split()[1].rstrip("/").rsplit(":", 1)[1])
            threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()  # type: ignore[arg-type]
            return proc, port, stderr
    raise SystemExit("edgecnn run did not start serving:\n" + "".join(stderr))


def finish(proc: subprocess.Popen[str]) -> float:
    out, _ = proc.communicate(timeout=120)
    match = SUMMARY.search(out)
    if not match:
        raise SystemExit(f"no summary line in:\n{out}")
    return float(match.group(3))


def frames_total(port: int) -> tuple[float, float]:
    """(frames classified so far, when), from the run's own Prometheus counter."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        body = conn.getresponse().read().decode()
    finally:
        conn.close()
    match = re.search(r"^edgecnn_frames_total (\S+)$", body, re.M)
    if not match:
        raise SystemExit("no edgecnn_frames_total in /metrics")
    return float(match.group(1)), time.perf_counter()


def fps_between(start: tuple[float, float], end: tuple[float, float]) -> float:
    return (end[0] - start[0]) / (end[1] - start[1])


def proc_status(pid: int) -> dict[str, int]:
    status = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS", "Threads"):
                status[key] = int(value.split()[0])
    except OSError:
        pass
    return status


def get(port: int, path: str, timeout: float = 10.0) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status, (time.perf_counter() - t0) * 1e3
    finally:
        conn.close()


def load(port: int, seconds: float, clients: int, viewers: int, think: float, pid: int) -> dict[str, object]:
    stop = threading.Event()
    latest_ms: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    frames = [0] * viewers
    peak = {"threads": 0}

    def client(i: int) -> None:
        paths = ("/latest", "/metrics") if i % 2 == 0 else ("/metrics", "/latest")
        n = 0
        while not stop.is_set():
            path = paths[n % 2]
            n += 1
            try:
                status, ms = get(port, path)
            except OSError as exc:
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if path == "/latest" and status == 200:
                    latest_ms.append(ms)
            stop.wait(think)

    def viewer(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/stream.mjpg")
        resp = conn.getresponse()
        if resp.status != 200:
            errors.append(f"viewer {resp.status}")
            return
        while not stop.is_set():
            chunk = resp.fp.readline()
            if not chunk:
                break
            if chunk.startswith(b"Content-Type: image/jpeg"):
                frames[i] += 1
        resp.close()
        conn.close()

    def sample() -> None:
        while not stop.is_set():
            status = proc_status(pid)
            peak["threads"] = max(peak["threads"], status.get("Threads", 0))
            peak["rss_kb"] = max(peak.get("rss_kb", 0), status.get("VmHWM", 0))
            stop.wait(0.1)

    threads = [threading.Thread(target=viewer, args=(i,), daemon=True) for i in range(viewers)]
    threads += [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    threads.append(threading.Thread(target=sample, daemon=True))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=15)
    ordered = sorted(latest_ms)
    return {
        "requests": sum(statuses.values()),
        "statuses": statuses,
        "errors": {e: errors.count(e) for e in sorted(set(errors))},
        "p50": statistics.median(ordered) if ordered else float("nan"),
        "p99": ordered[int(0.99 * (len(ordered) - 1))] if ordered else float("nan"),
        "max": ordered[-1] if ordered else float("nan"),
        "viewer_frames": frames,
        "peak_threads": peak["threads"],
        "peak_rss_mb": peak.get("rss_kb", 0) / 1024,
    }


def idle_sockets(port: int, count: int, pid: int) -> dict[str, object]:
    socks, refused = [], 0
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:  # a listen backlog that does not fit refuses or times out
            refused += 1
    time.sleep(0.5)
    threads = proc_status(pid).get("Threads", 0)
    times, statuses = [], []
    for _ in range(20):
        try:
            status, ms = get(port, "/healthz", timeout=10)
        except OSError as exc:
            status, ms = type(exc).__name__, 10_000.0  # type: ignore[assignment]
        statuses.append(status)
        times.append(ms)
    for s in socks:
        s.close()
    return {
        "threads": threads,
        "refused": refused,
        "healthz_statuses": sorted(set(map(str, statuses))),
        "healthz_max_ms": max(times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=5)
    parser.add_argument("--think-ms", type=float, default=100.0)
    parser.add_argument("--idle", type=int, default=1000)
    args = parser.parse_args()

    settle = 3.0
    proc, port, _ = start_run(args.seconds + 2 * settle)
    time.sleep(settle)
    base_threads = proc_status(proc.pid).get("Threads", 0)
    start = frames_total(port)
    time.sleep(args.seconds)
    unloaded_fps = fps_between(start, frames_total(port))
    base_rss_mb = proc_status(proc.pid).get("VmHWM", 0) / 1024
    finish(proc)

    proc, port, stderr = start_run(args.seconds + 2 * settle)
    time.sleep(settle)
    start = frames_total(port)
    result = load(port, args.seconds, args.clients, args.viewers, args.think_ms / 1e3, proc.pid)
    loaded_fps = fps_between(start, frames_total(port))
    peak_rss_mb = float(result["peak_rss_mb"])  # type: ignore[arg-type]
    finish(proc)
    tracebacks = sum("Traceback" in line for line in stderr)

    proc, port, _ = start_run(60.0)
    time.sleep(settle)
    idle = idle_sockets(port, args.idle, proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)

    ratio = loaded_fps / unloaded_fps if unloaded_fps else float("nan")
    rate = result["requests"] / args.seconds  # type: ignore[operator]
    print(f"unloaded: {unloaded_fps:.2f} fps, {base_threads} threads, peak RSS {base_rss_mb:.1f} MB")
    print(
        f"loaded ({args.clients} clients, {args.viewers} viewers, {rate:.0f} req/s): {loaded_fps:.2f} fps "
        f"= {ratio:.3f} x unloaded (target >= 0.97)"
    )
    print(
        f"  /latest ms: p50 {result['p50']:.1f}  p99 {result['p99']:.1f} (target <= 50)  max {result['max']:.1f}"
    )
    print(
        f"  statuses {result['statuses']}  client errors {result['errors']}  tracebacks in stderr {tracebacks}"
    )
    print(f"  viewer frames {result['viewer_frames']}")
    print(
        f"  peak RSS {peak_rss_mb:.1f} MB (target <= 120; unloaded {base_rss_mb:.1f}, "
        f"+{peak_rss_mb - base_rss_mb:.1f} under load)  peak threads {result['peak_threads']}"
    )
    print(
        f"idle: {args.idle} idle sockets ({idle['refused']} not accepted) -> {idle['threads']} threads, "
        f"/healthz {idle['healthz_statuses']} "
        f"max {idle['healthz_max_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
