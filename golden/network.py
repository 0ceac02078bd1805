"""In-memory description of an integer spiking network: the bundle's contract as Python objects.

A :class:`Network` is what :func:`spikeforge.golden.bundle.read_bundle` returns and what
:func:`spikeforge.golden.bundle.write_bundle` stores. It is built only through
:func:`spikeforge.golden.bundle.network_from_parts`, which validates everything, so code that
receives a ``Network`` may trust its shapes, widths and ranges.

The meaning of every field is defined in ``docs/neuron.md`` (arithmetic) and
``docs/bundle.md`` (storage). This module only holds the data and derives shapes.
"""

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SYNAPTIC_TYPES",
    "LAYER_TYPES",
    "OUTPUT_KINDS",
    "Leak",
    "Neuron",
    "Layer",
    "InputSpec",
    "Network",
    "conv_output_size",
    "int_range",
    "smallest_shift",
    "CURRENT_SHIFTS",
    "OUTPUT_MEMBRANE_BITS",
]

#: Layer types that own a weight tensor (and optionally a bias).
SYNAPTIC_TYPES = ("conv2d", "conv3d", "linear")
#: Every layer type the contract defines.
LAYER_TYPES = SYNAPTIC_TYPES + ("maxpool2d", "avgpool2d", "flatten", "add")
#: What a layer emits each timestep: 0/1 spikes, a raw integer current (only an ``add`` may
#: consume it), or nothing but its membrane (the single non-spiking output layer).
OUTPUT_KINDS = ("spikes", "current", "membrane")
#: Inclusive range of a neuron's ``current_shift`` (``docs/neuron.md`` section 2): the
#: membrane's step may be up to ``2**15`` current steps coarse.
CURRENT_SHIFTS = (0, 15)


def int_range(bits, *, signed=True):
    """Inclusive ``(low, high)`` range of a two's-complement (or unsigned) integer of ``bits``."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def smallest_shift(value, limit):
    """Smallest ``k >= 0`` with ``value / 2**k <= limit`` (``limit > 0``): how far a
    magnitude must be shifted right to fit (weights narrowed, currents shifted)."""
    return max(0, math.ceil(math.log2(value / limit))) if value > limit else 0


#: The output layer's membrane width that narrow-membrane training writes (its ``classes``
#: neurons sum all ``T`` steps; a hidden width of a few bits would have to shift each step's
#: current to almost nothing) and that narrower designs give their output membrane memory.
OUTPUT_MEMBRANE_BITS = 8


def conv_output_size(size, kernel, stride, padding):
    """Output length of one convolution or pooling axis.

    ``(size + 2 * padding - kernel) // stride + 1``
    """
    return (size + 2 * padding - kernel) // stride + 1


@dataclass(frozen=True)
class Leak:
    """Membrane leak applied before the current is added (``docs/neuron.md`` section 3).

    ``kind`` is ``"none"`` (integrate-and-fire), ``"shift"`` (``V - (V >> shift)``) or
    ``"mul"`` (``(V * factor) >> frac_bits``); shifts are arithmetic (round toward minus
    infinity).
    """

    kind: str = "none"
    shift: int = 0
    factor: int = 0
    frac_bits: int = 0

    def to_json(self):
        if self.kind == "shift":
            return {"kind": "shift", "shift": self.shift}
        if self.kind == "mul":
            return {"kind": "mul", "factor": self.factor, "frac_bits": self.frac_bits}
        return {"kind": "none"}


@dataclass(frozen=True)
class Neuron:
    """Neuron parameters of one layer.

    ``threshold`` is ``None`` only for the non-spiking output layer. ``reset`` is
    ``"subtract"`` or ``"zero"``; ``v_init`` is ``"zero"`` or ``"half"`` (``threshold >> 1``).
    ``current_shift`` ``k`` makes the membrane ``2**k`` times coarser than the current: the
    neuron integrates ``I >> k`` (arithmetic), so a narrow membrane keeps fine weights.
    ``membrane_bits`` is the non-spiking output layer's own membrane width (``None``: the
    network's): it sums all ``T`` timesteps of ``classes`` neurons, so it may be wider than the
    hidden layers' membranes (SpQuant-SNN keeps its classifier unquantized) at a cost of a few
    bytes. :meth:`Network.layer_membrane_bits` resolves it.
    """

    threshold: int | None
    leak: Leak = field(default_factory=Leak)
    reset: str = "subtract"
    v_init: str = "zero"
    current_shift: int = 0
    membrane_bits: int | None = None

    @property
    def initial_membrane(self):
        """The membrane value every neuron of the layer starts each image with."""
        return (self.threshold >> 1) if self.v_init == "half" else 0

    def to_json(self):
        # current_shift only when used: bundles without it stay byte for byte what they were.
        shift = {"current_shift": self.current_shift} if self.current_shift else {}
        if self.threshold is None:
            width = {} if self.membrane_bits is None else {"membrane_bits": self.membrane_bits}
            return {"leak": self.leak.to_json(), **shift, **width}
        return {"threshold": self.threshold, "leak": self.leak.to_json(),
                "reset": self.reset, "v_init": self.v_init, **shift}


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer of the network.

    Attributes that do not apply to a layer type are ``None``. Shapes exclude the batch axis:
    ``(C, H, W)`` for conv2d/pooling, ``(C, D, H, W)`` for conv3d, ``(N,)`` for linear.
    ``weight`` is an ``int8`` array (``weight_bits`` <= 8), ``bias`` an ``int32`` array.
    """

    name: str
    type: str
    inputs: tuple
    output: str
    in_shape: tuple
    out_shape: tuple
    neuron: Neuron | None = None
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    weight_bits: int | None = None
    bias_bits: int | None = None
    kernel: tuple | None = None
    stride: tuple | None = None
    padding: tuple | None = None
    scales: tuple | None = None
    start_dim: int | None = None
    end_dim: int | None = None

    @property
    def is_synaptic(self):
        return self.type in SYNAPTIC_TYPES

    @property
    def is_direct_encoded(self):
        """True when the layer reads the multi-bit network input (current computed once)."""
        return self.inputs == ("input",)

    @property
    def neurons(self):
        """Number of neurons (output elements) of the layer."""
        return int(np.prod(self.out_shape))


@dataclass(frozen=True)
class InputSpec:
    """The network input: unsigned ``bits``-wide integers of ``shape``.

    ``raw_min``/``raw_max`` say how a dataset's raw values map onto ``0 .. 2**bits - 1``
    (see ``spikeforge.golden.quantize_input``); ``scale`` is the real value of one integer
    step, kept for training and reports.
    """

    shape: tuple
    bits: int
    raw_min: float
    raw_max: float

    @property
    def scale(self):
        return (self.raw_max - self.raw_min) / ((1 << self.bits) - 1)

    def to_json(self):
        return {"shape": list(self.shape), "bits": self.bits,
                "raw_min": self.raw_min, "raw_max": self.raw_max}


@dataclass(frozen=True, eq=False)
class Network:
    """A validated integer SNN: input, layers in topological order, timesteps and widths."""

    name: str
    timesteps: int
    membrane_bits: int
    input: InputSpec
    layers: tuple
    dataset: dict
    metadata: dict
    content_hash: str | None = None

    def layer(self, name):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r}")

    @property
    def output_layer(self):
        return self.layers[-1]

    def layer_membrane_bits(self, layer):
        """The membrane width ``layer`` (one with a neuron) saturates at: the output layer's
        own ``neuron.membrane_bits`` where it has one, else the network's."""
        own = layer.neuron.membrane_bits if layer.neuron is not None else None
        return self.membrane_bits if own is None else own

    @property
    def num_classes(self):
        return self.output_layer.neurons

    def parameter_count(self):
        return sum(layer.weight.size + (0 if layer.bias is None else layer.bias.size)
                   for layer in self.layers if layer.is_synaptic)

    def memory_bits(self):
        """Bits the network's state takes at its own widths, SpQuant-SNN's memory count:
        ``{"weights": sum of weights x weight_bits, "biases": sum of biases x bias_bits,
        "membranes": neurons with a membrane x membrane_bits}`` (every layer with a
        neuron holds one membrane per output element, read and written every timestep)."""
        weights = sum(layer.weight.size * layer.weight_bits for layer in self.layers
                      if layer.is_synaptic)
        biases = sum(layer.bias.size * layer.bias_bits for layer in self.layers
                     if layer.is_synaptic and layer.bias is not None)
        membranes = sum(layer.neurons * self.layer_membrane_bits(layer)
                        for layer in self.layers if layer.neuron is not None)
        return {"weights": int(weights), "biases": int(biases), "membranes": int(membranes)}
