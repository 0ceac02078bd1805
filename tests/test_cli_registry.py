"""The command line as registered commands (``tools/cli.py`` COMMANDS, ``tools/options.py``)."""

import importlib
from pathlib import Path

import pytest

from spikeforge.tools.cli import COMMANDS, main

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _leaves():
    for name, entry in COMMANDS.items():
        if isinstance(entry, str):
            yield [name], entry
        else:
            for member, module in entry[1].items():
                yield [name, member], module


LEAVES = list(_leaves())


@pytest.mark.parametrize("words, module_name", LEAVES, ids=[" ".join(w) for w, _ in LEAVES])
def test_every_command_module_has_the_interface_and_its_help_runs(capsys, words, module_name):
    module = importlib.import_module(f"spikeforge.tools.{module_name}")
    assert isinstance(module.HELP, str) and isinstance(module.DESCRIPTION, str)
    assert callable(module.add_arguments) and callable(module.run)
    with pytest.raises(SystemExit) as stop:
        main([*words, "--help"])
    assert stop.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert " ".join(module.DESCRIPTION.split()[:6]) in help_text


def test_the_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(f"    {name} " in out for name in COMMANDS)


def test_no_file_of_the_command_line_is_longer_than_400_lines():
    long = {path.name: n for path in TOOLS.glob("*.py")
            if (n := len(path.read_text().splitlines())) > 400}
    assert not long


@pytest.mark.parametrize("argv, message", [
    # The format's ranges (docs/bundle.md): weights 2..8 bits, inputs 1..16 bits.
    (["train", "digits-conv", "--out", "x.sfb", "--weight-bits", "9"],
     "argument --weight-bits: 9 is outside the supported weight bits 2..8"),
    (["nir", "import", "g.nir", "--out", "x.sfb", "--input-bits", "17"],
     "argument --input-bits: 17 is outside the supported input bits 1..16"),
    (["regress", "--pes", "8,0"], "argument --pes: 0 is not a positive number"),
    (["bench", "sim", "--simulators", "verilator,modelsim"],
     "argument --simulators: 'modelsim' is not one of verilator, icarus, amaranth"),
])
def test_shared_argument_types_refuse_in_one_sentence(capsys, argv, message):
    assert main(argv) == 2
    assert capsys.readouterr().err == f"spikeforge: error: {message}\n"
