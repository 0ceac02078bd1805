"""The one sizing policy: which design (config and memory sizes) runs a network.

Every command, harness, benchmark, regression and board builder asks this module for its
design, so that the design a simulation verifies is the design ``generate`` and ``build``
emit (``tests/test_same_design.py`` checks it):

* :class:`MemorySizes`: the memories of :class:`~.top.Top` that :class:`~.config.
  AcceleratorConfig` does not size (bias rows, descriptor rows, pixel words and width);
* :class:`Design`: one config and one :class:`MemorySizes`, frozen; ``Design.hash`` names it;
* :func:`for_board`: a board's design (the PYNQ-Z2's is sized for the xc7z020,
  ``README.md`` resource table);
* :func:`fitted`: the smallest design of the default widths that runs a network (every
  memory and limit exactly what its layout needs, never below the library default);
* :func:`design_for`: the policy itself. The board design when the network fits it,
  otherwise the fitted design.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace

from ..golden.network import OUTPUT_MEMBRANE_BITS
from .config import AcceleratorConfig, layer_positions
from .layout import (pixel_count, plan_current_bound, plan_network, segment_weight_bits)
from .checks import check_int

__all__ = ["MemorySizes", "Design", "BOARD_DESIGNS", "DEFAULT_BOARD", "for_board",
           "with_membrane_width", "sizes_for", "fitted", "check_membrane_width", "design_for"]


@dataclass(frozen=True, kw_only=True)
class MemorySizes:
    """The ``Top`` memories the config leaves open.

    Parameters
    ----------
    bias_depth : int
        Rows of the bias memory (one per layer and channel group).
    max_layers : int
        Rows of the descriptor table (layer and segment rows) and of the spike counters.
    pixel_depth : int
        Words of the pixel (input image) memory.
    pixel_bits : int
        Width of an unsigned pixel.

    Raises
    ------
    TypeError
        A size is not a positive integer.
    """

    bias_depth: int = 64
    max_layers: int = 16
    pixel_depth: int = 4096
    pixel_bits: int = 8

    def __post_init__(self):
        for name, value in (("Bias depth", self.bias_depth), ("Layer count", self.max_layers),
                            ("Pixel depth", self.pixel_depth), ("Pixel width", self.pixel_bits)):
            check_int(value, name)

    def to_json(self):
        return asdict(self)

    @classmethod
    def from_json(cls, obj):
        """Rebuild from :meth:`to_json`'s dict.

        Raises
        ------
        ValueError
            Not a dict, or a field is missing or unknown.
        """
        names = [f.name for f in fields(cls)]
        if not isinstance(obj, dict) or sorted(obj) != sorted(names):
            raise ValueError(f"Memory sizes must be a dict of {', '.join(names)}, not {obj!r}")
        return cls(**obj)


@dataclass(frozen=True)
class Design:
    """One generated accelerator: its config and its memory sizes."""

    config: AcceleratorConfig
    sizes: MemorySizes

    def __post_init__(self):
        if not isinstance(self.config, AcceleratorConfig):
            raise TypeError(f"Config must be an AcceleratorConfig, not {self.config!r}")
        if not isinstance(self.sizes, MemorySizes):
            raise TypeError(f"Sizes must be MemorySizes, not {self.sizes!r}")

    def to_json(self):
        return {"config": self.config.to_json(), "sizes": self.sizes.to_json()}

    @property
    def hash(self):
        """SHA-256 (an int) over the config and the sizes (the board shows its low 32 bits)."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return int(hashlib.sha256(text.encode()).hexdigest(), 16)


#: Each board's accelerator (``boards/designs.py`` maps the names to platforms). On the
#: xc7z020, sized so that every shipped bundle runs (``README.md``, bundle table): 64 PEs,
#: 512 positions (maps up to 22 x 22; a 28 x 28 first layer with its 2x2 max-pool runs as
#: 14 x 14 blocks, ``space_to_depth``), 20-bit partial sums (the widest shipped need, a
#: direct-encoded Indian Pines layer), the leak multiplier (64 DSP48s) for the Indian Pines
#: networks, 4,096 weight rows of 8-bit lanes (57 BRAM36 as 4096 x 9, no output mux; 3,584
#: rows would take 50 and 2,000 LUTs of mux) with 4-bit rows packed two per row (the MNIST
#: ResNet needs 3,376), three bitmaps of 2,048 words (the ResNet's
#: shortcut; 8 timesteps of a 14 x 14 map) and 64 descriptor rows (the ResNet's 19 layers and
#: 27 segments).
BOARD_DESIGNS = {
    "pynq-z2": Design(AcceleratorConfig(pes=64, max_positions=512, psum_bits=20,
                                        leak_multiplier=True, weight_depth=4096,
                                        weight_packing=True, space_to_depth=True,
                                        spike_memory_bits=2048 * 64, spike_bitmaps=3),
                      MemorySizes(bias_depth=64, max_layers=64, pixel_depth=4096,
                                  pixel_bits=8)),
}
DEFAULT_BOARD = "pynq-z2"


def for_board(board, *, pes=None, first_layer=None, membrane_bits=None,
              current_shifter=False):
    """The design of ``board`` (a key of :data:`BOARD_DESIGNS`), with ``pes`` PEs, the
    ``first_layer`` block and ``membrane_bits``-wide membrane memories where given (narrow
    membranes save LUTs and BRAM, for networks whose membranes are at most that wide).

    A design with membranes narrower than the board's also has the current shifter (about
    50 LUT a lane): the networks trained for narrow membranes shift their currents
    (``docs/neuron.md`` section 2). ``current_shifter=True`` asks for it at any width.

    Raises
    ------
    ValueError
        Unknown board.
    """
    if board not in BOARD_DESIGNS:
        raise ValueError(f"unknown board {board!r}; known boards: {', '.join(BOARD_DESIGNS)}")
    design = BOARD_DESIGNS[board]
    changes = {key: value for key, value in (("pes", pes), ("first_layer", first_layer))
               if value is not None}
    if current_shifter:
        changes["current_shifter"] = True
    config = replace(design.config, **changes) if changes else design.config
    if membrane_bits is not None:
        config = with_membrane_width(config, membrane_bits)
    return design if config == design.config else replace(design, config=config)


def with_membrane_width(config, membrane_bits):
    """``config`` with ``membrane_bits``-wide membrane memories; narrower than ``config``'s
    own, it also gets the current shifter (the networks trained for narrow membranes shift
    their currents, ``docs/neuron.md`` section 2), and narrower than
    :data:`~spikeforge.golden.network.OUTPUT_MEMBRANE_BITS`, an output membrane memory that
    wide (what narrow-membrane training gives the output layer, which sums ``T`` steps).

    Raises
    ------
    TypeError
        ``membrane_bits`` outside the contract's range (``AcceleratorConfig``'s check).
    """
    narrower = membrane_bits < config.membrane_bits if isinstance(membrane_bits, int) else False
    wide_output = narrower and membrane_bits < OUTPUT_MEMBRANE_BITS
    output = max(OUTPUT_MEMBRANE_BITS, config.output_membrane_bits or 0) if wide_output \
        else config.output_membrane_bits
    if output is not None and isinstance(membrane_bits, int) and output <= membrane_bits:
        output = None
    return replace(config, membrane_bits=membrane_bits, output_membrane_bits=output,
                   current_shifter=config.current_shifter or narrower)


def sizes_for(network, config, floor=MemorySizes()):
    """The :class:`MemorySizes` ``network``'s program needs on ``config``, at least ``floor``."""
    layout = plan_network(network, config)
    return MemorySizes(
        bias_depth=max(floor.bias_depth, sum(p.groups for p in layout.plans if not p.pool)),
        max_layers=max(floor.max_layers,
                       len(layout.plans) + sum(len(p.segments) for p in layout.plans)),
        pixel_depth=max(floor.pixel_depth, pixel_count(network, layout)),
        pixel_bits=max(floor.pixel_bits, network.input.bits))


def fitted(network, *, pes=64, first_layer="mac", **fixed):
    """The library-default design with ``pes`` PEs, grown exactly to what ``network`` needs.

    ``fixed`` sets other config fields (e.g. wider membranes); a limit below the network's
    need is still raised. Widths grow to the network's (partial sums to the worst-case
    current of each descriptor, ``rtl/layout.py``), memories and limits to its layout.

    Raises
    ------
    ValueError
        The network does not run on any design (a layer the RTL does not run, a need beyond
        a width's range); the message lists ``fits``'s reasons.
    """
    base = AcceleratorConfig(pes=pes, first_layer=first_layer, **fixed)
    layout = plan_network(network, base)
    layers = [layer for layer in network.layers if layer.type != "flatten"]
    output = network.output_layer
    positions = [layer_positions(layer) for layer in layers]
    positions.append(base.groups(output) * layer_positions(output))
    sides = [side for layer in layers for shape in (layer.in_shape, layer.out_shape)
             for side in shape[1:]]
    sides += [side for plan in layout.plans for segment in plan.segments
              for side in segment.map[1:]]
    bitmap = max([base.spike_bitmap_bits(layer, network.timesteps) for layer in layers
                  if layer.output == "spikes"], default=pes)
    weight = max([base.weight_bits] + [layer.weight_bits for layer in layers
                                       if layer.is_synaptic]
                 + [segment_weight_bits(network, s) for p in layout.plans for s in p.segments])
    psum = max([base.psum_bits, weight] + [plan_current_bound(network, plan).bit_length() + 1
                                           for plan in layout.plans])
    # The hidden layers' width; an output layer wider than that gets its own memory when the
    # base asked for one or for narrow membranes, else the one memory grows to it.
    hidden = max(base.membrane_bits, network.membrane_bits)
    wide_output = max(network.layer_membrane_bits(output), base.output_membrane_bits or 0)
    separate = wide_output > hidden and (base.separate_output_membranes
                                         or "membrane_bits" in fixed)
    config = replace(
        base, weight_bits=min(8, weight), psum_bits=min(64, psum),
        membrane_bits=min(32, hidden if separate else
                          max(hidden, network.layer_membrane_bits(output))),
        output_membrane_bits=wide_output if separate else None,
        output_membrane_rows=max(base.output_membrane_rows, positions[-1]),
        max_positions=max(base.max_positions, max(positions)),
        max_in_channels=max([base.max_in_channels] + [layer.in_shape[0] for layer in layers]),
        max_out_channels=max([base.max_out_channels] + [layer.out_shape[0]
                                                        for layer in layers]),
        max_feature_size=max([base.max_feature_size] + sides),
        max_timesteps=min(1024, max(base.max_timesteps, network.timesteps)),
        weight_depth=max(base.weight_depth, sum(p.groups * p.memory_rows_per_group
                                                for p in layout.plans)),
        spike_memory_bits=max(base.spike_memory_bits, bitmap),
        spike_bitmaps=min(16, max(base.spike_bitmaps, layout.bitmaps)),
        leak_multiplier=base.leak_multiplier or any(
            layer.neuron is not None and layer.neuron.leak.kind == "mul" for layer in layers),
        current_shifter=base.current_shifter or shifts_currents(network))
    report = config.fits(network)
    if not report:
        raise ValueError(f"network {network.name!r} does not fit any {pes}-PE design: "
                         + "; ".join(report.reasons))
    return Design(config, sizes_for(network, config))


def shifts_currents(network):
    """Whether a neuron of ``network`` shifts its current (it needs the current shifter)."""
    return any(layer.neuron is not None and layer.neuron.current_shift
               for layer in network.layers)


def check_membrane_width(network, membrane_bits):
    """Raise ``ValueError`` when ``network``'s membranes are wider than ``membrane_bits``
    (``None``: any width), which a design asked for with that width could not hold."""
    if membrane_bits is not None and network.membrane_bits > membrane_bits:
        raise ValueError(f"network {network.name!r} has {network.membrane_bits}-bit "
                         f"membranes, wider than the {membrane_bits}-bit membrane memories "
                         f"asked for")


def design_for(network, *, pes=64, first_layer="mac", board=DEFAULT_BOARD,
               membrane_bits=None):
    """The design every command builds for ``network``: ``board``'s design (with ``pes`` PEs,
    the ``first_layer`` block and ``membrane_bits``-wide membranes where given) when the
    network fits it, else :func:`fitted`.

    ``board=None`` always fits. Raises as :func:`fitted`, and ``ValueError`` when the
    network's membranes are wider than ``membrane_bits``. A network that shifts its
    currents gets the board's design with the current shifter.
    """
    check_membrane_width(network, membrane_bits)
    narrow = {} if membrane_bits is None else {"membrane_bits": membrane_bits}
    if board is not None:
        design = for_board(board, pes=pes, first_layer=first_layer,
                           current_shifter=shifts_currents(network), **narrow)
        if design.config.fits(network):
            need = sizes_for(network, design.config, _NOTHING)
            if all(getattr(need, f.name) <= getattr(design.sizes, f.name)
                   for f in fields(MemorySizes)):
                return design
    return fitted(network, pes=pes, first_layer=first_layer, **narrow)


_NOTHING = MemorySizes(bias_depth=1, max_layers=1, pixel_depth=1, pixel_bits=1)
