"""``spikeforge simulate``: the RTL against the golden model on the first images of a test set.

Each image runs on the accelerator in the Amaranth simulator under the scoreboard
(``sim/harness.py``): every membrane write and spike row is compared with the golden trace as
it happens. The report gives, per image, pass/fail, the hardware cycle counter and the cycle
model's prediction; an image fails on a scoreboard mismatch or when the two cycle counts
differ.
"""

import time

from spikeforge.golden import quantize_input

from ..rtl.config import AcceleratorConfig
from ..sim.harness import Harness

__all__ = ["simulate", "simulate_lines"]


def simulate(network, raw, labels, *, pes=64, vcd_dir=None, bundle=None, dataset=None):
    """Run the first ``len(raw)`` raw test samples; return the summary dict.

    Raises
    ------
    TypeError, ValueError
        ``pes`` is not a valid config value (from ``AcceleratorConfig``).
    rtl.program.ProgramError
        The network does not fit the design.
    """
    config = AcceleratorConfig(pes=pes)
    harness = Harness(network, config)
    images = quantize_input(raw, network.input)
    began = time.perf_counter()
    results = harness.run_all(images, vcd_dir=vcd_dir)
    seconds = time.perf_counter() - began
    rows = []
    for result, label in zip(results, labels):
        cycles_match = result.cycles == result.predicted_cycles
        rows.append({
            "image": result.image, "pass": result.passed and cycles_match,
            "cycles": result.cycles, "predicted_cycles": result.predicted_cycles,
            "prediction": result.prediction,
            "golden_prediction": result.expected_prediction, "label": int(label),
            "spikes": result.spike_counts, "counters": result.counters,
            "mismatch": None if result.passed else str(result.mismatch),
        })
    return {
        "bundle": None if bundle is None else str(bundle),
        "dataset": dataset, "pes": pes, "images": len(rows),
        "mismatches": sum(1 for r in rows if r["mismatch"] is not None),
        "cycle_model_mismatches": sum(1 for r in rows if r["mismatch"] is None
                                      and r["cycles"] != r["predicted_cycles"]),
        "failed": sum(1 for r in rows if not r["pass"]),
        "correct": sum(1 for r in rows if r["prediction"] == r["label"]),
        "cycles": [r["cycles"] for r in rows],
        "predicted_cycles": [r["predicted_cycles"] for r in rows],
        "clock_hz": config.clock_hz,
        "simulation_seconds": round(seconds, 3),
        "results": rows,
    }


def simulate_lines(summary):
    """The human-readable report of :func:`simulate`'s summary."""
    lines = [f"RTL vs golden: {summary['bundle'] or 'bundle'}, {summary['dataset']}, "
             f"{summary['pes']} PEs, {summary['images']} images"]
    lines.append(f"{'image':>5}  {'result':<6}  {'cycles':>8}  {'predicted':>9}  "
                 f"{'pred':>4}  {'label':>5}")
    for row in summary["results"]:
        cycles = "-" if row["cycles"] is None else str(row["cycles"])
        prediction = "-" if row["prediction"] is None else str(row["prediction"])
        lines.append(f"{row['image']:>5}  {'pass' if row['pass'] else 'FAIL':<6}  "
                     f"{cycles:>8}  {row['predicted_cycles']:>9}  {prediction:>4}  "
                     f"{row['label']:>5}")
        if row["mismatch"] is not None:
            lines.append(f"       {row['mismatch']}")
    measured = [c for c in summary["cycles"] if c is not None]
    mean = sum(measured) / len(measured) if measured else 0
    lines.append(f"mismatches: {summary['mismatches']}, cycle-model disagreements: "
                 f"{summary['cycle_model_mismatches']}, correct: {summary['correct']}/"
                 f"{summary['images']}, mean {mean:.0f} cycles per image "
                 f"({mean / summary['clock_hz'] * 1e6:.2f} us at "
                 f"{summary['clock_hz'] / 1e6:.0f} MHz), simulated in "
                 f"{summary['simulation_seconds']:.1f} s")
    return lines
