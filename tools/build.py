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

__all__ = ["build_project", "build_lines"]


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
