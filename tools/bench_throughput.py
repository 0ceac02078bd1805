"""``spikeforge bench throughput``: cycles and operations per second of every shipped bundle on
the board design, beside SIA's published figure.

For each bundle (and each named design of :data:`DESIGNS` it fits), over the first ``images``
test samples the cycle model (``rtl/cycle_model.py``, on golden traces) gives the cycles per
image; the first ``rtl_images`` of them run on the generated Verilog (Verilator, the same
checks as ``spikeforge simulate``), and ``rtl_equals_model`` says whether every image had 0
mismatches and every counter equal to the model's.

Operation conventions (SIA does not publish its own, so both are shown, labelled):

* **SOP** (synaptic operations): the golden model's count of accumulates that happen, one per
  non-zero weight reached by an input spike (residual additions included), plus the
  first-layer MACs (``golden.GoldenResult.synaptic_ops`` and ``first_layer_macs``), per
  image. ``gsops`` = SOP per image x images per second / 1e9.
* **dense equivalent**: 2 x the MACs of the same network as a dense CNN (one timestep,
  ``golden.energy.cnn_ops``) x images per second: what a CNN accelerator of the same
  throughput in images per second would claim as GOPS.

Clocks: the design's (125 MHz), 100 MHz, and the clock Yosys's ``sta`` supports (pre-route)
when ``spikeforge synth`` has cached the board design's synthesis (else ``None``, with the
command to run).
"""

import json
import time

import numpy as np

from ..golden import quantize_input, run as golden_run
from ..golden.energy import cnn_ops
from ..rtl.cycle_model import counters_from_golden
from ..rtl.program import build_program
from ..rtl.sizing import DEFAULT_BOARD, for_board
from .options import (
    CLIError, add_data_dir, add_images, add_json, data_dir, load_bundle, log, non_negative_int,
    printed,
)

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "DESIGNS", "SIA", "bench_throughput",
           "throughput_lines"]

#: SIA (Nimbekar et al. 2024) on the same PYNQ-Z2 board, as published (op convention not
#: stated in the paper).
SIA = {"name": "SIA (Nimbekar et al. 2024, PYNQ-Z2)", "gops": 38.4, "pes": 64,
       "gops_per_pe": 0.6}
#: The named designs the benchmark compares, in one run: the board design today. (A design
#: that changes the cycle count, e.g. more taps per cycle, joins this table under its own
#: name, so that its ratio to the board design is measured side by side.)
DESIGNS = {"pynq-z2": lambda: for_board(DEFAULT_BOARD)}
_CLOCKS = (100e6, 125e6)


def _sta_clock(design):
    """The pre-route ``sta`` clock of the design's PS top from the synthesis cache, or None."""
    from ..boards.designs import make_top, top_verilog
    from ..boards.synth import cache_entry

    module, text = top_verilog("ps", make_top("ps", config=design.config, sizes=design.sizes))
    entry = cache_entry(text, module)
    if not entry.exists():
        return None
    timing = json.loads(entry.read_text()).get("timing")
    return None if timing is None else 1e12 / timing["arrival_ps"]


def _rtl_check(network, raw, labels, path, dataset, design_name):
    from .simulate import simulate

    summary = simulate(network, raw, labels, simulator="verilator", bundle=str(path),
                       dataset=dataset)
    if summary["design"]["hash"] != f"{DESIGNS[design_name]().hash:064x}":
        raise RuntimeError(f"simulate ran another design than {design_name}")
    return (summary["mismatches"] == 0 and summary["cycle_model_mismatches"] == 0
            and summary["failed"] == 0)


def bench_throughput(bundles, *, images=20, rtl_images=1, sta=True, log=None):
    """The benchmark's JSON dict.

    Parameters
    ----------
    bundles : list of (network, path, dataset, raw, labels)
        Each bundle with its first test samples (at least ``images``).
    images, rtl_images : int
        Samples for the cycle model, and how many of them run on Verilator (0: none).
    sta : bool
        Look up the synthesis cache for the ``sta`` clock (it elaborates the design once).
    log : callable or None
        Hears one line per finished bundle.
    """
    rows, clocks = [], {}
    for network, path, dataset, raw, labels in bundles:
        for name, make in DESIGNS.items():
            design = make()
            if not design.config.fits(network):
                continue
            began = time.perf_counter()
            program = build_program(network, design.config, design.sizes)
            golden = golden_run(network, quantize_input(raw[:images], network.input),
                                trace=True)
            count = len(golden.predictions)
            cycles = [counters_from_golden(program, golden, i)["cycles"] for i in range(count)]
            mean = float(np.mean(cycles))
            useful = (golden.total_synaptic_ops + int(golden.first_layer_macs.sum())) / count
            dense = 2 * sum(row["macs"] for row in cnn_ops(network).values())
            if sta and name not in clocks:
                clocks[name] = _sta_clock(design)
            rtl = None
            if rtl_images:
                rtl = _rtl_check(network, raw[:rtl_images], labels[:rtl_images], path,
                                 dataset, name)
            clock = design.config.clock_hz
            per_second = clock / mean
            rows.append({
                "bundle": path.stem, "config": name, "images": count,
                "rtl_images": min(rtl_images, count), "rtl_equals_model": rtl,
                "cycles_per_image": mean, "useful_ops_per_image": useful,
                "ops_per_cycle": useful / mean,
                "lane_utilisation": useful / mean / design.config.pes,
                "clock_hz": clock, "gsops": useful * per_second / 1e9,
                "gsops_at": {f"{hz / 1e6:.0f}": useful * hz / mean / 1e9
                             for hz in (*_CLOCKS, clocks.get(name)) if hz},
                "sta_clock_hz": clocks.get(name),
                "dense_equivalent_gops": dense * per_second / 1e9,
                "images_per_second": per_second})
            if log is not None:
                log(f"{path.stem} on {name}: {mean:,.0f} cycles/image "
                    f"({time.perf_counter() - began:.0f} s)")
    return {"rows": rows, "sia": SIA,
            "conventions": {"gsops": "golden-counted synaptic accumulates (non-zero weight x "
                                     "input spike, residual additions) + first-layer MACs",
                            "dense_equivalent_gops": "2 x dense-CNN MACs x images per second"}}


def throughput_lines(result):
    """The human-readable table."""
    lines = [f"{'bundle':<20} {'design':<8} {'cycles/img':>10} {'SOP/cycle':>9} "
             f"{'lanes':>6} {'GSOP/s@125':>10} {'@sta':>6} {'dense GOPS':>10} "
             f"{'img/s':>8} {'RTL=model':>9}"]
    for row in result["rows"]:
        sta = row["sta_clock_hz"]
        at_sta = f"{row['gsops_at'][f'{sta / 1e6:.0f}']:.2f}" if sta else "-"
        rtl = {None: "-", True: "yes", False: "NO"}[row["rtl_equals_model"]]
        lines.append(f"{row['bundle']:<20} {row['config']:<8} {row['cycles_per_image']:>10,.0f} "
                     f"{row['ops_per_cycle']:>9.1f} {row['lane_utilisation']:>6.1%} "
                     f"{row['gsops']:>10.2f} {at_sta:>6} "
                     f"{row['dense_equivalent_gops']:>10.2f} {row['images_per_second']:>8,.0f} "
                     f"{rtl:>9}")
    sia = result["sia"]
    lines.append(f"{sia['name']}: {sia['gops']} GOPS with {sia['pes']} PEs "
                 f"({sia['gops_per_pe']} GOPS per PE; op convention not published)")
    lines.append("GSOP/s: " + result["conventions"]["gsops"] + "; dense GOPS: "
                 + result["conventions"]["dense_equivalent_gops"] + ".")
    if any(row["sta_clock_hz"] is None for row in result["rows"]):
        lines.append("@sta: run `spikeforge synth --board pynq-z2` once to get the clock the "
                     "pre-route timing supports")
    return lines


# ------------------------------------------------------------------------- the command

HELP = "cycles, GSOP/s and images/s of the shipped bundles vs SIA"
DESCRIPTION = ("For every shipped bundle (or the --bundle ones) on the PYNQ-Z2 board design: "
               "cycles per image by the cycle model over the first N test images, the first M "
               "of them also on the generated Verilog (Verilator, checked against the golden "
               "model and the model's counters), useful synaptic operations per cycle and per "
               "second at 100 MHz, 125 MHz and the clock the cached synthesis supports, images "
               "per second and the dense-CNN equivalent GOPS, beside SIA's published 38.4 "
               "GOPS. The op conventions are printed with the table.")


def add_arguments(parser):
    from pathlib import Path

    parser.add_argument("--bundle", action="append", type=Path, metavar="B",
                        help="a bundle to measure (repeatable; default: every shipped one)")
    add_images(parser, 20, "test images for the cycle model")
    parser.add_argument("--rtl-images", type=non_negative_int, default=1, metavar="M",
                        help="of them, run on Verilator (default 1; 0: none)")
    add_data_dir(parser)
    add_json(parser)


def run(args):
    from pathlib import Path

    from ..data.evaluate import DATASETS, load_test_set
    from ..sim.regress import shipped_bundles

    if args.rtl_images > args.images:
        raise CLIError(f"--rtl-images {args.rtl_images} is more than --images {args.images}")
    folder = data_dir(args.data_dir)
    bundles = []
    for path in args.bundle or shipped_bundles():
        network, path = load_bundle(path)
        dataset = network.dataset.get("name")
        if dataset not in DATASETS:
            raise CLIError(f"the bundle {network.name!r} names no known dataset")
        test = load_test_set(dataset, network, folder)
        count = min(args.images, test.x.shape[0])
        bundles.append((network, Path(path), dataset, test.x[:count], test.y[:count]))
    result = bench_throughput(bundles, images=args.images, rtl_images=args.rtl_images,
                              log=None if args.json else log)
    return printed(args, result, throughput_lines)
