"""Where outputs go: device nodes, FIFOs, links to them, directories, a full or closed standard output.

Contract (edgecnn/atomic.py, edgecnn/cli/__init__.py): nothing but a regular file is ever replaced; a
character device or FIFO is written as a stream (its content arrives, the node stays what it was); a FIFO
with no reader is refused at once; a write error is one ``edgecnn: error:`` line and exit 4; a standard
output that cannot be written is one line, a closed pipe no line at all and exit 141. Real processes, real
device nodes made with mknod in tmp_path (``/dev/null``'s and ``/dev/full``'s numbers), never the system's.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edgecnn.atomic import (
    StoppableStream,
    atomic_path,
    check_output,
    open_append,
    output_folder,
    write_atomic,
)
from edgecnn.errors import InputError
from tests.conftest import CAT, MOBILENET, error_lines, run_cli

NULL, FULL = os.makedev(1, 3), os.makedev(1, 7)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "EDGECNN_DEBUG"}


@pytest.fixture
def nodes(tmp_path) -> dict[str, Path]:
    """Device nodes, a FIFO and links to them, each named .png/.json-neutral (the checks look at the kind)."""
    made = {"null": tmp_path / "null", "full": tmp_path / "full"}
    try:
        os.mknod(made["null"], 0o666 | stat.S_IFCHR, NULL)
        os.mknod(made["full"], 0o666 | stat.S_IFCHR, FULL)
    except PermissionError:
        pytest.skip("making device nodes needs root (CAP_MKNOD)")
    made["fifo"] = tmp_path / "fifo"
    os.mkfifo(made["fifo"])
    for name in ("null", "full", "fifo"):
        link = tmp_path / f"link-to-{name}"
        link.symlink_to(made[name])
        made[f"link-to-{name}"] = link
    return made


def _kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "link to " + _kind(Path(os.path.realpath(path)))
    for test, name in (
        (stat.S_ISCHR, "chr"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "dir"),
    ):
        if test(mode):
            return name
    return "other"


def assert_untouched(nodes: dict[str, Path]) -> None:
    """Every node is still what the fixture made (a rename over one would make it a regular file)."""
    expected = {"null": "chr", "full": "chr", "fifo": "fifo"}
    for name, path in nodes.items():
        base = name.removeprefix("link-to-")
        want = expected[base] if base == name else "link to " + expected[base]
        assert _kind(path) == want, (name, _kind(path))
    assert os.stat(nodes["null"]).st_rdev == NULL and os.stat(nodes["full"]).st_rdev == FULL
    assert not [p.name for p in nodes["null"].parent.iterdir() if p.name.startswith(".")], "temp files left"


def assert_one_error(result, *needles: str, code: int = 4) -> str:
    assert result.code == code, (result.code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    errors = [line for line in error_lines(result.stderr) if line.startswith("edgecnn: error:")]
    assert len(errors) == 1, result.stderr[-2000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


class FifoReader:
    """A reader on a FIFO in a thread: what the writer sent, once the writer closed it."""

    def __init__(self, path: Path) -> None:
        self.data = b""
        self._thread = threading.Thread(target=self._read, args=(path,), daemon=True)
        self._thread.start()
        time.sleep(0.2)  # the open() in the thread is blocked waiting for a writer now

    def _read(self, path: Path) -> None:
        with open(path, "rb") as fh:
            self.data = fh.read()

    def result(self, timeout: float = 30) -> bytes:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the writer never closed the FIFO"
        return self.data


# -- the helper ------------------------------------------------------------------------------------------


def test_check_output_classifies_every_kind(nodes, tmp_path):
    regular = tmp_path / "old.json"
    regular.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(regular)
    assert check_output(tmp_path / "new.json") == check_output(tmp_path / "new.json")
    assert not check_output(tmp_path / "new.json").stream
    assert check_output(link).real == regular and not check_output(link).stream
    for name in ("null", "full", "link-to-null", "link-to-full"):
        target = check_output(nodes[name])
        assert target.stream and not target.fifo and target.path == nodes[name], name
    assert check_output(nodes["fifo"]).fifo and check_output(nodes["link-to-fifo"]).fifo
    assert check_output("/dev/stdout").fd == 1 and check_output("/dev/fd/2").fd == 2
    assert check_output(f"/proc/{os.getpid()}/fd/1").fd == 1

    os.mknod(tmp_path / "block", 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock"))
    try:
        for path, kind in [
            (tmp_path, "is a directory"),
            (tmp_path / "block", "is a block device"),
            (tmp_path / "sock", "is a socket"),
        ]:
            with pytest.raises(InputError, match=kind):
                check_output(path, what="thing")
    finally:
        sock.close()
    with pytest.raises(InputError, match=r"'-' .*--json"):
        check_output("-")
    for name in ("null", "fifo"):  # outputs that must be real files
        with pytest.raises(InputError, match="can only be written to a regular file"):
            check_output(nodes[name], streams=False)
    with pytest.raises(InputError, match="is a symbolic link"):
        check_output(nodes["link-to-null"], streams=False, symlinks=False)
    with pytest.raises(InputError, match="symbolic link"):
        check_output("/dev/stdout", streams=False, symlinks=False)


def test_write_atomic_streams_to_devices_and_fifos_and_never_replaces_them(nodes, tmp_path):
    for name in ("null", "link-to-null"):
        assert write_atomic(nodes[name], b"x" * 100_000) == nodes[name]
    for name in ("full", "link-to-full"):
        with pytest.raises(InputError, match="No space left on device"):
            write_atomic(nodes[name], b"{}", what="eval report")
    for name in ("fifo", "link-to-fifo"):
        reader = FifoReader(nodes["fifo"])
        write_atomic(nodes[name], b"y" * 200_000)  # more than a pipe buffer: a blocking write after open
        assert reader.result() == b"y" * 200_000
    started = time.monotonic()
    with pytest.raises(InputError, match="No reader on FIFO"):
        write_atomic(nodes["fifo"], b"{}")
    assert time.monotonic() - started < 2
    assert_untouched(nodes)


def test_atomic_path_copies_a_named_writer_into_the_stream(nodes):
    reader = FifoReader(nodes["link-to-fifo"])
    with atomic_path(nodes["link-to-fifo"], suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent != nodes["fifo"].parent
        tmp.write_bytes(b"\x89PNG chart")
    assert reader.result() == b"\x89PNG chart"
    with pytest.raises(InputError, match="No space left"), atomic_path(nodes["full"]) as tmp:
        tmp.write_bytes(b"chart")
    with pytest.raises(InputError, match="No reader on FIFO"), atomic_path(nodes["fifo"]):
        raise AssertionError("the writer must not run when nobody reads the FIFO")
    assert_untouched(nodes)


def test_output_errors_are_input_errors_and_os_errors(tmp_path, nodes):
    """Exit 4 on the command line; and code that let a failed write pass as an OSError (the Edge TPU probe
    cache in a read-only home) still does."""
    from edgecnn.errors import OutputError

    with pytest.raises(OSError, match="is a directory") as caught:
        write_atomic(tmp_path, b"{}")
    assert isinstance(caught.value, OutputError) and isinstance(caught.value, InputError)
    assert caught.value.exit_code == 4
    with pytest.raises(OSError) as caught:
        write_atomic(nodes["full"], b"{}")
    assert caught.value.errno == errno.ENOSPC and "[Errno" not in str(caught.value)


def test_a_link_to_a_regular_file_is_followed_and_kept(tmp_path):
    real = tmp_path / "results" / "pi5.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    write_atomic(link, b"new")
    assert link.is_symlink() and real.read_bytes() == b"new"
    with atomic_path(link) as tmp:
        tmp.write_bytes(b"newer")
    assert link.is_symlink() and real.read_bytes() == b"newer"


def test_open_append_appends_to_files_and_streams_to_devices(nodes, tmp_path):
    log = tmp_path / "results.jsonl"
    log.write_text("1\n")
    with open_append(log) as fh:
        fh.write("2\n")
    assert log.read_text() == "1\n2\n"
    with open_append(nodes["link-to-null"]) as fh:
        fh.write("gone\n")
    with pytest.raises(InputError, match="No reader on FIFO"):
        open_append(nodes["fifo"], what="--jsonl results")
    assert_untouched(nodes)


def test_the_own_descriptor_is_written_through_a_duplicate(tmp_path):
    """``/dev/stdout`` of a process whose stdout is a regular file: the file is appended to through the
    shared descriptor, not replaced through /proc (which would lose what the command printed)."""
    out = tmp_path / "out.txt"
    code = (
        "import sys; from edgecnn.atomic import write_atomic; print('table', flush=True); "
        "write_atomic('/dev/stdout', b'{json}\\n'); print('after')"
    )
    with out.open("w") as fh:
        subprocess.run([sys.executable, "-c", code], stdout=fh, check=True, env=_env())
    assert out.read_text() == "table\n{json}\nafter\n"


# -- every command's outputs -----------------------------------------------------------------------------


@pytest.fixture
def classes(tmp_path) -> Path:
    folder = tmp_path / "photos"
    (folder / "tiger cat").mkdir(parents=True)
    (folder / "tiger cat" / "cat.bmp").write_bytes(CAT.read_bytes())
    return folder


@pytest.fixture
def bench_json(tmp_path) -> Path:
    path = tmp_path / "bench.json"
    result = run_cli("bench", "run", MOBILENET, "--runs", "2", "--warmup", "0", "-o", path)
    assert result.code == 0, result.stderr
    return path


def _json_ok(data: bytes) -> bool:
    return isinstance(json.loads(data), dict)


# name -> (argv for an output path, check of what a reader of the stream got)
def _output_commands(classes: Path, bench_json: Path) -> dict[str, tuple[Callable[[Path], list], Callable]]:
    return {
        "eval -o": (lambda p: ["eval", MOBILENET, classes, "-q", "-o", p], _json_ok),
        "bench run -o": (
            lambda p: ["bench", "run", MOBILENET, "--runs", "2", "--warmup", "0", "-o", p],
            _json_ok,
        ),
        "run --jsonl": (
            lambda p: ["run", MOBILENET, "--source", "demo", "--max-frames", "3", "-q", "--jsonl", p],
            lambda data: len(data.splitlines()) == 3 and all(_json_ok(line) for line in data.splitlines()),
        ),
        "bench report --plot": (
            lambda p: ["bench", "report", bench_json, "--plot", p],
            lambda data: data.startswith(b"\x89PNG"),
        ),
    }


def _named(nodes: dict[str, Path], name: str, suffix: str) -> Path:
    """``nodes[name]`` behind a link with the suffix a command insists on (``--plot`` wants .png)."""
    if not suffix:
        return nodes[name]
    link = nodes[name].parent / f"{name}-link{suffix}"
    if not link.is_symlink():
        link.symlink_to(nodes[name.removeprefix("link-to-")])
    return link


@pytest.mark.parametrize("command", ["eval -o", "bench run -o", "run --jsonl", "bench report --plot"])
def test_outputs_on_devices_and_fifos(command, nodes, classes, bench_json, tmp_path):
    argv, valid = _output_commands(classes, bench_json)[command]
    suffix = ".png" if "plot" in command else ""

    result = run_cli(*argv(_named(nodes, "null", suffix)), timeout=60)
    assert result.code == 0, result.stderr
    for name in ("full", "link-to-full"):
        assert_one_error(run_cli(*argv(_named(nodes, name, suffix)), timeout=60), "No space left on device")

    started = time.monotonic()
    assert_one_error(run_cli(*argv(_named(nodes, "fifo", suffix)), timeout=60), "No reader on FIFO")
    if command == "run --jsonl":  # refused before the run starts, not after it: nothing can block it
        assert time.monotonic() - started < 20

    reader = FifoReader(nodes["fifo"])
    result = run_cli(*argv(_named(nodes, "link-to-fifo", suffix)), timeout=60)
    assert result.code == 0, result.stderr
    assert valid(reader.result()), reader.data[:200]

    assert_one_error(run_cli(*argv(tmp_path), timeout=60), "is a directory")
    assert_untouched(nodes)


def test_run_jsonl_fifo_without_reader_is_refused_before_serving(nodes):
    """It used to block in open() before serving, deaf to SIGTERM. Now: refused at once; and a run that
    is started anyway still ends on SIGTERM within seconds (the open never blocks)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "run", MOBILENET, "--source", "demo", "--jsonl", nodes["fifo"]],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=5)
        raise AssertionError("run --jsonl FIFO with no reader was not refused at once") from None
    assert proc.returncode == 4 and "No reader on FIFO" in stderr and "Traceback" not in stderr, stderr
    assert_untouched(nodes)


def test_a_stalled_reader_cannot_hold_a_stream_past_stop():
    read, write = os.pipe()
    os.set_blocking(write, False)
    stop = threading.Event()
    stream = StoppableStream(write, stop)
    stream.write("fits\n")
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    with pytest.raises(BrokenPipeError):
        stream.write("x" * (4 << 20))  # more than any pipe holds, and nobody reads
    assert 0.4 < time.monotonic() - started < 5
    stream.close()
    assert os.read(read, 5) == b"fits\n"
    os.close(read)


def test_run_jsonl_fifo_whose_reader_stalls_still_stops_on_sigterm(nodes):
    """The reader opens the FIFO and never reads: the pipe fills, and SIGTERM must still end the run."""
    import fcntl

    reader = os.open(nodes["fifo"], os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(reader, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)  # full after a dozen lines
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgecnn",
                "run",
                MOBILENET,
                "--source",
                "demo",
                "-q",
                "--jsonl",
                nodes["fifo"],
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        time.sleep(8)  # loading, then a few seconds of frames: the 4 KiB pipe is full long before
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("SIGTERM did not end a run blocked on a stalled FIFO reader") from None
    finally:
        os.close(reader)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
    assert stdout.startswith("summary:"), stdout  # the run ended the normal way, summary and all


def test_output_folders_are_folders(nodes, tmp_path):
    """Commands that write a folder of files (fleet bench -o, bench formats -o): a device, FIFO or file
    there is one line, not a FileExistsError traceback; a link to a folder is followed."""
    (tmp_path / "real").mkdir()
    (tmp_path / "to-real").symlink_to(tmp_path / "real")
    assert output_folder(tmp_path / "to-real") == tmp_path / "to-real"
    assert output_folder(tmp_path / "new" / "sub").is_dir()
    (tmp_path / "file").write_text("x")
    for path, kind in [
        (nodes["null"], "a character device"),
        (nodes["link-to-fifo"], r"a FIFO \(named pipe\)"),
        (tmp_path / "file", "a regular file"),
    ]:
        with pytest.raises(InputError, match=f"is {kind}, not a folder"):
            output_folder(path, what="results")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[pis]\npi1 ansible_host=127.0.0.1\n")
    result = run_cli("fleet", "bench", inventory, "--model", MOBILENET, "-o", nodes["link-to-null"])
    assert_one_error(result, "is a character device, not a folder", code=4)
    assert_untouched(nodes)


def test_service_files_are_never_written_through_links_or_devices(tmp_path, nodes):
    root = tmp_path / "root"
    unit = root / "etc/systemd/system/edgecnn@.service"
    unit.parent.mkdir(parents=True)
    unit.symlink_to(nodes["null"])  # what `systemctl mask` leaves, pointing at our /dev/null
    result = run_cli("service", "install", "door", "--model", MOBILENET, "--root", root)
    assert_one_error(result, "is a symbolic link", code=4)
    assert unit.is_symlink() and _kind(nodes["null"]) == "chr"


def test_convert_output_through_a_link_to_a_full_device(digits_run, nodes, tmp_path):
    out = tmp_path / "model_int8.tflite"
    out.symlink_to(nodes["full"])
    result = run_cli(
        "convert", digits_run / "model.keras", "-o", out, "--calibration-samples", "20", timeout=600
    )
    assert_one_error(result, "No space left on device", "converted model", code=4)
    assert out.is_symlink() and _kind(nodes["full"]) == "chr"
    assert not (tmp_path / "conversion_report.json").exists()  # nothing half-written after the failure


# -- standard output -------------------------------------------------------------------------------------


def _to(stdout: int | object, *args: object, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgecnn", *map(str, args)],
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        timeout=timeout,
    )


def _stdout_commands(classes: Path, bench_json: Path) -> dict[str, list]:
    return {
        "predict": ["predict", MOBILENET, CAT],
        "predict --json": ["predict", MOBILENET, CAT, "--json"],
        "inspect": ["inspect", MOBILENET],
        "inspect --json": ["inspect", MOBILENET, "--json"],
        "devices --json": ["devices", "--json"],
        "eval": ["eval", MOBILENET, classes, "-q"],
        "eval --json": ["eval", MOBILENET, classes, "-q", "--json"],
        "bench report --json": ["bench", "report", bench_json, "--json"],
        "bench report": ["bench", "report", bench_json],
        "--help": ["--help"],
    }


@pytest.mark.parametrize(
    "command",
    [
        "predict",
        "predict --json",
        "inspect",
        "inspect --json",
        "devices --json",
        "eval",
        "eval --json",
        "bench report --json",
        "bench report",
        "--help",
    ],
)
def test_a_full_stdout_is_one_line(command, nodes, classes, bench_json):
    with open(nodes["full"], "w") as full:
        proc = _to(full, *_stdout_commands(classes, bench_json)[command])
    assert proc.returncode == 4, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("edgecnn:")]
    assert errors == ["edgecnn: error: cannot write to standard output: No space left on device"], proc.stderr


@pytest.mark.parametrize("command", ["predict --json", "inspect", "bench report --json"])
def test_a_closed_stdout_pipe_ends_quietly(command, classes, bench_json):
    """``edgecnn ... | head -1`` where head left before edgecnn wrote: exit 141 (as SIGPIPE would), no line."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the command prints
    try:
        proc = _to(write, *_stdout_commands(classes, bench_json)[command])
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert not error_lines(proc.stderr), proc.stderr


def test_run_jsonl_to_a_closed_pipe_ends_the_run_cleanly():
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgecnn", "run", MOBILENET, "--source", "demo", "--jsonl", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    _, stderr = proc.communicate(timeout=30)
    assert json.loads(first)["n"] == 1
    text = stderr.decode()
    assert proc.returncode == 0 and "stopped: output closed" in text, text
    assert "Traceback" not in text and "Exception ignored" not in text and "edgecnn: error" not in text, text
