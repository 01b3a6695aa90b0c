"""Real object detectors built in the test session: generated shapes, a tiny Keras CNN, TFLite exports.

Reusable by any test (detection, eval): the session fixtures in ``tests/conftest.py`` call
:func:`build_detectors` once and hand out :class:`Detectors`.

The scenes are 96x96 RGB images of up to three shapes (``square`` red, ``circle`` green, ``triangle``
blue, colours jittered) on a noisy grey background, each with its pixel box. One small CNN is trained
for a few epochs to predict, on a 12x12 grid, a box (cx, cy, w, h, normalised) and three class scores
per cell (a fifth of its training scenes are wide or tall ones letterboxed, as YOLO inputs arrive). Training
is seeded and op-deterministic, so one machine always builds the same files; measured here: 95-96% of the 112
held-out objects found, 95-100% in letterboxed 128x96, 160x96 and 96x128 scenes for the YOLO layouts. That
one trained network is exported in every layout users bring:

- ``yolo_float`` / ``yolo_int8``: Ultralytics YOLOv8 layout, one output ``[1, 4+nc, N]`` (boxes
  normalised to the input size, as Ultralytics' TFLite export writes them), with Ultralytics metadata
  (``metadata.json`` in a zip appended to the file: names, imgsz, task). The int8 build is full-integer
  (int8 input and output, one quantization for boxes and scores).
- ``yolo_channels_last``: the same scores transposed, ``[1, N, 4+nc]`` (float).
- ``e2e_float``: end-to-end layout ``[1, K, 6]`` (x1, y1, x2, y2, score, class; NMS done in the graph).
- ``ssd_tf1`` / ``ssd_tf2`` / ``ssd_signature`` (float) and ``ssd_int8`` (uint8 input): SSD with the
  ``TFLite_Detection_PostProcess`` custom op, made the way TensorFlow's object-detection export makes it
  (a ``tf.function`` with ``experimental_implements``), in the three output orders pycoral's
  ``get_objects`` handles: TF1 (boxes, classes, scores, count), TF2 (scores, boxes, count, classes) and
  signature names (output_0..3 = count, scores, classes, boxes) with the tensors in neither order.

TensorFlow is imported inside the functions only.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

SIZE = 96  # input height and width
GRID = 12  # cells per side (stride 8)
CLASSES = ("square", "circle", "triangle")
_COLOURS = {0: (40, 40, 220), 1: (40, 200, 40), 2: (220, 60, 40)}  # BGR: red, green, blue


@dataclass(frozen=True)
class Box:
    label: int
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass
class Scene:
    image: np.ndarray  # BGR uint8
    boxes: list[Box]


def draw(image: np.ndarray, label: int, x1: int, y1: int, size: int, colour: tuple[int, ...]) -> None:
    """One shape of ``CLASSES[label]`` filling the ``size``-pixel square at top-left ``x1, y1`` (the tracking
    scenes draw theirs with it too, so every detector built here sees the same shapes)."""
    x2, y2 = x1 + size, y1 + size
    if label == 0:
        cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), colour, -1)
    elif label == 1:
        cv2.circle(image, (x1 + size // 2, y1 + size // 2), size // 2, colour, -1, cv2.LINE_AA)
    else:
        pts = np.array([[x1 + size // 2, y1], [x1, y2 - 1], [x2 - 1, y2 - 1]], dtype=np.int32)
        cv2.fillPoly(image, [pts], colour, cv2.LINE_AA)


def make_scene(
    rng: np.random.Generator, width: int = SIZE, height: int = SIZE, max_objects: int = 3
) -> Scene:
    """One image with 1..max_objects non-overlapping shapes and their exact pixel boxes."""
    image = rng.integers(90, 150, (height, width, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (3, 3), 0)
    boxes: list[Box] = []
    count = int(rng.integers(1, max_objects + 1))
    scale = min(width, height) / SIZE
    for _ in range(count * 10):
        if len(boxes) == count:
            break
        label = int(rng.integers(0, len(CLASSES)))
        size = int(rng.integers(round(16 * scale), round(34 * scale) + 1))
        x1 = int(rng.integers(0, width - size))
        y1 = int(rng.integers(0, height - size))
        x2, y2 = x1 + size, y1 + size
        if any(not (x2 + 2 < b.x1 or b.x2 + 2 < x1 or y2 + 2 < b.y1 or b.y2 + 2 < y1) for b in boxes):
            continue
        colour = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in _COLOURS[label])
        draw(image, label, x1, y1, size, colour)
        boxes.append(Box(label, float(x1), float(y1), float(x2), float(y2)))
    return Scene(image, boxes)


def make_scenes(count: int, seed: int, width: int = SIZE, height: int = SIZE) -> list[Scene]:
    rng = np.random.default_rng(seed)
    return [make_scene(rng, width, height) for _ in range(count)]


def letterboxed(scene: Scene) -> Scene:
    """``scene`` as edgecnn's preprocessing feeds it to a YOLO model: scaled to fit SIZE, grey 114 border."""
    h, w = scene.image.shape[:2]
    r = min(SIZE / w, SIZE / h)
    nw, nh = round(w * r), round(h * r)
    px, py = (SIZE - nw) // 2, (SIZE - nh) // 2
    image = cv2.copyMakeBorder(
        cv2.resize(scene.image, (nw, nh), interpolation=cv2.INTER_LINEAR),
        py, SIZE - nh - py, px, SIZE - nw - px, cv2.BORDER_CONSTANT, value=(114, 114, 114),
    )  # fmt: skip
    boxes = [Box(b.label, b.x1 * r + px, b.y1 * r + py, b.x2 * r + px, b.y2 * r + py) for b in scene.boxes]
    return Scene(image, boxes)


def training_scenes(count: int, seed: int) -> list[Scene]:
    """``count`` square scenes plus a quarter as many wide and tall ones, letterboxed: what the tests feed
    (videos of 128x96 and images of 160x96 reach the model letterboxed, their shapes 0.6-0.75x as big)."""
    extra = count // 4
    others = [
        letterboxed(s)
        for i, (w, h) in enumerate(((128, 96), (160, 96), (96, 128)))
        for s in make_scenes(extra // 3, seed + 100 + i, w, h)
    ]
    return make_scenes(count, seed) + others


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def recall(truth: list[Box], found: list[tuple[str, tuple[float, float, float, float]]]) -> tuple[int, int]:
    """(objects matched at IoU >= 0.5 with the right label, objects): each detection matches once."""
    used: set[int] = set()
    hits = 0
    for box in truth:
        for i, (label, xyxy) in enumerate(found):
            if (
                i not in used
                and label == CLASSES[box.label]
                and iou((box.x1, box.y1, box.x2, box.y2), xyxy) >= 0.5
            ):
                used.add(i)
                hits += 1
                break
    return hits, len(truth)


# --- training ---------------------------------------------------------------------------------------


def _targets(scenes: list[Scene]) -> np.ndarray:
    """Per cell: [fx, fy, w, h, class one-hot..., mask] with the object whose centre falls in it."""
    nc = len(CLASSES)
    y = np.zeros((len(scenes), GRID, GRID, 4 + nc + 1), dtype=np.float32)
    for i, scene in enumerate(scenes):
        for b in scene.boxes:
            cx, cy = (b.x1 + b.x2) / 2 / SIZE, (b.y1 + b.y2) / 2 / SIZE
            gx, gy = min(GRID - 1, int(cx * GRID)), min(GRID - 1, int(cy * GRID))
            y[i, gy, gx, :4] = (cx * GRID - gx, cy * GRID - gy, (b.x2 - b.x1) / SIZE, (b.y2 - b.y1) / SIZE)
            y[i, gy, gx, 4 + b.label] = 1.0
            y[i, gy, gx, -1] = 1.0
    return y


def _to_rgb01(scenes: list[Scene]) -> np.ndarray:
    return np.stack([cv2.cvtColor(s.image, cv2.COLOR_BGR2RGB) for s in scenes]).astype(np.float32) / 255.0


def train_core(scenes: list[Scene], epochs: int, seed: int = 0) -> Any:
    """The Keras network: RGB in [0, 1] -> raw head [GRID, GRID, 4 + nc]."""
    import keras
    import tensorflow as tf

    # Seeded and op-deterministic: the same weights on every run of this machine, so a failure is about the
    # code, never about which model a cache happened to hold. Other CPUs may still round differently, so the
    # tests that use these models assert with a stated margin or against the same model's own decode.
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    nc = len(CLASSES)
    inp = keras.Input((SIZE, SIZE, 3))
    x = inp
    for filters, stride in ((16, 2), (32, 2), (48, 2), (64, 1), (64, 1)):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu")(x)
    out = keras.layers.Conv2D(4 + nc, 1)(x)
    model = keras.Model(inp, out)

    def loss(y_true: Any, y_pred: Any) -> Any:
        mask = y_true[..., -1]
        cls = tf.reduce_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=y_true[..., 4 : 4 + nc], logits=y_pred[..., 4:])
        )
        box = tf.reduce_sum(tf.abs(tf.sigmoid(y_pred[..., :4]) - y_true[..., :4]), axis=-1)
        box = tf.reduce_sum(box * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)
        return 20.0 * cls + box

    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=loss)
    model.fit(_to_rgb01(scenes), _targets(scenes), batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    return model


# --- export layouts ---------------------------------------------------------------------------------


def _decode(tf: Any, core: Any, x: Any) -> tuple[Any, Any]:
    """(boxes cx,cy,w,h normalised [1, N, 4], class scores [1, N, nc]) from the raw head."""
    t = core(x)
    if isinstance(t, (list, tuple)):
        t = t[0]
    gy, gx = np.meshgrid(np.arange(GRID, dtype=np.float32), np.arange(GRID, dtype=np.float32), indexing="ij")
    fx, fy, w, h, cls = tf.split(tf.sigmoid(t), [1, 1, 1, 1, len(CLASSES)], axis=-1)
    cx = (fx + gx[..., None]) / GRID
    cy = (fy + gy[..., None]) / GRID
    boxes = tf.reshape(tf.concat([cx, cy, w, h], axis=-1), (1, GRID * GRID, 4))
    scores = tf.reshape(cls, (1, GRID * GRID, len(CLASSES)))
    return boxes, scores


def _convert(
    tf: Any, fn: Any, core: Any, *, int8: str | None, scenes: list[Scene], custom_ops: bool = False
) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn], tf.Module())
    if custom_ops:
        converter.allow_custom_ops = True
    if int8:
        data = _to_rgb01(scenes[:100])

        def representative() -> Any:
            for image in data:
                yield [image[None]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        if int8 == "full":
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
        else:  # uint8 input, float outputs (what the SSD postprocess op produces anyway)
            converter.inference_input_type = tf.uint8
    return bytes(converter.convert())


def freeze(core: Any) -> Any:
    """The Keras network as a frozen concrete function: weights become constants (Keras 3 variables would
    otherwise stay READ_VARIABLE ops that calibration cannot run), and export functions can call it."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: core(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)
    )
    return convert_variables_to_constants_v2(fn)


def yolo_tflite(core: Any, scenes: list[Scene], *, int8: bool, channels_last: bool = False) -> bytes:
    """Ultralytics' layout ``[1, 4 + nc, N]``; ``channels_last``: ``[1, N, 4 + nc]`` (some other exports)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    def yolo(x: Any) -> Any:
        boxes, scores = _decode(tf, core, x)
        rows = tf.concat([boxes, scores], axis=-1)  # [1, N, 4 + nc]
        return rows if channels_last else tf.transpose(rows, (0, 2, 1))

    return _convert(tf, yolo.get_concrete_function(), core, int8="full" if int8 else None, scenes=scenes)


def e2e_tflite(core: Any, scenes: list[Scene], keep: int = 20) -> bytes:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    def e2e(x: Any) -> Any:
        boxes, scores = _decode(tf, core, x)
        b, s = boxes[0], scores[0]
        xyxy = tf.stack(
            [b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], -1
        )
        best = tf.reduce_max(s, axis=-1)
        cls = tf.cast(tf.argmax(s, axis=-1), tf.float32)
        yxyx = tf.stack([xyxy[:, 1], xyxy[:, 0], xyxy[:, 3], xyxy[:, 2]], -1)
        idx, _scores, _valid = tf.raw_ops.NonMaxSuppressionV5(
            boxes=yxyx,
            scores=best,
            max_output_size=keep,
            iou_threshold=0.5,
            score_threshold=0.05,
            soft_nms_sigma=0.0,
            pad_to_max_output_size=True,
        )
        rows = tf.concat(
            [tf.gather(xyxy, idx), tf.gather(best, idx)[:, None], tf.gather(cls, idx)[:, None]], -1
        )
        live = tf.cast(tf.range(keep) < _valid, tf.float32)[:, None]
        return (rows * live)[None]  # [1, keep, 6], padded rows all zero

    return _convert(tf, e2e.get_concrete_function(), core, int8=None, scenes=scenes)


Y_SCALE = X_SCALE = 10.0
H_SCALE = W_SCALE = 5.0
ANCHOR = 0.25  # anchor height and width, normalised


def _postprocess_signature(max_detections: int) -> str:
    attrs = {
        "max_detections": ("i", max_detections),
        "max_classes_per_detection": ("i", 1),
        "detections_per_class": ("i", 100),
        "use_regular_nms": ("b", "false"),
        "nms_score_threshold": ("f", 1e-8),
        "nms_iou_threshold": ("f", 0.5),
        "y_scale": ("f", Y_SCALE),
        "x_scale": ("f", X_SCALE),
        "h_scale": ("f", H_SCALE),
        "w_scale": ("f", W_SCALE),
        "num_classes": ("i", len(CLASSES)),
    }
    parts = ['name: "TFLite_Detection_PostProcess"']
    parts += [f'attr {{ key: "{k}" value {{ {t}: {v} }} }}' for k, (t, v) in attrs.items()]
    return " ".join(parts)


def ssd_tflite(
    core: Any, scenes: list[Scene], *, order: str | None, int8: bool = False, max_detections: int = 10
) -> bytes:
    """SSD layout; ``order`` is tf1, tf2, signature or scrambled (see :func:`arrange_ssd_outputs`), None: as converted."""
    import tensorflow as tf

    gy, gx = np.meshgrid(np.arange(GRID, dtype=np.float32), np.arange(GRID, dtype=np.float32), indexing="ij")
    anchors = np.stack(
        [
            ((gy + 0.5) / GRID).ravel(),
            ((gx + 0.5) / GRID).ravel(),
            np.full(GRID * GRID, ANCHOR),
            np.full(GRID * GRID, ANCHOR),
        ],
        axis=-1,
    ).astype(np.float32)  # ycenter, xcenter, h, w

    @tf.function(experimental_implements=_postprocess_signature(max_detections))
    def postprocess(box_encodings: Any, class_predictions: Any, anchor_boxes: Any) -> Any:
        # Placeholders: the converter replaces this function with the TFLite op.
        return (
            tf.constant(0.0, name="boxes"),
            tf.constant(0.0, name="classes"),
            tf.constant(0.0, name="scores"),
            tf.constant(0.0, name="num_detections"),
        )

    @tf.function(input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    def ssd(x: Any) -> Any:
        boxes, scores = _decode(tf, core, x)
        a = tf.constant(anchors)
        eps = 1e-4
        ty = (boxes[..., 1] - a[:, 0]) / ANCHOR * Y_SCALE
        tx = (boxes[..., 0] - a[:, 1]) / ANCHOR * X_SCALE
        th = tf.math.log(tf.maximum(boxes[..., 3], eps) / ANCHOR) * H_SCALE
        tw = tf.math.log(tf.maximum(boxes[..., 2], eps) / ANCHOR) * W_SCALE
        encodings = tf.stack([ty, tx, th, tw], axis=-1)
        with_background = tf.concat([tf.zeros_like(scores[..., :1]), scores], axis=-1)
        return postprocess(
            encodings, with_background, a
        )  # signature output_0..3: boxes, classes, scores, count

    data = _convert(
        tf, ssd.get_concrete_function(), core, int8="uint8" if int8 else None, scenes=scenes, custom_ops=True
    )
    return data if order is None else arrange_ssd_outputs(data, order)


def arrange_ssd_outputs(data: bytes, order: str) -> bytes:
    """Put the postprocess outputs in ``order`` (the converter sorts them its own way).

    ``tf1``: boxes, classes, scores, count; ``tf2``: scores, boxes, count, classes (both without signature
    defs, as older exports have none); ``signature``: TF2 export names (output_0 count, output_1 scores,
    output_2 classes, output_3 boxes) with the tensors placed in neither order, so only names tell;
    ``scrambled``: no signature and an order no reader knows (for the error).
    """
    import ai_edge_litert.schema_py_generated as schema
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data, 0)
    sig = model.signatureDefs[0]
    by_name = {(o.name.decode() if isinstance(o.name, bytes) else o.name): o for o in sig.outputs}
    role = {"boxes": by_name["output_0"], "classes": by_name["output_1"], "scores": by_name["output_2"],
            "count": by_name["output_3"]}  # fmt: skip
    graph = model.subgraphs[0]
    placed = {"tf1": ("boxes", "classes", "scores", "count"), "tf2": ("scores", "boxes", "count", "classes"),
              "signature": ("classes", "scores", "boxes", "count"),
              "scrambled": ("count", "classes", "boxes", "scores")}[order]  # fmt: skip
    graph.outputs = np.array([role[r].tensorIndex for r in placed], dtype=np.int32)
    if order == "signature":
        for name, r in (
            ("output_0", "count"),
            ("output_1", "scores"),
            ("output_2", "classes"),
            ("output_3", "boxes"),
        ):
            role[r].name = name
        sig.outputs = [role[r] for r in ("count", "scores", "classes", "boxes")]
    else:
        model.signatureDefs = []
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _entry(name: str, compress: int = zipfile.ZIP_DEFLATED) -> zipfile.ZipInfo:
    """A zip member with a fixed date, so the same model gives the same bytes (zipfile stamps the clock)."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compress
    return info


def with_ultralytics_metadata(data: bytes, *, imgsz: int = SIZE, names: tuple[str, ...] = CLASSES) -> bytes:
    """Append what Ultralytics' TFLite export appends: a zip holding ``metadata.json``."""
    meta = {
        "description": "Ultralytics YOLOv8n model trained on shapes.yaml",
        "author": "Ultralytics",
        "version": "8.3.0",
        "stride": 8,
        "task": "detect",
        "batch": 1,
        "imgsz": [imgsz, imgsz],
        "names": {str(i): n for i, n in enumerate(names)},
    }
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_entry("metadata.json"), json.dumps(meta, indent=2))
    return data + sink.getvalue()


def with_label_file(data: bytes, text: str, name: str = "labelmap.txt") -> bytes:
    """Append a TFLite Support style associated label file."""
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(_entry(name, zipfile.ZIP_STORED), text)
    return data + sink.getvalue()


@dataclass
class Detectors:
    folder: Path
    models: dict[str, Path] = field(default_factory=dict)  # layout name -> .tflite
    held_out: list[Scene] = field(default_factory=list)  # scenes no model saw
    classes: tuple[str, ...] = CLASSES

    def __getitem__(self, name: str) -> Path:
        return self.models[name]


def build_detectors(folder: Path, *, train_count: int = 2000, epochs: int = 20, seed: int = 0) -> Detectors:
    """Train once and write every layout to ``folder`` (reused when already there)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = [
        "yolo_float",
        "yolo_int8",
        "yolo_channels_last",
        "e2e_float",
        "ssd_tf1",
        "ssd_tf2",
        "ssd_signature",
        "ssd_int8",
        "ssd_scrambled",
    ]
    result = Detectors(folder, {n: folder / f"{n}.tflite" for n in names}, make_scenes(60, seed + 1))
    if all(p.exists() for p in result.models.values()):
        return result
    scenes = training_scenes(train_count, seed)
    core = freeze(train_core(scenes, epochs, seed))
    labels = "\n".join(CLASSES) + "\n"
    ssd_raw = ssd_tflite(core, scenes, order=None)
    built = {
        "yolo_float": with_ultralytics_metadata(yolo_tflite(core, scenes, int8=False)),
        "yolo_int8": with_ultralytics_metadata(yolo_tflite(core, scenes, int8=True)),
        "yolo_channels_last": with_ultralytics_metadata(
            yolo_tflite(core, scenes, int8=False, channels_last=True)
        ),
        "e2e_float": with_ultralytics_metadata(e2e_tflite(core, scenes)),
        "ssd_tf1": with_label_file(arrange_ssd_outputs(ssd_raw, "tf1"), "???\n" + labels),
        "ssd_tf2": with_label_file(arrange_ssd_outputs(ssd_raw, "tf2"), "???\n" + labels),
        "ssd_signature": with_label_file(arrange_ssd_outputs(ssd_raw, "signature"), "???\n" + labels),
        "ssd_scrambled": with_label_file(arrange_ssd_outputs(ssd_raw, "scrambled"), "???\n" + labels),
        "ssd_int8": with_label_file(
            ssd_tflite(core, scenes, order="tf1", int8=True),
            "".join(f"{i}  {n}\n" for i, n in enumerate(CLASSES)),
        ),
    }
    for name, data in built.items():  # each file whole or not at all: a cache must never hold half a model
        tmp = result.models[name].with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(result.models[name])
    return result


def odd_tflite(kind: str) -> bytes:
    """Small untrained float models whose outputs fit a task oddly or none (for the clear errors); ``pose``
    and ``segment_int64`` fit the pose and segment tasks since those exist.

    ``pose``: one ``[1, 1, 17, 3]`` output (MoveNet's keypoints); ``two_heads``: ``[1, 10]`` and ``[1, 5]``;
    ``embedding``: ``[1, 16]`` with no softmax (an embedding extractor); ``nan_yolo``: YOLO-shaped
    ``[1, 7, 144]`` whose values are all NaN; ``segment_int64``: a ``[1, 32, 32]`` INT64 class map, the
    argmax over a ``[1, 32, 32, 4]`` score map (DeepLab's output).
    """
    import tensorflow as tf

    spec = tf.TensorSpec((1, 32, 32, 3), tf.float32)
    mean = lambda x: tf.reduce_mean(x, axis=[1, 2])  # noqa: E731  # [1, 3], depends on the input
    w = tf.constant(np.linspace(-1, 1, 3 * 51, dtype=np.float32).reshape(3, 51))

    @tf.function(input_signature=[spec])
    def pose(x: Any) -> Any:
        return tf.reshape(tf.sigmoid(tf.matmul(mean(x), w)), (1, 1, 17, 3))

    @tf.function(input_signature=[spec])
    def two_heads(x: Any) -> Any:
        m = mean(x)
        return tf.matmul(m, w[:, :10]), tf.matmul(m, w[:, 10:15])

    @tf.function(input_signature=[spec])
    def embedding(x: Any) -> Any:
        return tf.matmul(mean(x), w[:, :16])

    @tf.function(input_signature=[spec])
    def nan_yolo(x: Any) -> Any:
        m = tf.reduce_mean(x)
        return tf.math.log(tf.zeros((1, 7, 144)) - 1.0 - m * m)  # log of a negative number: NaN

    @tf.function(input_signature=[spec])
    def segment_int64(x: Any) -> Any:
        scores = tf.nn.conv2d(x, tf.reshape(w[:, :4], (1, 1, 3, 4)), strides=1, padding="SAME")
        return tf.argmax(scores, axis=3)  # int64, as DeepLab's

    fn = {
        "pose": pose,
        "two_heads": two_heads,
        "embedding": embedding,
        "nan_yolo": nan_yolo,
        "segment_int64": segment_int64,
    }[kind]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], tf.Module())
    return bytes(converter.convert())


def build_odd_models(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in ("pose", "two_heads", "embedding", "nan_yolo", "segment_int64"):
        path = folder / f"{kind}.tflite"
        if not path.exists():
            path.write_bytes(odd_tflite(kind))
        paths[kind] = path
    return paths
