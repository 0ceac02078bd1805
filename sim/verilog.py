"""The accelerator as Verilog: the text, its JSON manifest and a program's memory images.

:func:`verilog_text` converts :class:`~spikeforge.rtl.top.Top` with ``amaranth.back.verilog``
(module :data:`TOP_NAME`, no source locations, so that the text depends only on the design).
:func:`write_design` writes what ``spikeforge generate`` promises: ``TOP_NAME.v``,
``manifest.json`` (the config, the memory sizes, the ports and the host port's memory map)
and, for a program, one ``$readmemh`` file per loadable memory (``weights.hex``,
``biases.hex``, ``descriptors.hex``: one word per line, in the host port's word format,
``rtl/host_port.py``). The same inputs give byte-identical files.

:func:`fitted_config` sizes a config to a network (memories, widths, limits), so that a
shipped bundle can be generated and simulated without hand-tuning.
"""

import json
import math
from dataclasses import asdict, replace
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from ..golden.synapse import current_bound
from ..rtl.config import AcceleratorConfig, layer_positions
from ..rtl.host_port import HostMemory, host_words, word_bits
from ..rtl.program import ProgramError, build_program
from ..rtl.top import Top

__all__ = [
    "TOP_NAME",
    "DESIGN_SIZES",
    "fitted_config",
    "fitted_sizes",
    "verilog_text",
    "design_manifest",
    "memory_files",
    "write_design",
]

#: Module name of the generated Verilog (and the cocotb toplevel).
TOP_NAME = "spikeforge_top"
#: Top memory sizes of generated designs, unless a program needs more (:func:`fitted_sizes`).
DESIGN_SIZES = {"bias_depth": 64, "max_layers": 16, "pixel_depth": 4096, "pixel_bits": 16}


def _power_of_two(value):
    return 1 << max(0, math.ceil(math.log2(max(1, value))))


def fitted_config(network, *, pes=64, **fixed):
    """The default config for ``pes`` PEs, grown where ``network`` needs more.

    ``fixed`` sets any other config field (for instance wider membranes); a limit below
    what the network needs is still raised. Depths grow to powers of two.

    Raises
    ------
    ValueError
        The network does not fit whatever the sizes (a layer kind the RTL does not run);
        the message lists ``fits``'s reasons.
    """
    base = AcceleratorConfig(pes=pes, **fixed)
    layers = [layer for layer in network.layers if layer.type != "flatten"]
    T = network.timesteps
    max_pixel = (1 << network.input.bits) - 1
    psum = base.psum_bits
    for layer in layers:
        if layer.is_synaptic and layer.type != "conv3d":
            max_in = max_pixel if layer.is_direct_encoded else 1
            psum = max(psum, current_bound(layer.weight, layer.bias, max_in).bit_length() + 1)
        elif layer.type == "avgpool2d":
            psum = max(psum, math.prod(layer.kernel).bit_length() + 1)
    weight_bits = max([base.weight_bits] + [layer.weight_bits for layer in layers
                                            if layer.is_synaptic])
    positions = [layer_positions(layer) for layer in layers]
    output = network.output_layer
    positions.append(base.groups(output) * layer_positions(output))
    maps = [max(shape[1:]) for layer in layers for shape in (layer.in_shape, layer.out_shape)
            if len(shape) == 3]
    grown = replace(
        base, weight_bits=weight_bits, psum_bits=max(psum, weight_bits),
        membrane_bits=max(base.membrane_bits, network.membrane_bits),
        max_positions=max(base.max_positions, _power_of_two(max(positions))),
        max_in_channels=max([base.max_in_channels] + [layer.in_shape[0] for layer in layers]),
        max_out_channels=max([base.max_out_channels] + [layer.out_shape[0]
                                                        for layer in layers]),
        max_feature_size=max([base.max_feature_size] + maps),
        max_timesteps=max(base.max_timesteps, T),
        leak_multiplier=base.leak_multiplier or any(
            layer.neuron is not None and layer.neuron.leak.kind == "mul" for layer in layers))
    rows = sum(grown.weight_rows(layer) for layer in layers)
    bitmap = max([grown.spike_bitmap_bits(layer, T) for layer in layers
                  if layer.output == "spikes"], default=pes)
    config = replace(grown, weight_depth=max(grown.weight_depth, _power_of_two(rows)),
                     spike_memory_bits=max(grown.spike_memory_bits, _power_of_two(bitmap)))
    report = config.fits(network)
    for _ in range(4):  # what the sums above do not foresee (layouts of newer layer kinds)
        if report:
            return config
        more = {"weight_depth": 2 * config.weight_depth,
                "spike_memory_bits": 2 * config.spike_memory_bits,
                "psum_bits": min(64, config.psum_bits + 8)}
        if hasattr(config, "spike_bitmaps"):  # a residual shortcut needs a third bitmap
            more["spike_bitmaps"] = min(4, config.spike_bitmaps + 1)
        config = replace(config, **more)
        report = config.fits(network)
    if not report:
        raise ValueError(f"network {network.name!r} does not fit any {pes}-PE design: "
                         + "; ".join(report.reasons))
    return config


def fitted_sizes(network, config, sizes=None):
    """``sizes`` (default :data:`DESIGN_SIZES`) grown until ``network``'s program fits.

    The descriptor table, bias and pixel memories double together (at most six times);
    the last :class:`~spikeforge.rtl.program.ProgramError` is raised if it never fits.
    """
    sizes = dict(DESIGN_SIZES if sizes is None else sizes)
    sizes["pixel_bits"] = max(sizes["pixel_bits"], network.input.bits)
    sizes["pixel_depth"] = max(sizes["pixel_depth"],
                               _power_of_two(math.prod(network.input.shape)))
    for _ in range(6):
        try:
            build_program(network, config, **sizes)
            return sizes
        except ProgramError as error:
            problem = error
        for name in ("max_layers", "bias_depth", "pixel_depth"):
            sizes[name] *= 2
    raise problem


def verilog_text(config, sizes, *, fault=None, top=None):
    """The Verilog of ``Top(config=config, **sizes, fault=fault)`` (module :data:`TOP_NAME`).

    ``top`` converts an existing, not yet elaborated ``Top`` instead.
    """
    if top is None:
        top = Top(config=config, **sizes, fault=fault)
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
        "config": top.config.to_json(), "sizes": dict(sorted(top.sizes.items())),
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
    program = None if network is None else build_program(network, config, **sizes)
    top = Top(config=config, **sizes)
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
