"""edgecnn: small CNN image classifiers from training to a camera-fed service on Raspberry Pi and Coral.

This module holds the version only: importing ``edgecnn`` must stay cheap on the device
(no cv2, no TFLite runtime, never TensorFlow). The one exception is an environment variable, set here
because it must be set before anything imports cv2: see :mod:`edgecnn.images`.
"""

import os as _os

__version__ = "0.1.0"

# OpenCV reads its decoder pixel limit once, when cv2 is loaded; edgecnn.images explains the budget.
if _os.environ.get("EDGECNN_MAX_IMAGE_PIXELS", "").strip():
    _os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = _os.environ["EDGECNN_MAX_IMAGE_PIXELS"].strip()
else:
    _os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", "50000000")
