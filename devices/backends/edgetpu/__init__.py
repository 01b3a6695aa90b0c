"""Everything the Coral Edge TPU needs, in one package.

``delegate`` (pycoral's device grammar, the per-OS library name, loading the delegate), ``pairing``
(which libedgetpu is installed and whether it pairs with this TFLite runtime), ``probe`` (the
crash-contained child that tries the library before this process loads it), ``bus`` (Edge TPUs seen on
USB/PCIe), ``static_check`` (what ``edgetpu_compiler`` would map, without the compiler), ``compiler``
(running the real one), ``sandbox`` (what a systemd unit and udev need to reach the device) and
``backend`` (the entry the backend registry finds under the key ``edgetpu``).

Nothing here imports the Edge TPU library at import time: it is opened only through the delegate loader.
"""
