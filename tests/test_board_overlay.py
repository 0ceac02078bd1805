"""The ``overlay/`` folder of ``spikeforge build --top ps`` (``boards/overlay.py``).

The driver package must run on a PYNQ image (Python 3.8 syntax; standard library, NumPy and
``pynq`` only), and the notebook must run: it is executed here with nbclient in a real
Jupyter kernel, against a fake ``pynq`` whose overlay is the Amaranth simulation of the PS
top (``tests/board_fake_pynq.py``), and what it prints is checked against the golden model.
"""

import ast
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from board_cases import SMALL_BOARD, digits, expectations
from spikeforge.tools.cli import main

HERE = Path(__file__).parent
BOARD_PYTHON = (3, 8)
ALLOWED = set(sys.stdlib_module_names) | {"numpy", "pynq"}

# A stand-in for the board's pynq package: the overlay is the simulated PS top of the
# design in the build folder's manifest.json.
FAKE_PYNQ = '''\
import json
from pathlib import Path

from board_fake_pynq import SimulatedPynq
from spikeforge.boards.ps_top import PSTop
from spikeforge.rtl.config import AcceleratorConfig
from spikeforge.rtl.sizing import MemorySizes

MANIFEST = Path({manifest!r})
allocate = SimulatedPynq.allocate


class Overlay:
    def __init__(self, bitfile):
        assert Path(bitfile).name == "spikeforge.bit", bitfile
        manifest = json.loads(MANIFEST.read_text())
        config = AcceleratorConfig.from_json(json.dumps(manifest["config"]))
        sizes = MemorySizes.from_json(manifest["sizes"])
        self._board = SimulatedPynq(PSTop(config=config, sizes=sizes)).__enter__()
        self.spikeforge_0 = type("IP", (), {{"mmio": self._board.mmio}})()
        self.dma = self._board.dma
'''


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("ps")
    config = out.parent / "small.json"
    config.write_text(json.dumps(SMALL_BOARD.to_json()))
    assert main(["build", "--top", "ps", "--config", str(config), "--out", str(out)]) == 0
    return out


def test_driver_package_runs_on_a_pynq_image(build):
    package = build / "overlay" / "spikeforge_driver"
    sources = sorted(package.glob("*.py"))
    assert [path.name for path in sources] == ["__init__.py", "driver.py", "regmap.py"]
    for path in sources:
        tree = ast.parse(path.read_text(), filename=str(path), feature_version=BOARD_PYTHON)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
    # One register map: the board's copy is boards/regmap.py itself.
    from spikeforge.boards import regmap
    assert (package / "regmap.py").read_text() == Path(regmap.__file__).read_text()
    assert (build / "overlay" / "program.json").read_text() == (build / "program.json").read_text()


def test_readme_says_how_to_get_onto_the_board(build):
    readme = (build / "overlay" / "README.md").read_text()
    for step in ("build.sh", "scp -r overlay", "spikeforge.ipynb", "PYNQ v2.7 or v3.0",
                 "spikeforge.bit", "spikeforge.hwh"):
        assert step in readme, step
    assert "cp spikeforge.bit spikeforge.hwh overlay/" in (build / "build.sh").read_text()


def test_notebook_runs_against_the_simulated_board(build, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    fake = tmp_path / "fake"
    (fake / "pynq").mkdir(parents=True)
    (fake / "pynq" / "__init__.py").write_text(
        FAKE_PYNQ.format(manifest=str(build / "manifest.json")))
    monkeypatch.setenv("PYTHONPATH", f"{fake}:{HERE}")
    overlay = build / "overlay"
    notebook = nbformat.read(overlay / "spikeforge.ipynb", as_version=4)
    nbformat.validate(notebook)
    # One image: a simulated run takes seconds where the board takes microseconds.
    parameters = notebook.cells[1]
    assert re.search(r"^IMAGES = None$", parameters.source, re.M)
    parameters.source = parameters.source.replace("IMAGES = None", "IMAGES = 1")
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(overlay)}}).execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells
                      if cell.cell_type == "code" for output in cell.outputs)

    network, images = digits(1)
    expect = expectations(network, images)
    data = np.load(overlay / "test_images.npz")
    assert np.array_equal(data["images"][0], images[0])  # the notebook's first image
    labels = data["labels"]
    correct = int(expect["predictions"][0] == labels[0])
    cycles = expect["cycles"][0]
    assert "4 PEs, 1 test images\n" in printed
    assert f"accuracy {correct:.4f} ({correct} of 1)\n" in printed
    assert f"latency {cycles} cycles = {cycles / 125:.1f} us at 125 MHz;" in printed
