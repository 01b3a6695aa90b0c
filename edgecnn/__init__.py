"""edgecnn: small CNN image classifiers from training to a camera-fed service on Raspberry Pi and Coral.

This module holds the version only: importing ``edgecnn`` must stay cheap on the device
(no cv2, no TFLite runtime, never TensorFlow). The one exception is an environment variable, set here
because it must be set before anything imports cv2: see :mod:`edgecnn.images`.

Layout (which room holds what; imports only point down the list, checked by ``tests/test_layout.py``):

- ``cli/``: the thin Typer layer, one module per command, each calling one library function below;
- the demo, ``demo/``: every stage once, on the bundled digits;
- command-level stages, one room per command holding its library function: ``train/``, ``converters/``
  (``convert``), ``inspect/``, ``predict/``, ``eval/``, ``run/``, ``bench/``, ``service/``, ``fleet/``;
  ``ml/`` holds what ``train`` and ``converters`` share (datasets, run info);
- the runtime core, what the device needs to run a model: ``model`` (open and run one), ``modelfile``
  (the flatbuffer), ``metadata``, ``preprocess``, ``adapters``, ``runtime`` (which interpreter),
  ``images``, ``sanity``, with ``tasks/`` (one decoder per task) and ``devices/`` (backends, frame
  sources, the device probe);
- shared helpers beside the core: ``errors``, ``atomic``, ``safeio``, ``digest``, ``httpget``,
  ``texttable``, ``nativelog``.

The top level holds only the last two groups; no stage or core module imports ``cli``.
"""

import os as _os

__version__ = "0.1.0"

# OpenCV reads its decoder pixel limit once, when cv2 is loaded; edgecnn.images explains the budget.
if _os.environ.get("EDGECNN_MAX_IMAGE_PIXELS", "").strip():
    _os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = _os.environ["EDGECNN_MAX_IMAGE_PIXELS"].strip()
else:
    _os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "50000000")
