"""Validation of a bundle's manifest: the JSON description <-> :class:`Network` round trip.

:func:`network_from_parts` checks a manifest dict and its arrays against the contract
(``docs/neuron.md``, ``docs/bundle.md``) and builds a :class:`Network`;
:func:`network_to_parts` is its inverse. Every problem raises :class:`BundleError` with one
sentence naming what is wrong and where. The file format around it is ``golden/bundle.py``.
"""

import re

import numpy as np

from .network import (
    SYNAPTIC_TYPES, LAYER_TYPES, OUTPUT_KINDS, CURRENT_SHIFTS, Leak, Neuron, Layer, InputSpec,
    Network, conv_output_size, int_range,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "BundleError",
    "network_from_parts",
    "network_to_parts",
]

FORMAT_NAME = "spikeforge-bundle"
FORMAT_VERSION = 1

# Ranges of the integer widths (inclusive); docs/neuron.md section 1 explains each.
WEIGHT_BITS = (2, 8)
BIAS_BITS = (1, 32)
MEMBRANE_BITS = (2, 32)
INPUT_BITS = (1, 16)
TIMESTEPS = (1, 1024)
MAX_LEAK_FRAC_BITS = 16
ARRAY_DTYPES = {"weight": np.dtype("int8"), "bias": np.dtype("int32")}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class BundleError(ValueError):
    """A bundle file or manifest is invalid; the message is one sentence saying why."""


# --------------------------------------------------------------------------- small checks

def _fail(message):
    raise BundleError(message)


def _int(value, what, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{what} must be an integer, not {value!r}")
    if low is not None and value < low or high is not None and value > high:
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        _fail(f"{what} is {value}, outside the allowed range {bounds}")
    return value


def _choice(value, what, choices):
    if value not in choices:
        _fail(f"{what} is {value!r}; expected one of {', '.join(map(repr, choices))}")
    return value


def _int_tuple(value, what, length, low):
    if not isinstance(value, list) or len(value) != length:
        _fail(f"{what} must be a list of {length} integers, not {value!r}")
    return tuple(_int(v, f"{what}[{i}]", low) for i, v in enumerate(value))


def _keys(obj, what, required, optional=()):
    if not isinstance(obj, dict):
        _fail(f"{what} must be a JSON object, not {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        _fail(f"{what} is missing the field {missing[0]!r}")
    extra = sorted(set(obj) - set(required) - set(optional))
    if extra:
        _fail(f"{what} has an unknown field {extra[0]!r}")
    return obj


# --------------------------------------------------------------------------- manifest -> Network

def _parse_leak(obj, what, membrane_bits):
    _keys(obj, what, ["kind"], ["shift", "factor", "frac_bits"])
    kind = _choice(obj["kind"], f"{what}.kind", ("none", "shift", "mul"))
    if kind == "none":
        _keys(obj, what, ["kind"])
        return Leak()
    if kind == "shift":
        _keys(obj, what, ["kind", "shift"])
        return Leak("shift", shift=_int(obj["shift"], f"{what}.shift", 1, membrane_bits - 1))
    _keys(obj, what, ["kind", "factor", "frac_bits"])
    frac_bits = _int(obj["frac_bits"], f"{what}.frac_bits", 1, MAX_LEAK_FRAC_BITS)
    factor = _int(obj["factor"], f"{what}.factor", 0, 1 << frac_bits)
    return Leak("mul", factor=factor, frac_bits=frac_bits)


def _current_shift(obj, what):
    return _int(obj.get("current_shift", 0), f"{what}.current_shift", *CURRENT_SHIFTS)


def _parse_neuron(obj, what, output, membrane_bits):
    if output == "membrane":
        _keys(obj, what, [], ["leak", "current_shift", "membrane_bits"])
        shift = _current_shift(obj, what)
        own = None if "membrane_bits" not in obj else \
            _int(obj["membrane_bits"], f"{what}.membrane_bits", membrane_bits, MEMBRANE_BITS[1])
        return Neuron(None, _parse_leak(obj.get("leak", {"kind": "none"}), f"{what}.leak",
                                        own or membrane_bits), current_shift=shift,
                      membrane_bits=own)
    _keys(obj, what, ["threshold", "reset"], ["leak", "v_init", "current_shift"])
    shift = _current_shift(obj, what)
    threshold = _int(obj["threshold"], f"{what}.threshold", 1, int_range(membrane_bits)[1])
    return Neuron(
        threshold=threshold,
        leak=_parse_leak(obj.get("leak", {"kind": "none"}), f"{what}.leak", membrane_bits),
        reset=_choice(obj["reset"], f"{what}.reset", ("subtract", "zero")),
        v_init=_choice(obj.get("v_init", "zero"), f"{what}.v_init", ("zero", "half")),
        current_shift=shift,
    )


def _take_array(arrays, used, key, what, shape, dtype, bits):
    if key not in arrays:
        _fail(f"the array {key!r} needed by {what} is missing")
    array = arrays[key]
    used.add(key)
    if array.dtype != dtype:
        _fail(f"the array {key!r} has dtype {array.dtype}, expected {dtype}")
    if tuple(array.shape) != tuple(shape):
        _fail(f"the array {key!r} has shape {tuple(array.shape)}, expected {tuple(shape)}")
    low, high = int_range(bits)
    if array.size and (int(array.min()) < low or int(array.max()) > high):
        bad = int(array.min()) if int(array.min()) < low else int(array.max())
        _fail(f"the array {key!r} holds {bad}, outside its declared {bits}-bit signed range "
              f"{low}..{high}")
    return array


def _synaptic_geometry(obj, what, kind, in_shape, direct=False):
    """Return (weight_shape, kernel, stride, padding, out_shape) for a synaptic layer
    (``direct``: it reads the network input)."""
    if kind == "linear":
        _keys(obj, what, ["out_features"], [])
        if len(in_shape) != 1 and direct:   # flatten cannot read the input: no advice to
            _fail(f"{what} is linear but the network input has shape {list(in_shape)}; a "
                  f"linear first layer needs a 1-entry input shape [N]")
        if len(in_shape) != 1:
            _fail(f"{what} is linear but its input has shape {list(in_shape)}; "
                  f"insert a flatten layer first")
        out = _int(obj["out_features"], f"{what}.out_features", 1)
        return (out, in_shape[0]), None, None, None, (out,)
    dims = 2 if kind == "conv2d" else 3
    _keys(obj, what, ["out_channels", "kernel", "stride", "padding"], [])
    if len(in_shape) != dims + 1:
        _fail(f"{what} is {kind} but its input has shape {list(in_shape)} "
              f"(expected {dims + 1} axes: channels then {dims} spatial)")
    out_channels = _int(obj["out_channels"], f"{what}.out_channels", 1)
    kernel = _int_tuple(obj["kernel"], f"{what}.kernel", dims, 1)
    stride = _int_tuple(obj["stride"], f"{what}.stride", dims, 1)
    padding = _int_tuple(obj["padding"], f"{what}.padding", dims, 0)
    spatial = []
    for axis, (size, k, s, p) in enumerate(zip(in_shape[1:], kernel, stride, padding)):
        if p >= k:
            _fail(f"{what}.padding[{axis}] is {p}; it must be smaller than the kernel ({k})")
        if size + 2 * p < k:
            _fail(f"{what}.kernel[{axis}] is {k}, larger than the padded input ({size + 2 * p})")
        spatial.append(conv_output_size(size, k, s, p))
    weight_shape = (out_channels, in_shape[0], *kernel)
    return weight_shape, kernel, stride, padding, (out_channels, *spatial)


def _pool_geometry(obj, what, in_shape):
    if len(in_shape) != 3:
        _fail(f"{what} pools 2D feature maps but its input has shape {list(in_shape)}")
    kernel = _int_tuple(obj["kernel"], f"{what}.kernel", 2, 1)
    stride = _int_tuple(obj.get("stride", list(kernel)), f"{what}.stride", 2, 1)
    spatial = []
    for axis, (size, k, s) in enumerate(zip(in_shape[1:], kernel, stride)):
        if size < k:
            _fail(f"{what}.kernel[{axis}] is {k}, larger than the input ({size})")
        spatial.append(conv_output_size(size, k, s, 0))
    return kernel, stride, (in_shape[0], *spatial)


_COMMON = ["name", "type", "output", "out_shape"]
_OPTIONAL_COMMON = ["inputs"]


def _parse_layer(obj, index, produced, arrays, used, membrane_bits):
    what = f"layer {index}"
    if not isinstance(obj, dict):
        _fail(f"{what} must be a JSON object")
    kind = obj.get("type")
    if kind not in LAYER_TYPES:
        _fail(f"{what} has unknown type {kind!r}; known types are {', '.join(LAYER_TYPES)}")
    name = obj.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name) or name == "input":
        _fail(f"{what} has an invalid name {name!r} (letters, digits and _; not 'input')")
    if name in produced:
        _fail(f"{what} reuses the name {name!r}")
    what = f"layer {name!r}"
    previous = list(produced)[-1] if produced else "input"
    inputs = obj.get("inputs", [previous])
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        _fail(f"{what}.inputs must be a non-empty list of layer names")
    for source in inputs:
        if source not in produced:
            _fail(f"{what} reads {source!r}, which is not 'input' or an earlier layer")
    in_kinds = [produced[s][1] for s in inputs]
    in_shapes = [produced[s][0] for s in inputs]
    output = _choice(obj.get("output"), f"{what}.output", OUTPUT_KINDS)
    if any(k == "membrane" for k in in_kinds):
        _fail(f"{what} reads the output layer's membrane, which is not a spike train")
    fields = dict(name=name, type=kind, inputs=tuple(inputs), output=output,
                  in_shape=in_shapes[0])

    if kind in SYNAPTIC_TYPES:
        extra = ["out_features"] if kind == "linear" else ["out_channels", "kernel", "stride",
                                                            "padding"]
        _keys(obj, what, _COMMON + ["weight_bits"] + extra,
              _OPTIONAL_COMMON + ["bias_bits", "neuron"])
        if len(inputs) != 1 or in_kinds[0] not in ("pixels", "spikes"):
            _fail(f"{what} must read exactly one spiking layer or the network input")
        weight_shape, kernel, stride, padding, out_shape = _synaptic_geometry(
            {k: obj[k] for k in extra}, what, kind, in_shapes[0], in_kinds[0] == "pixels")
        weight_bits = _int(obj["weight_bits"], f"{what}.weight_bits", *WEIGHT_BITS)
        weight = _take_array(arrays, used, f"{name}.weight", what, weight_shape,
                             ARRAY_DTYPES["weight"], weight_bits)
        bias = bias_bits = None
        if "bias_bits" in obj:
            bias_bits = _int(obj["bias_bits"], f"{what}.bias_bits", *BIAS_BITS)
            bias = _take_array(arrays, used, f"{name}.bias", what, (out_shape[0],),
                               ARRAY_DTYPES["bias"], bias_bits)
        elif f"{name}.bias" in arrays:
            _fail(f"the array {name + '.bias'!r} is present but {what} declares no bias_bits")
        fields.update(weight=weight, bias=bias, weight_bits=weight_bits, bias_bits=bias_bits,
                      kernel=kernel, stride=stride, padding=padding)
    elif kind in ("maxpool2d", "avgpool2d"):
        _keys(obj, what, _COMMON + ["kernel"], _OPTIONAL_COMMON + ["stride", "neuron"])
        if len(inputs) != 1 or in_kinds[0] != "spikes":
            _fail(f"{what} must read exactly one spiking layer")
        kernel, stride, out_shape = _pool_geometry(obj, what, in_shapes[0])
        fields.update(kernel=kernel, stride=stride)
        if kind == "maxpool2d" and output != "spikes":
            _fail(f"{what} is a max-pool, whose output is always 'spikes'")
    elif kind == "flatten":
        _keys(obj, what, _COMMON, _OPTIONAL_COMMON + ["start_dim", "end_dim"])
        if len(inputs) != 1 or in_kinds[0] != "spikes" or output != "spikes":
            _fail(f"{what} must read exactly one spiking layer and output 'spikes'")
        rank = len(in_shapes[0])
        start = _int(obj.get("start_dim", 0), f"{what}.start_dim", 0, rank - 1)
        end = _int(obj.get("end_dim", rank - 1), f"{what}.end_dim", start, rank - 1)
        shape = in_shapes[0]
        out_shape = (*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:])
        fields.update(start_dim=start, end_dim=end)
    else:  # add
        _keys(obj, what, _COMMON + ["inputs", "scales"], ["neuron"])
        if len(inputs) < 2 or any(k not in ("spikes", "current") for k in in_kinds):
            _fail(f"{what} must read at least two spiking or current layers")
        if any(s != in_shapes[0] for s in in_shapes):
            _fail(f"{what} adds inputs of different shapes {[list(s) for s in in_shapes]}")
        scales = obj["scales"]
        if not isinstance(scales, list) or len(scales) != len(inputs):
            _fail(f"{what}.scales must list one integer per input")
        fields["scales"] = tuple(_int(s, f"{what}.scales[{i}]", *int_range(16))
                                 for i, s in enumerate(scales))
        out_shape = in_shapes[0]

    declared = obj["out_shape"]
    if (not isinstance(declared, list) or any(type(v) is not int for v in declared)
            or tuple(declared) != tuple(out_shape)):
        _fail(f"{what}.out_shape is {declared!r} but its inputs give {list(out_shape)}")
    fields["out_shape"] = tuple(out_shape)

    wants_neuron = output in ("spikes", "membrane") and kind not in ("maxpool2d", "flatten")
    if wants_neuron:
        if "neuron" not in obj:
            _fail(f"{what} is missing the field 'neuron' (it outputs {output!r})")
        fields["neuron"] = _parse_neuron(obj["neuron"], f"{what}.neuron", output, membrane_bits)
    elif "neuron" in obj:
        _fail(f"{what} outputs {output!r} and must not have a 'neuron' object")
    if output == "current" and kind not in SYNAPTIC_TYPES + ("avgpool2d",):
        _fail(f"{what} is {kind} and cannot output 'current'")
    return Layer(**fields)


def network_from_parts(manifest, arrays):
    """Validate a manifest dict and its arrays and build a :class:`Network`.

    Raises :class:`BundleError` naming the first problem found. Arrays not referenced by any
    layer are an error too, so nothing is silently ignored.
    """
    # The version comes first: a newer format may add fields this reader would call unknown.
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        _fail(f"the bundle uses format version {version}, newer than this spikeforge reads "
              f"({FORMAT_VERSION}); upgrade spikeforge")
    if isinstance(arrays, dict):
        arrays = {name: np.asarray(array) for name, array in arrays.items()}
    else:
        _fail("the arrays must be given as a dict of name -> array")
    _keys(manifest, "the manifest",
          ["format", "format_version", "name", "timesteps", "membrane_bits", "input", "layers"],
          ["dataset", "metadata", "content_hash"])
    if manifest["format"] != FORMAT_NAME:
        _fail(f"the manifest's format is {manifest['format']!r}, not {FORMAT_NAME!r}")
    version = _int(manifest["format_version"], "format_version", 1)
    if version > FORMAT_VERSION:
        _fail(f"the bundle uses format version {version}, newer than this spikeforge reads "
              f"({FORMAT_VERSION}); upgrade spikeforge")
    if not isinstance(manifest["name"], str) or not manifest["name"]:
        _fail("the manifest's name must be a non-empty string")
    timesteps = _int(manifest["timesteps"], "timesteps", *TIMESTEPS)
    membrane_bits = _int(manifest["membrane_bits"], "membrane_bits", *MEMBRANE_BITS)

    spec = _keys(manifest["input"], "the input", ["shape", "bits", "raw_min", "raw_max"])
    shape = spec["shape"]
    # No layer reads a 2-entry input: linear needs [N], conv2d [C, H, W], conv3d [C, D, H, W].
    if not isinstance(shape, list) or len(shape) not in (1, 3, 4):
        _fail(f"input.shape must be a list of 1, 3 or 4 positive integers ([N], [C, H, W] or "
              f"[C, D, H, W]), not {shape!r}")
    shape = tuple(_int(v, f"input.shape[{i}]", 1) for i, v in enumerate(shape))
    raw = []
    for key in ("raw_min", "raw_max"):
        value = spec[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            _fail(f"input.{key} must be a finite number, not {value!r}")
        raw.append(float(value))
    if raw[1] <= raw[0]:
        _fail(f"input.raw_max ({raw[1]}) must be greater than input.raw_min ({raw[0]})")
    input_spec = InputSpec(shape, _int(spec["bits"], "input.bits", *INPUT_BITS), *raw)

    if not isinstance(manifest["layers"], list) or not manifest["layers"]:
        _fail("the manifest must list at least one layer")
    for key in ("dataset", "metadata"):
        if not isinstance(manifest.get(key, {}), dict):
            _fail(f"the manifest's {key} must be a JSON object")
    first = manifest["layers"][0]
    if not isinstance(first, dict) or first.get("type") not in SYNAPTIC_TYPES:
        _fail("the first layer must be conv2d, conv3d or linear (it reads the pixel input)")

    produced = {"input": (shape, "pixels")}
    layers = []
    used = set()
    for index, obj in enumerate(manifest["layers"]):
        layer = _parse_layer(obj, index, produced, arrays, used, membrane_bits)
        produced[layer.name] = (layer.out_shape, layer.output)
        layers.append(layer)

    outputs = [layer.name for layer in layers if layer.output == "membrane"]
    if outputs != [layers[-1].name]:
        _fail("exactly one layer, the last, must have output 'membrane' "
              f"(found {outputs or 'none'})")
    consumed = {source for layer in layers for source in layer.inputs}
    for layer in layers[:-1]:
        if layer.name not in consumed:
            _fail(f"the output of layer {layer.name!r} is never used by a later layer")
    extra = sorted(set(arrays) - used)
    if extra:
        _fail(f"the array {extra[0]!r} is not used by any layer")
    return Network(
        name=manifest["name"], timesteps=timesteps, membrane_bits=membrane_bits,
        input=input_spec, layers=tuple(layers), dataset=dict(manifest.get("dataset", {})),
        metadata=dict(manifest.get("metadata", {})),
        content_hash=manifest.get("content_hash"),
    )


# --------------------------------------------------------------------------- Network -> manifest

def _layer_to_json(layer):
    obj = {"name": layer.name, "type": layer.type, "inputs": list(layer.inputs),
           "output": layer.output, "out_shape": list(layer.out_shape)}
    if layer.type == "linear":
        obj.update(out_features=layer.out_shape[0], weight_bits=layer.weight_bits)
    elif layer.type in ("conv2d", "conv3d"):
        obj.update(out_channels=layer.out_shape[0], kernel=list(layer.kernel),
                   stride=list(layer.stride), padding=list(layer.padding),
                   weight_bits=layer.weight_bits)
    elif layer.type in ("maxpool2d", "avgpool2d"):
        obj.update(kernel=list(layer.kernel), stride=list(layer.stride))
    elif layer.type == "flatten":
        obj.update(start_dim=layer.start_dim, end_dim=layer.end_dim)
    else:
        obj["scales"] = list(layer.scales)
    if layer.bias_bits is not None:
        obj["bias_bits"] = layer.bias_bits
    if layer.neuron is not None:
        obj["neuron"] = layer.neuron.to_json()
    return obj


def network_to_parts(network):
    """Return ``(manifest, arrays)`` such that ``network_from_parts`` rebuilds ``network``."""
    manifest = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": network.name,
        "timesteps": network.timesteps, "membrane_bits": network.membrane_bits,
        "input": network.input.to_json(),
        "layers": [_layer_to_json(layer) for layer in network.layers],
        "dataset": network.dataset, "metadata": network.metadata,
    }
    arrays = {}
    for layer in network.layers:
        if layer.weight is not None:
            arrays[f"{layer.name}.weight"] = layer.weight
        if layer.bias is not None:
            arrays[f"{layer.name}.bias"] = layer.bias
    return manifest, arrays
