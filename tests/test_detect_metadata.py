"""Third-party detector metadata read with no flags: Ultralytics' two ways of embedding it."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from edgecnn.errors import ModelError
from edgecnn.metadata import read_metadata
from edgecnn.model import open_model
from edgecnn.modelfile import parse_model, read_model, with_metadata
from tests.conftest import MOBILENET


def _with_appended(tmp_path, files: dict[str, str]):
    mf = parse_model(MOBILENET.read_bytes())
    mf.appended = {}  # drop the ImageNet label zip
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    path = tmp_path / "model.tflite"
    path.write_bytes(with_metadata(mf, "other", b"x") + sink.getvalue())
    return path


def test_older_ultralytics_exports_python_literal_metadata(coral, tmp_path):
    # Before metadata.json, Ultralytics stored str(dict) as a TFLite Support associated text file.
    meta = {"author": "Ultralytics", "task": "detect", "imgsz": [128, 128], "names": {0: "person", 2: "car"}}
    path = _with_appended(tmp_path, {"temp_meta.txt": str(meta)})
    read = read_metadata(read_model(path))
    assert read.source == "ultralytics" and read.task == "detect" and read.letterbox is True
    assert read.labels == ["person", "1", "car"]  # a gap in the ids shows as the id
    # The file declares a detector, but this is really a classifier's [1, 1001] output: one clear error.
    with pytest.raises(ModelError, match=r"declared a detector but its outputs \[1, 1001\] UINT8"):
        open_model(path)


def test_ultralytics_obb_metadata_is_refused_naming_the_task(coral, tmp_path):
    meta = {"author": "Ultralytics", "task": "obb", "names": {"0": "plane"}}
    path = _with_appended(tmp_path, {"metadata.json": json.dumps(meta)})
    with pytest.raises(ModelError, match=r"is a 'obb' model \(ultralytics metadata"):
        open_model(path)


def test_ultralytics_pose_metadata_over_outputs_of_no_pose_layout_is_one_line(coral, tmp_path):
    meta = {"author": "Ultralytics", "task": "pose", "names": {"0": "person"}, "kpt_shape": [17, 3]}
    path = _with_appended(tmp_path, {"metadata.json": json.dumps(meta)})
    with pytest.raises(ModelError, match=r"declared a pose model but its outputs \[1, 1001\] UINT8"):
        open_model(path)


def test_a_label_text_file_is_not_mistaken_for_ultralytics_metadata(coral, tmp_path):
    path = _with_appended(tmp_path, {"labels.txt": "{curly}\nsecond\n"})
    read = read_metadata(read_model(path))
    assert read.source == "tflite-support" and read.labels == ["{curly}", "second"]
