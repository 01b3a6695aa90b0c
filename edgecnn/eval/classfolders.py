"""Read a classification dataset laid out as ``DATA/<label>/*.jpg``, the layout ``yolo val`` and Keras'
``image_dataset_from_directory`` use.

Folder names are matched to the model's labels exactly: a folder that matches no label is a typo far more
often than a class the model lacks, so it is an error that lists the closest labels, never a silent 0%.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from edgecnn.errors import InputError
from edgecnn.images import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

# Folder names that mean "this is a dataset root with splits", not a class.
_SPLIT_NAMES = frozenset({"train", "val", "valid", "validation", "test"})


@dataclass(frozen=True)
class LabelledImage:
    path: Path
    label: str  # the folder name, which is one of the model's labels


@dataclass(frozen=True)
class ClassFolders:
    root: Path
    classes: list[str]  # folder names, sorted
    images: list[LabelledImage]  # sorted by class, then file name

    def count(self, label: str) -> int:
        return sum(1 for image in self.images if image.label == label)


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        f
        for f in folder.iterdir()
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file() and not f.name.startswith(".")
    )


def closest_labels(name: str, labels: list[str], n: int = 3) -> list[str]:
    """Labels a user probably meant: ones listing ``name`` as a synonym (ImageNet's "tabby, tabby cat"),
    then difflib's closest spellings, ignoring case."""
    wanted = name.strip().lower()
    synonyms = [label for label in labels if wanted in (part.strip().lower() for part in label.split(","))]
    lowered = {label.lower(): label for label in labels}
    spelled = [lowered[m] for m in difflib.get_close_matches(wanted, list(lowered), n=n, cutoff=0.5)]
    return list(dict.fromkeys(synonyms + spelled))[:n]


def label_hint(name: str, labels: list[str]) -> str:
    close = closest_labels(name, labels)
    if close:
        return "closest labels: " + ", ".join(repr(c) for c in close)
    return "the labels are e.g. " + ", ".join(repr(x) for x in labels[:5])


def read_class_folders(data: str | os.PathLike[str], labels: list[str]) -> ClassFolders:
    """List ``DATA/<label>/*`` images, checking every folder name against ``labels`` before any inference.

    Hidden folders are skipped; loose images directly in ``DATA`` are ignored with a warning (they carry no
    label). An empty class folder is an error: it would report 0 images as if the class had been measured.
    """
    root = Path(data)
    if not root.is_dir():
        raise InputError(f"Not a directory: {root}. Pass a folder with one sub-folder of images per class.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        hint = " (it holds images directly)" if _images_in(root) else ""
        raise InputError(
            f"No class folders in {root}{hint}: put each class's images in {root}/<label>/, "
            "with <label> spelled as in the model's labels."
        )
    known = set(labels)
    unknown = [f for f in folders if f.name not in known]
    if unknown:
        if {f.name.lower() for f in folders} <= _SPLIT_NAMES:
            raise InputError(
                f"{root} holds dataset splits ({', '.join(f.name for f in folders)}), not classes: "
                f"pass one split, e.g. {folders[-1]}."
            )
        more = f" (and {len(unknown) - 1} more folder(s))" if len(unknown) > 1 else ""
        raise InputError(
            f"Folder {unknown[0]} matches no label of the model{more}; {label_hint(unknown[0].name, labels)}. "
            "Rename the folder to the label exactly, or pass --labels FILE."
        )
    loose = _images_in(root)
    if loose:
        log.warning(
            "%d image(s) directly in %s carry no class and are ignored (e.g. %s).",
            len(loose),
            root,
            loose[0].name,
        )
    images: list[LabelledImage] = []
    for folder in folders:
        files = _images_in(folder)
        if not files:
            raise InputError(
                f"No images in {folder}: put .jpg/.png files of class {folder.name!r} there, or remove the folder."
            )
        images.extend(LabelledImage(f, folder.name) for f in files)
    return ClassFolders(root=root, classes=[f.name for f in folders], images=images)
