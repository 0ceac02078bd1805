"""One sizing policy: every command builds the identical design for the same bundle and options.

Each command runs in-process on the shipped digits bundle (which fits the PYNQ-Z2 board
design) while every ``Top`` constructed and every program laid out is recorded, whichever
module builds it. The designs seen must be one and the same for ``simulate``, ``generate``,
``energy``, ``bench sim``, ``build`` and ``synth``, and ``regress`` must declare its digits
case on it; the Verilog ``generate`` writes must be that design's.
"""

import hashlib
import sys

import pytest

import spikeforge.rtl.program as program_module
from spikeforge.boards.synth import SynthError
from spikeforge.golden import network_from_parts, network_to_parts, read_bundle
from spikeforge.golden.network import OUTPUT_MEMBRANE_BITS
from spikeforge.rtl.sizing import (BOARD_DESIGNS, Design, MemorySizes, design_for, fitted,
                                    for_board)
from spikeforge.rtl.top import Top
from spikeforge.sim.regress import shipped_bundles, suite
from spikeforge.sim.verilog import TOP_NAME, verilog_text
from spikeforge.tools.cli import main
from spikeforge.data.evaluate import default_bundle_path


@pytest.fixture
def recorded(monkeypatch):
    """A list that gets the :class:`Design` of every ``Top`` and every ``build_program``."""
    seen = []
    original_init = Top.__init__

    def init(self, *, config, sizes=MemorySizes(), **rest):
        seen.append(Design(config, sizes))
        original_init(self, config=config, sizes=sizes, **rest)

    monkeypatch.setattr(Top, "__init__", init)
    original_build = program_module.build_program

    def build(network, config, sizes):
        seen.append(Design(config, sizes))
        return original_build(network, config, sizes)

    # Every module that imported the function by name gets the recording one.
    for module in list(sys.modules.values()):
        if (getattr(module, "__name__", "").startswith("spikeforge")
                and getattr(module, "build_program", None) is original_build):
            monkeypatch.setattr(module, "build_program", build)

    def no_yosys(*args, **kwargs):
        raise SynthError("stopped by the test before Yosys")

    monkeypatch.setattr("spikeforge.boards.device.synthesize", no_yosys)
    return seen


def _designs(recorded, argv):
    recorded.clear()
    main(argv)
    return set(recorded)


def test_every_command_builds_the_board_design(recorded, tmp_path, capsys):
    bundle = str(default_bundle_path())
    board = BOARD_DESIGNS["pynq-z2"]
    commands = {
        "simulate": ["simulate", bundle, "--images", "1", "--json"],
        "generate": ["generate", bundle, "--out", str(tmp_path / "generated")],
        "energy": ["energy", bundle, "--images", "1", "--json"],
        "bench sim": ["bench", "sim", "--images", "1", "--simulators", "amaranth", "--json"],
        "build": ["build", "--board", "pynq-z2", "--top", "ps", "--bundle", bundle,
                  "--out", str(tmp_path / "built")],
        "synth": ["synth", "--board", "pynq-z2", "--top", "ps"],
    }
    seen = {name: _designs(recorded, argv) for name, argv in commands.items()}
    capsys.readouterr()
    expected = {name: {board} for name in commands}
    # energy compares the two first-layer blocks: the board design with each, as simulate
    # --first-layer builds them.
    pim = design_for(read_bundle(bundle), first_layer="pim")
    assert pim.config.first_layer == "pim" and pim.sizes == board.sizes
    expected["energy"] = {board, pim}
    assert seen == expected
    assert _designs(recorded, ["simulate", bundle, "--images", "1", "--first-layer", "pim",
                               "--json"]) == {pim}
    # generate's Verilog is the design's (recorded's Top is the one converted).
    written = (tmp_path / "generated" / f"{TOP_NAME}.v").read_text()
    assert hashlib.sha256(written.encode()).hexdigest() == hashlib.sha256(
        verilog_text(board.config, board.sizes).encode()).hexdigest()


def test_regress_declares_the_same_design():
    network = read_bundle(default_bundle_path())
    cases, _ = suite("full")
    case = next(c for c in cases if c.name == "digits_snn-pes64-w16")
    assert Design(case.config, case.sizes) == design_for(network, pes=64)
    assert design_for(network, pes=64) == BOARD_DESIGNS["pynq-z2"]


def test_every_shipped_bundle_runs_on_the_board_design():
    # The board design is the one design for the chip: each shipped bundle fits it (memories
    # and the top's sizes alike), so design_for never falls back to a fitted design for them;
    # the two trained for 4-bit membranes shift their currents and get it with the shifter,
    # and also fit it with 4-bit membrane memories.
    paths = shipped_bundles()
    assert len(paths) == 9
    board = BOARD_DESIGNS["pynq-z2"]
    narrow = {"indian_pines_3d_m4": 4, "mnist_vgg_m4": 4, "mnist_vgg_w2_m3": 3}
    for path in paths:
        network = read_bundle(path)
        if path.stem in narrow:
            bits = narrow[path.stem]
            assert network.membrane_bits == bits, path.stem
            shifter = for_board("pynq-z2", current_shifter=True)
            assert design_for(network) == shifter, path.stem
            assert not board.config.fits(network), path.stem
            assert design_for(network, membrane_bits=bits) == for_board(
                "pynq-z2", membrane_bits=bits)
        else:
            assert board.config.fits(network), path.stem
            assert design_for(network) == board, path.stem


def test_narrow_membrane_memories_are_the_board_design_but_for_their_width():
    # --membrane-bits asks for the board design with other membrane memories; a network with
    # wider membranes than asked is refused rather than given a silently wider design.
    network = read_bundle(default_bundle_path())  # 16-bit membranes
    board = BOARD_DESIGNS["pynq-z2"]
    wide = design_for(network, membrane_bits=24)
    assert wide.sizes == board.sizes and wide.config.membrane_bits == 24
    assert wide.config.to_json() == {**board.config.to_json(), "membrane_bits": 24}
    with pytest.raises(ValueError, match=r"^network 'digits_snn' has 16-bit membranes, wider "
                                         r"than the 4-bit membrane memories asked for$"):
        design_for(network, membrane_bits=4)


def test_narrow_designs_and_shifting_networks_get_the_current_shifter():
    # Networks trained for narrow membranes shift their currents (docs/neuron.md section 2):
    # the board's narrower designs carry the shifter, the 16-bit one only when asked; those
    # narrower than OUTPUT_MEMBRANE_BITS also keep the output layer's sum in a memory that
    # wide (what the narrow-membrane presets train), the 8-bit one and wider do not.
    board = BOARD_DESIGNS["pynq-z2"]
    assert not board.config.current_shifter
    narrow = for_board("pynq-z2", membrane_bits=4).config
    assert narrow.to_json() == {**board.config.to_json(), "membrane_bits": 4,
                                "current_shifter": True,
                                "output_membrane_bits": OUTPUT_MEMBRANE_BITS}
    assert for_board("pynq-z2", membrane_bits=OUTPUT_MEMBRANE_BITS).config.to_json() == {
        **board.config.to_json(), "membrane_bits": OUTPUT_MEMBRANE_BITS,
        "current_shifter": True}
    assert not for_board("pynq-z2", membrane_bits=16).config.current_shifter
    manifest, arrays = network_to_parts(read_bundle(default_bundle_path()))
    manifest["layers"][0]["neuron"]["current_shift"] = 2
    shifting = network_from_parts(manifest, arrays)
    assert not board.config.fits(shifting)
    design = design_for(shifting)
    assert design.sizes == board.sizes
    assert design.config.to_json() == {**board.config.to_json(), "current_shifter": True}


def test_a_wider_output_layer_gets_its_own_memory_only_in_designs_asked_narrow():
    # mnist_vgg_m4: 4-bit hidden membranes, an 8-bit output sum. The board's 4-bit design
    # holds the sum in its 8-bit output memory; a design grown to the network keeps one
    # 16-bit membrane memory unless narrow memories were asked for, and then grows only the
    # output memory, never the narrow one.
    network = next(read_bundle(p) for p in shipped_bundles() if p.stem == "mnist_vgg_m4")
    assert network.layer_membrane_bits(network.output_layer) == OUTPUT_MEMBRANE_BITS
    narrow = design_for(network, membrane_bits=4).config
    assert (narrow.membrane_bits, narrow.output_membrane_bits) == (4, OUTPUT_MEMBRANE_BITS)
    grown = fitted(network).config
    assert (grown.membrane_bits, grown.output_membrane_bits) == (16, None)
    asked = fitted(network, membrane_bits=4).config
    assert (asked.membrane_bits, asked.output_membrane_bits) == (4, OUTPUT_MEMBRANE_BITS)
    assert asked.fits(network) and grown.fits(network)
    wider = fitted(network, membrane_bits=4, output_membrane_bits=12).config
    assert (wider.membrane_bits, wider.output_membrane_bits) == (4, 12)
    # As every fixed limit below the network's need, a too narrow output memory grows.
    raised = fitted(network, membrane_bits=4, output_membrane_bits=6).config
    assert (raised.membrane_bits, raised.output_membrane_bits) == (4, OUTPUT_MEMBRANE_BITS)
