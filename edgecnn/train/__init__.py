"""Training: datasets, architectures and the ``edgecnn train`` library function.

Importing this package is cheap (numpy and OpenCV only): TensorFlow, Keras, scikit-learn and matplotlib are
imported inside the functions that need them (see :mod:`edgecnn.ml.deps`).
"""

from edgecnn.ml.datasets import BUILTIN, Dataset, load_dataset
from edgecnn.train.trainer import TrainReport, format_report, train

__all__ = ["BUILTIN", "Dataset", "TrainReport", "format_report", "load_dataset", "train"]
