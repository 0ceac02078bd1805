"""The figures of ``spikeforge report``, drawn with matplotlib's Agg canvas into PNG bytes.

Each function takes parts of the report's JSON (``report.json``, built by
``tools/report_page.py``) and returns ``(title, png_bytes)``: the pictures show exactly the
numbers the page's tables and ``report.json`` hold, and nothing here computes a result.
Figures are made with :class:`matplotlib.figure.Figure` and the Agg canvas directly (no
``pyplot``), so no global backend or window state is touched and any display is irrelevant.
"""

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "accuracy_vs_timesteps",
    "spike_rates",
    "spike_raster",
    "cycles_by_layer",
    "cycles_per_image",
    "synaptic_ops",
    "energy",
    "resources",
    "membrane_sweep",
    "pruning",
]

_CAUSE_LABELS = {"first_layer": "fill: first-layer block", "scan": "fill: spike scan",
                 "drain": "drain: aggregation sweep", "overhead": "phase overhead"}


def _png(figure):
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    # No "Software" entry: the same numbers give the same bytes whatever matplotlib built it.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _axes(width=7.0, height=4.0):
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def accuracy_vs_timesteps(rows, recorded):
    """Golden accuracy per timestep count; ``recorded`` = {label: accuracy} from training."""
    figure, ax = _axes()
    steps = [row["timesteps"] for row in rows]
    ax.plot(steps, [100 * row["accuracy"] for row in rows], marker="o", label="SNN, golden model")
    for (label, value), style in zip(recorded.items(), ("--", ":", "-.")):
        ax.axhline(100 * value, linestyle=style, color="grey", label=f"{label} (training)")
    ax.set_xlabel("timesteps T")
    ax.set_ylabel("accuracy (%)")
    ax.set_xticks(steps)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return "Accuracy vs timesteps", _png(figure)


def spike_rates(layers):
    """Bar chart of spikes per neuron per timestep of every spiking layer."""
    layers = [layer for layer in layers if layer["spike_rate"] is not None]
    figure, ax = _axes()
    ax.bar([layer["name"] for layer in layers], [100 * layer["spike_rate"] for layer in layers])
    ax.set_ylabel("spikes per neuron per timestep (%)")
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(axis="y", alpha=0.3)
    return "Spike rate per layer", _png(figure)


def spike_raster(layer, spikes):
    """Raster of one image's spikes in ``layer``: ``spikes`` is ``(T, neurons)`` 0/1."""
    spikes = np.asarray(spikes)
    figure, ax = _axes(7.0, 4.5)
    steps, neurons = np.nonzero(spikes)
    ax.scatter(steps + 1, neurons, marker="|", s=40, color="black", linewidths=0.8)
    ax.set_xlim(0.5, spikes.shape[0] + 0.5)
    ax.set_ylim(-0.5, spikes.shape[1] - 0.5)
    ax.set_xticks(range(1, spikes.shape[0] + 1))
    ax.set_xlabel("timestep")
    ax.set_ylabel(f"neuron of {layer} (flattened)")
    return f"Spike raster of {layer}, first image", _png(figure)


def cycles_by_layer(layers):
    """Stacked bars of mean cycles per image, per layer and cause."""
    figure, ax = _axes()
    names = [layer["name"] for layer in layers]
    bottom = np.zeros(len(layers))
    for cause, label in _CAUSE_LABELS.items():
        values = np.array([layer["causes"][cause] for layer in layers], dtype=float)
        ax.bar(names, values, bottom=bottom, label=label)
        bottom += values
    ax.set_ylabel("cycles per image (cycle model, mean)")
    ax.tick_params(axis="x", labelrotation=45)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return "Where the cycles go", _png(figure)


def cycles_per_image(predicted, measured):
    """Cycle model vs the RTL's cycle counter per image (``measured`` shorter or ``None``)."""
    figure, ax = _axes()
    index = np.arange(len(predicted))
    ax.bar(index - 0.2, predicted, width=0.4, label="cycle model")
    shown = [(i, value) for i, value in enumerate(measured) if value is not None]
    if shown:
        ax.bar([i + 0.2 for i, _ in shown], [v for _, v in shown], width=0.4,
               label="RTL cycle counter (Amaranth simulator)")
    ax.set_xlabel("test image")
    ax.set_ylabel("cycles")
    ax.set_xticks(index)
    ax.legend(loc="lower right")
    return "Cycles per image: model and RTL", _png(figure)


def synaptic_ops(layers):
    """Synaptic operations per image of every layer that has them."""
    layers = [layer for layer in layers if layer["synaptic_ops_per_image"] is not None]
    figure, ax = _axes()
    ax.bar([layer["name"] for layer in layers],
           [layer["synaptic_ops_per_image"] for layer in layers])
    ax.set_ylabel("synaptic ops per image")
    ax.tick_params(axis="x", labelrotation=45)
    ax.grid(axis="y", alpha=0.3)
    return "Synaptic operations per layer", _png(figure)


def energy(rows):
    """Energy per inference: ``rows`` = [(label, total nJ, first-layer nJ or None), ...]."""
    figure, ax = _axes()
    labels = [label for label, _, _ in rows]
    ax.barh(labels, [total for _, total, _ in rows], label="total")
    ax.barh(labels, [first or 0 for _, _, first in rows], label="first layer")
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (nJ, 45 nm compute)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    return "Energy per inference", _png(figure)


def resources(rows, device):
    """Percent of ``device`` used: ``rows`` = [(name, used, available), ...]."""
    figure, ax = _axes()
    names = [name for name, _, _ in rows]
    ax.bar(names, [100 * used / available for _, used, available in rows])
    ax.axhline(100, color="red", linestyle="--", label=f"{device} capacity")
    ax.set_ylabel(f"% of the {device}")
    ax.legend()
    return f"Resources on the {device}", _png(figure)


def membrane_sweep(rows, original_bits, original_accuracy):
    """Golden accuracy per membrane width."""
    figure, ax = _axes()
    ax.plot([row["bits"] for row in rows], [100 * row["accuracy"] for row in rows], marker="o",
            label="re-exported")
    ax.axhline(100 * original_accuracy, color="grey", linestyle="--",
               label=f"original ({original_bits}-bit)")
    ax.set_xlabel("membrane bits")
    ax.set_ylabel("accuracy (%)")
    ax.invert_xaxis()
    ax.legend()
    ax.grid(alpha=0.3)
    return "Membrane-width sweep", _png(figure)


def pruning(rounds):
    """Test accuracy against weight sparsity over the recorded pruning rounds."""
    figure, ax = _axes()
    ax.plot([100 * r["sparsity"] for r in rounds], [100 * r["test_accuracy"] for r in rounds],
            marker="o")
    for r in rounds:
        ax.annotate(f"round {r['round']}", (100 * r["sparsity"], 100 * r["test_accuracy"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("weights that are zero (%)")
    ax.set_ylabel("test accuracy (%, recorded by training)")
    ax.grid(alpha=0.3)
    return "Pruning rounds", _png(figure)
