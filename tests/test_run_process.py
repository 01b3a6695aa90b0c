"""``edgecnn run`` as a real process: clean exit on SIGTERM/SIGINT, and no TensorFlow on the device path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import MOBILENET, error_lines
from tests.run_support import LineReader, http_get, numbered_frame, write_video


def spawn_run(*args: str) -> subprocess.Popen[str]:
    dropped = ("EDGECNN_DEBUG", "NOTIFY_SOCKET", "PROMETHEUS_DISABLE_CREATED_SERIES")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def start_run(*args: str) -> tuple[subprocess.Popen[str], LineReader, LineReader]:
    proc = spawn_run(*args)
    return proc, LineReader(proc.stdout), LineReader(proc.stderr)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_with_summary(sig, coral):
    proc, out, err = start_run(str(MOBILENET), "--source", "demo", "--serve", "127.0.0.1:0")
    try:
        serving = err.wait_for(lambda line: line.startswith("serving http://"))
        out.wait_for(lambda line: line.startswith("#1 frame"))
        base = serving.split()[1].rstrip("/")
        assert http_get(base + "/healthz")[0] == 200
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stdout, stderr = out.text(), err.text()
    assert code == 0, stderr
    assert "summary:" in stdout and "stopped: signal" in stdout and "reconnects 0" in stdout
    assert f"{signal.Signals(sig).name} received" in stderr
    assert not [line for line in error_lines(stderr) if "error" in line]


def test_metrics_carry_no_created_series(coral):
    """prometheus_client adds a ``*_created`` series per counter and histogram; a scrape of a real
    ``edgecnn run`` has none (without PROMETHEUS_DISABLE_CREATED_SERIES in its environment)."""
    proc, _out, err = start_run(str(MOBILENET), "--source", "demo", "--serve", "127.0.0.1:0", "-q")
    try:
        base = err.wait_for(lambda line: line.startswith("serving http://")).split()[1].rstrip("/")
        status, _headers, body = http_get(base + "/metrics")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = body.decode()
    assert status == 200 and "# TYPE edgecnn_frames_total counter" in text
    assert "edgecnn_frames_total" in text and "edgecnn_inference_seconds_count" in text
    assert "_created" not in text, [line for line in text.splitlines() if "_created" in line][:3]


def test_run_path_imports_no_tensorflow(tmp_path, coral):
    video = write_video(tmp_path / "v.avi", [numbered_frame(i) for i in range(6)])
    jsonl = tmp_path / "r.jsonl"
    probe = f"""
import sys
import edgecnn.cli
from edgecnn.run import RunOptions, run
summary = run(RunOptions(model={str(MOBILENET)!r}, source={str(video)!r}, serve="127.0.0.1:0", jsonl={str(jsonl)!r}, quiet=True))
assert summary.frames == 6, summary
heavy = sorted(m for m in ("tensorflow", "keras", "sklearn", "matplotlib") if m in sys.modules)
print("HEAVY", heavy)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout
    assert len([json.loads(line) for line in jsonl.read_text().splitlines()]) == 6


@pytest.mark.parametrize("jsonl", [True, False])
def test_reader_closing_the_pipe_ends_the_run_cleanly(jsonl, coral):
    """`edgecnn run ... | head -n 2`: exit 0, summary on stderr, no "Exception ignored ... BrokenPipeError"."""
    args = ["--source", "demo", "--duration", "30"] + (["--jsonl", "-"] if jsonl else [])
    proc = spawn_run(str(MOBILENET), *args)  # stdout read here, and then closed like `head` closes it
    err = LineReader(proc.stderr)
    try:
        first = proc.stdout.readline()  # the demo source sends a frame every 33 ms
        proc.stdout.close()  # the reader goes away, as `head` does after its lines
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = err.text()
    assert code == 0, stderr
    assert first.startswith("{" if jsonl else "#1 frame"), first
    if jsonl:  # the human stream (stderr) is still open: the summary says why the run ended
        assert "stopped: output closed" in stderr
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert not [line for line in error_lines(stderr) if "error" in line]


def test_results_file_that_cannot_be_written_is_one_error_line(coral):
    proc, _, err = start_run(str(MOBILENET), "--source", "demo", "--duration", "30", "--jsonl", "/dev/full")
    code = proc.wait(timeout=30)
    lines = error_lines(err.text())
    assert code == 4
    assert lines == [
        "edgecnn: error: Cannot write results to /dev/full: No space left on device. "
        "Free space or choose another output."
    ]
    assert "Traceback" not in err.text()


def test_run_process_settings_precede_numpy_and_yield_to_the_environment(coral):
    """`edgecnn run` sets two malloc arenas and one OpenBLAS thread before numpy loads (each numpy and
    OpenCV import would otherwise start a BLAS thread per extra core); a value already set is kept."""
    probe = (
        "import os, sys\n"
        "import edgecnn.cli\n"
        "assert 'numpy' not in sys.modules, 'the CLI imports numpy before run can configure it'\n"
        "from edgecnn.run.footprint import configure_process\n"
        "print(configure_process())\n"
        "import numpy, cv2\n"
        "print(len(os.listdir('/proc/self/task')))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MALLOC_ARENA_MAX")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["['OPENBLAS_NUM_THREADS=1', 'MALLOC_ARENA_MAX=2']", "1"]
    kept = {**env, "OPENBLAS_NUM_THREADS": "2", "MALLOC_ARENA_MAX": "4"}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=kept, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("[]\n"), out.stderr

    run = subprocess.run(
        [sys.executable, "-m", "edgecnn", "run", str(MOBILENET), "--source", "demo", "--max-frames", "2"],
        capture_output=True,
        text=True,
        env={**env, "EDGECNN_DEBUG": "1"},
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "process settings: OPENBLAS_NUM_THREADS=1 MALLOC_ARENA_MAX=2" in run.stderr
