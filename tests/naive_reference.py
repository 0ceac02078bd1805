"""A deliberately naive reference of the integer contract, for differential tests.

Written from the contract (``docs/neuron.md``, the integer contract), not from
``spikeforge.golden``: plain Python integers, explicit loops over channels, positions and kernel
taps, explicit ``if`` tests for the zero padding, Python's ``>>`` (which floors, like the
contract's arithmetic shift) and explicit saturation. It reads the manifest's JSON layer
objects itself, defaults included, so it also checks how the golden model parses them.

Speed is irrelevant here; only keep the tested shapes tiny. Arrays of ``dtype=object`` hold
Python integers and are only converted to ``int64`` when results are handed back.
"""

import itertools
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "saturate", "leak", "neuron_step", "initial_membrane", "output_length",
    "conv_current", "linear_current", "maxpool2d", "avgpool2d_current", "flatten",
    "conv_fanout", "linear_fanout", "avgpool_fanout", "argmax", "NaiveResult", "run_naive",
]


def _positions(shape):
    """Every index tuple of ``shape`` in row-major order."""
    return itertools.product(*[range(n) for n in shape])


def _ints(array):
    return np.asarray(array).astype(object)


# ------------------------------------------------------------------------- neuron

def saturate(value, bits):
    low = -(2 ** (bits - 1))
    high = 2 ** (bits - 1) - 1
    if value < low:
        return low
    if value > high:
        return high
    return value


def leak(value, obj):
    """``obj`` is the manifest's leak object (missing means ``none``)."""
    kind = obj.get("kind", "none") if obj else "none"
    if kind == "none":
        return value
    if kind == "shift":
        return value - (value >> obj["shift"])
    return (value * obj["factor"]) >> obj["frac_bits"]


def initial_membrane(neuron):
    if neuron.get("v_init", "zero") == "half":
        return neuron["threshold"] >> 1
    return 0


def neuron_step(value, current, neuron, membrane_bits):
    """One timestep of one neuron; returns ``(membrane after reset, spike or None)``."""
    current = current // 2 ** neuron.get("current_shift", 0)   # floor division, exact ints
    value = saturate(leak(value, neuron.get("leak")) + current, membrane_bits)
    if "threshold" not in neuron:  # the non-spiking output layer
        return value, None
    spike = 0
    if value >= neuron["threshold"]:
        spike = 1
        if neuron["reset"] == "subtract":
            value = value - neuron["threshold"]
        else:
            value = 0
    return value, spike


# ------------------------------------------------------------------------- synapses

def output_length(size, kernel, stride, padding):
    """Number of window starts ``0, stride, 2*stride, ...`` that fit the padded axis."""
    count, start = 0, 0
    while start + kernel <= size + 2 * padding:
        count += 1
        start += stride
    return count


def conv_current(x, weight, bias, stride, padding):
    """``conv(x, W) + b`` of one image ``x`` (C, *S) for any number of spatial axes."""
    x, weight = _ints(x), _ints(weight)
    channels, spatial = x.shape[0], x.shape[1:]
    out_channels, kernel = weight.shape[0], weight.shape[2:]
    dims = len(spatial)
    out_spatial = [output_length(spatial[a], kernel[a], stride[a], padding[a])
                   for a in range(dims)]
    out = np.zeros((out_channels, *out_spatial), dtype=object)
    for co in range(out_channels):
        for opos in _positions(out_spatial):
            total = 0
            for ci in range(channels):
                for tap in _positions(kernel):
                    ipos = []
                    inside = True
                    for a in range(dims):
                        i = opos[a] * stride[a] - padding[a] + tap[a]
                        if i < 0 or i >= spatial[a]:
                            inside = False  # a zero of the padding
                        ipos.append(i)
                    if inside:
                        total += weight[(co, ci, *tap)] * x[(ci, *ipos)]
            if bias is not None:
                total += int(bias[co])
            out[(co, *opos)] = total
    return out


def linear_current(x, weight, bias):
    x, weight = _ints(x), _ints(weight)
    out = np.zeros(weight.shape[0], dtype=object)
    for o in range(weight.shape[0]):
        total = 0
        for i in range(weight.shape[1]):
            total += weight[o, i] * x[i]
        if bias is not None:
            total += int(bias[o])
        out[o] = total
    return out


def _pool(spikes, kernel, stride, combine):
    spikes = _ints(spikes)
    channels, height, width = spikes.shape
    oh = output_length(height, kernel[0], stride[0], 0)
    ow = output_length(width, kernel[1], stride[1], 0)
    out = np.zeros((channels, oh, ow), dtype=object)
    for c in range(channels):
        for oy in range(oh):
            for ox in range(ow):
                values = [spikes[c, oy * stride[0] + ky, ox * stride[1] + kx]
                          for ky in range(kernel[0]) for kx in range(kernel[1])]
                out[c, oy, ox] = combine(values)
    return out


def maxpool2d(spikes, kernel, stride):
    """1 where any spike of the window is 1 (OR)."""
    return _pool(spikes, kernel, stride, lambda v: 1 if any(s == 1 for s in v) else 0)


def avgpool2d_current(spikes, kernel, stride):
    """The number of spikes in each window."""
    return _pool(spikes, kernel, stride, sum)


def flatten(values, start, end):
    """torch.flatten(start, end) without the batch axis: same row-major element order."""
    shape = values.shape
    out_shape = list(shape[:start])
    merged = 1
    for size in shape[start:end + 1]:
        merged *= size
    out_shape += [merged, *shape[end + 1:]]
    ordered = [values[p] for p in _positions(shape)]
    out = np.zeros(out_shape, dtype=object)
    for k, p in enumerate(_positions(out_shape)):
        out[p] = ordered[k]
    return out


# ------------------------------------------------------------------------- fanout

def conv_fanout(in_shape, weight, stride, padding):
    """Per input element: non-zero weights that carry an event from it to an in-bounds output."""
    weight = _ints(weight)
    out_channels, kernel = weight.shape[0], weight.shape[2:]
    spatial = in_shape[1:]
    out_spatial = [output_length(spatial[a], kernel[a], stride[a], padding[a])
                   for a in range(len(spatial))]
    result = np.zeros(in_shape, dtype=object)
    for ci, *ipos in _positions(in_shape):
        count = 0
        for co in range(out_channels):
            for tap in _positions(kernel):
                if weight[(co, ci, *tap)] == 0:
                    continue
                reaches = True
                for a in range(len(spatial)):
                    offset = ipos[a] + padding[a] - tap[a]  # = opos * stride
                    if offset < 0 or offset % stride[a] != 0:
                        reaches = False  # no output window starts there
                    elif offset // stride[a] >= out_spatial[a]:
                        reaches = False  # the window would start past the last output
                if reaches:
                    count += 1
        result[(ci, *ipos)] = count
    return result


def linear_fanout(weight):
    weight = _ints(weight)
    return np.array([sum(1 for o in range(weight.shape[0]) if weight[o, i] != 0)
                     for i in range(weight.shape[1])], dtype=object)


def avgpool_fanout(in_shape, kernel, stride):
    channels, height, width = in_shape
    oh = output_length(height, kernel[0], stride[0], 0)
    ow = output_length(width, kernel[1], stride[1], 0)
    result = np.zeros(in_shape, dtype=object)
    for c, y, x in _positions(in_shape):
        result[c, y, x] = sum(1 for oy in range(oh) for ox in range(ow)
                              if oy * stride[0] <= y < oy * stride[0] + kernel[0]
                              and ox * stride[1] <= x < ox * stride[1] + kernel[1])
    return result


def argmax(values):
    """Index of the largest value; the lowest index wins a tie."""
    best = 0
    for i in range(1, len(values)):
        if values[i] > values[best]:
            best = i
    return best


# ------------------------------------------------------------------------- whole network

@dataclass
class NaiveResult:
    """Same fields as ``GoldenResult``; traces map name -> (current, membrane, spikes)."""

    predictions: np.ndarray
    output_membrane: np.ndarray
    first_layer_macs: np.ndarray
    synaptic_ops: dict = field(default_factory=dict)
    spikes: dict = field(default_factory=dict)
    traces: dict = field(default_factory=dict)


def _layer_current(obj, sources, arrays, inputs):
    """The current of a synaptic/avgpool/add layer from its inputs' values at this step."""
    kind, name = obj["type"], obj["name"]
    if kind == "linear":
        return linear_current(inputs[0], arrays[f"{name}.weight"], arrays.get(f"{name}.bias"))
    if kind in ("conv2d", "conv3d"):
        return conv_current(inputs[0], arrays[f"{name}.weight"], arrays.get(f"{name}.bias"),
                            obj["stride"], obj["padding"])
    if kind == "avgpool2d":
        return avgpool2d_current(inputs[0], obj["kernel"], obj.get("stride", obj["kernel"]))
    total = np.zeros(inputs[0].shape, dtype=object)
    for value, scale in zip(inputs, obj["scales"]):
        for p in _positions(total.shape):
            total[p] += scale * value[p]
    return total


def _layer_fanout(obj, in_shape, arrays):
    kind, name = obj["type"], obj["name"]
    if kind == "linear":
        return linear_fanout(arrays[f"{name}.weight"])
    if kind == "avgpool2d":
        return avgpool_fanout(in_shape, obj["kernel"], obj.get("stride", obj["kernel"]))
    return conv_fanout(in_shape, arrays[f"{name}.weight"], obj["stride"], obj["padding"])


def run_naive(manifest, arrays, x):
    """Run the manifest's network on ``x`` (N, *input.shape): timestep-major, image by image.

    The schedule is ``for image, for t, for layer`` (the golden model goes layer by layer),
    so agreement also shows that the order of evaluation does not matter.
    """
    timesteps, bits = manifest["timesteps"], manifest["membrane_bits"]
    layers = []
    for index, obj in enumerate(manifest["layers"]):  # resolve the defaulted inputs
        previous = manifest["layers"][index - 1]["name"] if index else "input"
        layers.append(dict(obj, inputs=obj.get("inputs", [previous])))
    n = len(x)
    shapes = {"input": tuple(manifest["input"]["shape"])}
    for obj in layers:
        shapes[obj["name"]] = tuple(obj["out_shape"])
    fanouts = {obj["name"]: _layer_fanout(obj, shapes[obj["inputs"][0]], arrays)
               for obj in layers if obj["type"] in ("conv2d", "conv3d", "linear", "avgpool2d")}
    res = NaiveResult(predictions=np.zeros(n, dtype=np.int64), output_membrane=None,
                      first_layer_macs=np.zeros(n, dtype=np.int64))
    raw = {}  # name -> [current, membrane, spikes] as nested lists [t][image] of object arrays
    for obj in layers:
        name = obj["name"]
        raw[name] = [[[None] * n for _ in range(timesteps)] for _ in range(3)]
        if obj["type"] in ("conv2d", "conv3d", "linear", "avgpool2d", "add") \
                and obj["inputs"] != ["input"]:
            res.synaptic_ops[name] = np.zeros((timesteps, n), dtype=np.int64)
        if "neuron" in obj and obj["output"] == "spikes":
            res.spikes[name] = np.zeros((timesteps, n), dtype=np.int64)

    for image in range(n):
        pixels = _ints(x[image])
        constant = {}  # direct-encoded currents: computed once per image
        membrane = {}
        for obj in layers:
            if obj["inputs"] == ["input"]:
                constant[obj["name"]] = _layer_current(obj, None, arrays, [pixels])
                res.first_layer_macs[image] += sum(fanouts[obj["name"]].flat)
            if "neuron" in obj:
                start = initial_membrane(obj["neuron"]) if obj["output"] == "spikes" else 0
                membrane[obj["name"]] = np.full(obj["out_shape"], start, dtype=object)
        for t in range(timesteps):
            spikes_now, currents_now = {}, {}
            for obj in layers:
                name, kind = obj["name"], obj["type"]
                sources = obj["inputs"]
                current = spikes = None
                if kind == "maxpool2d":
                    spikes = maxpool2d(spikes_now[sources[0]], obj["kernel"],
                                       obj.get("stride", obj["kernel"]))
                elif kind == "flatten":
                    shape = shapes[sources[0]]
                    spikes = flatten(spikes_now[sources[0]], obj.get("start_dim", 0),
                                     obj.get("end_dim", len(shape) - 1))
                elif name in constant:
                    current = constant[name]
                else:
                    values = [spikes_now[s] if s in spikes_now else currents_now[s]
                              for s in sources]
                    current = _layer_current(obj, sources, arrays, values)
                    ops = 0
                    for s, value in zip(sources, values):
                        for p in _positions(value.shape):
                            if kind == "add":
                                # one op per input spike, one per element of a current
                                ops += 1 if s in currents_now or value[p] == 1 else 0
                            elif value[p] == 1:
                                ops += fanouts[name][p]
                    res.synaptic_ops[name][t, image] = ops
                if "neuron" in obj:
                    v = membrane[name]
                    fired = np.zeros(v.shape, dtype=object)
                    for p in _positions(v.shape):
                        v[p], fired[p] = neuron_step(v[p], current[p], obj["neuron"],
                                                     obj["neuron"].get("membrane_bits", bits))
                    raw[name][1][t][image] = v.copy()
                    if obj["output"] == "spikes":
                        spikes = fired
                        res.spikes[name][t, image] = sum(fired.flat)
                if obj["output"] == "current":
                    currents_now[name] = current
                elif spikes is not None:
                    spikes_now[name] = spikes
                raw[name][0][t][image] = current
                raw[name][2][t][image] = spikes

    for obj in layers:
        packed = []
        for kind, per_step in zip(("current", "membrane", "spikes"), raw[obj["name"]]):
            if per_step[0][0] is None:
                packed.append(None)
            else:
                dtype = np.uint8 if kind == "spikes" else np.int64
                packed.append(np.array([[np.asarray(v, dtype=dtype) for v in row]
                                        for row in per_step], dtype=dtype))
        res.traces[obj["name"]] = tuple(packed)
    final = res.traces[layers[-1]["name"]][1][-1]  # (N, *out_shape)
    res.output_membrane = final.reshape(n, -1)
    for image in range(n):
        res.predictions[image] = argmax([int(v) for v in res.output_membrane[image]])
    return res
