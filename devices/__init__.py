"""Hardware seams: device probes, delegates, camera backends, udev rules (installed as ``edgecnn.devices``)."""
