"""How a network maps onto the accelerator: descriptors, their fill segments, the bitmaps.

Every computing layer of the network becomes one *descriptor* (:class:`LayerPlan`): an output
map of ``channels x depth x height x width`` neurons, computed channel group by channel group.
What fills a group's partial-sum bank in a timestep is a list of *segments*
(:class:`Segment`), run one after another into the same bank (``docs/accelerator.md``
section 6):

* an ordinary conv2d, linear or avg-pool layer has one segment that scans its input bitmap;
  a max-pool layer has one segment that ORs it into its output bitmap;
* a direct-encoded layer has one ``mac`` segment, run by the first-layer block (reference MAC
  or PIM) on the pixel memory once per image;
* a residual ``add`` has one segment per input: a spike input is an *identity* convolution
  (a ``1 x 1`` kernel whose one-hot rows hold the input's scale), a current input is the
  producing layer itself (conv, linear, avg-pool, or a direct-encoded ``mac``), fused into
  the add with its weights and bias multiplied by the scale; that layer gets no descriptor;
* a conv3d is a conv2d over depth planes: the sequencer runs one *pass* per (output plane
  ``od``, kernel plane ``kd``), scanning input plane ``d = od * s_d - p_d + kd`` with the
  2D tap generator, the weight rows of plane ``kd`` and the bank rows of plane ``od``
  (``docs/conv3d.md``).

Two mappings save memory where the config enables them (``docs/accelerator.md`` section 6):

* ``weight_packing``: a ``conv`` segment whose (scaled) weights fit in ``weight_bits // 2``
  bits stores two rows per memory row (row ``r`` in the low half-lanes of memory row
  ``r // 2`` when ``r`` is even, the high ones when odd, :attr:`Segment.packed`);
* ``space_to_depth``: a direct-encoded stride-1 conv2d whose only reader is a 2x2 stride-2
  max-pool computes each 2x2 block of its output as one position of ``4 * C`` lanes (lane
  ``4 * c + 2 * dy + dx`` is channel ``c`` at ``(2 * Y + dy, 2 * X + dx)``, a kernel one tap
  larger at stride 2), and the spike writer ORs the four lanes of each channel into the
  max-pool's bitmap (:attr:`LayerPlan.pooled`): the pool needs no pass and no bitmap of the
  full-size map, and the layer a quarter of the positions.

Bitmaps hold a layer's spikes as ``(C, D, H, W)`` (``D = 1`` for 2D maps, channels in lanes,
positions ``(d * H + y) * W + x``). A flatten needs no pass: a consumer reads the bitmap
through the flattened shape, which works when the reshape keeps channels apart (a linear layer
numbers features ``c * D * H * W + ...``; ``(C, D * H, W)`` is a 2D map) or folds the depth
into the channels for a conv2d (``(C * D, H, W)``, the hybrid 3D/2D networks), which becomes a
conv3d with kernel depth ``D``. Bitmaps are allocated like registers: a descriptor writes
the lowest-numbered bitmap no later descriptor still has to read.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_SEGMENTS", "SLOTS", "Segment", "LayerPlan", "Layout", "plan_network",
           "segment_weights", "segment_bias", "segment_weight_bits", "plan_current_bound",
           "signed_bits", "pixel_image", "pixel_count", "descriptor_values", "descriptor_neuron"]

#: Fill segments one descriptor may have (the sequencer keeps a timestep offset for each).
MAX_SEGMENTS = 4
#: Lanes of one channel in a space-to-depth layer: the positions of a 2x2 pooling window.
SLOTS = 4


@dataclass(frozen=True)
class Segment:
    """One source of a descriptor's current (plain values only: JSON-ready with ``asdict``).

    Members
    -------
    kind : {"conv", "pool", "mac"}
        Scan a bitmap through the tap generator (``conv``, linear included), OR it into the
        output bitmap (``pool``, max-pool), or run the first-layer block on the pixels.
    layer : str
        The network layer whose weights (or pooling) the segment applies (the add itself for
        an identity segment).
    source : str or None
        The layer that wrote the scanned bitmap; ``None`` for ``mac``.
    map : tuple
        ``(C, D, H, W)`` read: ``D`` planes of ``H x W`` (a linear layer's ``(C, 1, H, W)``
        numbers its features ``c * H * W + y * W + x``; a direct linear layer's ``(N, 1, 1,
        1)``).
    kernel, stride, padding : tuple
        ``(depth, height, width)``.
    out : tuple
        ``(D', H', W')`` of the descriptor.
    linear : bool
    weights : {"layer", "folded", "one_hot", "space_to_depth", "none"}
        Where the weight rows come from (:func:`segment_weights`).
    scale : int
        Residual scale multiplying the weights and the bias (1 outside adds).
    packed : bool
        Two weight rows per memory row (``weight_packing``; see the module docstring).
    """

    kind: str
    layer: str
    source: str | None
    map: tuple
    kernel: tuple
    stride: tuple
    padding: tuple
    out: tuple
    linear: bool = False
    weights: str = "layer"
    scale: int = 1
    packed: bool = False

    @property
    def rows_per_group(self):
        """Weight rows per channel group: ``C * K_d * K_h * K_w`` (``C * H * W`` linear)."""
        if self.weights == "none":
            return 0
        if self.linear:
            return int(math.prod(self.map))
        return self.map[0] * int(math.prod(self.kernel))

    @property
    def memory_rows_per_group(self):
        """Weight-memory rows per channel group: half the rows (rounded up) when packed."""
        return -(-self.rows_per_group // 2) if self.packed else self.rows_per_group

    @property
    def passes(self):
        """``(od, kd, d)`` of every pass in order, ``d`` outside ``0 .. D - 1`` included (the
        sequencer spends one cycle to skip such a pass); a ``mac`` segment has one pass per
        output plane (``kd = d = 0``: it covers all kernel planes)."""
        if self.kind == "mac":
            return [(od, 0, 0) for od in range(self.out[0])]
        return [(od, kd, od * self.stride[0] - self.padding[0] + kd)
                for od in range(self.out[0]) for kd in range(self.kernel[0])]


def segment_weights(network, segment):
    """The segment's weights times its scale: ``(C_out, C, K_d, K_h, K_w)`` int64 (``(C_out,
    N)`` linear); ``None`` for max-pool."""
    if segment.weights == "none":
        return None
    layer = network.layer(segment.layer)
    channels = segment.map[0]
    if segment.weights == "one_hot":
        weight = np.zeros((channels, channels, *segment.kernel), dtype=np.int64)
        for c in range(channels):
            weight[c, c] = 1
    elif segment.weights == "space_to_depth":
        # Lane 4c + 2dy + dx applies channel c's kernel shifted by (dy, dx) in the larger one.
        original = np.asarray(layer.weight, dtype=np.int64)
        out_channels, _, kernel_h, kernel_w = original.shape
        weight = np.zeros((SLOTS * out_channels, channels, 1, *segment.kernel[1:]),
                          dtype=np.int64)
        for dy in range(2):
            for dx in range(2):
                weight[2 * dy + dx::SLOTS, :, 0, dy:dy + kernel_h, dx:dx + kernel_w] = original
    elif segment.weights == "folded":
        weight = np.asarray(layer.weight, dtype=np.int64).reshape(
            layer.weight.shape[0], channels, segment.map[1], *layer.weight.shape[2:])
    else:
        weight = np.asarray(layer.weight, dtype=np.int64)
        if weight.ndim == 4:
            weight = weight[:, :, None]
    return weight * segment.scale


def segment_bias(network, segment):
    """The segment's bias times its scale, ``(C_out,)`` int64, or ``None``."""
    if segment.weights not in ("layer", "folded", "space_to_depth"):
        return None
    bias = network.layer(segment.layer).bias
    if bias is None:
        return None
    bias = np.asarray(bias, dtype=np.int64) * segment.scale
    return np.repeat(bias, SLOTS) if segment.weights == "space_to_depth" else bias


@dataclass(frozen=True)
class LayerPlan:
    """One descriptor: a network layer's output map and the segments that fill it.

    Members
    -------
    name : str
    direct : bool
        Direct-encoded: the current is computed once per image (phase 0) and kept.
    pool : bool
        A max-pool pass (one group, no neurons).
    channels, depth, height, width : int
        The output map (``1 x 1 x 1`` for a linear layer, depth 1 for 2D maps).
    groups : int
    output : bool
        The non-spiking output layer.
    segments : tuple of Segment
    spatial : tuple
        The layer's own spatial shape (``()`` linear, ``(H, W)``, ``(D, H, W)``): how the
        harness names a neuron.
    out_sel : int
        The bitmap the descriptor writes (0 for the output layer).
    in_sels : tuple of int
        The bitmap each segment scans (0 for ``mac``).
    pooled : str or None
        The max-pool fused into this space-to-depth descriptor: its bitmap holds that
        layer's spikes (``channels`` is then ``SLOTS`` lanes per channel of the layer).
    """

    name: str
    direct: bool
    pool: bool
    channels: int
    depth: int
    height: int
    width: int
    groups: int
    output: bool
    segments: tuple
    spatial: tuple = ()
    out_sel: int = 0
    in_sels: tuple = ()
    pooled: str | None = None

    @property
    def positions(self):
        return self.depth * self.height * self.width

    @property
    def sources(self):
        """The layers whose bitmaps the descriptor scans."""
        return tuple(s.source for s in self.segments if s.source is not None)

    @property
    def rows_per_group(self):
        return sum(s.rows_per_group for s in self.segments)

    @property
    def memory_rows_per_group(self):
        """Weight-memory rows of one channel group (packed segments take half)."""
        return sum(s.memory_rows_per_group for s in self.segments)

    @property
    def bitmap_layers(self):
        """The network layers whose spikes this descriptor's bitmap holds."""
        return (self.name,) if self.pooled is None else (self.name, self.pooled)


@dataclass(frozen=True)
class Layout:
    """What :func:`plan_network` found: the descriptors, the problems, the resources.

    Members
    -------
    plans : tuple of LayerPlan
    problems : tuple of str
        One sentence each (``layer 'x' ...``); the network does not run when not empty.
    bitmaps : int
        Spike bitmaps the allocation needs.
    pixel_depth_pad : int
        Zero planes added on each side of a 4D input's depth axis in the pixel memory.
    """

    plans: tuple
    problems: tuple
    bitmaps: int
    pixel_depth_pad: int = 0


class _Refused(Exception):
    """A layer the accelerator does not run; the message completes ``layer 'x' ...``."""


@dataclass(frozen=True)
class _View:
    origin: str      # the descriptor that wrote the bitmap
    phys: tuple      # (C, D, H, W) of the bitmap
    shape: tuple     # how the consumer sees it (the flatten's output shape)


def _phys(shape):
    """(C, D, H, W) of a layer's output shape."""
    if len(shape) == 1:
        return (shape[0], 1, 1, 1)
    if len(shape) == 3:
        return (shape[0], 1, *shape[1:])
    return tuple(shape)


def _segment(layer, view, scale, *, identity=False):
    """The segment that applies ``layer`` (or, ``identity``, a scale) to ``view``."""
    kind_of = layer.type
    if view is None:  # the pixels
        if kind_of in ("avgpool2d", "maxpool2d"):
            raise _Refused("pools the multi-bit input, which the RTL does not run")
        shape = _phys(layer.in_shape)
        if kind_of == "linear":
            return Segment("mac", layer.name, None, shape, (1, 1, 1), (1, 1, 1), (0, 0, 0),
                           (1, 1, 1), linear=True, scale=scale)
        return _spatial("mac", layer, None, shape, scale=scale)
    phys, seen = view.phys, tuple(view.shape)
    channels, depth, height, width = phys
    flat2d = (channels, depth * height, width)
    plane2d = (channels, 1, depth * height, width)
    if kind_of == "linear":
        return Segment("conv", layer.name, view.origin, plane2d, (1, 1, 1), (1, 1, 1),
                       (0, 0, 0), (1, 1, 1), linear=True, scale=scale)
    if identity:
        if seen not in (flat2d, phys):
            raise _Refused("adds a reshaped spike map, which the RTL does not run")
        mapped = phys if seen == phys and len(seen) == 4 else plane2d
        return Segment("conv", layer.name, view.origin, mapped, (1, 1, 1), (1, 1, 1),
                       (0, 0, 0), mapped[1:], weights="one_hot", scale=scale)
    if kind_of == "conv3d":
        if seen != phys:
            raise _Refused("reads a reshaped map as a cube, which the RTL does not run")
        return _spatial("conv", layer, view.origin, phys, scale=scale)
    if seen == flat2d:
        mapped = plane2d
    elif depth > 1 and seen == (channels * depth, height, width) and kind_of == "conv2d":
        # Depth folded into channels (hybrid 3D/2D): a conv3d whose kernel spans all planes.
        return _spatial("conv", layer, view.origin, phys, scale=scale, folded=True)
    else:
        raise _Refused(f"reads a {'x'.join(map(str, seen))} view of a "
                       f"{'x'.join(map(str, phys))} spike map, which the RTL does not scan")
    if kind_of == "maxpool2d":
        return _spatial("pool", layer, view.origin, mapped, weights="none")
    if kind_of == "avgpool2d":
        return _spatial("conv", layer, view.origin, mapped, scale=scale, weights="one_hot")
    return _spatial("conv", layer, view.origin, mapped, scale=scale)


def _spatial(kind, layer, source, mapped, *, scale=1, weights="layer", folded=False):
    """A conv-like segment: 3D kernel, stride, padding and output from the layer."""
    def three(values, fill):
        values = tuple(values) if values is not None else (0,) * len(layer.kernel)
        return values if len(values) == 3 else (fill, *values)
    if folded:
        kernel = (mapped[1], *layer.kernel)
        stride, padding = (1, *layer.stride), (0, *layer.padding)
        weights = "folded"
    else:
        kernel, stride = three(layer.kernel, 1), three(layer.stride, 1)
        padding = three(getattr(layer, "padding", None), 0)
    out = tuple((size + 2 * p - k) // s + 1
                for size, k, s, p in zip(mapped[1:], kernel, stride, padding))
    return Segment(kind, layer.name, source, tuple(mapped), kernel, stride, padding, out,
                   weights=weights, scale=scale)


def _check_segments(layer, segments):
    if len(segments) > MAX_SEGMENTS:
        raise _Refused(f"sums {len(segments)} inputs, the sequencer runs at most "
                       f"{MAX_SEGMENTS} per layer")
    macs = [s for s in segments if s.kind == "mac"]
    if len(macs) > 1:
        raise _Refused("adds more than one direct-encoded current, which the RTL does not run")
    if macs and layer.type == "add" and macs[0].map[1] > 1:
        raise _Refused("adds a direct-encoded conv3d current, which the RTL does not run")
    outs = {s.out for s in segments}
    if len(outs) > 1:
        raise _Refused("sums inputs of different output geometry")


def _layer_plan(layer, config, views, currents):
    if layer.type == "add":
        segments = []
        for source, scale in zip(layer.inputs, layer.scales):
            if source in currents:
                producer = currents[source]
                reads = producer.inputs[0]
                view = None if reads == "input" else views[reads]
                segments.append(_segment(producer, view, scale))
            else:
                segments.append(_segment(layer, views[source], scale, identity=True))
        segments.sort(key=lambda s: s.kind != "mac")  # the MAC overwrites: it goes first
    else:
        reads = layer.inputs[0]
        segments = [_segment(layer, None if reads == "input" else views[reads], 1)]
    _check_segments(layer, segments)
    shape = _phys(layer.out_shape)
    out = segments[0].out
    if out != shape[1:]:
        raise _Refused(f"maps to an output of {out}, not {shape[1:]}")  # pragma: no cover
    return LayerPlan(
        name=layer.name, direct=layer.type != "add" and segments[0].kind == "mac",
        pool=layer.type == "maxpool2d", channels=shape[0], depth=shape[1], height=shape[2],
        width=shape[3], groups=-(-shape[0] // config.pes), output=layer.output == "membrane",
        segments=tuple(segments), spatial=tuple(layer.out_shape[1:]))


def _allocate(plans):
    """Bitmap of each descriptor's output and of each segment's input; the count used."""
    last_read = {}
    for index, plan in enumerate(plans):
        for source in plan.sources:
            last_read[source] = index
    holder, where, allocated = {}, {}, []  # bitmap -> descriptor in it; layer -> bitmap
    for index, plan in enumerate(plans):
        in_sels = tuple(where[s.source] if s.source is not None else 0 for s in plan.segments)
        out_sel = 0
        if not plan.output:
            busy = {b for b, held in holder.items()
                    if max(last_read.get(name, -1) for name in held.bitmap_layers) >= index}
            out_sel = next(b for b in range(len(holder) + 1) if b not in busy)
            holder[out_sel] = plan
            where.update({name: out_sel for name in plan.bitmap_layers})
        allocated.append((out_sel, in_sels))
    count = max([1] + [b + 1 for b in holder])
    return allocated, count


def _fusable_pool(network, layer, config):
    """The 2x2 stride-2 max-pool that ``layer`` can be fused with (space-to-depth), or None."""
    if not config.space_to_depth or layer.type != "conv2d" or not layer.is_direct_encoded:
        return None
    if layer.output != "spikes" or tuple(layer.stride) != (1, 1):
        return None
    channels, height, width = layer.out_shape
    if height % 2 or width % 2 or SLOTS * channels > config.pes:
        return None
    readers = [other for other in network.layers if layer.name in other.inputs]
    if len(readers) != 1:
        return None
    pool = readers[0]
    if pool.type != "maxpool2d" or tuple(pool.kernel) != (2, 2) or (
            tuple(pool.stride) != (2, 2) or any(pool.padding or ())):
        return None
    return pool


def _space_to_depth_plan(layer, pool, config):
    """The descriptor of ``layer`` computed in 2x2 blocks, writing ``pool``'s bitmap."""
    channels, height, width = layer.out_shape
    (kernel_h, kernel_w), (pad_h, pad_w) = layer.kernel, layer.padding
    in_shape = _phys(layer.in_shape)
    out = (1, height // 2, width // 2)
    segment = Segment("mac", layer.name, None, in_shape, (1, kernel_h + 1, kernel_w + 1),
                      (1, 2, 2), (0, pad_h, pad_w), out, weights="space_to_depth")
    lanes = SLOTS * channels
    return LayerPlan(name=layer.name, direct=True, pool=False, channels=lanes, depth=1,
                     height=out[1], width=out[2], groups=-(-lanes // config.pes),
                     output=False, segments=(segment,), spatial=tuple(layer.out_shape[1:]),
                     pooled=pool.name)


def _packed(network, config, segments):
    """``segments`` with ``packed`` set where ``weight_packing`` stores two rows per row."""
    if not config.weight_packing:
        return segments
    half = config.weight_bits // 2
    return tuple(
        Segment(**{**segment.__dict__, "packed": True})
        if segment.kind == "conv" and segment.weights != "none"
        and segment_weight_bits(network, segment) <= half else segment
        for segment in segments)


def descriptor_values(plan, values):
    """A layer's golden values ``(..., *out_shape)`` as the descriptor holds them:
    ``(..., plan.channels, plan.positions)`` (lane ``4 * c + 2 * dy + dx`` of a
    space-to-depth descriptor, see the module docstring)."""
    values = np.asarray(values)
    lead = values.shape[:values.ndim - len(plan.spatial) - 1]
    if plan.pooled is None:
        return values.reshape(*lead, plan.channels, plan.positions)
    channels = plan.channels // SLOTS
    blocks = values.reshape(*lead, channels, plan.height, 2, plan.width, 2)
    # (..., c, Y, dy, X, dx) -> (..., c, dy, dx, Y, X)
    blocks = np.moveaxis(blocks, (-4, -2), (-2, -1))
    return blocks.reshape(*lead, plan.channels, plan.positions)


def descriptor_neuron(plan, lane_channel, position):
    """The golden neuron of a descriptor's lane channel and position: ``(channel, y, x)``
    (``(channel, d, y, x)`` in a 3D layer)."""
    if plan.pooled is not None:
        channel, slot = divmod(lane_channel, SLOTS)
        (row, column), (dy, dx) = divmod(position, plan.width), divmod(slot, 2)
        return (channel, 2 * row + dy, 2 * column + dx)
    if len(plan.spatial) == 3:
        return (lane_channel, *(int(v) for v in np.unravel_index(position, plan.spatial)))
    return (lane_channel, *divmod(position, plan.width))


def plan_network(network, config):
    """Map ``network`` onto descriptors for ``config`` (its ``pes``); see the module docs.

    Returns a :class:`Layout`; its ``problems`` list what the accelerator does not run.
    """
    views = {}          # layer -> _View of its spikes (flatten resolved)
    currents = {}       # current-output layers, fused into the adds that read them
    plans, problems, refused = [], [], set()
    pads = set()
    fused = {}          # a max-pool fused into a space-to-depth descriptor -> that layer
    for layer in network.layers:
        if refused & set(layer.inputs):
            refused.add(layer.name)
            continue
        if layer.name in fused:
            views[layer.name] = _View(layer.name, _phys(layer.out_shape),
                                      tuple(layer.out_shape))
            continue
        pool = _fusable_pool(network, layer, config)
        if pool is not None:
            fused[pool.name] = layer.name
            plans.append(_space_to_depth_plan(layer, pool, config))
            continue
        if layer.type == "flatten":
            if layer.inputs[0] == "input":
                problems.append(f"layer {layer.name!r} flattens the multi-bit input, which the "
                                f"RTL does not run")
                refused.add(layer.name)
                continue
            source = views[layer.inputs[0]]
            views[layer.name] = _View(source.origin, source.phys, tuple(layer.out_shape))
            continue
        if layer.output == "current":
            currents[layer.name] = layer
            continue
        try:
            plan = _layer_plan(layer, config, views, currents)
        except _Refused as refusal:
            problems.append(f"layer {layer.name!r} {refusal}")
            refused.add(layer.name)
            continue
        for segment in plan.segments:
            if segment.kind == "mac" and len(network.input.shape) == 4:
                pads.add(segment.padding[0])
        plans.append(plan)
        if layer.output == "spikes":
            views[layer.name] = _View(layer.name, _phys(layer.out_shape),
                                      tuple(layer.out_shape))
    if len(pads) > 1:
        problems.append(f"the direct-encoded layers pad the input's depth differently "
                        f"({', '.join(map(str, sorted(pads)))}), which the pixel memory "
                        f"cannot lay out")
    allocated, count = _allocate(plans)
    plans = [LayerPlan(**{**plan.__dict__, "out_sel": out_sel, "in_sels": in_sels,
                          "segments": _packed(network, config, plan.segments)})
             for plan, (out_sel, in_sels) in zip(plans, allocated)]
    return Layout(plans=tuple(plans), problems=tuple(problems), bitmaps=count,
                  pixel_depth_pad=max(pads, default=0))


def signed_bits(value):
    """Two's-complement width holding ``value``."""
    return (value if value >= 0 else ~value).bit_length() + 1


def segment_weight_bits(network, segment):
    """Width of the segment's widest (scaled) weight; 0 for max-pool."""
    weight = segment_weights(network, segment)
    if weight is None:
        return 0
    return max(signed_bits(int(weight.min(initial=0))), signed_bits(int(weight.max(initial=0))))


def plan_current_bound(network, plan):
    """Largest ``|current|`` a descriptor can see: per output channel, the sum over its
    segments of ``|weights|`` times the largest input (a pixel for ``mac``, 1 for a spike)
    plus ``|bias|``, maximised over the channels."""
    max_pixel = (1 << network.input.bits) - 1
    bound = np.zeros(plan.channels, dtype=np.int64)
    for segment in plan.segments:
        weight = segment_weights(network, segment)
        if weight is None:
            continue
        peak = max_pixel if segment.kind == "mac" else 1
        bound += np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1) * peak
        bias = segment_bias(network, segment)
        if bias is not None:
            bound += np.abs(bias)
    return int(bound.max(initial=0))


def pixel_image(network, layout, image):
    """The pixel memory's contents for one integer image (``network.input.shape``).

    A 3D input ``(C, H, W)`` is stored in C order; a 4D input ``(C, D, H, W)`` as
    ``(D + 2 * pad, C, H, W)`` with zero planes for the depth padding, so that the output
    plane ``od`` of a direct conv3d reads ``K_d * C`` consecutive channel planes from
    ``od * s_d * C * H * W`` on (``docs/conv3d.md``).
    """
    image = np.asarray(image, dtype=np.int64)
    if image.ndim != 4:
        return image.reshape(-1)
    pad = layout.pixel_depth_pad
    planes = np.moveaxis(image, 1, 0)  # (D, C, H, W)
    padded = np.zeros((planes.shape[0] + 2 * pad, *planes.shape[1:]), dtype=np.int64)
    padded[pad:pad + planes.shape[0]] = planes
    return padded.reshape(-1)


def pixel_count(network, layout):
    """Words of the pixel memory one image needs."""
    shape = network.input.shape
    if len(shape) != 4:
        return int(math.prod(shape))
    return int(math.prod(shape)) // shape[1] * (shape[1] + 2 * layout.pixel_depth_pad)
