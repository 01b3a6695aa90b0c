"""Write a short MJPG video of moving shapes for the offline health gate (runs in the device's venv)."""

import os
import sys

import cv2
import numpy as np

path, frames = sys.argv[1], int(sys.argv[2])
tmp = path + ".tmp.avi"
writer = cv2.VideoWriter(tmp, cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (160, 120))
if not writer.isOpened():
    sys.exit(f"cannot write {tmp} with OpenCV")
for i in range(frames):
    frame = np.full((120, 160, 3), 40, np.uint8)
    cv2.circle(frame, (20 + (i * 7) % 120, 60), 18, (30, 200, 240), -1)
    cv2.rectangle(frame, (100, 10 + (i * 5) % 80), (140, 40 + (i * 5) % 80), (220, 80, 40), -1)
    writer.write(frame)
writer.release()
os.replace(tmp, path)
print(f"wrote {frames} frames to {path}")
