"""Hand-off Verilog: the ``.v`` files ``spikeforge build`` gives to Vivado.

Vivado reads a module reference's sources as Verilog-2005 (a SystemVerilog file cannot be
the top of a module reference, UG994), so the hand-off must not contain what Amaranth's
``Assert`` becomes in Verilog (immediate ``assert`` statements with ``$write``). Both
functions here convert through RTLIL exactly as ``amaranth.back.verilog`` does (``proc
-nomux -norom``, ``memory_collect``, the platform flow's attribute stripping,
``write_verilog -norename``) with one more step: ``delete t:$check`` removes the
assertion cells. The simulation and regression Verilog (``boards/designs.py``
``top_verilog``, ``sim/``) keep their assertions.

The conversion also gives every top-level port its *own* interface attributes:
Amaranth keys wire attributes by the nets a wire carries, so two output ports driven by
the same value (``s_axi_bresp`` and ``s_axi_rresp``, both the constant OKAY) would both
get the attributes of whichever port came last (:func:`port_attributes`).
"""

import re

from amaranth._toolchain.yosys import find_yosys
from amaranth.back import rtlil
from amaranth.lib import wiring

__all__ = ["INTERFACE_KEYS", "handoff_verilog", "handoff_plan", "port_attributes",
           "rtlil_to_handoff_verilog"]

#: The attributes Vivado reads from a module reference's ports to infer its interfaces.
INTERFACE_KEYS = ("X_INTERFACE_INFO", "X_INTERFACE_PARAMETER")

# Attributes the platform flow strips from its Verilog (amaranth.build.plat emit_verilog).
_INTERNAL_ATTRS = "-remove generator -remove top -remove src -remove amaranth.hierarchy " \
                  "-remove amaranth.decoding"


def _rtlil_string(text):
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def port_attributes(rtlil_text, module, attrs):
    """``rtlil_text`` with the interface attributes of ``module``'s ports set from ``attrs``.

    ``attrs`` maps a port name to the ``{key: string}`` its own signal carries; for each
    named port, every :data:`INTERFACE_KEYS` attribute the text gives it is dropped and the
    port's own are written instead (other attributes, such as ``init``, stay). Ports not in
    ``attrs`` and other modules are left as they are.
    """
    lines = rtlil_text.split("\n")
    out = []
    inside = False
    pending = []  # attribute lines waiting for the wire (or cell) they belong to
    wire = re.compile(r"\s*wire\b.*\b(?:input|output|inout) \d+\s+\\(\S+)$")
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("module "):
            inside = stripped == f"module \\{module}"
        if inside and stripped.startswith("attribute "):
            pending.append(line)
            continue
        match = wire.match(line) if inside else None
        if match and match[1] in attrs:
            indent = line[:len(line) - len(line.lstrip())]
            kept = [a for a in pending if a.split()[1].lstrip("\\") not in INTERFACE_KEYS]
            own = [f"{indent}attribute \\{key} {_rtlil_string(value)}"
                   for key, value in attrs[match[1]].items() if key in INTERFACE_KEYS]
            pending = kept + own
        out.extend(pending)
        pending = []
        out.append(line)
    out.extend(pending)
    return "\n".join(out)


def rtlil_to_handoff_verilog(rtlil_text):
    """Verilog-2005 text of ``rtlil_text`` without assertion cells (see the module docstring).

    Raises
    ------
    amaranth._toolchain.yosys.YosysError
        Yosys rejected the text.
    """
    # The builtin Yosys of amaranth[builtin-yosys] has no chformal; delete works on any cell.
    yosys = find_yosys(lambda version: version >= (0, 40))
    script = [f"read_rtlil <<rtlil\n{rtlil_text}\nrtlil", "proc -nomux -norom",
              "memory_collect", "delete t:$check", f"attrmap {_INTERNAL_ATTRS}",
              f"attrmap -modattr {_INTERNAL_ATTRS}", "write_verilog -norename"]
    # Yosys warns that not every process can be written as Verilog; Amaranth emits only
    # those that can and silences the same warning (amaranth.back.verilog).
    return yosys.run(["-q", "-"], "\n".join(script), ignore_warnings=True)


def handoff_verilog(component, name):
    """Hand-off Verilog of the ``wiring.Component`` ``component`` as module ``name``.

    Every port carries exactly the :data:`INTERFACE_KEYS` attributes of its own signal.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(f"Component must be a wiring.Component, not {component!r}")
    attrs = {"__".join(map(str, path)): dict(value.attrs)
             for path, _member, value in component.signature.flatten(component)}
    text = rtlil.convert(component, name=name, emit_src=False)
    return rtlil_to_handoff_verilog(port_attributes(text, name, attrs))


def handoff_plan(platform_class, design, name):
    """``platform_class().build(design, name=name, do_build=False)`` with the plan's
    ``<name>.v`` replaced by hand-off Verilog (the rest of the plan is the platform's)."""

    class HandoffPlatform(platform_class):
        # The plan's own RTLIL, so that the Verilog is converted from the same netlist.
        @property
        def file_templates(self):
            return {**super().file_templates, "{{name}}.il": "{{emit_rtlil()}}"}

    plan = HandoffPlatform().build(design, name=name, do_build=False)
    text = plan.files.pop(f"{name}.il")
    plan.files[f"{name}.v"] = ("/* Generated by spikeforge (boards/handoff.py): Verilog-2005, "
                               "no assertion cells. */\n" + rtlil_to_handoff_verilog(text))
    return plan
