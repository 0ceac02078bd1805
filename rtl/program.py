"""Host side: turns a network and an accelerator config into the accelerator's memory images.

:func:`build_program` lays the network out (``rtl/layout.py``: one descriptor per computing
layer, its fill segments, the bitmaps) and returns a :class:`Program`:

* the descriptor table (``rtl.sequencer.descriptor_layout`` rows): the layer rows in order,
  then every layer's segment rows (``{"layer": ...}`` / ``{"segment": ...}``);
* the weight rows (``docs/accelerator.md`` section 2): per layer, channel group after channel
  group, and within a group the segments' rows one after the other; a segment's rows are
  ``(kd, c, ky, kx)`` in that order (``kd`` slowest: one kernel plane is ``C * K_h * K_w``
  consecutive rows, ``docs/conv3d.md``), a linear segment's one per feature, avg-pool and
  the identity of a residual add one-hot rows, all times the segment's residual scale; a
  packed segment (``rtl/layout.py``) two rows per memory row, its addresses in half rows;
* the bias rows, one per layer and group, ``psum_bits`` per lane: the sum of the segments'
  biases times their scales (the aggregation sweep adds them to a spike-driven current, the
  first-layer block to a direct-encoded one);
* per image, the pixel memory image (:func:`~.layout.pixel_image`).
"""

from dataclasses import dataclass

import numpy as np

from ..golden.network import Network
from .interfaces import LeakKind
from .layout import pixel_count, pixel_image, plan_network, segment_bias, segment_weights

__all__ = ["ProgramError", "Program", "build_program"]

_LEAK = {"none": LeakKind.NONE, "shift": LeakKind.SHIFT, "mul": LeakKind.MUL}


class ProgramError(ValueError):
    """The network cannot be programmed onto the design; the message says why."""


@dataclass(frozen=True)
class Program:
    """Memory images of one network on one design.

    Members
    -------
    network : Network
    config : AcceleratorConfig
    layers : tuple of rtl.layout.LayerPlan
        One per descriptor, in table order.
    descriptors : list of dict
        The descriptor table: the layer rows, then the segment rows.
    weights : list of list of int
        Weight rows, ``pes`` values each.
    biases : list of list of int
        Bias rows, ``pes`` values each.
    layout : rtl.layout.Layout
    pixel_bits : int
        Width of the pixel memory (the first-layer block's input width).
    """

    network: Network
    config: object
    layers: tuple
    descriptors: list
    weights: list
    biases: list
    layout: object = None
    pixel_bits: int = 8

    def pixels(self, image):
        """The pixel memory image of one integer input image (``network.input.shape``)."""
        return [int(v) for v in pixel_image(self.network, self.layout, image)]


def _rows(weight, lanes, groups):
    """Per group, the weight rows of one segment: ``(rows, lanes)`` arrays."""
    out_channels = weight.shape[0]
    if weight.ndim == 5:  # (Co, C, Kd, Kh, Kw) -> rows in (kd, c, ky, kx) order
        weight = weight.transpose(0, 2, 1, 3, 4)
    flat = weight.reshape(out_channels, -1)
    padded = np.zeros((groups * lanes, flat.shape[1]), dtype=np.int64)
    padded[:out_channels] = flat
    return [padded[g * lanes:(g + 1) * lanes].T for g in range(groups)]


def _pack(rows, half):
    """Two ``half``-bit rows per memory row: row ``2i`` in the low half of each lane, row
    ``2i + 1`` (zeros past the end) in the high half, as signed lane values."""
    if len(rows) % 2:
        rows = np.concatenate([rows, np.zeros((1, rows.shape[1]), dtype=np.int64)])
    low, high = rows[0::2], rows[1::2]
    return high * (1 << half) + (low & ((1 << half) - 1))


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
        "membrane_narrow": config.core_membrane_bits - network.layer_membrane_bits(layer),
        "current_shift": neuron.current_shift,
    }


def _segment_row(segment, in_sel, memory_row, config, network):
    channels, depth, height, width = segment.map
    in_groups = -(-channels // config.pes)
    plane_words = height * width * in_groups
    mac = segment.kind == "mac"
    kd_rows = channels * segment.kernel[1] * segment.kernel[2]
    pixel_plane = channels * height * width if mac and len(network.input.shape) == 4 else 0
    # A packed segment's weight addresses count half rows (rtl/pe_array.py).
    offset = 2 * memory_row if segment.packed else memory_row
    return {"segment": {
        "mac": int(mac), "in_sel": in_sel, "packed": int(segment.packed),
        "geometry": {
            "kernel_h": segment.kernel[1], "kernel_w": segment.kernel[2],
            "stride_h": segment.stride[1], "stride_w": segment.stride[2],
            "pad_h": segment.padding[1], "pad_w": segment.padding[2],
            "out_h": segment.out[1], "out_w": segment.out[2], "in_h": height, "in_w": width,
            "weight_base": offset, "linear": int(segment.linear),
        },
        # A mac segment covers every kernel plane: K_d * C consecutive pixel channel planes.
        "in_channels": channels * (segment.kernel[0] if mac else 1),
        "in_positions": height * width, "in_groups": in_groups, "in_width": width,
        "in_words": depth * plane_words, "plane_words": plane_words,
        "depth_out": segment.out[0], "depth_kernel": segment.kernel[0], "depth_in": depth,
        "depth_stride": segment.stride[0], "depth_pad": segment.padding[0],
        "depth_stride_words": segment.stride[0] * plane_words,
        "depth_pad_words": segment.padding[0] * plane_words,
        "kd_rows": kd_rows, "out_plane": segment.out[1] * segment.out[2],
        "pixel_step": segment.stride[0] * pixel_plane,
    }}


def build_program(network, config, sizes):
    """Lay ``network`` out on the design ``config`` with the top's ``sizes``
    (:class:`~.sizing.MemorySizes`).

    Raises
    ------
    ProgramError
        ``config.fits(network)`` fails (its reasons are listed), or a size is outside what the
        top level provides.
    """
    if not isinstance(network, Network):
        raise TypeError(f"build_program() needs a spikeforge.golden.Network, not {network!r}")
    bias_depth, max_layers = sizes.bias_depth, sizes.max_layers
    pixel_depth, pixel_bits = sizes.pixel_depth, sizes.pixel_bits
    report = config.fits(network)
    if not report:
        raise ProgramError(f"network {network.name!r} does not fit the accelerator: "
                           + "; ".join(report.reasons))
    layout = plan_network(network, config)
    plans = layout.plans
    problems = []
    if network.input.bits > pixel_bits:
        problems.append(f"the input has {network.input.bits}-bit pixels, the pixel memory "
                        f"holds {pixel_bits}")
    pixels = pixel_count(network, layout)
    if pixels > pixel_depth:
        problems.append(f"the input needs {pixels} pixel words, the pixel memory holds "
                        f"{pixel_depth}")
    lanes = config.pes
    layer_rows, segment_rows, weights, biases = [], [], [], []
    segment_base = len(plans)
    for index, plan in enumerate(plans):
        layer = network.layer(plan.name)
        name = f"layer {plan.name!r}"
        rows = config.output_membrane_rows if config.separate_output_membranes \
            else config.max_positions
        if plan.output and plan.groups * plan.positions > rows:
            problems.append(f"{name} keeps {plan.groups * plan.positions} membrane rows for "
                            f"the host, the {'output ' * config.separate_output_membranes}"
                            f"membrane memory has {rows}")
        if not plan.pool and len(biases) + plan.groups > bias_depth:
            problems.append(f"{name} needs bias rows {len(biases)}..{len(biases) + plan.groups - 1}"
                            f", the bias memory has {bias_depth}")
        per_segment = [segment_weights(network, s) for s in plan.segments]
        offsets = np.cumsum([0] + [s.memory_rows_per_group for s in plan.segments])
        layer_rows.append({"layer": {
            "direct": int(plan.direct), "pool": int(plan.pool),
            "last": int(index == len(plans) - 1), "output": int(plan.output),
            "out_sel": plan.out_sel, "fold": int(plan.pooled is not None),
            "timesteps": network.timesteps,
            "weight_base": len(weights), "group_stride": int(offsets[-1]),
            "positions": plan.positions, "groups": plan.groups,
            "out_words": plan.positions * plan.groups, "bias_base": len(biases),
            "neuron": {"fire": 0} if plan.pool else _neuron(layer, config, network),
            "initial_membrane": 0 if plan.pool else layer.neuron.initial_membrane,
            "seg_base": segment_base + len(segment_rows), "seg_count": len(plan.segments),
        }})
        for segment, in_sel, offset in zip(plan.segments, plan.in_sels, offsets):
            segment_rows.append(_segment_row(segment, in_sel, int(offset), config, network))
        if not plan.pool:
            half = config.weight_bits // 2
            blocks = [[_pack(rows, half) if segment.packed else rows
                       for rows in _rows(w, lanes, plan.groups)]
                      for segment, w in zip(plan.segments, per_segment) if w is not None]
            for group in range(plan.groups):
                for block in blocks:
                    weights.extend(block[group].tolist())
            bias = np.zeros(plan.groups * lanes, dtype=np.int64)
            for segment in plan.segments:
                part = segment_bias(network, segment)
                if part is not None:
                    bias[:plan.channels] += part
            biases.extend(bias[g * lanes:(g + 1) * lanes].tolist() for g in range(plan.groups))
    rows = len(layer_rows) + len(segment_rows)
    if rows > max_layers:
        problems.append(f"the network needs {rows} descriptor rows ({len(layer_rows)} layers "
                        f"and {len(segment_rows)} segments), the table has {max_layers}")
    if problems:
        raise ProgramError(f"network {network.name!r} cannot run on the accelerator: "
                           + "; ".join(problems))
    return Program(network=network, config=config, layers=plans,
                   descriptors=layer_rows + segment_rows, weights=weights, biases=biases,
                   layout=layout, pixel_bits=pixel_bits)
