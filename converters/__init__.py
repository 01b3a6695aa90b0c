"""Keras -> TFLite conversion, int8 calibration, Edge TPU compile and checks (installed as ``edgecnn.converters``).

Everything here may import TensorFlow, but only inside functions: importing this package stays cheap.
"""
