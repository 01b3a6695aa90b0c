"""A long-lived child that runs ``edgecnn`` commands in-process, one JSON request per line.

Fuzz cases that reach the TFLite interpreter run here, not in pytest's process: a malformed model that
crashes native code kills this child (the parent sees which case), and starting Python once instead of
once per case keeps a few hundred cases within a CI minute. Each reply says the exit code, what went to
stderr, and the traceback if anything other than ``SystemExit`` escaped ``edgecnn.cli.main``.
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import traceback


def _run(argv: list[str]) -> dict[str, object]:
    from edgecnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    for handler in logging.getLogger("edgecnn").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(err)
    real_out, real_err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    code: object = 0
    tb = None
    start = time.perf_counter()
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code if exc.code is not None else 0
    except BaseException:
        tb = traceback.format_exc()
        code = None
    finally:
        sys.stdout, sys.stderr = real_out, real_err
    return {
        "code": code,
        "stdout": out.getvalue()[-4000:],
        "stderr": err.getvalue()[-4000:],
        "traceback": tb,
        "seconds": time.perf_counter() - start,
    }


def main() -> None:
    from edgecnn.cli import setup_logging

    setup_logging()
    for line in sys.stdin:
        reply = _run(json.loads(line)["argv"])
        sys.__stdout__.write(json.dumps(reply) + "\n")
        sys.__stdout__.flush()


if __name__ == "__main__":
    main()
