"""The fd-level filter for native libraries' chatter: drops known INFO banners, keeps everything else."""

from __future__ import annotations

import os

from edgecnn.nativelog import is_chatter, native_chatter_filtered

# Lines as TensorFlow 2.21, absl, the TFLite converter and LiteRT 2.3 print them on this machine.
CHATTER = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    "I0000 00:00:1795534879.608033    2292 port.cc:153] oneDNN custom operations are on. You may see "
    "slightly different numerical results.\n",
    "W0000 00:00:1795534879.608033    2292 loader.cc:12] something harmless\n",
    "2026-01-30 22:44:42.456316: I tensorflow/core/util/port.cc:153] oneDNN custom operations are on.\n",
    "fully_quantize: 0, inference_type: 6, input_inference_type: INT8, output_inference_type: INT8\n",
    "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",
]
KEPT = [
    "E0000 00:00:1795534879.608033    2292 cuda_dnn.cc:8579] Unable to register cuDNN factory\n",
    "F0000 00:00:1795534879.608033    2292 check.cc:1] Check failed: x\n",
    "ERROR: Didn't find op for builtin opcode 'CONV_2D'\n",
    "Traceback-like text from a library\n",
]


def test_chatter_patterns():
    assert all(is_chatter(line) for line in CHATTER)
    assert not any(is_chatter(line) for line in KEPT)


def test_native_writes_are_filtered_and_the_rest_replayed_in_order(capfd, monkeypatch):
    monkeypatch.delenv("EDGECNN_DEBUG", raising=False)
    with native_chatter_filtered():
        for line in [*CHATTER[:3], KEPT[0], *CHATTER[3:], KEPT[2]]:
            os.write(2, line.encode())  # the file descriptor, as C++ code writes it
    os.write(2, b"after\n")
    err = capfd.readouterr().err
    assert err == KEPT[0] + KEPT[2] + "after\n"


def test_debug_passes_everything_through(capfd, monkeypatch):
    monkeypatch.setenv("EDGECNN_DEBUG", "1")
    with native_chatter_filtered():
        os.write(2, CHATTER[1].encode())
    assert capfd.readouterr().err == CHATTER[1]


def test_stderr_is_restored_when_the_block_raises(capfd, monkeypatch):
    monkeypatch.delenv("EDGECNN_DEBUG", raising=False)
    try:
        with native_chatter_filtered():
            os.write(2, KEPT[1].encode())
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    os.write(2, b"later\n")
    assert capfd.readouterr().err == KEPT[1] + "later\n"


def test_cpu_interpreter_banner_is_hidden_unless_debugging(coral):
    """LiteRT prints its XNNPACK banner from C++ at the first allocate_tensors(): kept out by default."""
    from tests.conftest import CAT, MOBILENET, run_cli

    quiet = run_cli("predict", MOBILENET, CAT)
    assert quiet.code == 0 and quiet.stderr == "", quiet.stderr
    loud = run_cli("predict", MOBILENET, CAT, env={"EDGECNN_DEBUG": "1"})
    assert loud.code == 0 and "XNNPACK delegate for CPU" in loud.stderr, loud.stderr


def test_interpreter_with_a_delegate_is_not_captured():
    """An Edge TPU delegate may crash the process: its interpreter's fd 2 is never redirected."""
    from edgecnn.nativelog import quiet_cpu_interpreter

    seen = []

    class Fake:
        def __init__(self, **kwargs):
            pass

        def allocate_tensors(self):
            seen.append(os.readlink("/proc/self/fd/2"))

    quiet = quiet_cpu_interpreter(Fake)
    before = os.readlink("/proc/self/fd/2")
    quiet(experimental_delegates=[object()]).allocate_tensors()
    quiet().allocate_tensors()
    # With a delegate fd 2 is a pipe to the filter process (crash-safe), without one a temporary file.
    assert seen[0].startswith("pipe:") and seen[1] != before and not seen[1].startswith("pipe:")
    assert os.readlink("/proc/self/fd/2") == before


def test_streamed_filter_drops_chatter_and_keeps_the_rest_in_order(capfd, monkeypatch):
    from edgecnn.nativelog import native_chatter_streamed

    monkeypatch.delenv("EDGECNN_DEBUG", raising=False)
    with native_chatter_streamed():
        for line in [CHATTER[-1], KEPT[0], *CHATTER[:3], KEPT[2]]:
            os.write(2, line.encode())
    os.write(2, b"after\n")
    assert capfd.readouterr().err == KEPT[0] + KEPT[2] + "after\n"


def test_a_crash_inside_the_streamed_block_loses_nothing(tmp_path):
    """The reason delegate interpreters are filtered by another process: what a library prints just
    before it kills the process (here SIGABRT) still reaches stderr; only the banner is gone."""
    import signal
    import subprocess
    import sys

    script = (
        "import os\n"
        "from edgecnn.nativelog import native_chatter_streamed\n"
        "with native_chatter_streamed():\n"
        f"    os.write(2, {CHATTER[-1].encode()!r})\n"
        "    os.write(2, b'last words of a delegate\\n')\n"
        "    os.abort()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EDGECNN_DEBUG"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == -signal.SIGABRT
    assert proc.stderr == "last words of a delegate\n", proc.stderr
