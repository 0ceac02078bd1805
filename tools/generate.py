"""``spikeforge generate``: the accelerator's Verilog, manifest and memory images in a folder.

The source is a model bundle (``.sfb``: the design is ``rtl.sizing.design_for`` with
``--pes`` PEs, the one every command builds for the bundle, and the program's ``$readmemh``
files are written too), an accelerator config (``AcceleratorConfig.to_json``, with the
default memory sizes) or a design manifest written by an earlier ``generate`` (its config and
memory sizes). The same source and options give
byte-identical files: nothing in them depends on the time, the paths or the order of a set.
"""

import json
import time
from pathlib import Path

from spikeforge.golden import read_bundle

from ..rtl.config import AcceleratorConfig
from ..rtl.program import ProgramError
from ..rtl.sizing import MemorySizes, design_for
from ..sim.verilog import write_design

__all__ = ["GenerateError", "generate", "generate_lines"]


class GenerateError(ValueError):
    """The source cannot be generated; the message is one sentence."""


def _read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _design(source, pes):
    """``(config, sizes, network or None)`` of a bundle, config or design manifest."""
    obj = _read_json(source)
    if obj is None:  # not JSON: a bundle (read_bundle names what is wrong with it)
        network = read_bundle(source)
        try:
            design = design_for(network, pes=64 if pes is None else pes)
            return design.config, design.sizes, network
        except ValueError as error:
            raise GenerateError(str(error)) from None
    if pes is not None:
        raise GenerateError(f"--pes applies to a bundle; the config {source} fixes the PE "
                            f"count")
    if isinstance(obj, dict) and obj.get("format") == "spikeforge-design":
        obj, sizes = obj.get("config"), obj.get("sizes")
        try:
            sizes = MemorySizes.from_json(sizes)
        except (TypeError, ValueError):
            raise GenerateError(f"the design manifest {source} has no valid memory "
                                f"sizes") from None
    else:
        sizes = MemorySizes()
    try:
        return AcceleratorConfig.from_json(obj), sizes, None
    except (TypeError, ValueError) as error:
        raise GenerateError(f"{source} is not an accelerator config: "
                            f"{' '.join(str(error).split())}") from None


def generate(source, out_dir, *, pes=None):
    """Generate the design of ``source`` into ``out_dir``; return a summary dict.

    Raises
    ------
    GenerateError
        The source is not a usable config, or its network fits no design.
    BundleError
        The source is not JSON and not a valid bundle.
    """
    began = time.perf_counter()
    config, sizes, network = _design(source, pes)
    try:
        paths = write_design(out_dir, config, sizes, network=network)
    except ProgramError as error:
        raise GenerateError(str(error)) from None
    return {
        "out": str(out_dir), "network": None if network is None else network.name,
        "config": config.to_json(), "sizes": sizes.to_json(),
        "files": {path.name: path.stat().st_size for path in paths},
        "seconds": round(time.perf_counter() - began, 3),
    }


def generate_lines(summary):
    """The human-readable report of :func:`generate`'s summary."""
    config = summary["config"]
    what = f" for {summary['network']}" if summary["network"] else ""
    lines = [f"wrote {summary['out']}{what}: {config['pes']} PEs, {config['weight_bits']}-bit "
             f"weights, {config['membrane_bits']}-bit membranes, {config['psum_bits']}-bit "
             f"partial sums, in {summary['seconds']:.1f} s"]
    lines.extend(f"  {name:<22} {size:>10,} bytes" for name, size in summary["files"].items())
    return lines

