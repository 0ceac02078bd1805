"""Host side: turns a network and an accelerator config into the accelerator's memory images.

:func:`build_program` returns a :class:`Program`: the layer-descriptor table
(``rtl.sequencer.descriptor_layout`` rows), the weight rows (``docs/accelerator.md``
section 2, channel groups tiled, avg-pool as one-hot rows), the bias rows (one per layer and
group, ``psum_bits`` per lane; the aggregation sweep adds them to the spike-driven current,
the reference MAC to a direct-encoded one) and, per image, the pixel memory image (pixel ``(c, y, x)``
at ``c * H * W + y * W + x``).

Flatten produces no descriptor: the linear layer after it reads the bitmap of the layer
before it and numbers its features ``c * H * W + y * W + x`` (the tap generator's linear
mode), which is the golden model's flatten order. A max-pool layer is a descriptor with
``pool = 1``: no weights, no bias, one group, an OR pass per timestep.
"""

import math
from dataclasses import dataclass

import numpy as np

from ..golden.network import Network
from .config import AcceleratorConfig, layer_positions
from .interfaces import LeakKind

__all__ = ["ProgramError", "LayerPlan", "Program", "build_program"]

_LEAK = {"none": LeakKind.NONE, "shift": LeakKind.SHIFT, "mul": LeakKind.MUL}


class ProgramError(ValueError):
    """The network cannot be programmed onto the design; the message says why."""


@dataclass(frozen=True)
class LayerPlan:
    """What the host (and the scoreboard) needs to know about one descriptor.

    Members
    -------
    name : str
        The network layer computed by the descriptor.
    direct : bool
        Direct-encoded (reference MAC) rather than spike-driven.
    pool : bool
        A max-pool pass (one group, ``T`` phases, no neurons).
    channels, height, width : int
        The output map (``height = width = 1`` for a linear layer).
    positions, groups : int
    output : bool
        The non-spiking output layer (membranes read by the host).
    in_shape : tuple
        ``(C, H, W)`` of the input map the layer scans (``(C, 1, 1)`` for a vector).
    kernel, stride, padding : tuple
        ``(1, 1), (1, 1), (0, 0)`` for a linear layer.
    linear : bool
    source : str or None
        The layer whose output bitmap the layer scans (flatten resolved); ``None`` when
        direct-encoded.
    """

    name: str
    direct: bool
    pool: bool
    channels: int
    height: int
    width: int
    positions: int
    groups: int
    output: bool
    in_shape: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    linear: bool
    source: str | None


@dataclass(frozen=True)
class Program:
    """Memory images of one network on one design.

    Members
    -------
    network : Network
    config : AcceleratorConfig
    layers : tuple of LayerPlan
        One per descriptor, in table order.
    descriptors : list of dict
        The descriptor table (values for ``descriptor_layout``).
    weights : list of list of int
        Weight rows, ``pes`` values each.
    biases : list of list of int
        Bias rows, ``pes`` values each.
    """

    network: Network
    config: AcceleratorConfig
    layers: tuple
    descriptors: list
    weights: list
    biases: list

    def pixels(self, image):
        """The pixel memory image of one integer input image (``network.input.shape``)."""
        return [int(v) for v in np.asarray(image, dtype=np.int64).reshape(-1)]


def _map_shape(shape):
    return tuple(shape) if len(shape) == 3 else (shape[0], 1, 1)


def _group_rows(config, weight, groups):
    """Weight rows of a (C_out, *taps) weight tensor: group-major, then the taps in order."""
    lanes = config.pes
    out_channels = weight.shape[0]
    flat = weight.reshape(out_channels, -1).astype(np.int64)  # (C_out, rows per group)
    padded = np.zeros((groups * lanes, flat.shape[1]), dtype=np.int64)
    padded[:out_channels] = flat
    rows = []
    for g in range(groups):
        rows.extend(padded[g * lanes:(g + 1) * lanes].T.tolist())
    return rows


def _bias_rows(config, bias, channels, groups):
    lanes = config.pes
    padded = np.zeros(groups * lanes, dtype=np.int64)
    if bias is not None:
        padded[:channels] = bias
    return [padded[g * lanes:(g + 1) * lanes].tolist() for g in range(groups)]


def _neuron(layer, config, network):
    neuron = layer.neuron
    leak = neuron.leak
    fire = neuron.threshold is not None
    return {
        "threshold": neuron.threshold if fire else 0,
        "leak_kind": _LEAK[leak.kind],
        "leak_shift": leak.shift, "leak_factor": leak.factor,
        "leak_frac_bits": leak.frac_bits,
        "reset_to_zero": int(neuron.reset == "zero"),
        "fire": int(fire),
        "membrane_narrow": config.membrane_bits - network.membrane_bits,
    }


def build_program(network, config, *, bias_depth, max_layers, pixel_depth, pixel_bits):
    """Lay ``network`` out on the design described by ``config`` and the top's sizes.

    Raises
    ------
    ProgramError
        ``config.fits(network)`` fails (its reasons are listed), or a layer kind or a size
        is outside what the top level provides.
    """
    if not isinstance(network, Network):
        raise TypeError(f"build_program() needs a spikeforge.golden.Network, not {network!r}")
    report = config.fits(network)
    if not report:
        raise ProgramError(f"network {network.name!r} does not fit the accelerator: "
                           + "; ".join(report.reasons))
    problems = []
    if network.input.bits > pixel_bits:
        problems.append(f"the input has {network.input.bits}-bit pixels, the pixel memory "
                        f"holds {pixel_bits}")
    if math.prod(network.input.shape) > pixel_depth:
        problems.append(f"the input has {math.prod(network.input.shape)} pixels, the pixel "
                        f"memory holds {pixel_depth}")
    plans, descriptors, weights, biases = [], [], [], []
    sources = {}  # layer name -> (C, H, W) of the bitmap holding its spikes, and its bitmap
    origin = {}   # layer name -> the layer that wrote that bitmap
    refused = set()  # layers already reported: their consumers are not reported again
    out_sel = 0
    compute = [layer for layer in network.layers if layer.type != "flatten"]
    for layer in network.layers:
        if layer.type == "flatten":
            if layer.inputs[0] not in sources:
                refused.add(layer.name)  # its source was refused already
                continue
            sources[layer.name] = sources[layer.inputs[0]]
            origin[layer.name] = origin[layer.inputs[0]]
            continue
        name = f"layer {layer.name!r}"
        if set(layer.inputs) & refused:
            refused.add(layer.name)
            continue
        refused.add(layer.name)  # until it is laid out below
        pool = layer.type == "maxpool2d"
        if pool and layer.is_direct_encoded:
            problems.append(f"{name} pools the multi-bit input, which the RTL does not run")
            continue
        if len(layer.inputs) != 1 or (layer.inputs[0] != "input"
                                      and layer.inputs[0] not in sources):
            problems.append(f"{name} does not read the network input or a spiking layer")
            continue
        direct = layer.is_direct_encoded
        if direct and layer.type == "avgpool2d":
            problems.append(f"{name} pools the multi-bit input, which the RTL does not run")
            continue
        if layer.output == "current":
            problems.append(f"{name} outputs a current, which the RTL does not run")
            continue
        linear = layer.type == "linear"
        channels = layer.out_shape[0]
        groups = config.groups(layer)
        positions = layer_positions(layer)
        out_h, out_w = (1, 1) if linear else layer.out_shape[1:]
        if direct:
            in_shape, in_sel = _map_shape(layer.in_shape), 0
        else:
            in_shape, in_sel = sources[layer.inputs[0]]
        kernel = (1, 1) if linear else tuple(layer.kernel)
        stride = (1, 1) if linear else tuple(layer.stride)
        padding = (0, 0) if linear or layer.type.endswith("pool2d") else tuple(layer.padding)
        if pool:  # an OR pass over the bitmap: no weights, no bias, no neurons
            weight = np.zeros((0, 0), dtype=np.int64)
            bias = None
        elif layer.type == "avgpool2d":
            weight = np.zeros((channels, layer.in_shape[0], *kernel), dtype=np.int64)
            for c in range(channels):
                weight[c, c] = 1  # depthwise weight 1: lane c mod pes of input channel c
            bias = None
        else:
            weight, bias = layer.weight, layer.bias
        output = layer.output == "membrane"
        if output and groups * positions > config.max_positions:
            problems.append(f"{name} keeps {groups * positions} membrane rows for the host, "
                            f"the membrane memory has {config.max_positions}")
        if not pool and len(biases) + groups > bias_depth:
            problems.append(f"{name} needs bias rows {len(biases)}..{len(biases) + groups - 1}"
                            f", the bias memory has {bias_depth}")
        in_groups = -(-in_shape[0] // config.pes)
        rows_per_group = 0 if pool else weight[0].size
        in_c, in_h, in_w = in_shape
        descriptors.append({
            "direct": int(direct), "pool": int(pool), "last": int(layer is compute[-1]),
            "output": int(output),
            "in_sel": in_sel, "out_sel": out_sel, "timesteps": network.timesteps,
            "geometry": {
                "kernel_h": kernel[0], "kernel_w": kernel[1],
                "stride_h": stride[0], "stride_w": stride[1],
                "pad_h": padding[0], "pad_w": padding[1],
                "out_h": out_h, "out_w": out_w, "in_h": in_h, "in_w": in_w,
                "weight_base": len(weights), "linear": int(linear),
            },
            "group_stride": rows_per_group,
            "in_channels": in_c,
            "in_positions": in_h * in_w, "in_groups": in_groups, "in_width": in_w,
            "in_words": in_h * in_w * in_groups,
            "positions": positions, "groups": groups, "out_words": positions * groups,
            "bias_base": len(biases),
            "neuron": _neuron(layer, config, network) if not pool else {"fire": 0},
            "initial_membrane": 0 if pool else layer.neuron.initial_membrane,
        })
        plans.append(LayerPlan(name=layer.name, direct=direct, pool=pool, channels=channels,
                               height=out_h, width=out_w, positions=positions, groups=groups,
                               output=output, in_shape=in_shape, kernel=kernel, stride=stride,
                               padding=padding, linear=linear,
                               source=None if direct else origin[layer.inputs[0]]))
        if not pool:
            weights.extend(_group_rows(config, weight, groups))
            biases.extend(_bias_rows(config, bias, channels, groups))
        refused.discard(layer.name)
        if layer.output == "spikes":
            sources[layer.name] = ((channels, out_h, out_w), out_sel)
            origin[layer.name] = layer.name
            out_sel ^= 1
    if len(descriptors) > max_layers:
        problems.append(f"the network needs {len(descriptors)} layer descriptors, the table "
                        f"has {max_layers}")
    if problems:
        raise ProgramError(f"network {network.name!r} cannot run on the accelerator: "
                           + "; ".join(problems))
    return Program(network=network, config=config, layers=tuple(plans),
                   descriptors=descriptors, weights=weights, biases=biases)
