"""``spikeforge report``: one HTML page, its PNG figures and ``report.json`` for a bundle.

Every number on the page comes from the functions the other commands print with ``--json``,
called on the same first ``--images`` test samples, so the page can be checked against them:

* ``golden`` -> :func:`~spikeforge.tools.report.golden_result` (accuracy, op counts, spikes
  per layer), also per timestep count ``1..T`` for the accuracy curve (the same network run
  for fewer steps);
* ``energy`` -> :func:`~spikeforge.tools.energy.energy` (energy per inference);
* ``simulate`` -> :func:`~spikeforge.tools.simulate.simulate` on the first ``--rtl-images``
  of them (the RTL's cycle counter beside the cycle model);
* the cycle model's total per image split per layer and cause by
  :func:`~spikeforge.tools.cycle_causes.cycle_causes` (which checks it adds up);
* ``synth`` -> the cached result of ``spikeforge synth --pes P --json`` when there is one
  (this command never starts Yosys), else the command to run;
* ``sweep membrane`` -> :func:`~spikeforge.tools.sweep.membrane_sweep` with
  ``--sweep-membrane``.

``report.json`` holds those commands' dicts unchanged under ``golden``, ``energy``,
``simulate`` and ``membrane_sweep``, next to the derived tables the page shows. The page is
self-contained: the PNGs are embedded as data URIs (and written beside it), with no script,
stylesheet or font from the network.
"""

import base64
import importlib.util
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "build_report", "write_report"]

HELP = "an HTML report of a bundle: accuracy, spikes, cycles, energy, resources (PNG + JSON)"
DESCRIPTION = (
    "Run the golden model, the cycle model, the energy model and (on the first --rtl-images) "
    "the RTL in the Amaranth simulator on the first N test images and write DIR/index.html "
    "(self-contained), one PNG per figure and DIR/report.json with the numbers, which are "
    "those of spikeforge golden/energy/simulate --json for the same images. Resources come "
    "from a cached spikeforge synth run; no synthesis is started.")

#: The membrane widths of ``--sweep-membrane`` (``spikeforge sweep membrane``'s default).
_SWEEP_BITS = (16, 12, 10, 8, 6)
#: The recorded training accuracies (bundle metadata key -> label).
_RECORDED = {"ann_float_accuracy": "float ANN", "ann_qrelu_accuracy": "quantized ANN",
             "snn_accuracy": "SNN"}
_RESOURCES = ("LUT", "FF", "BRAM", "DSP48E1")


def add_arguments(parser):
    """The options of ``spikeforge report`` (the CLI's handler is :func:`run`)."""
    from ..rtl.config import FIRST_LAYER_BLOCKS
    from .options import (
        add_bundle, add_data_dir, add_dataset, add_images, add_inputs, add_out_folder, add_pes,
    )

    add_bundle(parser)
    add_dataset(parser)
    add_inputs(parser)
    add_images(parser, 20, "golden, cycle and energy numbers on the first N test images")
    parser.add_argument("--rtl-images", type=int, default=2, metavar="M",
                        help="run the first M of them on the RTL too (default 2, at most N; "
                             "0: none)")
    add_pes(parser)
    parser.add_argument("--first-layer", choices=FIRST_LAYER_BLOCKS, default="mac",
                        help="first-layer block of the design (default mac)")
    parser.add_argument("--raster-layer", metavar="LAYER",
                        help="spiking layer of the spike raster (default: the first)")
    parser.add_argument("--sweep-membrane", action="store_true",
                        help="add the membrane-width sweep (digits and mnist bundles)")
    add_data_dir(parser)
    add_out_folder(parser)


def run(args):
    """Check every option, build the report, write it; return the closing line."""
    from ..rtl.program import build_program
    from .options import (
        CLIError, Output, check_pes, data_dir as checked_data_dir, dataset_name, load_bundle,
        samples_for,
    )
    from ..data.evaluate import load_test_set
    from .inputs import INPUTS_NAME
    from .progress import Bar, wanted
    from ..rtl.sizing import design_for

    if importlib.util.find_spec("matplotlib") is None:
        raise CLIError("the report's figures need matplotlib, which is not installed; install "
                       "it with pip install 'spikeforge[report]'")
    check_pes(args.pes)
    network, path = load_bundle(args.bundle)
    test = None
    if args.inputs is not None:   # the file is checked here, before any work
        test = samples_for(args, network)
        if test.y is None:
            raise CLIError(f"the report plots accuracies, so --inputs needs labels: "
                           f"{args.inputs} has no y")
    dataset = dataset_name(args, network) if test is None else test.name
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"the output {args.out} exists and is not a folder")
    if not 0 <= args.rtl_images <= args.images:
        raise CLIError(f"--rtl-images {args.rtl_images} is not between 0 and --images "
                       f"{args.images}")
    spiking = [layer.name for layer in network.layers
               if layer.neuron is not None and layer.output == "spikes"]
    if args.raster_layer is not None and args.raster_layer not in spiking:
        raise CLIError(f"--raster-layer {args.raster_layer!r} is not a spiking layer of "
                       f"{network.name!r} ({', '.join(spiking)})")
    if args.sweep_membrane and dataset not in ("digits", "mnist", INPUTS_NAME):
        raise CLIError(f"--sweep-membrane supports the digits and mnist datasets, not "
                       f"{dataset}")
    try:   # a network that does not fit the design fails here, before any long work
        design = design_for(network, pes=args.pes, first_layer=args.first_layer)
        config, sizes = design.config, design.sizes
        program = build_program(network, config, sizes)
    except ValueError as error:  # ProgramError, or no design runs the network
        raise CLIError(str(error)) from None
    if test is None:
        test = load_test_set(dataset, network, checked_data_dir(args.data_dir))
    count = min(args.images, test.x.shape[0])
    data_dir = None if dataset in ("digits", INPUTS_NAME) else checked_data_dir(args.data_dir)
    bar = Bar(None, "report", enabled=wanted())
    try:
        report = build_report(network, path, test, count, program=program, pes=args.pes,
                              first_layer=args.first_layer,
                              rtl_images=min(args.rtl_images, count),
                              raster_layer=args.raster_layer or spiking[0],
                              sweep=args.sweep_membrane, data_dir=data_dir, stage=bar.stage)
        bar.stage("report: figures")
        written = write_report(report, args.out)
    except ValueError as error:   # the sweep: a membrane width too narrow for a leak or pool
        raise CLIError(str(error)) from None
    finally:
        bar.close()
    return Output(f"wrote {args.out / 'index.html'} ({len(written)} figures, report.json) for "
                  f"{network.name} on {count} {dataset} images")


def _layer_table(network):
    from .report import bundle_info

    rows = []
    for info, layer in zip(bundle_info(network, "", None)["layers"], network.layers):
        weight = getattr(layer, "weight", None)
        info["sparsity"] = (None if not layer.is_synaptic or weight is None
                            else float(np.mean(np.asarray(weight) == 0)))
        rows.append(info)
    return rows


def _mean_causes(program, golden, count):
    from .cycle_causes import CAUSES, cycle_causes

    needed = {source for plan in program.layers for source in plan.sources}
    per_image = [cycle_causes(program, {name: golden.traces[name].spikes[:, index]
                                        for name in needed}) for index in range(count)]
    layers = []
    for number, first in enumerate(per_image[0]["layers"]):
        causes = {cause: sum(image["layers"][number]["causes"][cause] for image in per_image)
                  / count for cause in CAUSES}
        layers.append({"name": first["name"], "cycles": sum(causes.values()), "causes": causes})
    return [image["total"] for image in per_image], layers


def _resources(pes):
    """The cached ``spikeforge synth --pes P --json`` resources, or how to get them."""
    from ..boards.designs import board_design, make_top, top_verilog
    from ..boards.synth import SynthReport, cache_entry

    design = board_design("pynq-z2", pes)
    module, text = top_verilog("ps", make_top("ps", config=design.config, sizes=design.sizes))
    entry = cache_entry(text, module)
    command = f"spikeforge synth --board pynq-z2 --pes {pes}"
    if not entry.exists():
        return {"synthesised": False, "command": command}
    saved = SynthReport(**{**json.loads(entry.read_text()), "cached": True})
    return {"synthesised": True, "command": command, "device": saved.device,
            "resources": saved.resources, "timing": saved.timing, "fits": saved.fits}


def build_report(network, path, test, count, *, program, pes, first_layer, rtl_images,
                 raster_layer, sweep=False, data_dir=None, stage=None):
    """The report's JSON dict for the first ``count`` samples of ``test``.

    ``stage(text)``, when given, hears which part is running. Keys: ``bundle``, ``layers``,
    ``golden``, ``accuracy_vs_timesteps``, ``recorded``, ``pruning``, ``energy``, ``cycles``,
    ``simulate`` (``None`` when ``rtl_images`` is 0), ``throughput``, ``resources``,
    ``raster`` and ``membrane_sweep`` (``None`` unless ``sweep``).
    """
    from spikeforge.golden import quantize_input
    from spikeforge.golden import run as golden_run

    from .energy import energy
    from .inputs import INPUTS_NAME
    from .report import golden_result
    from .simulate import simulate
    from .sweep import membrane_sweep

    tell = stage or (lambda text: None)
    raw, labels = test.x[:count], test.y[:count]
    tell("report: golden model")
    golden = golden_result(network, test, count)
    curve = []
    for steps in range(1, network.timesteps + 1):
        tell(f"report: golden model, T={steps}")
        shorter = golden_result(replace(network, timesteps=steps), test, count)
        curve.append({"timesteps": steps, "accuracy": shorter["accuracy"],
                      "correct": shorter["correct"]})
    tell("report: energy model")
    energy_json = energy(network, raw, pes=pes, bundle=path, dataset=test.name)
    tell("report: cycle model")
    trace = golden_run(network, quantize_input(raw, network.input), trace=True)
    predicted, cause_layers = _mean_causes(program, trace, count)
    simulated = None
    if rtl_images:
        tell(f"report: RTL simulation of {rtl_images} images")
        simulated = simulate(network, raw[:rtl_images], labels[:rtl_images], pes=pes,
                             first_layer=first_layer, bundle=path, dataset=test.name)
    clock = program.config.clock_hz
    mean = float(np.mean(predicted))
    ops = golden["per_image"]["synaptic_ops"]
    throughput = {"clock_hz": clock, "cycles_per_image": mean,
                  "synaptic_ops_per_image": ops,
                  "synaptic_ops_per_second": ops / (mean / clock),
                  "images_per_second": clock / mean}
    if simulated is not None and simulated["mean_cycles"]:
        throughput["rtl_cycles_per_image"] = simulated["mean_cycles"]
    tell("report: resources (synthesis cache)")
    resources = _resources(pes)
    layer = network.layer(raster_layer)
    raster = np.asarray(trace.traces[raster_layer].spikes[:, 0]).reshape(
        network.timesteps, layer.neurons)
    sweep_json = None
    if sweep:
        tell("report: membrane-width sweep")
        sweep_json = membrane_sweep(network, test.name, _SWEEP_BITS, data_dir=data_dir,
                                    limit=count, test=test if test.name == INPUTS_NAME else None)
    metadata = network.metadata
    return {
        "bundle": {"path": str(path), "name": network.name,
                   "content_hash": network.content_hash, "timesteps": network.timesteps,
                   "membrane_bits": network.membrane_bits,
                   "parameters": int(network.parameter_count())},
        "dataset": test.name, "description": test.description, "images": count,
        "design": {"pes": pes, "first_layer": first_layer, "clock_hz": clock},
        "layers": _layer_table(network),
        "golden": golden,
        "accuracy_vs_timesteps": curve,
        "recorded": {label: metadata[key] for key, label in _RECORDED.items()
                     if isinstance(metadata.get(key), (int, float))},
        "pruning": (metadata.get("pruning") or {}).get("rounds"),
        "energy": energy_json,
        "cycles": {"predicted": predicted, "mean": mean, "layers": cause_layers,
                   "measured": None if simulated is None else simulated["cycles"]},
        "simulate": simulated,
        "throughput": throughput,
        "resources": resources,
        "raster": {"layer": raster_layer, "image": 0, "spikes": int(raster.sum())},
        "membrane_sweep": sweep_json,
        "_raster": raster,   # dropped from report.json; the raster figure draws it
    }


def _figures(report):
    from . import report_figures as draw

    energy_pj = report["energy"]["energy_pj"]
    bits = report["energy"]["bits"]["cnn"]
    energy_rows = [(label, energy_pj[key]["total"] / 1e3,
                    None if energy_pj[key].get("first_layer") is None
                    else energy_pj[key]["first_layer"] / 1e3)
                   for key, label in (("float_cnn", "float CNN"),
                                      ("quantized_cnn", f"{bits}-bit CNN"),
                                      ("snn_mac", "SNN, MAC first layer"),
                                      ("snn_pim", "SNN, PIM first layer"))]
    measured = report["cycles"]["measured"] or []
    figures = {
        "accuracy_vs_timesteps": draw.accuracy_vs_timesteps(report["accuracy_vs_timesteps"],
                                                            report["recorded"]),
        "spike_rates": draw.spike_rates(report["golden"]["per_layer"]),
        "spike_raster": draw.spike_raster(report["raster"]["layer"], report["_raster"]),
        "cycles_by_layer": draw.cycles_by_layer(report["cycles"]["layers"]),
        "cycles_per_image": draw.cycles_per_image(report["cycles"]["predicted"], measured),
        "synaptic_ops": draw.synaptic_ops(report["golden"]["per_layer"]),
        "energy": draw.energy(energy_rows),
    }
    resources = report["resources"]
    if resources["synthesised"]:
        figures["resources"] = draw.resources(
            [(name, resources["resources"][name]["used"],
              resources["resources"][name]["available"]) for name in _RESOURCES],
            resources["device"])
    if report["membrane_sweep"] is not None:
        sweep = report["membrane_sweep"]
        figures["membrane_sweep"] = draw.membrane_sweep(sweep["rows"], sweep["original_bits"],
                                                        sweep["original_accuracy"])
    if report["pruning"]:
        figures["pruning"] = draw.pruning(report["pruning"])
    return figures


def write_report(report, out):
    """Draw the figures, then write ``out/<figure>.png``, ``report.json`` and ``index.html``.

    Everything is drawn in memory first, so a failure writes nothing. Returns the PNG names.
    """
    from .report_html import page

    figures = _figures(report)
    saved = {key: value for key, value in report.items() if not key.startswith("_")}
    saved["figures"] = {name: f"{name}.png" for name in figures}
    saved["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    text = page(saved, {name: (title, base64.b64encode(png).decode("ascii"))
                        for name, (title, png) in figures.items()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (_, png) in figures.items():
        (out / f"{name}.png").write_bytes(png)
    (out / "report.json").write_text(json.dumps(saved, indent=2) + "\n")
    (out / "index.html").write_text(text)
    return sorted(saved["figures"].values())

