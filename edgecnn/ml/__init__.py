"""What training and conversion share, on the workstation that has the ``[train]`` extra.

``train`` and ``converters`` are stages; neither reaches into the other. Both read the datasets
(:mod:`edgecnn.ml.datasets`), import TensorFlow and friends lazily (:mod:`edgecnn.ml.deps`), and meet
at the run folder that ``train`` writes and ``convert`` reads back (:mod:`edgecnn.ml.runinfo`).
"""
