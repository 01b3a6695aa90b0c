"""The preview page file: shipped as package data, readable on a phone, and fed by the result's summary."""

from __future__ import annotations

import re
from importlib import resources

from edgecnn.adapters import Class
from edgecnn.run.results import FrameResult
from edgecnn.tasks.classify import Classification

PAGE = resources.files("edgecnn.run").joinpath("page.html").read_text(encoding="utf-8")


def _luminance(hex_colour: str) -> float:
    digits = hex_colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def test_page_has_a_viewport_and_readable_colours():
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in PAGE
    background = re.search(r"body\{[^}]*background:(#[0-9a-fA-F]{3,6})", PAGE).group(1)
    colours = set(re.findall(r"(?<![-\w])color:(#[0-9a-fA-F]{3,6})", PAGE))
    assert len(colours) >= 5  # text, links, visited links, states
    for colour in colours:
        light, dark = sorted((_luminance(colour), _luminance(background)), reverse=True)
        ratio = (light + 0.05) / (dark + 0.05)
        assert ratio >= 4.5, f"{colour} on {background}: contrast {ratio:.1f}:1 is below 4.5:1"


def test_latest_carries_the_results_summary_line():
    from edgecnn.run.live import LiveState

    result = FrameResult(
        n=1, frame=7, timestamp=0.0, output=Classification([Class(9, "9", 0.957)]), capture_wait_ms=0,
        preprocess_ms=0, inference_ms=0, total_ms=0, age_ms=0,
    )  # fmt: skip
    assert result.summary() == "9 0.957"
    live = LiveState(source="demo", stall_timeout=5, model="m.tflite", device="cpu")
    live.publish(__import__("numpy").zeros((4, 4, 3), "uint8"), result)
    assert live.latest()["summary"] == "9 0.957"
    _, body = live.health()
    assert body["model"] == "m.tflite" and body["device"] == "cpu"
