"""``AcceleratorConfig``: the validated, frozen description of one generated accelerator.

Every block of ``rtl/`` takes explicit keyword widths and depths; the config is where they
come from (``config.addr_bits``, ``config.weight_addr_bits``, ...), and :meth:`fits` says
before anything is generated whether a network runs on the design, and if not, why.

What the memories hold is ``docs/accelerator.md`` section 2. One design runs every network
that fits: a network may use narrower weights, membranes and partial sums than the design
(membranes through ``membrane_narrow`` of ``rtl.interfaces.neuron_params_layout``), fewer
positions, channels and timesteps, and smaller memories.
"""

import json
import math
from dataclasses import asdict, dataclass, fields

from amaranth.utils import ceil_log2

from ..golden.manifest import MEMBRANE_BITS, TIMESTEPS, WEIGHT_BITS
from ..golden.network import Network
from ..golden.synapse import current_bound
from .pe_array import check_taps_per_cycle
from .tap_generator import MAX_STRIDE
from .checks import check_int
from .interfaces import PSUM_BITS

__all__ = ["MAX_PES", "AcceleratorConfig", "FitReport", "layer_positions"]

FORMAT_NAME = "spikeforge-accelerator"
FORMAT_VERSION = 1

#: The most PEs a design may have: a row of 1,024 lanes is already 20 kbit of partial sums and
#: 1,024 adders per stage; nothing wider is generated (the xc7z020 holds 64).
MAX_PES = 1024

#: The first-layer blocks a design can have (``rtl/reference_mac.py``,
#: ``rtl/pim_first_layer.py``).
FIRST_LAYER_BLOCKS = ("mac", "pim")


def _bits_for(count):
    """Address bits for ``count`` items (at least 1, so that no port is zero-width)."""
    return max(1, ceil_log2(count))


def _plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def layer_positions(layer):
    """Output positions of a layer: ``H * W`` of a 2D map, 1 for a linear layer."""
    return int(math.prod(layer.out_shape[1:])) if len(layer.out_shape) > 1 else 1


@dataclass(frozen=True)
class FitReport:
    """The answer of :meth:`AcceleratorConfig.fits`: truthy when the network fits.

    Members
    -------
    ok : bool
    reasons : tuple of str
        One sentence per problem, naming the layer (or the network), the memory or parameter
        and how much over the config it is; empty when ``ok``.
    """

    ok: bool
    reasons: tuple

    def __bool__(self):
        return self.ok

    def __str__(self):
        return "fits" if self.ok else "does not fit: " + "; ".join(self.reasons)


@dataclass(frozen=True, kw_only=True)
class AcceleratorConfig:
    """One generated accelerator: PEs, widths, memory depths, limits and clock.

    Parameters
    ----------
    pes : int
        Processing elements, i.e. lanes of every row (output channels computed at once).
    taps_per_cycle : int
        Kernel taps each PE accumulates per cycle. The PE array is built for 1 only
        (``rtl.pe_array.BUILT_TAPS_PER_CYCLE``), which the config checks too; the parameter
        exists so that the throughput can be scaled later without a redesign.
    weight_bits, membrane_bits, psum_bits : int
        Widths of a weight (2..8), a membrane (2..32) and a partial sum (2..64,
        at least ``weight_bits``).
    output_membrane_bits : int or None
        ``None``: the output layer's membranes live in the membrane memory. Wider than
        ``membrane_bits``: they live in their own memory of ``output_membrane_rows`` rows of
        this width, so a network whose hidden membranes are a few bits wide but whose output
        layer sums ``T`` steps at more (``neuron.membrane_bits`` in the bundle) keeps a
        narrow membrane memory; the aggregation core then computes at this width.
    output_membrane_rows : int
        Rows of that output memory (the output layer's ``groups * positions``); unused
        without ``output_membrane_bits``.
    max_positions : int
        Rows of each partial-sum bank and of the membrane memory (output positions of a layer).
    max_in_channels, max_out_channels : int
        Largest input and output channel counts (features for a linear layer).
    max_feature_size : int
        Largest height or width of a feature map (event coordinates).
    max_timesteps : int
        Largest ``T`` (1..1024).
    weight_depth : int
        Rows of the weight memory (``pes * weight_bits`` bits each).
    spike_memory_bits : int
        Size of each of the two spike bitmaps; they hold words of ``pes`` bits, so only
        ``spike_memory_bits // pes`` whole words are usable.
    spike_bitmaps : int
        Spike bitmaps (each ``spike_memory_bits``): a residual network needs a third one
        for the shortcut while its block runs (``rtl/layout.py`` allocates them).
    leak_multiplier : bool
        Generate one multiplier per lane for multiplicative leak.
    current_shifter : bool
        Generate one runtime right shifter per lane for the neurons' ``current_shift``
        (narrow-membrane networks, ``docs/neuron.md`` section 2).
    weight_packing : bool
        Store the rows of a segment whose weights fit in ``weight_bits // 2`` bits two per
        memory row (``rtl/layout.py``); needs an even ``weight_bits`` of at least 4.
    space_to_depth : bool
        Compute a direct-encoded stride-1 conv2d followed by a 2x2 max-pool in 2x2 blocks of
        ``4 * C`` lanes, the pool fused into the spike writer (``rtl/layout.py``).
    first_layer : {"mac", "pim"}
        The block computing direct-encoded currents: the reference MAC (one multiplier per
        lane, DSP48s) or the bit-serial digital-PIM block (no multiplier).
    pim_rows, pim_columns : int
        The PIM block's taps and lanes reduced per cycle (``pim_columns`` must divide
        ``pes``; ``None`` means ``pes``). Unused with the MAC.
    clock_hz : float
        Target clock frequency (stored as a float).

    Raises
    ------
    TypeError
        A parameter has the wrong type or is out of its range.
    ValueError
        Parameters are inconsistent with each other.
    """

    pes: int = 64
    taps_per_cycle: int = 1
    weight_bits: int = 8
    membrane_bits: int = 16
    psum_bits: int = 24
    output_membrane_bits: int | None = None
    output_membrane_rows: int = 16
    max_positions: int = 1024
    max_in_channels: int = 1024
    max_out_channels: int = 1024
    max_feature_size: int = 64
    max_timesteps: int = 32
    weight_depth: int = 2048
    spike_memory_bits: int = 65536
    spike_bitmaps: int = 2
    leak_multiplier: bool = False
    current_shifter: bool = False
    weight_packing: bool = False
    space_to_depth: bool = False
    first_layer: str = "mac"
    pim_rows: int = 9
    pim_columns: int | None = None
    clock_hz: float = 125e6

    def __post_init__(self):
        check_int(self.pes, "Number of PEs", 1, MAX_PES)
        check_int(self.taps_per_cycle, "Taps per cycle")
        check_taps_per_cycle(self.taps_per_cycle)  # what the PE array builds
        check_int(self.weight_bits, "Weight width", *WEIGHT_BITS)
        check_int(self.membrane_bits, "Membrane width", *MEMBRANE_BITS)
        check_int(self.psum_bits, "Partial-sum width", *PSUM_BITS)
        if self.output_membrane_bits is not None:
            check_int(self.output_membrane_bits, "Output membrane width", *MEMBRANE_BITS)
            if self.output_membrane_bits <= self.membrane_bits:
                raise ValueError(f"Output membrane width must be wider than the membrane width "
                                 f"({self.membrane_bits}) or None, not "
                                 f"{self.output_membrane_bits}")
        check_int(self.output_membrane_rows, "Output membrane rows")
        check_int(self.max_positions, "Maximum position count")
        check_int(self.max_in_channels, "Maximum input channel count")
        check_int(self.max_out_channels, "Maximum output channel count")
        check_int(self.max_feature_size, "Maximum feature map size")
        check_int(self.max_timesteps, "Maximum timestep count", *TIMESTEPS)
        check_int(self.weight_depth, "Weight memory depth")
        check_int(self.spike_memory_bits, "Spike memory size")
        check_int(self.spike_bitmaps, "Spike bitmap count", 1, 16)
        for value, what in ((self.leak_multiplier, "Leak multiplier"),
                            (self.current_shifter, "Current shifter"),
                            (self.weight_packing, "Weight packing"),
                            (self.space_to_depth, "Space-to-depth")):
            if not isinstance(value, bool):
                raise TypeError(f"{what} must be a bool, not {value!r}")
        if self.weight_packing and (self.weight_bits % 2 or self.weight_bits < 4):
            raise ValueError(f"Weight packing needs an even weight width of at least 4, not "
                             f"{self.weight_bits}")
        if self.first_layer not in FIRST_LAYER_BLOCKS:
            raise TypeError(f"First layer must be one of {', '.join(FIRST_LAYER_BLOCKS)}, "
                            f"not {self.first_layer!r}")
        check_int(self.pim_rows, "PIM rows in parallel")
        if self.pim_columns is not None:
            check_int(self.pim_columns, "PIM columns in parallel")
            if self.pes % self.pim_columns:
                raise ValueError(f"PIM columns in parallel must divide the number of PEs "
                                 f"({self.pes}), not {self.pim_columns}")
        clock = self.clock_hz
        if isinstance(clock, bool) or not isinstance(clock, (int, float)) or not (
                math.isfinite(clock) and clock > 0):
            raise TypeError(f"Clock frequency must be a positive number of Hz, not {clock!r}")
        object.__setattr__(self, "clock_hz", float(clock))
        if self.psum_bits < self.weight_bits:
            raise ValueError(f"Partial-sum width must be at least the weight width "
                             f"({self.weight_bits}), not {self.psum_bits}")
        if self.spike_memory_bits < self.pes:
            raise ValueError(f"Spike memory must hold at least one {self.pes}-bit word, not "
                             f"{self.spike_memory_bits} bits")

    # ------------------------------------------------------------------ derived widths

    @property
    def lanes(self):
        """Lanes of every row: the number of PEs."""
        return self.pes

    @property
    def addr_bits(self):
        """Address width of the partial-sum banks and the membrane memory."""
        return _bits_for(self.max_positions)

    @property
    def separate_output_membranes(self):
        """Whether the output layer's membranes have their own, wider memory."""
        return self.output_membrane_bits is not None

    @property
    def core_membrane_bits(self):
        """The width the aggregation core computes at, and of the membrane rows the trace
        port and the host read: the widest membrane memory."""
        return self.output_membrane_bits or self.membrane_bits

    @property
    def weight_addr_bits(self):
        """Address width of the weight memory."""
        return _bits_for(self.weight_depth)

    @property
    def tap_weight_addr_bits(self):
        """Width of a tap's weight address: one more bit (the half row) with packing."""
        return self.weight_addr_bits + int(self.weight_packing)

    @property
    def channel_bits(self):
        """Width of an event's input channel (or input feature)."""
        return _bits_for(self.max_in_channels)

    @property
    def max_groups(self):
        """Channel groups of the widest layer: ``ceil(max_out_channels / pes)``."""
        return -(-self.max_out_channels // self.pes)

    @property
    def group_bits(self):
        return _bits_for(self.max_groups)

    @property
    def coord_bits(self):
        """Width of an event's y or x coordinate."""
        return _bits_for(self.max_feature_size)

    @property
    def timestep_bits(self):
        return _bits_for(self.max_timesteps)

    @property
    def spike_words(self):
        """Words of ``pes`` bits in each spike bitmap."""
        return self.spike_memory_bits // self.pes

    @property
    def spike_addr_bits(self):
        return _bits_for(self.spike_words)

    # ------------------------------------------------------------------ per-layer needs

    def groups(self, layer):
        """Channel groups of ``layer``: its output channels tiled by ``pes``."""
        return -(-layer.out_shape[0] // self.pes)

    def weight_rows(self, layer):
        """Weight-memory rows of ``layer`` (``docs/accelerator.md``, weight rows).

        ``groups * C_in * K_h * K_w`` for conv2d and avg-pool (a depthwise weight-1
        convolution addressed like a conv), ``groups * N_in`` for linear, 0 otherwise.
        """
        if layer.type == "linear":
            return self.groups(layer) * layer.in_shape[0]
        if layer.type in ("conv2d", "avgpool2d"):
            return self.groups(layer) * layer.in_shape[0] * int(math.prod(layer.kernel))
        return 0

    def spike_bitmap_bits(self, layer, timesteps):
        """Bitmap bits of the output of ``layer``: ``timesteps * positions * groups * pes``."""
        return timesteps * layer_positions(layer) * self.groups(layer) * self.pes

    # ------------------------------------------------------------------ fits

    def fits(self, network, *, device=None):
        """Check whether ``network`` runs on this design; return a :class:`FitReport`.

        ``device`` (opt-in, e.g. ``spikeforge.boards.device.DeviceFit()``) is called with
        the config and returns sentences for what the design would take beyond the chip;
        they join the reasons. Without it no synthesis runs.

        Raises
        ------
        TypeError
            ``network`` is not a :class:`spikeforge.golden.Network`.
        """
        if not isinstance(network, Network):
            raise TypeError(f"fits() needs a spikeforge.golden.Network, not {network!r}")
        reasons = []
        T = network.timesteps
        if T > self.max_timesteps:
            reasons.append(f"the network {network.name!r} runs {T} timesteps, the config "
                           f"allows {self.max_timesteps} ({T - self.max_timesteps} over)")
        if network.membrane_bits > self.membrane_bits:
            reasons.append(f"the network {network.name!r} needs {network.membrane_bits}-bit "
                           f"membranes, the config has {self.membrane_bits} "
                           f"({_plural(network.membrane_bits - self.membrane_bits, 'bit')} "
                           f"over)")
        out_bits = network.layer_membrane_bits(network.output_layer)
        held = self.core_membrane_bits   # the output layer's memory, whichever it is
        if out_bits > max(network.membrane_bits, held):
            reasons.append(f"the output layer of {network.name!r} needs {out_bits}-bit "
                           f"membranes, the config has {held} "
                           f"({_plural(out_bits - held, 'bit')} over)")
        max_pixel = (1 << network.input.bits) - 1
        from .layout import plan_network  # layout imports nothing from here, but lazily
        layout = plan_network(network, self)
        # A space-to-depth descriptor's positions and bitmap are its own, not its layer's.
        blocked = {plan.name: plan for plan in layout.plans if plan.pooled is not None}
        for layer in network.layers:
            if layer.type != "flatten":
                reasons.extend(self._layer_reasons(layer, T, max_pixel,
                                                   blocked.get(layer.name)))
        reasons.extend(layout.problems)
        reasons.extend(self._plan_reasons(network, layout, reasons))
        rows = [(plan.name, plan.groups * plan.memory_rows_per_group) for plan in layout.plans
                if plan.rows_per_group]
        total = sum(count for _, count in rows)
        if total > self.weight_depth:
            listing = ", ".join(f"{name} {count}" for name, count in rows)
            reasons.append(f"the weight memory needs {total} rows ({listing}), the config has "
                           f"{self.weight_depth} ({total - self.weight_depth} over)")
        if device is not None:
            reasons.extend(device(self))
        return FitReport(ok=not reasons, reasons=tuple(reasons))

    def _plan_reasons(self, network, layout, earlier):
        """Reasons only the descriptors show: bitmaps, residual sums, scanned map sizes."""
        from .layout import plan_current_bound, segment_weight_bits
        if layout.bitmaps > self.spike_bitmaps:
            yield (f"the network {network.name!r} needs {layout.bitmaps} spike bitmaps at once "
                   f"(a residual shortcut stays live while its block runs), the config has "
                   f"{self.spike_bitmaps} ({layout.bitmaps - self.spike_bitmaps} over)")
        for plan in layout.plans:
            name = f"layer {plan.name!r}"
            if network.layer(plan.name).type == "add":
                for segment in plan.segments:
                    need = segment_weight_bits(network, segment)
                    if need > self.weight_bits:
                        source = segment.source if segment.layer == plan.name else segment.layer
                        yield (f"{name} needs {need}-bit weight rows for its input {source!r} "
                               f"(scale {segment.scale}), the config has {self.weight_bits} "
                               f"({_plural(need - self.weight_bits, 'bit')} over)")
                worst = plan_current_bound(network, plan)
                need = worst.bit_length() + 1
                if need > self.psum_bits:
                    yield (f"{name} needs {need}-bit partial sums for its worst-case current "
                           f"{worst}, the config has {self.psum_bits} "
                           f"({_plural(need - self.psum_bits, 'bit')} over)")
            if any(reason.startswith(f"{name} has an") for reason in earlier):
                continue
            for segment in plan.segments:
                scanned = max(segment.map[2:])
                if segment.kind != "mac" and scanned > self.max_feature_size:
                    yield (f"{name} scans its input as a {segment.map[2]}x{segment.map[3]} "
                           f"map, the config allows {self.max_feature_size} per side "
                           f"({scanned - self.max_feature_size} over)")

    def _layer_reasons(self, layer, timesteps, max_pixel, blocked=None):
        name = f"layer {layer.name!r}"
        if layer.is_synaptic and layer.weight_bits > self.weight_bits:
            over = _plural(layer.weight_bits - self.weight_bits, "bit")
            yield (f"{name} needs {layer.weight_bits}-bit weights, the config has "
                   f"{self.weight_bits} ({over} over)")
        # A current output is summed by its add, which is checked instead.
        if layer.output != "current" and (layer.is_synaptic or layer.type == "avgpool2d"):
            if layer.is_synaptic:
                max_in = max_pixel if layer.is_direct_encoded else 1
                bound = current_bound(layer.weight, layer.bias, max_in)
            else:
                bound = int(math.prod(layer.kernel))  # one spike per window tap
            need = bound.bit_length() + 1  # signed: -bound .. bound
            if need > self.psum_bits:
                yield (f"{name} needs {need}-bit partial sums for its worst-case current "
                       f"{bound}, the config has {self.psum_bits} "
                       f"({_plural(need - self.psum_bits, 'bit')} over)")
        if layer.output != "current" and (layer.is_synaptic or layer.type in ("avgpool2d",
                                                                             "add")):
            positions = layer_positions(layer) if blocked is None else blocked.positions
            if positions > self.max_positions:
                yield (f"{name} needs {positions} partial-sum positions, the config has "
                       f"{self.max_positions} ({positions - self.max_positions} over)")
            rows = self.groups(layer) * positions
            if layer.output == "membrane" and self.separate_output_membranes and (
                    rows > self.output_membrane_rows):
                yield (f"{name} keeps {rows} output membrane rows, the config has "
                       f"{self.output_membrane_rows} ({rows - self.output_membrane_rows} over)")
        unit = "features" if layer.type == "linear" else "channels"
        for side, count, limit in (("input", layer.in_shape[0], self.max_in_channels),
                                   ("output", layer.out_shape[0], self.max_out_channels)):
            if count > limit:
                yield (f"{name} has {count} {side} {unit}, the config allows {limit} "
                       f"({count - limit} over)")
        for side, shape in (("input", layer.in_shape), ("output", layer.out_shape)):
            if len(shape) >= 3 and max(shape[1:]) > self.max_feature_size:
                yield (f"{name} has an {side} map of {'x'.join(map(str, shape[1:]))}, the "
                       f"config allows {self.max_feature_size} per side "
                       f"({max(shape[1:]) - self.max_feature_size} over)")
        planar = layer.stride[-2:] if layer.stride is not None else ()
        if layer.type in ("conv2d", "conv3d", "maxpool2d", "avgpool2d") and (
                max(planar) > MAX_STRIDE):
            yield (f"{name} has stride {max(planar)}, the tap generator handles at most "
                   f"{MAX_STRIDE} ({max(planar) - MAX_STRIDE} over)")
        if layer.neuron is not None and layer.neuron.leak.kind == "mul" and (
                not self.leak_multiplier):
            yield (f"{name} uses a multiplicative leak, but the config has no leak multiplier "
                   f"(leak_multiplier=False)")
        if layer.neuron is not None and layer.neuron.current_shift and (
                not self.current_shifter):
            yield (f"{name} shifts its current by {layer.neuron.current_shift} bits, but the "
                   f"config has no current shifter (current_shifter=False)")
        # Flatten re-reads its input bitmap; the output layer's membranes are read, not spikes.
        if layer.output == "spikes" and blocked is None:  # else the fused pool's bitmap
            bits = self.spike_bitmap_bits(layer, timesteps)
            usable = self.spike_words * self.pes
            if bits > usable:
                product = " x ".join([_plural(timesteps, "timestep"),
                                      _plural(layer_positions(layer), "position"),
                                      _plural(self.groups(layer), "group"),
                                      _plural(self.pes, "lane")])
                yield (f"{name} needs {bits} spike-bitmap bits ({product}), the config has "
                       f"{usable} ({bits - usable} over)")

    # ------------------------------------------------------------------ JSON

    def to_json(self):
        """A JSON-ready dict holding every parameter (the manifest of a generated design)."""
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, obj):
        """Rebuild a config from :meth:`to_json`'s dict (or its JSON text); validates it.

        Raises
        ------
        ValueError
            Not a config manifest, another version, or a field is missing or unknown.
        TypeError
            A field's value is invalid (as in the constructor).
        """
        if isinstance(obj, str):
            obj = json.loads(obj)
        if not isinstance(obj, dict):
            raise ValueError(f"Not an accelerator config manifest (a JSON object with format "
                             f"{FORMAT_NAME!r}): a {type(obj).__name__}")
        names = [f.name for f in fields(cls)]
        header = ("format", "format_version")
        unknown = sorted(set(obj) - set(names) - set(header))
        if unknown:
            raise ValueError(f"Accelerator config manifest has an unknown field {unknown[0]!r}; "
                             f"the known fields are {', '.join((*header, *names))}")
        if obj.get("format") != FORMAT_NAME:
            raise ValueError(f"Not an accelerator config manifest: its format must be "
                             f"{FORMAT_NAME!r}, not {obj.get('format')!r}")
        if obj.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"Accelerator config format version must be {FORMAT_VERSION}, "
                             f"not {obj.get('format_version')!r}")
        given = {k: v for k, v in obj.items() if k not in header}
        missing = [n for n in names if n not in given]
        if missing:
            raise ValueError(f"Accelerator config manifest is missing the field {missing[0]!r}")
        return cls(**given)
