"""``edgecnn bench``: latency per device (runner), saved results (results), comparisons (report), formats."""
