"""The accelerator as Verilog: the text, its JSON manifest and a program's memory images.

:func:`verilog_text` converts :class:`~spikeforge.rtl.top.Top` with ``amaranth.back.verilog``
(module :data:`TOP_NAME`, no source locations, so that the text depends only on the design).
:func:`write_design` writes what ``spikeforge generate`` promises: ``TOP_NAME.v``,
``manifest.json`` (the config, the memory sizes, the ports and the host port's memory map)
and, for a program, one ``$readmemh`` file per loadable memory (``weights.hex``,
``biases.hex``, ``descriptors.hex``: one word per line, in the host port's word format,
``rtl/host_port.py``). The same inputs give byte-identical files.

Which design (config and memory sizes) a network gets is ``rtl/sizing.py``'s one policy.
"""

import json
from dataclasses import asdict
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from ..rtl.host_port import HostMemory, host_words, word_bits
from ..rtl.program import build_program
from ..rtl.top import Top

__all__ = [
    "TOP_NAME",
    "verilog_text",
    "design_manifest",
    "memory_files",
    "write_design",
]

#: Module name of the generated Verilog (and the cocotb toplevel).
TOP_NAME = "spikeforge_top"


def verilog_text(config, sizes, *, fault=None, top=None):
    """The Verilog of ``Top(config=config, sizes=sizes, fault=fault)`` (module
    :data:`TOP_NAME`).

    ``top`` converts an existing, not yet elaborated ``Top`` instead.
    """
    if top is None:
        top = Top(config=config, sizes=sizes, fault=fault)
    return verilog.convert(top, name=TOP_NAME, emit_src=False)


def _ports(top):
    """``{verilog port name: [direction, width]}`` of the top level."""
    ports = {"clk": ["input", 1], "rst": ["input", 1]}
    for path, member, _ in top.signature.flatten(top):
        direction = "input" if member.flow == wiring.In else "output"
        ports["__".join(str(part) for part in path)] = [direction,
                                                       Shape.cast(member.shape).width]
    return ports


def design_manifest(top, *, program=None):
    """The JSON manifest of the design ``top`` (and of the program, when given)."""
    memories = {
        HostMemory.WEIGHTS: top.weights, HostMemory.BIASES: top.biases,
        HostMemory.DESCRIPTORS: top.descriptors, HostMemory.PIXELS: top.pixels,
        HostMemory.MEMBRANES: top.membranes, HostMemory.SPIKE_COUNTS: top.spike_counts,
    }
    manifest = {
        "format": "spikeforge-design", "format_version": 1, "top": TOP_NAME,
        "config": top.config.to_json(), "sizes": top.sizes.to_json(),
        "host_memories": {which.name.lower(): {"select": which.value, "depth": data.depth,
                                               "width": word_bits(data.shape)}
                          for which, data in memories.items()},
        "host_read_latency": 1,
        "ports": _ports(top),
    }
    if program is not None:
        manifest["program"] = {
            "network": program.network.name,
            "layers": [asdict(plan) for plan in program.layers],
            "files": {name: {"memory": which.name.lower(), "words": len(words)}
                      for name, (which, words) in _program_words(program, top).items()},
        }
    return manifest


def _program_words(program, top):
    words = host_words(program, top.sequencer.descriptor_layout)
    return {f"{which.name.lower()}.hex": (which, words[which])
            for which in (HostMemory.WEIGHTS, HostMemory.BIASES, HostMemory.DESCRIPTORS)}


def memory_files(program, top):
    """``{file name: text}``: the ``$readmemh`` images of the program's loadable memories."""
    widths = {HostMemory.WEIGHTS: top.weights, HostMemory.BIASES: top.biases,
              HostMemory.DESCRIPTORS: top.descriptors}
    files = {}
    for name, (which, words) in _program_words(program, top).items():
        digits = -(-word_bits(widths[which].shape) // 4)
        files[name] = "".join(f"{word:0{digits}x}\n" for word in words)
    return files


def write_design(out_dir, config, sizes, *, network=None):
    """Write the Verilog, the manifest and (for a network) the memory images into ``out_dir``.

    Returns the written paths, in a fixed order.

    Raises
    ------
    rtl.program.ProgramError
        ``network`` does not fit the design.
    """
    out = Path(out_dir)
    program = None if network is None else build_program(network, config, sizes)
    top = Top(config=config, sizes=sizes)
    manifest = design_manifest(top, program=program)
    texts = {"manifest.json": json.dumps(manifest, indent=2) + "\n"}
    if program is not None:
        texts.update(memory_files(program, top))
    # Converting elaborates the design: the manifest and the images are taken first.
    texts = {f"{TOP_NAME}.v": verilog_text(config, sizes, top=top), **texts}
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        path = out / name
        path.write_text(text, encoding="utf-8", newline="\n")
        paths.append(path)
    return paths
