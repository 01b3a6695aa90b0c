"""The shared inference worker on its own: same results as the model alone, each camera's own decode
options, turns shared evenly, and errors handed to the camera whose frame caused them."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from edgecnn.model import open_model
from edgecnn.run.scheduler import InferenceScheduler, SchedulerClosed, SharedModel
from edgecnn.tasks import DecodeOptions, open_decoder
from tests.conftest import MOBILENET
from tests.detectors import make_scenes


def test_shared_results_are_the_models_with_each_cameras_options(detectors):
    model = open_model(detectors["yolo_int8"])
    scheduler = InferenceScheduler(model)
    try:

        def camera(name: str, decode: DecodeOptions) -> SharedModel:
            decoder = open_decoder(model.model_file, model.meta, model.interpreter, model.labels, decode)
            return SharedModel.of(model, scheduler, name, decoder)

        everything = camera("door", DecodeOptions())
        circles = camera("yard", DecodeOptions(classes=("circle",)))
        scenes = make_scenes(12, seed=5)
        for scene in scenes:
            alone = model.process(scene.image).result
            shared = everything.process(scene.image).result
            assert shared.to_json() == alone.to_json()
            only = circles.process(scene.image).result
            assert only.to_json()["objects"] == [
                o for o in alone.to_json()["objects"] if o["label"] == "circle"
            ]
        assert any(o for s in scenes for o in model.process(s.image).result.labels() if o != "circle")
        assert scheduler.served == {"door": 12, "yard": 12}
    finally:
        scheduler.close()


def test_cameras_that_always_have_a_frame_get_equal_turns(coral):
    model = open_model(MOBILENET)
    scheduler = InferenceScheduler(model)
    cameras = [SharedModel.of(model, scheduler, f"cam{i}", model.decoder) for i in range(3)]
    frame = np.zeros((120, 160, 3), np.uint8)
    stop = threading.Event()

    def loop(shared: SharedModel) -> None:
        while not stop.is_set():
            shared.process(frame)

    threads = [threading.Thread(target=loop, args=(c,), daemon=True) for c in cameras]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join(5)
    scheduler.close()
    counts = list(scheduler.served.values())
    assert min(counts) > 50, counts
    assert max(counts) / min(counts) <= 1.1, counts  # round robin: equal within a few turns


def test_a_decode_error_goes_to_the_camera_and_a_closed_worker_refuses(coral):
    model = open_model(MOBILENET)
    scheduler = InferenceScheduler(model)
    shared = SharedModel.of(model, scheduler, "door", model.decoder)
    tensor, transform = model.prepare(np.zeros((64, 64, 3), np.uint8))

    def bad_decode(interpreter, transform):
        raise ValueError("outputs that cannot be right")

    with pytest.raises(
        ValueError, match="cannot be right"
    ):  # raised in the camera's thread, not the worker's
        scheduler.infer("yard", tensor, bad_decode, transform)
    assert shared.process(np.zeros((64, 64, 3), np.uint8)).result.labels()  # the worker goes on
    scheduler.close()
    with pytest.raises(SchedulerClosed):
        shared.process(np.zeros((64, 64, 3), np.uint8))
