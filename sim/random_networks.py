"""Seeded generator of small, valid random networks for the differential tests and the
regression suite (``spikeforge regress``; it ships with the package for that reason).

:func:`random_network` returns a ``(manifest, arrays)`` pair in bundle form (the JSON layer
objects of ``docs/bundle.md``), so the same network can go through
``network_from_parts``, ``write_bundle`` and the naive reference alike. Shapes are tiny so that
the loop-based reference stays fast; everything else is drawn wide on purpose: weight bits
2..8, optional biases, membrane widths from 4 bits (saturation happens all the time) to 32,
every leak kind including the edge factors 0 and ``2**frac_bits``, both resets, both initial
membranes, strides above 1, padding, thresholds from 1 to the maximum, and inputs whose spike
densities range from almost nothing to almost everything.
"""

import numpy as np

from ..golden.manifest import MEMBRANE_BITS
from ..rtl.checks import check_int

__all__ = ["TEMPLATES", "NAMED_TEMPLATES", "random_network", "random_input"]

#: The network shapes the generator draws from (see the ``_build_*`` functions).
TEMPLATES = ("conv2d", "conv3d", "linear", "residual")
#: Shapes drawn only when asked for by name (adding them to TEMPLATES would change what
#: every existing seed draws): ``pooled`` is a stride-1 direct conv2d with an even output
#: and a 2x2 stride-2 max-pool, the pattern space-to-depth fuses (``rtl/layout.py``).
NAMED_TEMPLATES = ("pooled",)

_MEMBRANE_BITS = (4, 5, 6, 7, 8, 10, 12, 16, 24, 32)
_INPUT_BITS = (1, 2, 3, 4, 8, 12, 16)


def _signed_range(bits):
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class _Builder:
    """Accumulates layer objects and arrays, tracking each layer's shape and output kind."""

    def __init__(self, rng, membrane_bits, input_shape, input_bits):
        self.rng = rng
        self.membrane_bits = membrane_bits
        self.input_bits = input_bits
        self.layers = []
        self.arrays = {}
        self.shapes = {"input": tuple(input_shape)}
        self.outputs = {"input": "pixels"}

    # ---------------------------------------------------------------- random parameters

    def _max_in(self, source):
        return (1 << self.input_bits) - 1 if source == "input" else 1

    def neuron(self, scale, output="spikes"):
        """A random neuron object; ``scale`` is a rough size of one step's current."""
        rng = self.rng
        high = _signed_range(self.membrane_bits)[1]
        leak_kind = rng.choice(["none", "shift", "mul"])
        if leak_kind == "none":
            leak = {"kind": "none"}
        elif leak_kind == "shift":
            leak = {"kind": "shift", "shift": int(rng.integers(1, self.membrane_bits))}
        else:
            frac_bits = int(rng.integers(1, 17))
            edge = rng.random()
            if edge < 0.15:
                factor = 0
            elif edge < 0.3:
                factor = 1 << frac_bits
            else:
                factor = int(rng.integers(0, (1 << frac_bits) + 1))
            leak = {"kind": "mul", "factor": factor, "frac_bits": frac_bits}
        if output == "membrane":
            return {"leak": leak} if rng.random() < 0.7 else {}
        pick = rng.random()
        if pick < 0.15:
            threshold = 1
        elif pick < 0.25:
            threshold = high
        else:
            threshold = int(rng.integers(1, max(2, min(high, scale) + 1)))
        obj = {"threshold": threshold, "reset": str(rng.choice(["subtract", "zero"]))}
        if rng.random() < 0.8:
            obj["leak"] = leak
        if rng.random() < 0.7:
            obj["v_init"] = str(rng.choice(["zero", "half"]))
        return obj

    def _weights(self, name, shape, with_bias):
        """Random weights (and bias) for ``name``; returns (fields, typical |current|)."""
        rng = self.rng
        bits = int(rng.integers(2, 9))
        low, high = _signed_range(bits)
        # A sign skew so that some layers are mostly excitatory and fire a lot.
        floor = int(rng.choice([low, low // 2, -1, 0]))
        weight = rng.integers(floor, high + 1, size=shape).astype(np.int8)
        weight[rng.random(shape) < rng.choice([0.0, 0.2, 0.5])] = 0  # some pruned synapses
        self.arrays[f"{name}.weight"] = weight
        fields = {"weight_bits": bits}
        fan_in = int(np.prod(shape[1:]))
        typical = max(1, fan_in * max(abs(floor), high) // 3)
        if with_bias:
            bias_bits = int(rng.integers(1, 33))
            b_low, b_high = _signed_range(bias_bits)
            span = min(b_high, typical)
            bias = rng.integers(max(b_low, -span - 1), span + 1, size=shape[0])
            if rng.random() < 0.2:  # the extremes of the declared width
                bias[0], bias[-1] = b_low, b_high
            self.arrays[f"{name}.bias"] = bias.astype(np.int32)
            fields["bias_bits"] = bias_bits
        return fields, typical

    # ---------------------------------------------------------------- layer adders

    def _add(self, obj, shape):
        if obj["type"] != "add" and obj["inputs"] == [self.last] and self.rng.random() < 0.5:
            del obj["inputs"]  # exercise the "previous layer" default
        obj["out_shape"] = list(shape)
        self.layers.append(obj)
        self.shapes[obj["name"]] = tuple(shape)
        self.outputs[obj["name"]] = obj["output"]
        return obj["name"]

    @property
    def last(self):
        return self.layers[-1]["name"] if self.layers else "input"

    def conv(self, source, output, out_channels, kernel, stride, padding):
        rng = self.rng
        in_shape = self.shapes[source]
        name = f"l{len(self.layers)}"
        kind = "conv2d" if len(kernel) == 2 else "conv3d"
        fields, typical = self._weights(name, (out_channels, in_shape[0], *kernel),
                                        rng.random() < 0.5)
        spatial = [(s + 2 * p - k) // st + 1
                   for s, k, st, p in zip(in_shape[1:], kernel, stride, padding)]
        obj = {"name": name, "type": kind, "inputs": [source], "output": output,
               "out_channels": out_channels, "kernel": list(kernel), "stride": list(stride),
               "padding": list(padding), **fields}
        if output != "current":
            obj["neuron"] = self.neuron(typical * self._max_in(source), output)
        return self._add(obj, (out_channels, *spatial))

    def random_conv(self, source, output, out_channels=None):
        """A conv with random kernel, stride and padding that fits the source."""
        rng = self.rng
        in_shape = self.shapes[source]
        kernel, stride, padding = [], [], []
        for size in in_shape[1:]:
            k = int(rng.integers(1, min(3, size + 1) + 1))
            p = int(rng.integers(0, k)) if rng.random() < 0.6 else 0
            while size + 2 * p < k:
                p += 1
            kernel.append(k)
            padding.append(p)
            stride.append(int(rng.choice([1, 1, 2, 3])))
        channels = out_channels or int(rng.integers(1, 4))
        return self.conv(source, output, channels, kernel, stride, padding)

    def linear(self, source, output, out_features):
        rng = self.rng
        name = f"l{len(self.layers)}"
        fields, typical = self._weights(name, (out_features, self.shapes[source][0]),
                                        rng.random() < 0.5)
        obj = {"name": name, "type": "linear", "inputs": [source], "output": output,
               "out_features": out_features, **fields}
        if output != "current":
            obj["neuron"] = self.neuron(typical * self._max_in(source), output)
        return self._add(obj, (out_features,))

    def pool(self, source, kind, output="spikes", kernel=None, stride=None):
        rng = self.rng
        channels, height, width = self.shapes[source]
        if kernel is None:
            kernel = [int(rng.integers(1, min(3, height) + 1)),
                      int(rng.integers(1, min(3, width) + 1))]
        obj = {"name": f"l{len(self.layers)}", "type": kind, "inputs": [source],
               "output": output, "kernel": list(kernel)}
        if stride is None and rng.random() < 0.6:
            stride = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
        effective = stride or kernel
        if stride is not None:
            obj["stride"] = list(stride)
        shape = (channels, *[(s - k) // st + 1
                             for s, k, st in zip((height, width), kernel, effective)])
        if kind == "avgpool2d" and output != "current":
            obj["neuron"] = self.neuron(max(1, kernel[0] * kernel[1] // 2), output)
        return self._add(obj, shape)

    def flatten(self, source, start=None, end=None):
        shape = self.shapes[source]
        obj = {"name": f"l{len(self.layers)}", "type": "flatten", "inputs": [source],
               "output": "spikes"}
        lo = 0 if start is None else start
        hi = len(shape) - 1 if end is None else end
        if start is not None:
            obj["start_dim"] = start
        if end is not None:
            obj["end_dim"] = end
        out = (*shape[:lo], int(np.prod(shape[lo:hi + 1])), *shape[hi + 1:])
        return self._add(obj, out)

    def add(self, sources, output="spikes"):
        rng = self.rng
        scales = [int(rng.choice([-3, -1, 1, 1, 2, 5])) for _ in sources]
        obj = {"name": f"l{len(self.layers)}", "type": "add", "inputs": list(sources),
               "output": output, "scales": scales}
        obj["neuron"] = self.neuron(4, output)
        return self._add(obj, self.shapes[sources[0]])

    def head(self, source, classes):
        """Flatten what is needed and finish with a membrane output layer."""
        if len(self.shapes[source]) != 1:
            source = self.flatten(source)
        return self.linear(source, "membrane", classes)


# -------------------------------------------------------------------- templates

def _build_conv2d(b, rng):
    a = b.random_conv("input", "spikes")
    if min(b.shapes[a][1:]) >= 2 and rng.random() < 0.6:
        a = b.pool(a, str(rng.choice(["maxpool2d", "avgpool2d"])))
    if rng.random() < 0.6:
        a = b.random_conv(a, "spikes")
    ending = rng.random()
    if ending < 0.2:
        b.random_conv(a, "membrane")  # a conv as the output layer
    elif ending < 0.3:
        b.pool(a, "avgpool2d", "membrane", kernel=[1, 1])
    elif ending < 0.45:
        a = b.flatten(a, 1, 2)  # partial flatten, then the rest
        b.head(b.flatten(a), int(rng.integers(2, 5)))
    else:
        b.head(a, int(rng.integers(2, 5)))


def _build_pooled(b, rng):
    kernel, padding = [], []
    for size in b.shapes["input"][1:]:
        options = [(k, p) for k in (1, 2, 3) for p in range(k)
                   if (size + 2 * p - k + 1) % 2 == 0 and size + 2 * p - k + 1 >= 2]
        k, p = options[int(rng.integers(len(options)))]
        kernel.append(k)
        padding.append(p)
    a = b.conv("input", "spikes", int(rng.integers(1, 4)), kernel, [1, 1], padding)
    a = b.pool(a, "maxpool2d", kernel=[2, 2], stride=[2, 2] if rng.random() < 0.5 else None)
    if rng.random() < 0.5:
        a = b.random_conv(a, "spikes")
    b.head(a, int(rng.integers(2, 5)))


def _build_conv3d(b, rng):
    a = b.random_conv("input", "spikes")
    if rng.random() < 0.4:
        a = b.random_conv(a, "spikes")
    if rng.random() < 0.5:
        a = b.flatten(a, 0, 1)  # fold channels and bands: a 2D feature map
        a = b.random_conv(a, "spikes")
    b.head(a, int(rng.integers(2, 5)))


def _build_linear(b, rng):
    a = b.linear("input", "spikes", int(rng.integers(2, 7)))
    for _ in range(int(rng.integers(0, 3))):
        a = b.linear(a, "spikes", int(rng.integers(1, 7)))
    b.linear(a, "membrane", int(rng.integers(2, 5)))


def _build_residual(b, rng):
    channels = int(rng.integers(1, 3))
    same = ([3, 3], [1, 1], [1, 1]) if rng.random() < 0.6 else ([1, 1], [1, 1], [0, 0])
    a = b.conv("input", "spikes", channels, *same)
    candidates = [a]
    if rng.random() < 0.7:  # a spiking or current branch on top of a
        candidates.append(b.conv(a, str(rng.choice(["spikes", "current"])), channels, *same))
    if rng.random() < 0.5:  # a direct-encoded current: constant over time
        candidates.append(b.conv("input", "current", channels, *same))
    if rng.random() < 0.5:  # a 1x1 avg-pool current (it counts a's spikes)
        candidates.append(b.pool(a, "avgpool2d", "current", kernel=[1, 1], stride=[1, 1]))
    if len(candidates) < 2:
        candidates.append(b.conv(a, "current", channels, *same))
    if rng.random() < 0.25:
        b.add(candidates, "membrane")
        return
    total = b.add(candidates)
    b.head(total, int(rng.integers(2, 4)))


def random_network(seed, template=None, *, membrane_bits=None, output_membrane_bits=None):
    """A random valid network as ``(manifest, arrays)``; the same seed gives the same network.

    Parameters
    ----------
    seed : int
    template : str, optional
        One of :data:`TEMPLATES` or :data:`NAMED_TEMPLATES`; drawn from :data:`TEMPLATES`
        when omitted.
    membrane_bits : int, optional
        The membrane width (within the contract's range, down to the 2- and 3-bit membranes
        of fully quantized SNNs) instead of the drawn one; thresholds, leaks and initial
        membranes are then drawn for that width, everything else as the seed draws it.
    output_membrane_bits : int, optional
        The output layer's own membrane width (its ``neuron.membrane_bits``; at least the
        network's), as narrow-membrane training writes it.

    Raises
    ------
    TypeError
        ``membrane_bits`` is not an integer in the contract's range (``rtl.checks``).
    """
    if membrane_bits is not None:
        check_int(membrane_bits, "Membrane width", *MEMBRANE_BITS)
    rng = np.random.default_rng(seed)
    template = template or str(rng.choice(TEMPLATES))
    drawn = int(rng.choice(_MEMBRANE_BITS))  # drawn either way: the seed's later draws stay
    membrane_bits = drawn if membrane_bits is None else membrane_bits
    input_bits = int(rng.choice(_INPUT_BITS))
    if template == "conv3d":
        shape = (int(rng.integers(1, 3)), *rng.integers(2, 5, size=3).tolist())
    elif template == "linear":
        shape = (int(rng.integers(2, 13)),)
    else:
        shape = (int(rng.integers(1, 3)), *rng.integers(3, 7, size=2).tolist())
    b = _Builder(rng, membrane_bits, shape, input_bits)
    {"conv2d": _build_conv2d, "conv3d": _build_conv3d, "linear": _build_linear,
     "residual": _build_residual, "pooled": _build_pooled}[template](b, rng)
    manifest = {
        "format": "spikeforge-bundle", "format_version": 1, "name": f"random_{seed}",
        "timesteps": int(rng.integers(1, 7)), "membrane_bits": membrane_bits,
        "input": {"shape": list(shape), "bits": input_bits, "raw_min": 0.0, "raw_max": 1.0},
        "layers": b.layers, "dataset": {"seed": seed}, "metadata": {"template": template},
    }
    if output_membrane_bits is not None:
        b.layers[-1]["neuron"]["membrane_bits"] = output_membrane_bits
    return manifest, b.arrays


def random_input(rng, manifest, n):
    """``n`` random integer inputs for ``manifest``, each image with its own density.

    Each image is drawn near zero, near the maximum, or uniformly, so that first-layer spike
    densities span the whole range from silence to firing every step.
    """
    spec = manifest["input"]
    top = (1 << spec["bits"]) - 1
    images = []
    for _ in range(n):
        mode = rng.choice(["zero", "low", "high", "max", "uniform"])
        if mode == "zero":
            image = np.zeros(spec["shape"], dtype=np.int64)
        elif mode == "low":
            image = rng.integers(0, max(1, top // 8) + 1, size=spec["shape"])
        elif mode == "high":
            image = rng.integers(top - top // 8, top + 1, size=spec["shape"])
        elif mode == "max":
            image = np.full(spec["shape"], top, dtype=np.int64)
        else:
            image = rng.integers(0, top + 1, size=spec["shape"])
        images.append(image)
    return np.stack(images).astype(np.int64)
