"""The contract every fuzz case is held to, and the child process that runs interpreter-touching cases.

Contract: exit 0 with a sane result, or exactly one ``edgecnn: error:`` line and a non-zero exit; never a
traceback, a signal, or more than :data:`CASE_SECONDS`.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CASE_SECONDS = 5.0


class WorkerDied(AssertionError):
    pass


class Worker:
    """``tests/fuzz_worker.py`` in a child: :meth:`run` sends one argv, returns its reply."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k != "EDGECNN_DEBUG"}
        env["PYTHONPATH"] = str(ROOT)
        return subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # the C++ runtime's INFO lines; ours come back in the reply
            text=True,
            cwd=ROOT,
            env=env,
        )

    def run(self, argv: list[str], timeout: float = 30.0) -> dict[str, Any]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": [str(a) for a in argv]}) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.proc.kill()
            code = self.proc.wait()
            self.proc = None
            raise WorkerDied(
                f"edgecnn {' '.join(map(str, argv))}: "
                + (f"hung for more than {timeout} s" if not ready else f"the process died (exit {code})")
            )
        return json.loads(line)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def check_contract(reply: dict[str, Any], what: str) -> None:
    assert reply["traceback"] is None, f"{what}: traceback\n{reply['traceback']}"
    assert isinstance(reply["code"], int), f"{what}: exit {reply['code']!r}"
    assert reply["seconds"] < CASE_SECONDS, f"{what}: took {reply['seconds']:.1f} s"
    errors = [line for line in reply["stderr"].splitlines() if line.startswith("edgecnn: error:")]
    if reply["code"] == 0:
        assert not errors, f"{what}: exit 0 with {errors}"
    else:
        assert len(errors) == 1, f"{what}: exit {reply['code']} with stderr {reply['stderr']!r}"
