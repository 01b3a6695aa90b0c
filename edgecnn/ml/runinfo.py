"""The run folder: what ``edgecnn train`` writes and ``edgecnn convert`` reads back.

A run folder holds the Keras model and, beside it, ``metrics.json`` and ``labels.txt`` that say how the
model was trained (dataset, split, seed, colour, normalization). Convert calibrates and verifies on the
same held-out images from them; a model without a run folder is converted from flags and defaults.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODEL_NAME, LABELS_NAME, METRICS_NAME, CURVES_NAME = "model.keras", "labels.txt", "metrics.json", "curves.png"
SAMPLES_NAME = "samples"  # held-out test images, named by their true class, to try `edgecnn predict` on


@dataclass(frozen=True)
class RunInfo:
    """What ``edgecnn convert`` needs from a training run: read from metrics.json and labels.txt."""

    metrics_path: Path
    dataset: str
    seed: int
    test_split: float
    colour: str
    mean: float
    std: float
    resize: str
    labels: list[str]
    architecture: str | None
    model_sha256: str | None


def read_run_info(model_path: str | os.PathLike[str]) -> RunInfo | None:
    """The run beside ``model_path`` (``metrics.json`` written by :func:`train`), or None for foreign models."""
    folder = Path(model_path).parent
    metrics_path = folder / METRICS_NAME
    if not metrics_path.is_file():
        return None
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        dataset, pre = metrics["dataset"], metrics["preprocessing"]
        labels_file = folder / LABELS_NAME
        if labels_file.is_file():
            from edgecnn.metadata import parse_labels

            labels = parse_labels(labels_file.read_text(encoding="utf-8"))
        else:
            labels = [str(label) for label in dataset["labels"]]
        return RunInfo(
            metrics_path=metrics_path,
            dataset=str(dataset["name"]),
            seed=int(dataset.get("seed", 0)),
            test_split=float(dataset.get("test_split", 0.2)),
            colour=str(pre["colour"]),
            mean=float(pre["mean"]),
            std=float(pre["std"]),
            resize=str(pre.get("resize", "bilinear")),
            labels=labels,
            architecture=metrics.get("architecture"),
            model_sha256=metrics.get("model_sha256"),
        )
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        log.warning("Ignoring %s: not a metrics file written by edgecnn train (%s).", metrics_path, exc)
        return None
