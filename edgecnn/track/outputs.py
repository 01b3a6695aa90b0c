"""Where ``edgecnn run`` sends events: the JSONL events file (``--events FILE``); ``/events``, metrics and
MQTT attach themselves as listeners of the :class:`~edgecnn.track.stage.TrackStage`.

:func:`open_tracking` builds the stage a run's options ask for (``None`` with ``--no-track``): its lines and
zones, its tracker settings, and the events file. The file is appended to through
:func:`edgecnn.atomic.open_append` (a restarted service adds to its log; FIFOs and devices work as
streams), one object per line, flushed per event; a failed write ends the run with one line, as a failed
``--jsonl`` write does.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgecnn.run.outputs import _Output
from edgecnn.track.stage import TrackStage, TrackStep
from edgecnn.track.tracker import TrackerOptions

if TYPE_CHECKING:
    from edgecnn.run.mqtt import MqttSink
    from edgecnn.run.options import RunOptions
    from edgecnn.run.results import FrameResult
    from edgecnn.run.stats import RunSummary


class EventsFile:
    """A listener writing each event as one JSON line; also a result sink so the run closes it."""

    def __init__(self, path: Path, stop: threading.Event | None = None) -> None:
        from edgecnn.atomic import open_append

        self.path = path
        self.stream = open_append(path.expanduser(), what="--events file", stop=stop)
        self._out = _Output(self.stream, str(path))

    def track_step(self, step: TrackStep, stage: TrackStage) -> None:
        if step.events:
            self._out.write(
                "".join(json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in step.events)
            )

    def emit(self, result: FrameResult) -> None:
        """Results are not this output's business (the ResultSink side only closes the file)."""

    def close(self, summary: RunSummary | None) -> None:
        try:
            if not self._out.failed:
                self.stream.flush()
        except OSError:
            pass
        finally:
            self.stream.close()


def open_tracking(
    opts: RunOptions, stop: threading.Event | None = None
) -> tuple[TrackStage | None, list[Any]]:
    """The track stage ``opts`` ask for (``None`` with ``--no-track``) and the outputs it opened (events
    file, snapshots), which the run closes with its result sinks. The options were validated
    (:func:`edgecnn.run.config.validate_run_options`), so the specs parse."""
    if not opts.track:
        return None, []
    from edgecnn.run.config import option_error
    from edgecnn.track.spec import parse_all

    lines, zones = parse_all(opts.lines, opts.zones, lambda key, problem: option_error(opts, key, problem))
    # Tracks start only from detections the user's threshold keeps (a raised --object-threshold still
    # decides what becomes an object); lower ones, down to --track-low-score, only keep tracks going.
    high = max(opts.track_high_score, opts.object_threshold)
    tracker = TrackerOptions(buffer_s=opts.track_buffer, min_hits=opts.track_min_hits, high_score=high)
    stage = TrackStage(lines, zones, tracker)
    # The decoder reads down to --track-low-score (edgecnn.run.pipeline.decode_options): what is output
    # is the objects over --object-threshold and those under it that a track matched.
    stage.publish_threshold = opts.object_threshold
    opened: list[Any] = []
    try:
        if opts.snapshots is not None:
            from edgecnn.track.snapshots import Snapshots

            stage.snapshots = Snapshots(
                Path(opts.snapshots), keep=opts.snapshots_keep, max_bytes=int(opts.snapshots_max_mb * 2**20)
            )
            opened.append(stage.snapshots)
        if opts.events is not None:
            events = EventsFile(Path(opts.events), stop)
            stage.listeners.append(events)
            opened.append(events)
    except BaseException:
        close_all(opened)
        raise
    return stage, opened


def close_all(outputs: list[Any]) -> None:
    """Close what :func:`open_tracking` opened (when the run could not start)."""
    for output in outputs:
        output.close(None)


def attach_mqtt(stage: TrackStage, mqtt: MqttSink) -> None:
    """Events and counts over the run's MQTT connection (``PREFIX/events``, retained ``PREFIX/counts``),
    and with ``[mqtt] discovery`` the Home Assistant sensors of the counts."""
    stage.listeners.append(mqtt)
    scene = stage.scene
    if mqtt.settings.discovery and not scene.empty:
        from edgecnn.track.hass import discovery_messages

        mqtt.announce(
            discovery_messages(mqtt.settings.topic, scene.line_specs, scene.zone_specs),
            json.dumps(scene.counts(), separators=(",", ":"), sort_keys=True),
        )
