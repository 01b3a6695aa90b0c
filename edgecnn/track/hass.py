"""Home Assistant MQTT discovery for the counts of lines and zones (``[mqtt] discovery = true``).

One sensor per line direction (``total_increasing``: crossings since the run started; Home Assistant's
statistics survive the reset of a restart) and one per zone (``measurement``: objects inside now), all
reading the retained ``PREFIX/counts`` message and marked unavailable with ``PREFIX/availability``. The
configs are retained under ``homeassistant/sensor/NODE/OBJECT/config`` and sent again on every connect,
so a Home Assistant that restarts, or a broker that lost its store, finds them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from edgecnn import __version__
from edgecnn.track.spec import LineSpec, ZoneSpec

DISCOVERY_PREFIX = "homeassistant"


def _id(text: str) -> str:
    """A discovery node or object id: letters, digits, '_' and '-' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_") or "edgecnn"


def _template(*keys: str) -> str:
    """A Jinja expression reading ``keys`` from the counts JSON (names quoted: spaces and quotes are fine)."""
    path = "".join(f"[{json.dumps(k)}]" for k in keys[1:])
    return "{{ value_json." + keys[0] + path + " }}"


def discovery_messages(
    topic: str, lines: Sequence[LineSpec], zones: Sequence[ZoneSpec], prefix: str = DISCOVERY_PREFIX
) -> list[tuple[str, str]]:
    """(config topic, JSON config) per sensor, for the run publishing under ``topic``."""
    node = _id(topic)
    device = {
        "identifiers": [node],
        "name": f"edgecnn {topic}",
        "manufacturer": "edgecnn",
        "sw_version": __version__,
    }
    common = {
        "state_topic": f"{topic}/counts",
        "availability_topic": f"{topic}/availability",
        "device": device,
    }
    messages = []
    for line in lines:
        for direction in line.directions:
            key = f"{_id(line.name)}_{_id(direction)}"
            config = {
                **common,
                "name": f"{line.name} {direction}",
                "unique_id": f"{node}_line_{key}",
                "value_template": _template("lines", line.name, direction),
                "state_class": "total_increasing",
                "unit_of_measurement": "objects",
                "icon": "mdi:counter",
            }
            messages.append((f"{prefix}/sensor/{node}/line_{key}/config", json.dumps(config)))
    for zone in zones:
        key = _id(zone.name)
        config = {
            **common,
            "name": f"{zone.name} occupancy",
            "unique_id": f"{node}_zone_{key}",
            "value_template": _template("zones", zone.name),
            "state_class": "measurement",
            "unit_of_measurement": "objects",
            "icon": "mdi:account-group",
        }
        messages.append((f"{prefix}/sensor/{node}/zone_{key}/config", json.dumps(config)))
    return messages
