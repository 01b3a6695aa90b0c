"""Flatbuffer metadata round-trip and atomic writes."""

from __future__ import annotations

import stat

import pytest

from edgecnn.atomic import write_atomic
from edgecnn.metadata import ModelMetadata, embed_metadata, read_metadata
from edgecnn.modelfile import parse_model, read_model
from tests.conftest import MOBILENET


def test_metadata_round_trip_keeps_appended_labels(coral, tmp_path):
    mf = read_model(MOBILENET)
    meta = ModelMetadata(labels=["a", "b"], colour="BGR", mean=127.5, std=127.5, provenance={"dataset": "x"})
    out = write_atomic(tmp_path / "m.tflite", embed_metadata(mf, meta))
    back = read_metadata(read_model(out))
    assert (back.labels, back.colour, back.mean, back.std, back.source) == (
        ["a", "b"],
        "BGR",
        127.5,
        127.5,
        "edgecnn",
    )
    assert back.provenance == {"dataset": "x"}
    assert "imagenet_labels.txt" in read_model(out).appended  # TFLite Support's zip survives re-packing


def test_embedding_metadata_gives_the_same_bytes_at_any_time(coral, monkeypatch):
    """The appended zip (labels, Ultralytics' metadata.json) carries no clock: the same model and metadata
    written a day apart are the same file (a cut or conversion is reproducible, and its digest with it)."""
    import time

    mf = read_model(MOBILENET)
    meta = ModelMetadata(labels=["a", "b"], colour="BGR", mean=127.5, std=127.5)
    written = []
    for clock in (1_700_000_000.0, 1_700_086_400.0):
        monkeypatch.setattr(time, "time", lambda clock=clock: clock)
        written.append(embed_metadata(mf, meta))
    assert written[0] == written[1]
    assert parse_model(written[0]).appended.keys() == mf.appended.keys()


def test_write_atomic_is_readable_by_others_and_leaves_no_temp(tmp_path):
    path = write_atomic(tmp_path / "sub" / "model.tflite", b"abc")
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.tflite"]


def test_write_atomic_failure_keeps_old_file(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.tflite"]


def test_newer_metadata_schema_is_refused(coral):
    from edgecnn.errors import ModelError
    from edgecnn.modelfile import with_metadata

    mf = read_model(MOBILENET)
    data = with_metadata(mf, "edgecnn", b'{"schema": 99}')
    with pytest.raises(ModelError, match="Upgrade edgecnn"):
        read_metadata(parse_model(data))
