"""A task that exists only in the tests: proof that a task is one module plus one registry line.

"peak" reads a model's one output and reports where it peaks (the index of the largest value) and how high
(that value, dequantized). It claims no model by its outputs, so only a model whose edgecnn metadata
declares ``task = "toy"`` is decoded by it. ``test_toy_task.py`` registers it with one line::

    monkeypatch.setitem(edgecnn.tasks.TASKS, "toy", "tests.toytask")

and runs a model through predict, run, bench and eval. Its evaluator reads class folders named by the
expected peak (``DATA/283/cat.bmp``) and reports the share of images that peak there.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.table import Table

from edgecnn import adapters
from edgecnn.eval.classfolders import read_class_folders
from edgecnn.eval.progress import ProgressFn
from edgecnn.eval.report import ReportMixin
from edgecnn.images import read_image
from edgecnn.metadata import ModelMetadata
from edgecnn.model import Model
from edgecnn.modelfile import ModelFile
from edgecnn.preprocess import Transform
from edgecnn.tasks import DecodeOptions

NAME = "toy"
DESCRIPTION = "peak finder (a test task)"


@dataclass(frozen=True)
class Peak:
    index: int
    value: float
    task: str = field(default=NAME, init=False)

    @property
    def score(self) -> float:
        return self.value

    @property
    def key(self) -> Hashable:
        return self.index

    @property
    def top(self) -> Any:
        return self

    def labels(self) -> list[str]:
        return [str(self.index)]

    def to_json(self) -> dict[str, Any]:
        return {"peak": {"index": self.index, "value": round(self.value, 6)}}

    def summary(self) -> str:
        return f"peak {self.index} at {self.value:.3f}"

    def line(self) -> str:
        return self.summary()

    def lines(self) -> list[str]:
        return [f"  {self.summary()}"]

    def draw(self, image: np.ndarray) -> None:
        image[:4, :4] = 255  # a mark the preview can show; nothing to place


class PeakDecoder:
    task = NAME
    name = "argmax of output 0"
    letterbox = False
    class_count = 0
    verb = "finding peaks"
    decodes = True

    def decode(self, interpreter: Any, transform: Transform) -> Peak:
        scores = adapters.output_scores(interpreter)
        index = int(np.argmax(scores))
        return Peak(index, float(scores[index]))


def claims(model_file: ModelFile, meta: ModelMetadata) -> bool:
    return False  # only a model that declares the task is a toy model


def decoder(
    model_file: ModelFile,
    meta: ModelMetadata,
    interpreter: Any,
    labels: list[str] | None,
    options: DecodeOptions,
) -> PeakDecoder:
    return PeakDecoder()


# --- the evaluator (edgecnn.tasks.Evaluator), reached through evaluator() ------------------------------

LAYOUTS = ("folders",)
EXPECTS = "class folders named by the expected peak (DATA/283/*.jpg)"
DECODE: dict[str, Any] = {}


@dataclass(frozen=True)
class PeakReport(ReportMixin):
    model: str
    images: int
    at_peak_pct: float
    median_inference_ms: float
    comparison: None = None
    task: str = NAME

    @property
    def headline(self) -> tuple[str, float]:
        return "at peak", self.at_peak_pct

    def tables(self) -> list[Any]:
        table = Table(title=f"toy eval of {self.model}")
        table.add_column("images")
        table.add_column("at peak %")
        table.add_row(str(self.images), f"{self.at_peak_pct:.1f}")
        return [table]


def evaluate_model(
    data: str | os.PathLike[str],
    model: Model,
    *,
    against: Model | None,
    options: Any,
    progress: ProgressFn | None = None,
) -> PeakReport:
    peaks = [str(i) for i in range(int(np.prod(model.model_file.outputs[0].shape)))]
    dataset = read_class_folders(data, labels=peaks)  # folder names are peaks, not the model's labels
    hits, times = 0, []
    for item in dataset.images:
        inference = model.process(read_image(item.path))
        hits += int(str(inference.result.key) == item.label)
        times.append(inference.inference_ms)
    total = len(dataset.images)
    return PeakReport(
        model=str(model.path),
        images=total,
        at_peak_pct=round(100.0 * hits / total, 2),
        median_inference_ms=round(statistics.median(times), 3),
    )


def evaluator() -> Any:
    import sys

    return sys.modules[__name__]
