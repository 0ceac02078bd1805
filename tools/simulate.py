"""``spikeforge simulate``: the RTL against the golden model on the first images of a test set.

Each image runs on the accelerator in the Amaranth simulator under the scoreboard
(``sim/harness.py``): every membrane write and spike row, and a direct-encoded layer's current
as the first-layer block writes it, is compared with the golden trace as it happens. The
report gives, per image, pass/fail, the hardware cycle counter and the cycle model's
prediction; an image fails on a scoreboard mismatch or when any hardware counter the cycle model
predicts (the total and the PE, aggregation, scanner and first-layer busy cycles) differs.

The design is the one every command builds (``rtl.sizing.design_for``): the PYNQ-Z2 board
design, with ``pes`` PEs and the chosen first-layer block (reference MAC or digital PIM), when
the network fits it, otherwise the default design grown exactly to what the network needs. The
cycle counts do not depend on memory sizes, only on the PEs, the first-layer block and the
pixel width.
"""

import sys
import time
from pathlib import Path

from spikeforge.golden import quantize_input

from ..rtl.config import FIRST_LAYER_BLOCKS
from ..rtl.sizing import design_for
from ..sim.harness import Harness
from .options import (
    CLIError, add_bundle, add_data_dir, add_dataset, add_images, add_inputs, add_json,
    add_membrane_bits, add_pes, add_simulator, check_membrane_bits, check_pes, load_bundle,
    printed, samples_for,
)
from .progress import Bar, wanted

__all__ = ["simulate", "simulate_lines", "HELP", "DESCRIPTION", "add_arguments", "run"]


def _amaranth_rows(network, config, sizes, images, vcd_dir, report):
    harness = Harness(network, config, sizes=sizes)
    rows = []
    for result in harness.run_all(images, vcd_dir=vcd_dir, progress=report):
        rows.append({"image": result.image, "cycles": result.cycles,
                     "predicted_cycles": result.predicted_cycles,
                     "predicted_counters": result.predicted_counters,
                     "prediction": result.prediction,
                     "golden_prediction": result.expected_prediction,
                     "spikes": result.spike_counts, "counters": result.counters,
                     "mismatch": result.mismatch})
    return rows


def _cosim_rows(simulator, network, config, sizes, images, vcd_dir):
    from ..rtl.program import build_program
    from ..sim.cosim import build_design, run_images

    build_program(network, config, sizes)  # a network that does not fit fails here
    build = build_design(simulator, config, sizes)
    summary = run_images(build, network, images, config=config, sizes=sizes,
                         waves_dir=vcd_dir,
                         waves_build=lambda: build_design(simulator, config, sizes, waves=True))
    return [{"image": row["image"], "cycles": None if row["mismatch"] else row["cycles"],
             "predicted_cycles": row["predicted_cycles"],
             "predicted_counters": row["predicted_counters"], "prediction": row["prediction"],
             "golden_prediction": row["expected_prediction"],
             "spikes": row.get("spike_counts", {}), "counters": row.get("counters", {}),
             "mismatch": row["mismatch"]} for row in summary["images"]]


def simulate(network, raw, labels, *, pes=64, first_layer="mac", simulator="amaranth",
             vcd_dir=None, bundle=None, dataset=None, progress=False, membrane_bits=None):
    """Run the first ``len(raw)`` raw test samples; return the summary dict.

    ``labels`` may be ``None`` (unlabelled ``--inputs``): then each row's ``label`` and the
    summary's ``correct`` are ``None``.

    ``progress`` writes one line per finished image to stderr (Amaranth simulator); a
    callable instead hears each finished image's ``sim.harness.ImageResult``.
    ``membrane_bits`` narrows (or widens) the design's membrane memories.

    Raises
    ------
    TypeError, ValueError
        ``pes`` or ``first_layer`` is not a valid config value (from ``AcceleratorConfig``).
    ValueError
        The network fits no design (``rtl.sizing.fitted``), or its membranes are wider than
        ``membrane_bits``.
    sim.cosim.CosimError
        The Verilog simulator is missing or failed.
    """
    design = design_for(network, pes=pes, first_layer=first_layer, membrane_bits=membrane_bits)
    config, sizes = design.config, design.sizes
    images = quantize_input(raw, network.input)
    began = time.perf_counter()

    def report(result):
        if callable(progress):   # a progress bar's callback (tools/progress.py)
            progress(result)
        elif progress:
            state = "pass" if result.passed else "FAIL"
            sys.stderr.write(f"image {result.image}: {state}, {result.cycles} cycles "
                             f"({time.perf_counter() - began:.0f} s)\n")
            sys.stderr.flush()

    if simulator == "amaranth":
        results = _amaranth_rows(network, config, sizes, images, vcd_dir, report)
    else:
        results = _cosim_rows(simulator, network, config, sizes, images, vcd_dir)
    seconds = time.perf_counter() - began
    rows = []
    for result, label in zip(results, [None] * len(results) if labels is None else labels):
        passed = result["mismatch"] is None
        # Every busy counter the model predicts, the total among them.
        differ = sorted(name for name, value in result["predicted_counters"].items()
                        if result["counters"].get(name) != value) if passed else []
        rows.append({**result, "pass": passed and not differ, "counters_differ": differ,
                     "label": None if label is None else int(label),
                     "mismatch": None if passed else str(result["mismatch"])})
    measured = [r["cycles"] for r in rows if r["cycles"] is not None]
    return {
        "bundle": None if bundle is None else str(bundle),
        "dataset": dataset, "pes": pes, "first_layer": first_layer, "simulator": simulator,
        "images": len(rows),
        "mismatches": sum(1 for r in rows if r["mismatch"] is not None),
        "cycle_model_mismatches": sum(1 for r in rows if r["counters_differ"]),
        "failed": sum(1 for r in rows if not r["pass"]),
        "correct": None if labels is None else sum(1 for r in rows
                                                   if r["prediction"] == r["label"]),
        "cycles": [r["cycles"] for r in rows],
        "predicted_cycles": [r["predicted_cycles"] for r in rows],
        "mean_cycles": round(sum(measured) / len(measured), 1) if measured else None,
        "mac_busy_cycles": [r["counters"].get("mac_busy_cycles") for r in rows],
        "clock_hz": config.clock_hz,
        "design": {**design.to_json(), "hash": f"{design.hash:064x}"},
        "simulation_seconds": round(seconds, 3),
        "results": rows,
    }


def simulate_lines(summary):
    """The human-readable report of :func:`simulate`'s summary."""
    lines = [f"RTL vs golden: {summary['bundle'] or 'bundle'}, {summary['dataset']}, "
             f"{summary['pes']} PEs, {summary['images']} images, first layer "
             f"{summary['first_layer']}, {summary['simulator']} simulator"]
    lines.append(f"{'image':>5}  {'result':<6}  {'cycles':>8}  {'predicted':>9}  "
                 f"{'pred':>4}  {'label':>5}")
    for row in summary["results"]:
        cycles = "-" if row["cycles"] is None else str(row["cycles"])
        prediction = "-" if row["prediction"] is None else str(row["prediction"])
        label = "-" if row["label"] is None else str(row["label"])
        lines.append(f"{row['image']:>5}  {'pass' if row['pass'] else 'FAIL':<6}  "
                     f"{cycles:>8}  {row['predicted_cycles']:>9}  {prediction:>4}  "
                     f"{label:>5}")
        if row["mismatch"] is not None:
            lines.append(f"       {row['mismatch']}")
        for name in row["counters_differ"]:
            lines.append(f"       {name} {row['counters'].get(name)}, the cycle model predicts "
                         f"{row['predicted_counters'][name]}")
    mean = summary["mean_cycles"] or 0
    lines.append(f"mismatches: {summary['mismatches']}, cycle-model disagreements: "
                 f"{summary['cycle_model_mismatches']}, correct: "
                 f"{'-' if summary['correct'] is None else summary['correct']}/"
                 f"{summary['images']}, mean {mean:.0f} cycles per image "
                 f"({mean / summary['clock_hz'] * 1e6:.2f} us at "
                 f"{summary['clock_hz'] / 1e6:.0f} MHz), simulated in "
                 f"{summary['simulation_seconds']:.1f} s")
    return lines



# ------------------------------------------------------------------------- the command

HELP = "RTL vs golden model on the first test images (Amaranth, Verilator or Icarus)"
DESCRIPTION = ("Run the accelerator RTL (in the Amaranth simulator, or its Verilog under cocotb) "
               "on the first N test images, checking every membrane write and spike against "
               "the golden model as it happens; print per image pass/fail, the hardware cycle "
               "counter and the cycle model's prediction (every busy counter is compared too). "
               "The design is the PYNQ-Z2 board design (with --pes PEs and --first-layer) "
               "whenever the bundle fits it, the same one build and synth emit; otherwise the "
               "default design grown to the network, which is not a design for the chip. Exit "
               "status 1 on any mismatch (or cycle-model disagreement).")


def add_arguments(parser):
    add_bundle(parser)
    add_dataset(parser)
    add_inputs(parser)
    add_images(parser, 1, "simulate the first N test images")
    add_pes(parser)
    add_membrane_bits(parser)
    parser.add_argument("--first-layer", choices=FIRST_LAYER_BLOCKS, default="mac",
                        help="first-layer block: reference MAC (DSP multipliers) or the "
                             "bit-serial digital PIM (default mac)")
    add_simulator(parser, "amaranth")
    parser.add_argument("--progress", action="store_true",
                        help="report each finished image on stderr as a line (default: a "
                             "progress bar when stderr is a terminal, except with --json)")
    parser.add_argument("--vcd", type=Path, metavar="DIR",
                        help="write a waveform DIR/imageN.vcd for each failing image")
    add_data_dir(parser)
    add_json(parser)


def run(args):
    check_pes(args.pes)
    network, path = load_bundle(args.bundle)
    check_membrane_bits(args.membrane_bits, network)
    if args.vcd is not None and not args.vcd.is_dir():
        raise CLIError(f"the waveform folder {args.vcd} does not exist")
    test = samples_for(args, network)
    count = min(args.images, test.x.shape[0])
    labels = None if test.y is None else test.y[:count]
    bar = Bar(count, "simulate", enabled=wanted(args.json) and not args.progress, unit="image")
    progress = args.progress or bar.enabled and (lambda result: bar.advance(
        note=f"image {result.image}: {result.cycles} cycles"))
    try:
        summary = simulate(network, test.x[:count], labels, pes=args.pes,
                           first_layer=args.first_layer, simulator=args.simulator,
                           vcd_dir=args.vcd, bundle=path, dataset=test.name,
                           membrane_bits=args.membrane_bits, progress=progress)
    except ValueError as error:  # ProgramError, or no design runs the network (rtl.sizing)
        raise CLIError(str(error)) from None
    except RuntimeError as error:  # sim.cosim.CosimError: a missing or failing simulator
        raise CLIError(str(error)) from None
    finally:
        bar.close()
    return printed(args, summary, simulate_lines, 1 if summary["failed"] else 0)
