"""What the runtime needs to know about a model, carried inside the ``.tflite`` file.

edgecnn stores one JSON document in the flatbuffer's ``metadata`` list under the name ``edgecnn``
(the list is part of the TFLite schema; interpreters ignore unknown entries, and ``edgetpu_compiler``
keeps them). Third-party models get the same view from what they carry: Ultralytics' export metadata
(a ``metadata.json`` in the zip appended to the file: class names, image size, task; inputs are pixel/255),
TFLite Support's ``TFLITE_METADATA`` flatbuffer (the input's ``NormalizationOptions`` mean/std) and labels
from its zip of associated files. What is still unknown is decided per input tensor by
:mod:`edgecnn.normalisation`.
"""

from __future__ import annotations

import ast
import json
import math
import os
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgecnn.errors import InputError, ModelError
from edgecnn.modelfile import ModelFile, with_metadata
from edgecnn.safeio import FileKind, read_text

METADATA_NAME = "edgecnn"
SCHEMA_VERSION = 1
COLOUR_ORDERS = ("RGB", "BGR", "GRAY")
CROP_CHOICES = ("center", "none")
OUTPUT_KINDS = ("probabilities", "logits", "auto")
TFLITE_SUPPORT_NAME = "TFLITE_METADATA"  # the metadata entry TFLite Support's writers add
TFLITE_SUPPORT_IDENTIFIER = b"M001"  # its flatbuffer's file identifier


@dataclass
class ModelMetadata:
    """Preprocessing contract and provenance of a model.

    Pixels (0-255, in ``colour`` order, resized to the input size) become ``(pixel - mean) / std``; for an
    integer input that real value is then quantized with the tensor's scale and zero-point. ``mean``/``std``
    of ``None`` means the model does not say: :func:`edgecnn.normalisation.input_normalisation` decides from
    the input tensor (raw pixels for uint8, Coral's convention; pixel/255 otherwise).
    """

    labels: list[str] | None = None
    colour: str = "RGB"
    layout: str = "NHWC"
    mean: float | list[float] | None = None
    std: float | list[float] | None = None
    resize: str = "bilinear"
    crop: str = "none"
    outputs: str = "auto"  # "probabilities", "logits" or "auto" (detected from values)
    task: str | None = None  # "classify", "detect", ...; None: inferred from the outputs (edgecnn.tasks)
    letterbox: bool | None = None  # keep aspect and pad instead of stretching; None: the task decides
    cpu_twin: str | None = None  # for an Edge TPU model: file name of the same model for the CPU
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = "edgecnn"  # where this view came from: edgecnn, ultralytics, tflite-support, defaults
    # where mean/std came from (edgecnn, tflite-support, ultralytics); None: the model does not say
    norm_source: str | None = None
    schema: int = SCHEMA_VERSION

    def to_json(self) -> bytes:
        data = asdict(self)
        data.pop("source")
        data.pop("norm_source")
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()

    def validate(self) -> None:
        if self.colour not in COLOUR_ORDERS:
            raise ModelError(
                f"Model metadata has colour order {self.colour!r}; expected one of {COLOUR_ORDERS}."
            )
        if (self.mean is None) != (self.std is None):
            raise ModelError("Model metadata sets only one of mean/std; set both or neither.")
        if self.labels is not None and (
            not isinstance(self.labels, list) or not all(isinstance(x, str) for x in self.labels)
        ):
            raise ModelError("Model metadata labels are not a list of strings. Re-run `edgecnn convert`.")
        for name in ("mean", "std"):
            value = getattr(self, name)
            values = value if isinstance(value, list) else [value]
            if value is not None and not (
                values
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
                and all(math.isfinite(v) for v in values)
                and (name == "mean" or all(v != 0 for v in values))
            ):
                raise ModelError(
                    f"Model metadata {name} {value!r} is not a finite number (or list of them)"
                    + (", or is 0" if name == "std" else "")
                    + ". Re-run `edgecnn convert`."
                )
        if not isinstance(self.resize, str) or not isinstance(self.cpu_twin, (str, type(None))):
            raise ModelError("Model metadata resize/cpu_twin are not strings. Re-run `edgecnn convert`.")
        if not isinstance(self.provenance, dict):
            raise ModelError("Model metadata provenance is not an object. Re-run `edgecnn convert`.")
        if self.crop not in CROP_CHOICES or self.outputs not in OUTPUT_KINDS:
            raise ModelError(
                f"Model metadata has crop {self.crop!r} / outputs {self.outputs!r}; expected one of "
                f"{CROP_CHOICES} / {OUTPUT_KINDS}. Re-run `edgecnn convert`."
            )


def _from_json(raw: bytes) -> ModelMetadata:
    try:
        data = json.loads(raw.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # ValueError: also 5000-digit ints
        raise ModelError(
            f"The model's edgecnn metadata is not valid JSON ({type(exc).__name__}). Re-run `edgecnn convert`."
        ) from exc
    if not isinstance(data, dict):
        raise ModelError("The model's edgecnn metadata is not a JSON object. Re-run `edgecnn convert`.")
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise ModelError(f"The model's metadata schema {schema!r} is not a number. Re-run `edgecnn convert`.")
    if schema > SCHEMA_VERSION:
        raise ModelError(
            f"The model's metadata is schema {data['schema']}, newer than this edgecnn understands "
            f"({SCHEMA_VERSION}). Upgrade edgecnn: pip install -U edgecnn."
        )
    known = {f for f in ModelMetadata.__dataclass_fields__ if f not in ("source", "norm_source")}
    meta = ModelMetadata(**{k: v for k, v in data.items() if k in known})
    meta.validate()
    return meta


def labels_from_associated_files(files: dict[str, bytes]) -> list[str] | None:
    """Pick the label file among TFLite Support's associated files (the first ``*label*.txt``)."""
    names = sorted(files)
    candidates = [n for n in names if n.lower().endswith(".txt") and "label" in n.lower()]
    candidates = candidates or [n for n in names if n.lower().endswith(".txt")]
    if not candidates:
        return None
    return parse_labels(files[candidates[0]].decode("utf-8", errors="replace"))


def parse_labels(text: str) -> list[str]:
    """One label per line; ``"3 cat"``/``"3: cat"`` id-prefixed lines (Coral's label files) are understood."""
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    pairs = []
    for line in lines:
        head, _, rest = line.replace(":", " ", 1).partition(" ")
        if head.isascii() and head.isdigit() and rest.strip():  # not '²' (int() refuses it)
            pairs.append((int(head), rest.strip()))
        else:
            break
    else:
        if pairs and len(pairs) == len(lines):
            size = max(i for i, _ in pairs) + 1
            labels = [str(i) for i in range(size)]
            for i, name in pairs:
                labels[i] = name
            return labels
    return lines


def read_labels_file(path: str | os.PathLike[str]) -> list[str]:
    """Labels from a user's file: a regular UTF-8 text file of at most a few MB; empty is an error."""
    p = Path(path)
    labels = parse_labels(read_text(p, FileKind.LABELS))
    if not any(labels):
        raise InputError(f"Labels file {p} is empty: pass a text file with one label per line.")
    return labels


ULTRALYTICS_TASKS = {
    "detect": "detect",
    "classify": "classify",
}  # others (pose, segment, obb) keep their name


def ultralytics_metadata(files: dict[str, bytes]) -> dict[str, Any] | None:
    """The metadata dict Ultralytics' TFLite export appends (``metadata.json``; older exports wrote a
    Python-literal dict as a text file), recognised by its ``names`` and ``author``/``task`` keys; YOLOv5's
    ``export.py`` writes ``meta.txt`` with ``{'stride': 32, 'names': {...}}`` only (a detector's)."""
    for name in sorted(files, key=lambda n: n != "metadata.json"):
        text = files[name].decode("utf-8", errors="replace").strip()
        if not text.startswith("{"):
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            try:
                data = ast.literal_eval(text)  # literals only: never executes code
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                continue
        if (
            isinstance(data, dict)
            and "names" in data
            and ("task" in data or "stride" in data or "Ultralytics" in str(data.get("author")))
        ):
            return data
    return None


def _ultralytics_names(names: Any, where: str) -> list[str]:
    """Ultralytics names: {0: "person", ...} (JSON turns the keys into strings) or a list."""
    if isinstance(names, list):
        return [str(n) for n in names]
    if not isinstance(names, dict):
        raise ModelError(
            f"{where}: Ultralytics metadata 'names' is neither a list nor a dict. Re-export the model."
        )
    try:
        pairs = sorted((int(k), str(v)) for k, v in names.items())
    except (TypeError, ValueError) as exc:
        raise ModelError(
            f"{where}: Ultralytics metadata 'names' has a non-integer class id. Re-export the model."
        ) from exc
    size = pairs[-1][0] + 1 if pairs else 0
    labels = [str(i) for i in range(size)]
    for i, label in pairs:
        labels[i] = label
    return labels


def tflite_support_normalisation(model_file: ModelFile) -> tuple[list[float], list[float]] | None:
    """The first input's ``NormalizationOptions`` (mean, std) from TFLite Support's metadata, if it has them.

    Read with the metadata schema's generated code (vendored: see :mod:`edgecnn._vendor`), only the few
    tables on the way: a hostile file cannot make this walk more than one subgraph's first input.
    """
    raw = model_file.metadata_entry(TFLITE_SUPPORT_NAME)
    if not raw or len(raw) < 8:
        return None
    from edgecnn._vendor import tflite_metadata_schema as tfs

    where = model_file.path or "the model"
    try:
        if not tfs.ModelMetadata.ModelMetadataBufferHasIdentifier(raw, 0):
            return None
        root = tfs.ModelMetadata.GetRootAs(raw, 0)
        if root.SubgraphMetadataLength() < 1:
            return None
        graph = root.SubgraphMetadata(0)
        if graph is None or graph.InputTensorMetadataLength() < 1:
            return None
        tensor = graph.InputTensorMetadata(0)
        for i in range(min(tensor.ProcessUnitsLength(), 16) if tensor is not None else 0):
            unit = tensor.ProcessUnits(i)
            if unit is None or unit.OptionsType() != tfs.ProcessUnitOptions.NormalizationOptions:
                continue
            table = unit.Options()
            if table is None:
                continue
            options = tfs.NormalizationOptions()
            options.Init(table.Bytes, table.Pos)
            if not 1 <= options.MeanLength() <= 4 or not 1 <= options.StdLength() <= 4:
                raise ModelError(
                    f"{where}: TFLite Support NormalizationOptions have {options.MeanLength()} means and "
                    f"{options.StdLength()} stds (expected 1 or one per channel). Re-export the model's metadata."
                )
            mean = [float(v) for v in options.MeanAsNumpy()]
            std = [float(v) for v in options.StdAsNumpy()]
            if not all(math.isfinite(v) for v in mean + std) or 0.0 in std:
                raise ModelError(
                    f"{where}: TFLite Support NormalizationOptions mean {mean} / std {std} are not finite "
                    "numbers with a non-zero std. Re-export the model's metadata."
                )
            return mean, std
    except (IndexError, ValueError, TypeError, OverflowError, struct.error) as exc:
        raise ModelError(
            f"{where}: its TFLite Support metadata ({TFLITE_SUPPORT_NAME}) is unreadable (an offset or length "
            "points outside it): re-write it with TFLite Support's metadata writer, or remove it."
        ) from exc
    return None


def read_metadata(model_file: ModelFile) -> ModelMetadata:
    """edgecnn's metadata if present, else what a third-party model carries, else defaults.

    Input normalisation, in this order: edgecnn's mean/std, TFLite Support's NormalizationOptions,
    Ultralytics' pixel/255 (whatever the input dtype: the export's input quantization is for pixel/255).
    """
    raw = model_file.metadata_entry(METADATA_NAME)
    if raw is not None:
        meta = _from_json(raw)
        meta.source = "edgecnn"
        meta.norm_source = "edgecnn" if meta.mean is not None else None
        return meta
    inp = model_file.inputs[0]
    ultra = ultralytics_metadata(model_file.appended)
    if ultra is not None:
        task = str(ultra.get("task") or "detect")
        meta = ModelMetadata(
            labels=_ultralytics_names(ultra["names"], str(model_file.path or "model")),
            task=ULTRALYTICS_TASKS.get(task, task),
            letterbox=True,
            source="ultralytics",
            provenance={k: ultra[k] for k in ("description", "version", "imgsz", "stride") if k in ultra},
        )
        meta.mean, meta.std, meta.norm_source = 0.0, 255.0, "ultralytics"
    else:
        labels = labels_from_associated_files(model_file.appended)
        meta = ModelMetadata(labels=labels, source="tflite-support" if labels else "defaults")
    support = tflite_support_normalisation(model_file)
    if support is not None:
        meta.mean, meta.std = support
        meta.norm_source = "tflite-support"
        if meta.source == "defaults":
            meta.source = "tflite-support"
    if len(inp.shape) == 4 and inp.shape[-1] == 1:
        meta.colour = "GRAY"
    return meta


def embed_metadata(model_file: ModelFile, meta: ModelMetadata) -> bytes:
    """Return the model bytes with ``meta`` stored under the ``edgecnn`` metadata entry."""
    meta.validate()
    return with_metadata(model_file, METADATA_NAME, meta.to_json())
