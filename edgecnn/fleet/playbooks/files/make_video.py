"""Write a short MJPG video of moving shapes for the offline health gate.

Ansible runs this with the device's venv python after the edgecnn wheel is installed there, so it writes
through edgecnn's own video writer: temp file, then rename, so a second deploy never finds half a video
(the task is skipped once the file ``creates:`` names exists).
"""

import sys

import cv2
import numpy as np

from edgecnn.devices.sources.synthetic import write_video
from edgecnn.errors import EdgecnnError


def frame(i: int) -> np.ndarray:
    image = np.full((120, 160, 3), 40, np.uint8)
    cv2.circle(image, (20 + (i * 7) % 120, 60), 18, (30, 200, 240), -1)
    cv2.rectangle(image, (100, 10 + (i * 5) % 80), (140, 40 + (i * 5) % 80), (220, 80, 40), -1)
    return image


path, frames = sys.argv[1], int(sys.argv[2])
try:
    write_video(path, (frame(i) for i in range(frames)), fps=10.0)
except EdgecnnError as exc:
    sys.exit(f"edgecnn: error: {exc}")
print(f"wrote {frames} frames to {path}")
