"""``edgecnn run --config FILE.toml``: keys, types, relative paths, CLI overrides, one-line errors."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgecnn.errors import ConfigError, UsageError
from edgecnn.run.config import load_run_config, merge_cli, parse_serve, validate_run_options
from edgecnn.run.options import CONFIG_KEYS, RunOptions
from tests.conftest import MOBILENET, error_lines, run_cli
from tests.run_support import numbered_frame, write_video

FULL = """
model = "model.tflite"
source = "clips/door.avi"
device = "cpu"
threads = 2
top_k = 3
width = 640
height = 480
fps = 15
crop = "center"
realtime = false
jsonl = "out/results.jsonl"
min_score = 0.5
every = 2
on_change = true
serve = "127.0.0.1:8080"
reconnect = true
max_frames = 100
duration = 60
stall_timeout = 3.5
quiet = true

[mqtt]
host = "127.0.0.1"
topic = "edgecnn/door"
"""


def write(tmp_path: Path, text: str, name: str = "door.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def layout(tmp_path):
    (tmp_path / "model.tflite").write_bytes(MOBILENET.read_bytes())
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "door.avi", [numbered_frame(i) for i in range(3)])
    (tmp_path / "out").mkdir()
    return tmp_path


def test_full_config_loads_with_paths_relative_to_the_file(layout, coral):
    opts = load_run_config(write(layout, FULL))
    assert opts.model == layout / "model.tflite"
    assert opts.source == str(layout / "clips" / "door.avi")
    assert opts.jsonl == str(layout / "out" / "results.jsonl")
    assert (opts.top_k, opts.threads, opts.every, opts.max_frames) == (3, 2, 2, 100)
    assert (opts.fps, opts.duration, opts.min_score, opts.stall_timeout) == (15.0, 60.0, 0.5, 3.5)
    assert opts.on_change and opts.reconnect and opts.quiet and not opts.realtime
    assert opts.mqtt == {"host": "127.0.0.1", "topic": "edgecnn/door"}
    assert validate_run_options(opts) is opts


def test_every_config_key_is_a_cli_flag():
    from typer.main import get_command

    from edgecnn.cli import app

    run = get_command(app).commands["run"]
    flags = {opt for param in run.params for opt in param.opts}
    for key in CONFIG_KEYS:
        if key in ("model", "mqtt", "cameras"):  # MODEL argument; [mqtt] and [[cameras]] tables
            continue
        assert "--" + key.replace("_", "-") in flags, key


def test_cli_ranges_and_help_are_the_declared_ones():
    """The run command's flags take their range and help from edgecnn.run.options, so they cannot drift
    from the config file's checks (a range stated twice was how the two disagreed)."""
    from typer.main import get_command

    from edgecnn.cli import app
    from edgecnn.run.options import MqttOptions, declared

    run = get_command(app).commands["run"]
    by_flag = {opt: param for param in run.params for opt in param.opts}
    declarations = [*declared(RunOptions).values(), *declared(MqttOptions).values()]
    ranged = 0
    for opt in declarations:
        if opt.key in ("model", "mqtt", "port", "cameras"):  # MODEL; tables; port: part of --mqtt
            continue
        param = by_flag[opt.flag]
        assert param.help == opt.spec.help, opt.key  # type: ignore[attr-defined]
        if opt.spec.low is not None:
            bounds = (param.min, param.max)  # type: ignore[attr-defined]
            assert bounds == (opt.spec.low, opt.spec.high), opt.key
            ranged += 1
    # 27 run options: main's 20 (object_threshold, track_buffer, track_min_hits, track_high_score,
    # track_low_score, snapshots_keep/_max_mb among them) and the 7 clip_* ones; mqtt.qos and mqtt.queue_size
    assert ranged == 29
    with pytest.raises(UsageError, match="--every: must be between 1 and 1e"):
        validate_run_options(merge_cli(RunOptions(model=MOBILENET), {"every": 10**7}), check_source=False)


@pytest.mark.parametrize(
    ("command", "shared"),
    [
        (("service", "install"), ["--camera", "--device", "--serve", "--source", "--threads"]),
        (
            ("predict",),
            [
                "--agnostic",
                "--classes",
                "--crop",
                "--device",
                "--iou",
                "--labels",
                "--max-detections",
                "--min-score",
                "--object-threshold",
                "--threads",
                "--top-k",
                "-k",
            ],
        ),
        (("eval",), ["--agnostic", "--crop", "--device", "--iou", "--labels", "--threads"]),
        (
            ("bench", "run"),
            [
                "--agnostic",
                "--classes",
                "--iou",
                "--max-detections",
                "--object-threshold",
                "--top-k",
                "-k",
            ],
        ),
    ],
)
def test_commands_sharing_run_flags_use_the_declared_ones(command, shared):
    """`service install` passes some run options straight through, and `predict`/`eval` take the same
    model options: their range and help are the declared ones too, so no command accepts or explains a
    value differently from `edgecnn run`. The task options (edgecnn.tasks.options) are the same flags in
    predict, run and bench; eval's k of top-k accuracy is --accuracy-k, another option."""
    from typer.main import get_command

    from edgecnn.cli import app
    from edgecnn.run.options import declared

    install = get_command(app)
    for name in command:
        install = install.commands[name]  # type: ignore[attr-defined]
    declared_by_flag = {
        flag: opt for opt in declared(RunOptions).values() for flags in opt.flags for flag in flags.split("/")
    }
    checked = []
    for param in install.params:
        for flag in param.opts:
            if flag not in shared:
                continue
            opt = declared_by_flag[flag]
            assert param.help == opt.spec.help, flag  # type: ignore[attr-defined]
            bounds = (getattr(param, "min", None), getattr(param, "max", None))
            assert bounds == (opt.spec.low, opt.spec.high), flag
            checked.append(flag)
    assert sorted(checked) == shared


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('modle = "m.tflite"', ["unknown key 'modle'", "did you mean 'model'"]),
        ('model = "m.tflite"\ntop_k = "3"', ["top_k must be an integer", "string"]),
        ('model = "m.tflite"\nreconnect = 1', ["reconnect must be true or false"]),
        ('model = "m.tflite"\nthreads = true', ["threads must be an integer"]),
        ('model = "m.tflite"\nmqtt = "on"', ["mqtt must be a table"]),
        ('model = "m"\ntop_k = = 3', ["not valid TOML", "line 2"]),
    ],
)
def test_load_errors_name_file_and_key(tmp_path, text, words):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_run_config(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for word in words:
        assert word in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_run_config(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("camera = 0", ["no model", "model = "]),
        ('model = "missing.tflite"', ["model (MODEL)", "missing.tflite not found"]),
        ('model = "model.tflite"\nsource = "nowhere.avi"', ["source (--source)", "not found"]),
        ('model = "model.tflite"\nsource = "gopher://x"', ["source (--source)", "gopher"]),
        ('model = "model.tflite"\ncamera = -1', ["camera (--camera)"]),
        ('model = "model.tflite"\ntop_k = 0', ["top_k (--top-k)", "between 1 and 1000"]),
        ('model = "model.tflite"\nserve = "127.0.0.1:99999"', ["serve (--serve)", "0-65535"]),
        ('model = "model.tflite"\ndevice = "gpu"', ["device (--device)", "gpu"]),
        ('model = "model.tflite"\ncrop = "left"', ["crop (--crop)", "center"]),
        ('model = "model.tflite"\njsonl = "nodir/r.jsonl"', ["jsonl (--jsonl)", "does not exist"]),
        ('model = "model.tflite"\ncamera = 1\nsource = "demo"', ["either --camera"]),
    ],
)
def test_validation_errors_name_the_key(layout, text, words, coral):
    path = write(layout, text)
    with pytest.raises(ConfigError) as info:
        validate_run_options(load_run_config(path))
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    for word in words:
        assert word in message


def test_cli_flags_override_the_file(layout, coral):
    base = load_run_config(write(layout, FULL))
    merged = merge_cli(base, {"top_k": 1, "camera": 2, "source": None, "quiet": False, "model": None})
    assert merged.top_k == 1 and merged.camera == 2 and merged.source is None and merged.quiet is False
    assert merged.model == layout / "model.tflite" and merged.every == 2
    bad = merge_cli(base, {"source": str(layout / "missing.avi")})
    with pytest.raises(UsageError, match=r"^--source: "):
        validate_run_options(bad)


def test_parse_serve_forms():
    assert parse_serve("8080") == ("127.0.0.1", 8080)
    assert parse_serve(":0") == ("127.0.0.1", 0)
    assert parse_serve("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_serve("[::1]:9000") == ("::1", 9000)
    with pytest.raises(UsageError):
        parse_serve("localhost")


@pytest.mark.parametrize(
    ("text", "lone", "parts"),
    [
        ("8080", "port", (None, "8080")),
        ("broker.lan", "host", ("broker.lan", None)),
        (":8080", "port", ("", "8080")),
        ("h:1", "host", ("h", "1")),
        ("fe80::1", "host", ("fe80::1", None)),  # a bare IPv6 address is a broker host...
        ("fe80::1:8080", "port", ("fe80::1", "8080")),  # ...but --serve splits at the last colon
        (" [::1]:9 ", "port", ("::1", "9")),
        ("[::1]", "host", ("::1", None)),
    ],
)
def test_split_address_is_shared_by_serve_and_mqtt(text, lone, parts):
    from edgecnn.run.address import BracketError, split_address

    assert split_address(text, lone=lone) == parts
    for bad in ("[::1", "[::1]x"):
        with pytest.raises(BracketError):
            split_address(bad, lone=lone)


def test_cli_runs_from_config_with_overrides(layout, coral):
    config = write(layout, 'model = "model.tflite"\nsource = "clips/door.avi"\ntop_k = 2\nquiet = true\n')
    result = run_cli("run", "--config", config, "--jsonl", "-", "--top-k", "1")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.count('"label"') == 1 for line in lines)


def test_cli_config_error_is_one_line_exit_7(tmp_path):
    config = write(tmp_path, 'model = "m.tflite"\nfsp = 3\n')
    result = run_cli("run", "--config", config)
    assert result.code == 7
    assert error_lines(result.stderr) == [
        f"edgecnn: error: {config}: unknown key 'fsp' (did you mean 'fps'?); known keys: {', '.join(CONFIG_KEYS)}."
    ]
    assert "Traceback" not in result.stderr


def test_cli_without_model_says_how(tmp_path):
    result = run_cli("run", "--source", "demo")
    assert result.code == 2
    assert error_lines(result.stderr) == [
        "edgecnn: error: No model: pass MODEL (a .tflite file) or --config FILE with a model key."
    ]


def test_config_module_is_light_for_installers(layout, coral):
    """The service installer validates /etc/edgecnn/NAME.toml with these two calls: no OpenCV, no runtime."""
    config = write(layout, FULL)
    probe = (
        "import sys\n"
        "from edgecnn.run.config import load_run_config, validate_run_options\n"
        f"validate_run_options(load_run_config({str(config)!r}))\n"
        "print(sorted(m for m in ('cv2', 'ai_edge_litert', 'numpy', 'prometheus_client', 'tensorflow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_defaults_are_what_the_readme_says():
    opts = RunOptions()
    assert (opts.device, opts.top_k, opts.every, opts.min_score, opts.stall_timeout) == (
        "cpu",
        1,
        1,
        0.0,
        5.0,
    )


def _numbers() -> list[Any]:
    """Every declared number option (run options and [mqtt] keys), as (config key, declaration)."""
    from edgecnn.run.options import MqttOptions, declared

    found = [(k, o) for k, o in declared(RunOptions).items() if o.kind in (int, float) and o.spec.config]
    found += [(f"mqtt.{k}", o) for k, o in declared(MqttOptions).items() if o.kind in (int, float)]
    return found


def _bad_values(opt: Any) -> list[float]:
    """NaN, the infinities (float options), and one step outside each end of the declared range."""
    values: list[float] = [math.nan, math.inf, -math.inf] if opt.kind is float else []
    step = 1 if opt.kind is int else max(0.001, (opt.spec.high or 1) / 1000)
    if opt.spec.low is not None:
        values.append(opt.kind(opt.spec.low - step))
    if opt.spec.high is not None:
        values.append(opt.kind(opt.spec.high + step))
    return values


BAD_NUMBERS = [(key, value) for key, opt in _numbers() for value in _bad_values(opt)]


def _toml(value: float) -> str:
    return "nan" if math.isnan(value) else repr(value)  # inf, -inf, 2.0, 1001 are TOML as Python writes them


def _errors(capsys: Any, argv: list[str]) -> list[str]:
    """``edgecnn ARGV`` through the CLI's own entry point (edgecnn.cli.main): its stderr lines, exit 2 or 7."""
    from edgecnn.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code in (2, 7), err
    return err.splitlines()


def _problem_of_flag(line: str, flag: str) -> str:
    """``Invalid value for '--fps': PROBLEM (see 'edgecnn run --help')`` -> PROBLEM."""
    match = re.fullmatch(rf"edgecnn: error: Invalid value for '{flag}'[^:]*: (.*) \(see '[^']*'\)", line)
    assert match, line
    return match.group(1)


def _problem_of_key(line: str, config: Path, key: str, flag: str) -> str:
    """``edgecnn: error: FILE: KEY (FLAG): PROBLEM`` -> PROBLEM."""
    prefix = f"edgecnn: error: {config}: {key} ({flag}): "
    assert line.startswith(prefix), line
    return line[len(prefix) :]


@pytest.mark.parametrize(("key", "value"), BAD_NUMBERS, ids=[f"{k}={v!r}" for k, v in BAD_NUMBERS])
def test_a_number_the_flag_refuses_the_file_refuses_in_the_same_words(tmp_path, capsys, key, value, coral):
    """One check (edgecnn.run.options.check_value) for every reader: fps = nan from a file does not run
    unthrottled and stall_timeout = nan does not switch the stall detector off. Parametrized over the
    declaration itself, so an option added later is covered without touching this test."""
    from edgecnn.run.options import run_option

    opt = run_option(key)
    flag = opt.flag
    config = tmp_path / "door.toml"
    stop = "max_frames = 1\nduration = 5\n" if key not in ("max_frames", "duration") else ""
    stop += 'source = "demo"\n' if key != "camera" else ""
    if key.startswith("mqtt."):
        table = f'[mqtt]\nhost = "127.0.0.1"\n{key[len("mqtt.") :]} = {_toml(value)}\n'
        config.write_text(f'model = "{MOBILENET}"\n{stop}{table}')
    else:
        config.write_text(f'model = "{MOBILENET}"\n{stop}{key} = {_toml(value)}\n')
    (from_file,) = _errors(capsys, ["run", "--config", str(config)])
    file_problem = _problem_of_key(from_file, config, key, flag)
    assert file_problem.startswith("must be between ") and file_problem.endswith(f"got {value!r}."), (
        file_problem
    )
    if key == "mqtt.port":  # no flag of its own: part of --mqtt HOST[:PORT]
        return
    argv = ["run", str(MOBILENET), "--max-frames", "1", f"{flag}={value!r}"]
    argv += ["--source", "demo"] if key != "camera" else []
    if key.startswith("mqtt."):
        argv.append("--mqtt=127.0.0.1")
    (from_flag,) = _errors(capsys, argv)
    assert _problem_of_flag(from_flag, flag) == file_problem


def test_every_float_option_is_covered():
    """The matrix above reaches every float option (a declaration it skipped would be unchecked)."""
    floats = {k for k, o in _numbers() if o.kind is float}
    assert floats >= {"fps", "min_score", "iou", "duration", "stall_timeout"}
    assert {k for k, v in BAD_NUMBERS if isinstance(v, float) and math.isnan(v)} == floats


@pytest.mark.parametrize("key", ["fps", "stall_timeout"])
def test_nan_from_a_file_and_a_flag_in_real_processes(tmp_path, key, coral):
    from edgecnn.run.options import run_option

    flag = run_option(key).flag
    config = tmp_path / "door.toml"
    config.write_text(f'model = "{MOBILENET}"\nsource = "demo"\nmax_frames = 1\n{key} = nan\n')
    from_file = run_cli("run", "--config", config, timeout=60)
    from_flag = run_cli("run", MOBILENET, "--source", "demo", "--max-frames", "1", flag, "nan", timeout=60)
    assert (from_file.code, from_flag.code) == (7, 2), (from_file.stderr, from_flag.stderr)
    assert from_file.stdout == from_flag.stdout == ""
    (file_line,) = error_lines(from_file.stderr)
    (flag_line,) = error_lines(from_flag.stderr)
    problem = f"must be between {run_option(key).spec.low:g} and {run_option(key).spec.high:g}, got nan."
    assert file_line.endswith(f"{key} ({flag}): {problem}"), file_line
    assert _problem_of_flag(flag_line, flag) == problem


def test_a_toml_integer_too_large_for_a_float_is_out_of_range(tmp_path, capsys, coral):
    config = tmp_path / "door.toml"
    config.write_text(f'model = "{MOBILENET}"\nsource = "demo"\nfps = 1{"0" * 400}\n')
    (line,) = _errors(capsys, ["run", "--config", str(config)])
    assert line.endswith("fps (--fps): must be between 0.001 and 1000, got inf."), line


@pytest.mark.parametrize(
    ("flag", "value", "needle"),
    [
        ("--serve", "127.0.0.1:²", "--serve"),  # '²'.isdigit() is True and int('²') a ValueError
        ("--serve", "127.0.0.1:٨٠٨٠", "--serve"),  # Arabic-Indic digits: int() takes them, a port may not
        ("--mqtt", "broker:²", "--mqtt"),
        ("--source", "²", "--source"),
        ("--device", "edgetpu:usb:٣", "Bad Edge TPU device"),
        ("--device", "edgetpu:usb:1\n", None),  # stripped like any flag value: fine, no traceback
    ],
)
def test_numbers_in_addresses_are_ascii_digits(flag, value, needle, coral):
    """Unicode digits in a port, camera index or Edge TPU index are one error line, not a traceback."""
    result = run_cli("run", MOBILENET, *(["--source", "demo"] if flag != "--source" else []), flag, value,
                     "--max-frames", "1")  # fmt: skip
    assert "Traceback" not in result.stderr and "ValueError" not in result.stderr, result.stderr
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and result.code != 0, result.stderr
    if needle:
        assert needle in lines[0], lines
