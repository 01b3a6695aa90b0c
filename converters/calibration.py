"""Images for int8 calibration and for verification, kept apart.

Calibration (the representative dataset that sets every tensor's int8 range) draws from training images;
verification uses held-out images the calibration never saw, so the figures in the report are honest.
``--calibration`` takes a dataset name (digits, mnist, ...), an image folder laid out as ``DIR/<class>/*.jpg``
(labels known: accuracy can be measured) or a flat folder of images (no labels: agreement only).
Without ``--calibration`` the training run's own dataset is used (read from metrics.json).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import EdgecnnError, InputError, UsageError
from edgecnn.images import IMAGE_SUFFIXES, list_images, read_image
from edgecnn.ml.datasets import BUILTIN, describe_dataset_choices, load_dataset, load_frame, subsample
from edgecnn.ml.runinfo import RunInfo

log = logging.getLogger(__name__)

HELD_OUT_FRACTION = 0.2  # of a flat calibration folder, kept for verification


@dataclass
class ImageSet:
    images: np.ndarray  # uint8 N x H x W x C, in the model's colour order and size
    labels: np.ndarray | None  # indices into the model's labels; None when the source has no labels
    source: str

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class ConversionData:
    calibration: ImageSet
    verification: ImageSet


@dataclass(frozen=True)
class ModelInput:
    height: int
    width: int
    channels: int
    colour: str  # GRAY or RGB
    resize: str  # bilinear or area


def prepare_data(
    *,
    calibration: str | None,
    run: RunInfo | None,
    model_input: ModelInput,
    labels: list[str] | None,
    calibration_samples: int,
    verification_samples: int,
    seed: int = 0,
) -> ConversionData:
    """Pick calibration and verification images (disjoint) for a model with ``model_input``."""
    spec = calibration or (run.dataset if run else None)
    if spec is None:
        raise UsageError(
            "No calibration data: this model has no metrics.json from `edgecnn train` beside it, so pass "
            f"--calibration with {describe_dataset_choices()} (or a folder of sample images)."
        )
    test_split = run.test_split if run and spec == run.dataset else 0.2
    split_seed = run.seed if run else seed
    origin = (
        "--calibration" if calibration else f"The training dataset (from {run.metrics_path if run else ''})"
    )
    try:
        pool, held = _load_source(spec, model_input, labels, test_split, split_seed, origin)
    except EdgecnnError as exc:
        if calibration is not None:
            raise
        # The user did not name this dataset: say how to pick another.
        raise type(exc)(
            f"{exc} Or pass --calibration DATASET|DIR to calibrate and verify on other images."
        ) from exc
    if run and spec != run.dataset:
        try:
            _, run_held = _load_source(
                run.dataset, model_input, labels, run.test_split, run.seed, "the training dataset"
            )
        except EdgecnnError as exc:
            log.warning(
                "Verifying on held-out images of %s: the training dataset is not available (%s).", spec, exc
            )
        else:
            if (
                pool.labels is None
            ):  # a flat folder: verification happens elsewhere, so calibrate on all of it
                pool = ImageSet(np.concatenate([pool.images, held.images]), None, pool.source)
            held = run_held
    cal_idx = _pick(pool, calibration_samples, seed)
    ver_idx = _pick(held, verification_samples, seed)
    return ConversionData(
        calibration=ImageSet(pool.images[cal_idx], _take(pool.labels, cal_idx), pool.source),
        verification=ImageSet(held.images[ver_idx], _take(held.labels, ver_idx), held.source),
    )


def representative_dataset(
    images: np.ndarray, mean: float | list[float], std: float | list[float]
) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's representative dataset: one normalized float32 1xHxWxC sample per image."""
    m, s = np.asarray(mean, dtype=np.float32), np.asarray(std, dtype=np.float32)

    def samples() -> Iterator[list[np.ndarray]]:
        for image in images:
            yield [((image[None].astype(np.float32) - m) / s).astype(np.float32)]

    return samples


def _take(labels: np.ndarray | None, idx: np.ndarray) -> np.ndarray | None:
    return None if labels is None else labels[idx]


def _pick(images: ImageSet, count: int, seed: int) -> np.ndarray:
    if count >= len(images):
        return np.arange(len(images))
    if images.labels is not None:
        return subsample(images.labels, count, seed)
    return np.sort(np.random.default_rng(seed).permutation(len(images))[:count])


def _load_source(
    spec: str,
    model_input: ModelInput,
    labels: list[str] | None,
    test_split: float,
    seed: int,
    origin: str = "--calibration",
) -> tuple[ImageSet, ImageSet]:
    """(pool for calibration, held-out for verification) from a dataset name or a folder."""
    if check_source(spec, origin) == "flat":
        return _flat_folder(Path(spec), model_input, seed)
    square = model_input.height == model_input.width
    data = load_dataset(
        spec,
        input_size=model_input.height if square else None,
        colour=model_input.colour,
        test_split=test_split,
        seed=seed,
    )
    x_train, x_test = (_fit(x, model_input) for x in (data.x_train, data.x_test))
    mapping = _label_mapping(data.labels, labels)
    name = Path(data.name).name if data.is_folder else data.name
    y_train = None if mapping is None else mapping[data.y_train]
    y_test = None if mapping is None else mapping[data.y_test]
    return (
        ImageSet(x_train, y_train, f"{name} (training split)"),
        ImageSet(x_test, y_test, f"{name} (held-out test split)"),
    )


def check_source(spec: str, origin: str = "--calibration") -> str:
    """What ``spec`` is (``builtin``, ``classes`` for DIR/<class>/, ``flat`` for a folder of images).

    Cheap (no image is decoded), so ``convert`` runs it before loading TensorFlow: a typo fails at once.
    """
    if spec in BUILTIN:
        return "builtin"
    folder = Path(spec)
    if folder.is_file():
        raise InputError(
            f"{origin} {spec} is a file: pass a folder of images (or DIR/<class>/ folders) "
            f"or a dataset name ({', '.join(BUILTIN)})."
        )
    if not folder.is_dir():
        raise InputError(
            f"{origin} {spec}: no such folder, and not a dataset name. Use "
            f"{describe_dataset_choices()}, or a folder of sample images."
        )
    entries = list(folder.iterdir())
    has_images = any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in entries)
    has_classes = any(p.is_dir() and not p.name.startswith(".") for p in entries)
    if has_classes and not has_images:
        return "classes"
    files = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise InputError(
            f"No images in calibration folder {folder}: put a few hundred .jpg/.png samples of what the "
            "camera sees there (or DIR/<class>/*.jpg folders)."
        )
    if len(files) < 2:
        raise InputError(
            f"Calibration folder {folder} holds 1 image: it needs at least 2 (some calibrate, some verify); "
            "a few hundred is better."
        )
    return "flat"


def _flat_folder(folder: Path, model_input: ModelInput, seed: int) -> tuple[ImageSet, ImageSet]:
    files = list_images(folder)
    size = (model_input.height, model_input.width)
    images = np.stack(
        [load_frame(read_image(f), size, model_input.colour, model_input.resize) for f in files]
    )
    order = np.random.default_rng(seed).permutation(len(files))
    held = max(1, round(len(files) * HELD_OUT_FRACTION))
    held_idx, pool_idx = np.sort(order[:held]), np.sort(order[held:])
    return (
        ImageSet(images[pool_idx], None, f"{folder.name}/"),
        ImageSet(images[held_idx], None, f"{folder.name}/ (held-out {len(held_idx)} images)"),
    )


def _fit(images: np.ndarray, model_input: ModelInput) -> np.ndarray:
    if images.shape[1:3] == (model_input.height, model_input.width):
        return images
    size = (model_input.height, model_input.width)
    # Dataset images are already in the model's colour order: load_frame's BGR handling must not swap.
    return np.stack(
        [
            load_frame(
                im[..., 0] if im.shape[-1] == 1 else im[..., ::-1],
                size,
                model_input.colour,
                model_input.resize,
            )
            for im in images
        ]
    )


def _label_mapping(source: list[str], model: list[str] | None) -> np.ndarray | None:
    """Index map source class -> model class, or None when the names do not line up."""
    if model is None:
        return np.arange(len(source))
    position = {name: i for i, name in enumerate(model)}
    if not all(name in position for name in source):
        missing = [name for name in source if name not in position][:5]
        log.warning(
            "Calibration classes %s are not among the model's labels: accuracy cannot be measured, only "
            "agreement.",
            ", ".join(missing),
        )
        return None
    return np.array([position[name] for name in source], dtype=np.int64)
