"""``edgecnn eval``: measure a model on labelled images, on the device, one evaluator per task.

- :mod:`edgecnn.eval.evaluate`: :func:`~edgecnn.eval.evaluate.evaluate` (the library function the CLI
  calls; the evaluator comes from the model's task module, ``edgecnn.tasks.task_evaluator``) and the
  ``--fail-under``/``--min-agreement`` gate;
- :mod:`edgecnn.eval.classify`: top-1/top-k, per class, confusion matrix over ``DATA/<label>/`` folders;
- :mod:`edgecnn.eval.detect`: COCO mAP by pycocotools, against a narrow detector interface;
- :mod:`edgecnn.eval.pose`: OKS AP by pycocotools' keypoint evaluation on a COCO-keypoints file;
- :mod:`edgecnn.eval.segment`: mean IoU and pixel accuracy against a folder of label masks;
- readers: :mod:`~edgecnn.eval.classfolders`, :mod:`~edgecnn.eval.yolo_labels`,
  :mod:`~edgecnn.eval.coco_json` (into :mod:`~edgecnn.eval.groundtruth`'s plain data);
- :mod:`~edgecnn.eval.report`: the report protocol the CLI reads and the part both reports share;
- :mod:`~edgecnn.eval.tables` and :mod:`~edgecnn.eval.progress` for people at a terminal.

Nothing is imported here, so ``import edgecnn.eval.groundtruth`` stays light.
"""
