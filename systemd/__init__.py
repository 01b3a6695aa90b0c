"""systemd unit templates shipped in the wheel (read with importlib.resources)."""
