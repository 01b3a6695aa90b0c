"""What happened, not just what is there: tracks across frames, counting lines, zones, events.

Separate small stages between a detector's decode and the run's outputs, each usable and tested alone:

- :mod:`~edgecnn.track.kalman` and :mod:`~edgecnn.track.match`: the motion model and the assignment;
- :mod:`~edgecnn.track.tracker`: ByteTrack-style association, boxes in, track IDs out;
- :mod:`~edgecnn.track.geometry`: lines and zones, in pixels or fractions of the frame;
- :mod:`~edgecnn.track.events`: crossings, zone entries, exits and dwell, and their counts;
- :mod:`~edgecnn.track.stage`: the three together over a task result that has boxes, as ``run`` uses them;
- :mod:`~edgecnn.track.outputs`, :mod:`~edgecnn.track.snapshots`, :mod:`~edgecnn.track.hass`: the events
  file, JPEG snapshots of events, Home Assistant discovery of the counts.

NumPy plus ``lap`` for the assignment; OpenCV only to draw (overlay, snapshots); never TensorFlow.
User documentation: docs/tracking.md.
"""
