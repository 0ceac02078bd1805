"""``spikeforge bench sim``: simulated cycles per second of the three simulators, side by side.

One design (the default ``AcceleratorConfig`` with ``pes`` PEs, sized for the shipped digits
bundle) and the same seeded random images run on Verilator and Icarus (the generated Verilog
under the cocotb bench, ``sim/cosim.py``) and on the Amaranth simulator (``sim/harness.py``).
Each run is checked against the golden model, so a number is only reported for a correct
run. *Cycles per second* is the accelerator's cycle counter summed over the images, divided
by the wall time of those images: loading the pixels, the run, recording the trace and
checking it (the per-run start-up, the weight load, the golden model and the build are not
counted; the build time is reported apart). *Per CPU second* divides by the CPU time the
simulator process spent on those images instead: every simulator here runs on one thread,
so that is its speed on one core even on a machine shared with other work. Icarus is much
slower than the others, so it runs only the first image.
"""

import time

import numpy as np

from spikeforge.golden import read_bundle

from ..sim.cosim import RTL_SIMULATORS
from ..sim.random_networks import random_input
from ..rtl.sizing import design_for
from ..data.evaluate import default_bundle_path
from .options import add_json, add_pes, comma_list, log, positive_int, printed

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "bench_sim", "bench_sim_lines"]



def _images(network, count):
    spec = {"input": {"shape": list(network.input.shape), "bits": network.input.bits}}
    return random_input(np.random.default_rng(0), spec, count)


def _verdict(rows):
    """``None`` when every image matched and met the cycle model, else the first problem."""
    for row in rows:
        if row["mismatch"] is not None:
            return str(row["mismatch"])
        if row["cycles"] != row["predicted_cycles"]:
            return (f"image {row['image']}: {row['cycles']} cycles, the cycle model predicts "
                    f"{row['predicted_cycles']}")
    return None


def _cosim(simulator, network, images, config, sizes, log):
    from ..sim.cosim import SimulatorUnavailable, build_design, run_images

    try:
        build = build_design(simulator, config, sizes)
    except SimulatorUnavailable as error:
        return {"available": False, "reason": str(error)}
    log(f"{simulator}: build {'reused' if build.reused else 'done'} in {build.seconds:.0f} s")
    summary = run_images(build, network, images, config=config, sizes=sizes)
    rows = summary["images"]
    cycles = sum(row["cycles"] or 0 for row in rows)
    seconds, cpu = summary["simulated_seconds"], summary["simulated_cpu_seconds"]
    return {"available": True, "images": len(rows), "cycles": cycles,
            "seconds": round(seconds, 3), "cycles_per_second": round(cycles / seconds),
            "cpu_seconds": round(cpu, 3), "cycles_per_cpu_second": round(cycles / cpu),
            "build_seconds": round(build.seconds, 1), "build_reused": build.reused,
            "error": _verdict(rows)}


def _amaranth(network, images, config, sizes):
    from ..sim.harness import Harness, Mismatch

    harness = Harness(network, config, sizes=sizes)
    golden = harness.expected(images)  # outside the timed part, as in the cocotb bench
    began, cpu = time.perf_counter(), time.process_time()
    try:
        results = harness.run(images, golden=golden)
    except Mismatch as mismatch:
        return {"available": True, "images": len(images), "cycles": None, "seconds": None,
                "cycles_per_second": None, "cpu_seconds": None, "cycles_per_cpu_second": None,
                "build_seconds": 0.0, "build_reused": None, "error": str(mismatch)}
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    rows = [{"image": r.image, "cycles": r.cycles, "predicted_cycles": r.predicted_cycles,
             "mismatch": r.mismatch} for r in results]
    cycles = sum(r.cycles for r in results)
    return {"available": True, "images": len(rows), "cycles": cycles,
            "seconds": round(seconds, 3), "cycles_per_second": round(cycles / seconds),
            "cpu_seconds": round(cpu, 3), "cycles_per_cpu_second": round(cycles / cpu),
            "build_seconds": 0.0, "build_reused": None, "error": _verdict(rows)}


def bench_sim(*, pes=64, images=4, simulators=RTL_SIMULATORS, log=None):
    """Run the benchmark on ``simulators``; return the result dict (one entry each).

    ``log(text)`` gets progress lines.
    """
    report = log or (lambda text: None)
    network = read_bundle(default_bundle_path())
    design = design_for(network, pes=pes)
    config, sizes = design.config, design.sizes
    inputs = _images(network, images)
    result = {"network": network.name, "pes": pes, "images": images,
              "config": config.to_json(), "sizes": sizes.to_json(), "simulators": {}}
    for simulator in simulators:
        report(f"{simulator}: running")
        if simulator == "amaranth":
            entry = _amaranth(network, inputs, config, sizes)
        else:
            chosen = inputs[:1] if simulator == "icarus" else inputs
            entry = _cosim(simulator, network, chosen, config, sizes, report)
        result["simulators"][simulator] = entry
        if entry["available"]:
            report(f"{simulator}: {entry['cycles_per_second']:,} cycles/s")
    return result


def bench_sim_lines(result):
    """The side-by-side table of :func:`bench_sim`'s result."""
    lines = [f"simulated cycles per second: {result['network']} on {result['pes']} PEs, "
             f"checked against the golden model",
             f"{'simulator':<10}  {'images':>6}  {'cycles':>9}  {'seconds':>8}  "
             f"{'cycles/s':>9}  {'per CPU s':>9}  {'build s':>7}  result"]
    for name, entry in result["simulators"].items():
        if not entry["available"]:
            lines.append(f"{name:<10}  not available: {entry['reason']}")
            continue
        if entry["cycles"] is None:
            lines.append(f"{name:<10}  FAIL: {entry['error']}")
            continue
        lines.append(f"{name:<10}  {entry['images']:>6}  {entry['cycles']:>9,}  "
                     f"{entry['seconds']:>8.2f}  {entry['cycles_per_second']:>9,}  "
                     f"{entry['cycles_per_cpu_second']:>9,}  {entry['build_seconds']:>7.0f}  "
                     f"{'ok' if entry['error'] is None else 'FAIL: ' + entry['error']}")
    return lines


# ------------------------------------------------------------------------- the command

HELP = "simulated cycles per second: Verilator, Icarus, Amaranth simulator"
DESCRIPTION = ("Run the same images of the shipped digits bundle on the same generated design "
               "with Verilator, Icarus (when installed) and the Amaranth simulator, each "
               "checked against the golden model, and print the simulated cycles per second "
               "side by side.")


def _simulator(text):
    import argparse

    if text not in RTL_SIMULATORS:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(RTL_SIMULATORS)}")
    return text


def add_arguments(parser):
    add_pes(parser)
    parser.add_argument("--images", type=positive_int, default=4, metavar="N",
                        help="images per simulator (default 4; Icarus runs min(N, 1))")
    parser.add_argument("--simulators", type=comma_list(_simulator), default=RTL_SIMULATORS,
                        metavar="S,S", help=f"which of {','.join(RTL_SIMULATORS)} to run "
                                            f"(default all)")
    add_json(parser)


def run(args):
    result = bench_sim(pes=args.pes, images=args.images, log=log, simulators=args.simulators)
    return printed(args, result, bench_sim_lines)
