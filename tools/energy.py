"""``spikeforge energy``: per-inference energy of a bundle and the ratios ACE-SNN reports.

The energy estimates come from the golden model's operation counts on the first test images
(``golden/energy.py``, ``docs/energy.md``); the delay of the two first-layer blocks comes from
the cycle model (``rtl/cycle_model.py``, equal to the RTL's cycle counter) on a design sized for
the network (``rtl.sizing.design_for``), so the PIM's change in energy, delay and
energy-delay product can be set next to ACE-SNN's -30 %, -7 % and -38 %.
"""

import numpy as np

from spikeforge.golden import quantize_input
from spikeforge.golden import run as golden_run
from spikeforge.golden.energy import energy_report

from .options import CLIError, add_averaged_design, first_test_images, positive_int, printed

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "energy", "energy_lines"]

_ROWS = (("float_cnn", "float CNN (fp32)"), ("quantized_cnn", "quantized CNN ({bits}-bit)"),
         ("snn_mac", "SNN, MAC first layer"), ("snn_pim", "SNN, digital-PIM first layer"),
         ("snn_pim_analog", "SNN, analog PIM (ACE-SNN E_BLP)"))


def _cycles(network, images, golden, pes, first_layer):
    from ..rtl.cycle_model import predict_from_golden
    from ..rtl.program import build_program
    from ..rtl.sizing import design_for

    design = design_for(network, pes=pes, first_layer=first_layer)
    config = design.config
    program = build_program(network, config, design.sizes)
    return [predict_from_golden(program, golden, i) for i in range(len(images))], config


def energy(network, raw, *, bits=None, pes=64, bundle=None, dataset=None):
    """The energy table of ``network`` on the raw test samples ``raw``; a JSON-ready dict.

    Raises
    ------
    rtl.program.ProgramError
        The network does not run on the accelerator (the delay needs the cycle model).
    """
    images = quantize_input(raw, network.input)
    golden = golden_run(network, images, trace=True)
    report = energy_report(network, golden, bits=bits)
    delay = {}
    for first in ("mac", "pim"):
        cycles, config = _cycles(network, images, golden, pes, first)
        delay[first] = {"cycles": float(np.mean(cycles)),
                        "seconds": float(np.mean(cycles)) / config.clock_hz,
                        "clock_hz": config.clock_hz}
    e_mac = report["energy_pj"]["snn_mac"]["total"]
    e_pim = report["energy_pj"]["snn_pim"]["total"]
    d_mac, d_pim = delay["mac"]["seconds"], delay["pim"]["seconds"]
    report["delay"] = delay
    report["ratios"]["pim_delay_change"] = d_pim / d_mac - 1
    report["ratios"]["pim_edp_change"] = (e_pim * d_pim) / (e_mac * d_mac) - 1
    report.update({"bundle": None if bundle is None else str(bundle), "dataset": dataset,
                   "network": network.name, "images": int(len(images)), "pes": pes})
    return report


def _percent(value):
    return f"{100 * value:+.1f} %"


def energy_lines(report):
    """The human-readable table of :func:`energy`'s report."""
    energy_pj = report["energy_pj"]
    mac = energy_pj["snn_mac"]["total"]
    lines = [f"energy per inference (45 nm compute, Horowitz ISSCC'14; docs/energy.md): "
             f"{report['network']} on {report['dataset']}, mean of {report['images']} images",
             f"{'model':<34}{'energy (nJ)':>13}{'first layer':>13}{'x SNN(MAC)':>12}"]
    for key, label in _ROWS:
        row = energy_pj[key]
        first = row.get("first_layer")
        lines.append(f"{label.format(bits=report['bits']['cnn']):<34}"
                     f"{row['total'] / 1e3:>13.2f}"
                     f"{'' if first is None else f'{first / 1e3:.2f}':>13}"
                     f"{row['total'] / mac if mac else float('inf'):>11.2f}x")
    r, ace = report["ratios"], report["ace_snn"]
    delay = report["delay"]
    lines.append(f"SNN (MAC first layer) uses {r['float_cnn_vs_snn_mac']:.1f}x less energy than "
                 f"the float CNN (ACE-SNN: {ace['vs_float_cnn']}x) and "
                 f"{r['quantized_cnn_vs_snn_mac']:.1f}x less than the "
                 f"{report['bits']['cnn']}-bit CNN (ACE-SNN vs 6-bit: {ace['vs_6bit_cnn']}x)")
    lines.append(f"PIM vs MAC first layer: energy {_percent(r['pim_energy_change'])}, delay "
                 f"{_percent(r['pim_delay_change'])} ({delay['mac']['cycles']:.0f} -> "
                 f"{delay['pim']['cycles']:.0f} cycles, {report['pes']} PEs), EDP "
                 f"{_percent(r['pim_edp_change'])} (ACE-SNN: {_percent(ace['pim_energy'])}, "
                 f"{_percent(ace['pim_delay'])}, {_percent(ace['pim_edp'])})")
    return lines


# ------------------------------------------------------------------------- the command

HELP = "energy per inference: CNNs vs the SNN with a MAC or PIM first layer"
DESCRIPTION = ("Estimate the compute energy per inference (45 nm per-operation figures, "
               "docs/energy.md) of the float CNN, the quantized CNN and the SNN with a MAC or a "
               "digital-PIM first layer, from the golden model's operation counts on the first "
               "test images; the PIM's delay comes from the cycle model. Ratios are printed "
               "next to ACE-SNN's.")


def add_arguments(parser):
    add_averaged_design(parser)
    parser.add_argument("--bits", type=positive_int, metavar="B",
                        help="weight and activation bits of the quantized CNN (default: the "
                             "network's widest weights)")


def run(args):
    network, path, dataset, raw = first_test_images(args)
    try:
        report = energy(network, raw, bits=args.bits, pes=args.pes, bundle=path,
                        dataset=dataset)
    except ValueError as error:  # ProgramError, or no design runs the network (rtl.sizing)
        raise CLIError(str(error)) from None
    return printed(args, report, energy_lines)
