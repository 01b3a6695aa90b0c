"""edgecnn: small CNN image classifiers from training to a camera-fed service on Raspberry Pi and Coral.

This module holds the version only: importing ``edgecnn`` must stay cheap on the device
(no cv2, no TFLite runtime, never TensorFlow).
"""

__version__ = "0.1.0"
