"""A NIR graph as a :class:`Network`: spikeforge's own export exactly, other graphs where the
integer contract reproduces them (``docs/nir.md`` gives the mapping node by node).

A graph whose ``metadata["format"]`` is ``"spikeforge"`` is rebuilt from its metadata and
arrays, then exported again and compared node by node with the file, so an edited graph is
refused rather than half-trusted. Any other graph is read from NIR's semantics alone, under
one-step-per-timestep Euler (``docs/nir.md`` section 3); every refusal names the node.
"""

import math
import os

import numpy as np

from spikeforge.golden import BundleError, network_from_parts
from spikeforge.golden.bundle import content_hash
from spikeforge.golden.manifest import FORMAT_NAME, FORMAT_VERSION, MEMBRANE_BITS
from spikeforge.golden.network import int_range

from .common import (
    FORMAT, GRAPH_KEY, LAYER_KEY, NEURON_KEY, NIRError, as_array, layer_current_bounds, loads,
    membrane_bound, require_nir, saturation_free,
)
from .exporter import DT, export_graph
from .foreign import ForeignReader

__all__ = ["read_graph", "import_graph", "load_graph"]


def read_graph(path, **options):
    """Read the NIR file ``path`` into a :class:`Network` (see :func:`import_graph`)."""
    return import_graph(load_graph(path), **options)[0]


def load_graph(path):
    """Read the NIR file ``path`` as a ``nir.NIRGraph``; :class:`NIRError` if it cannot be."""
    nir = require_nir()
    label = os.fspath(path)
    if not os.path.isfile(label):
        raise NIRError(f"the NIR graph {label} does not exist or is not a file")
    try:
        return nir.read(label)
    except OSError as error:
        raise NIRError(f"{label} cannot be read as a NIR graph ({error})") from None
    except KeyError:    # h5py's message for a missing group is about its own internals
        raise NIRError(f"{label} is not a valid NIR 1.0 graph (an entry NIR needs is missing)"
                       ) from None
    except (ValueError, AssertionError, TypeError) as error:
        raise NIRError(f"{label} is not a valid NIR 1.0 graph ({' '.join(str(error).split())})"
                       ) from None


def import_graph(graph, *, timesteps=None, input_bits=None, raw_range=None, weight_bits=None,
                 approximate_leak=False, name="nir_import"):
    """Return ``(network, report)`` for the ``nir.NIRGraph`` ``graph``.

    ``report`` is ``{"source": "spikeforge" | "nir", "notes": [...]}``; the notes state every
    rounding applied and every layer added. For a spikeforge export the options must be left
    unset (the metadata states them); for any other graph ``timesteps`` (default 8),
    ``input_bits`` (default 8) and ``raw_range`` (default ``(0.0, 1.0)``) give what NIR does
    not record, ``weight_bits`` allows non-integer weights to be scaled and rounded, and
    ``approximate_leak`` allows a leak to be rounded to the nearest contract leak.
    """
    if getattr(graph, "metadata", {}).get("format") == FORMAT:
        given = [option for option, value in (("timesteps", timesteps), ("input_bits", input_bits),
                                              ("raw_range", raw_range),
                                              ("weight_bits", weight_bits)) if value is not None]
        if given or approximate_leak:
            option = given[0] if given else "approximate_leak"
            raise NIRError(f"the graph was written by spikeforge, whose metadata fixes "
                           f"{option}; leave the option out")
        return _from_spikeforge(graph), {"source": "spikeforge", "notes": []}
    reader = ForeignReader(graph, weight_bits=weight_bits, approximate_leak=approximate_leak)
    layers, arrays, notes = reader.read()
    low, high = raw_range if raw_range is not None else (0.0, 1.0)
    manifest = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": name,
        "timesteps": 8 if timesteps is None else timesteps, "membrane_bits": MEMBRANE_BITS[1],
        "input": {"shape": reader.input_shape, "bits": 8 if input_bits is None else input_bits,
                  "raw_min": float(low), "raw_max": float(high)},
        "layers": layers, "metadata": {"imported_from": "nir", "import_notes": notes},
    }
    manifest["membrane_bits"] = _membrane_bits(manifest, arrays)
    return _build(manifest, arrays), {"source": "nir", "notes": notes}


def _build(manifest, arrays):
    try:
        network_from_parts(manifest, arrays)  # validates; the hashed one is returned below
    except BundleError as error:
        raise NIRError(f"the graph gives an invalid spikeforge network: {error}") from None
    # The same hash write_bundle would give, so a read graph compares like a read bundle.
    return network_from_parts({**manifest, "content_hash": content_hash(manifest, arrays)},
                              arrays)


#: The narrowest membrane an import chooses: the width of every shipped bundle.
_MIN_MEMBRANE_BITS = 16


def _membrane_bits(manifest, arrays):
    """The narrowest membrane, at least ``_MIN_MEMBRANE_BITS``, that no neuron can saturate
    and that holds every threshold: NIR membranes do not saturate."""
    draft = _build({**manifest, "membrane_bits": MEMBRANE_BITS[1]}, arrays)
    bounds = layer_current_bounds(draft.layers, (1 << draft.input.bits) - 1)
    for bits in range(_MIN_MEMBRANE_BITS, MEMBRANE_BITS[1] + 1):
        fits = all(
            saturation_free(membrane_bound(layer.neuron.initial_membrane, bounds[layer.name],
                                           draft.timesteps), bits)
            and (layer.neuron.threshold or 0) <= int_range(bits)[1]
            for layer in draft.layers if layer.neuron is not None)
        if fits:
            return bits
    raise NIRError(f"the graph's membranes can exceed {MEMBRANE_BITS[1]} bits in "
                   f"{draft.timesteps} timesteps, where the contract would saturate them")


# --------------------------------------------------------------------------- spikeforge's export

def _integers(values, what, dtype):
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)) or np.any(values != np.rint(values)):
        raise NIRError(f"{what} holds non-integer values, which spikeforge never writes")
    return values.astype(dtype)


def _from_spikeforge(graph):
    metadata = graph.metadata
    header = loads(metadata.get(GRAPH_KEY), "the graph")
    if float(metadata.get("dt", math.nan)) != DT:
        raise NIRError(f"the graph's dt is {metadata.get('dt')!r}; spikeforge writes dt = {DT}")
    if not isinstance(header, dict) or not isinstance(header.get("layers"), list):
        raise NIRError("the spikeforge metadata of the graph lists no layers")
    entries, arrays = [], {}
    shapes = {"input": tuple(header.get("input", {}).get("shape", ()))}
    for name in header["layers"]:
        main = name if name in graph.nodes and LAYER_KEY in graph.nodes[name].metadata \
            else f"{name}.neuron"
        if main not in graph.nodes or LAYER_KEY not in graph.nodes[main].metadata:
            raise NIRError(f"layer {name!r} has no node with spikeforge metadata in the graph")
        node = graph.nodes[main]
        entry = loads(node.metadata[LAYER_KEY], f"node {main!r}")
        neuron = graph.nodes.get(f"{name}.neuron")
        if neuron is not None and NEURON_KEY in neuron.metadata:
            entry["neuron"] = loads(neuron.metadata[NEURON_KEY], f"node {name + '.neuron'!r}")
        kind = entry.get("type")
        if kind in ("conv2d", "linear", "conv3d"):
            weight = as_array(node.weight)
            if kind == "conv3d":
                weight = _fold_back(weight, entry, shapes, entry.get("inputs", ["input"])[0])
            arrays[f"{name}.weight"] = _integers(weight, f"node {main!r}.weight", np.int8)
            if "bias_bits" in entry:
                bias = as_array(node.bias)
                if kind == "conv3d":
                    bias = bias[::entry["out_shape"][1]]
                arrays[f"{name}.bias"] = _integers(bias, f"node {main!r}.bias", np.int32)
        shapes[name] = tuple(entry.get("out_shape", ()))
        entries.append(entry)
    manifest = {**{k: v for k, v in header.items() if k != "layers"}, "layers": entries}
    network = _build(manifest, arrays)
    again, _ = export_graph(network)
    _same_graph(graph, again)
    return network


def _fold_back(unrolled, entry, shapes, source):
    """Invert :func:`unroll_conv3d`: take each depth tap from the first output slice that reads
    an input slice (the comparison with a fresh export checks all the others)."""
    depth = shapes[source][1]
    out_depth = entry["out_shape"][1]
    stride, padding, kernel = entry["stride"][0], entry["padding"][0], entry["kernel"][0]
    c_out, c_in = entry["out_channels"], unrolled.shape[1] // depth
    blocks = unrolled.reshape(c_out, out_depth, c_in, depth, *unrolled.shape[2:])
    weight = np.zeros((c_out, c_in, kernel, *unrolled.shape[2:]), dtype=unrolled.dtype)
    for tap in range(kernel):
        for out in range(out_depth):
            source_slice = out * stride - padding + tap
            if 0 <= source_slice < depth:
                weight[:, :, tap] = blocks[:, out, :, source_slice]
                break
    return weight


_SKIPPED_FIELDS = {"metadata", "input_type", "output_type"}


def _same_graph(graph, expected):
    """Refuse a spikeforge graph that differs from what its own metadata exports to."""
    if set(graph.nodes) != set(expected.nodes):
        extra = sorted(set(graph.nodes) ^ set(expected.nodes))[0]
        raise NIRError(f"node {extra!r} does not match the graph's spikeforge metadata; the "
                       f"graph was changed after spikeforge wrote it")
    for name, node in expected.nodes.items():
        found = graph.nodes[name]
        same = type(found) is type(node)
        for field in node.__dataclass_fields__ if same else ():
            if field in _SKIPPED_FIELDS or (field == "input_shape" and found.input_shape is None):
                continue
            a, b = getattr(found, field), getattr(node, field)
            if isinstance(b, dict):
                continue
            if np.shape(a) != np.shape(b) or not np.array_equal(np.asarray(a, dtype=np.float64),
                                                                np.asarray(b, dtype=np.float64)):
                same = False
        if not same:
            raise NIRError(f"node {name!r} does not match the graph's spikeforge metadata; the "
                           f"graph was changed after spikeforge wrote it")
    if {tuple(e) for e in graph.edges} != {tuple(e) for e in expected.edges}:
        raise NIRError("the graph's edges do not match its spikeforge metadata; the graph was "
                       "changed after spikeforge wrote it")
