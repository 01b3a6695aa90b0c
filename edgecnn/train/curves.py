"""Training curves as a PNG: loss and accuracy per epoch, training vs validation."""

from __future__ import annotations

import io

from edgecnn.errors import RuntimeMissing


def plot_curves(history: dict[str, list[float]], *, title: str = "", best_epoch: int | None = None) -> bytes:
    """Render ``history`` (Keras' ``History.history``) to PNG bytes.

    Uses matplotlib's object API with the Agg canvas: no pyplot state, no display needed on a server.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise RuntimeMissing(
            "matplotlib is not installed: pip install 'edgecnn[train]' to get the training-curve PNG."
        ) from exc
    fig = Figure(figsize=(9, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    for axis, metric in zip(fig.subplots(1, 2), ("loss", "accuracy"), strict=True):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            values = history.get(key)
            if values:
                epochs = range(1, len(values) + 1)
                axis.plot(epochs, values, style, marker="o", markersize=3, label=key.replace("_", " "))
        if best_epoch:
            axis.axvline(best_epoch, color="grey", linewidth=0.8, label=f"best epoch {best_epoch}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    sink = io.BytesIO()
    fig.savefig(sink, format="png")
    return sink.getvalue()
