"""Start libusb as libedgetpu does before each enumerate/open (``libusb_init`` + device list); exit 0 if it can.

Run by the service tests inside a unit's sandbox: libusb opens a netlink socket for its hotplug monitor
at init, so a sandbox without AF_NETLINK fails here, before any Coral could be found. Exits 77 when
libusb is not installed.
"""

import ctypes
import ctypes.util
import sys

name = ctypes.util.find_library("usb-1.0")
if name is None:
    print("libusb-1.0 is not installed")
    sys.exit(77)
lib = ctypes.CDLL(name)
context = ctypes.c_void_p()
rc = lib.libusb_init(ctypes.byref(context))
if rc != 0:
    print(f"libusb_init failed: {rc}")
    sys.exit(1)
devices = ctypes.POINTER(ctypes.c_void_p)()
count = lib.libusb_get_device_list(context, ctypes.byref(devices))
print(f"libusb started; {count} USB devices")
lib.libusb_free_device_list(devices, 1)
lib.libusb_exit(context)
