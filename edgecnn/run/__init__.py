"""``edgecnn run``: camera-fed classification or detection as a long-running, observable service.

Modules: ``options`` (RunOptions), ``config`` (TOML files: :func:`load_run_config`,
:func:`validate_run_options`; no heavy imports, safe for installers), ``pipeline`` (:func:`run`,
:class:`Pipeline`), ``outputs`` (result sinks), ``server``/``metrics``/``live`` (HTTP endpoint),
``notify`` (systemd), ``stats`` (summary). Names below are imported on first use, so
``import edgecnn.run.config`` never pulls in OpenCV or the TFLite runtime.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "RunOptions": "edgecnn.run.options",
    "load_run_config": "edgecnn.run.config",
    "validate_run_options": "edgecnn.run.config",
    "Pipeline": "edgecnn.run.pipeline",
    "run": "edgecnn.run.pipeline",
    "RunSummary": "edgecnn.run.stats",
    "format_summary": "edgecnn.run.stats",
    "ResultSink": "edgecnn.run.outputs",
    "FrameResult": "edgecnn.run.results",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecnn.run' has no attribute {name!r}")
