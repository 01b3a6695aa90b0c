"""Write devices/sources/demo_digits.png: the handwritten digits ``--source demo`` shows.

The seed model learns scikit-learn's 8x8 digits (the UCI "Optical Recognition of Handwritten Digits"
set, CC BY 4.0), so the demo source shows digits from that same set: font-rendered digits are another
domain, and the seed model named only 6 or 7 of 10 correctly. For each digit the three samples nearest
to the digit's mean image are taken (the most typical handwriting, chosen without any model). The sprite
is 80x24 pixels, 8 bit grey: column block d (8 px wide) is digit d, row block v (8 px high) variant v.

The device reads it with OpenCV: no scikit-learn there. Re-run after changing the rule:
    .venv/bin/python tools/make_demo_digits.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

VARIANTS = 3
OUT = Path(__file__).resolve().parents[1] / "devices" / "sources" / "demo_digits.png"


def sprite() -> np.ndarray:
    from sklearn.datasets import load_digits  # a [train] dependency: only this tool needs it

    digits = load_digits()
    flat, target, images = digits.data, digits.target, digits.images
    sheet = np.zeros((8 * VARIANTS, 8 * 10), np.uint8)
    for d in range(10):
        idx = np.nonzero(target == d)[0]
        distance = ((flat[idx] - flat[idx].mean(axis=0)) ** 2).sum(axis=1)
        for v, i in enumerate(idx[np.argsort(distance, kind="stable")][:VARIANTS]):
            sheet[8 * v : 8 * v + 8, 8 * d : 8 * d + 8] = np.round(images[i] * (255.0 / 16.0))
    return sheet


def main() -> None:
    ok, png = cv2.imencode(".png", sprite())
    if not ok:
        raise SystemExit("PNG encoding failed")
    tmp = OUT.with_suffix(".png.tmp")
    tmp.write_bytes(png.tobytes())
    tmp.replace(OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
