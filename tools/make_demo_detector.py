"""Write edgecnn/demo/shapes_detector.tflite: the small detector the demo's counting step runs.

It is the test suite's shapes detector (tests/detectors.py: red squares, green circles, blue triangles on a
noisy grey background, a 96x96 CNN predicting boxes on a 12x12 grid), trained with the same code, scenes,
seed and epochs as the tests' ``yolo_int8`` build, exported the same way: full-integer int8 in the
Ultralytics YOLOv8 layout with Ultralytics metadata (labels, image size) appended. Training is seeded
and op-deterministic, so on one machine and TensorFlow version this writes the same bytes as the tests'
cached ``yolo_int8.tflite``. Everything is generated: no data set, no downloaded weights (see
edgecnn/demo/shapes_detector.md for source and licence).

The demo ships the file instead of training it (about 2 minutes on 2 cores): the device never needs
TensorFlow, and ``make demo`` stays short. Re-run after changing tests/detectors.py:
    .venv/bin/python tools/make_demo_detector.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "edgecnn" / "demo" / "shapes_detector.tflite"
TRAIN_COUNT, EPOCHS, SEED = 2000, 20, 0  # tests/detectors.py build_detectors' defaults


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.detectors import freeze, train_core, training_scenes, with_ultralytics_metadata, yolo_tflite

    scenes = training_scenes(TRAIN_COUNT, SEED)
    core = freeze(train_core(scenes, EPOCHS, SEED))
    data = with_ultralytics_metadata(yolo_tflite(core, scenes, int8=True))
    tmp = OUT.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(OUT)
    print(f"{OUT} ({len(data)} bytes)")


if __name__ == "__main__":
    main()
