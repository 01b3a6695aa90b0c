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
    assert seen[0] == before and seen[1] != before
