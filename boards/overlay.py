"""The ``overlay/`` folder of ``spikeforge build --top ps``: what goes onto the PYNQ board.

PYNQ images for the PYNQ-Z2 (v2.7, v3.0) run Python 3.8 / 3.10 on armv7l, where spikeforge
itself (Python >= 3.11, Amaranth, Yosys, SciPy) does not install. The folder therefore holds
everything the board needs and nothing else:

* ``spikeforge_driver/``: the driver as a package of its own, ``boards/driver.py`` and
  ``boards/regmap.py`` copied byte for byte (they import only the standard library, NumPy
  and, when opening an overlay, ``pynq``; the register map stays in one source);
* ``program.json``: the bundle's memory images (``boards/program_image.py``);
* ``test_images.npz``: the bundle's first test images (``images``, integer pixels) and their
  ``labels``, when the bundle names a dataset that is available;
* ``spikeforge.ipynb``: loads ``spikeforge.bit``, runs the test images, prints accuracy and
  latency;
* ``README.md``: the copy-to-board steps.

``build.sh`` copies ``spikeforge.bit`` and ``spikeforge.hwh`` into the folder once Vivado has
written them.
"""

import io
import json
from pathlib import Path

import numpy as np

__all__ = ["DRIVER_PACKAGE", "DRIVER_MODULES", "OVERLAY_IMAGES", "overlay_files",
           "notebook", "readme"]

#: The driver package's name on the board.
DRIVER_PACKAGE = "spikeforge_driver"
#: The modules of ``boards/`` that make up the driver package.
DRIVER_MODULES = ("driver.py", "regmap.py")
#: At most this many test images go into ``test_images.npz``.
OVERLAY_IMAGES = 1000

_HERE = Path(__file__).parent


def _code(source):
    return {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
            "source": source}


def _markdown(source):
    return {"cell_type": "markdown", "metadata": {}, "source": source}


def notebook(*, clock_hz, network_name):
    """The ``spikeforge.ipynb`` text (nbformat 4) for a design clocked at ``clock_hz``.

    Its first code cell holds the parameters: ``IMAGES`` (``None``: every test image) and
    ``CLOCK_HZ``.
    """
    cells = [
        _markdown(f"# spikeforge on the PYNQ-Z2: {network_name}\n\n"
                  "Loads the overlay (`spikeforge.bit` with `spikeforge.hwh`), writes the "
                  "network (`program.json`) and runs the test images of `test_images.npz` "
                  "through the AXI DMA; the hardware's predictions are compared with the "
                  "labels."),
        _code("# Parameters: IMAGES = None runs every test image, a number the first ones.\n"
              f"IMAGES = None\nCLOCK_HZ = {round(clock_hz)}"),
        _code("import numpy as np\n\n"
              f"from {DRIVER_PACKAGE} import Accelerator\n\n"
              "accelerator = Accelerator(\"spikeforge.bit\", \"program.json\")\n"
              "data = np.load(\"test_images.npz\")\n"
              "images, labels = data[\"images\"][:IMAGES], data[\"labels\"][:IMAGES]\n"
              "print(f\"{accelerator.lanes} PEs, {len(images)} test images\")"),
        _code("results = accelerator.run_many(images)\n"
              "predictions = np.array([result.prediction for result in results])\n"
              "cycles = np.array([result.cycles for result in results])\n"
              "seconds = np.array([result.seconds for result in results])\n"
              "accuracy = float(np.mean(predictions == labels))\n"
              "print(f\"accuracy {accuracy:.4f} ({int(np.sum(predictions == labels))} of "
              "{len(labels)})\")\n"
              "print(f\"latency {cycles.mean():.0f} cycles = {cycles.mean() / CLOCK_HZ * 1e6:.1f}"
              " us at {CLOCK_HZ / 1e6:g} MHz; {seconds.mean() * 1e3:.2f} ms per image as the "
              "host sees it\")"),
    ]
    document = {"cells": cells, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}
    for index, cell in enumerate(cells):
        cell["id"] = f"cell-{index}"
    return json.dumps(document, indent=1) + "\n"


def readme(*, network_name, clock_hz, images):
    """The overlay folder's ``README.md``; ``images`` is the number of test images (0: none)."""
    tests = (f"`test_images.npz` holds {images} test images and their labels." if images else
             "The bundle names no dataset available at build time, so there is no "
             "`test_images.npz`: put one there (`images`, `labels`) before running the "
             "notebook.")
    return f"""\
# spikeforge overlay: {network_name}

What the PYNQ-Z2 needs to run the accelerator ({clock_hz / 1e6:g} MHz), built by
`spikeforge build --top ps`. {tests}

## Steps

1. Where Vivado (2020.2 or later) is installed, run `../build.sh`. It writes
   `spikeforge.bit` and `spikeforge.hwh` beside `block_design.tcl` and copies both into this
   folder (`pynq.Overlay` needs the two with the same base name, side by side).
2. Boot the board with a PYNQ-Z2 image (PYNQ v2.7 or v3.0; the driver needs Python 3.8+,
   NumPy and the `pynq` package, all part of the image) and copy this folder over:
   `scp -r overlay xilinx@pynq:/home/xilinx/jupyter_notebooks/spikeforge`
   (user and password `xilinx`; use the board's IP address if `pynq` does not resolve).
3. Open `http://pynq:9090`, then `spikeforge/spikeforge.ipynb`, and run all cells: it prints
   the accuracy on the test images and the latency per image.

From Python on the board instead:

```python
from {DRIVER_PACKAGE} import Accelerator
accelerator = Accelerator("spikeforge.bit", "program.json")
result = accelerator.run(image)   # integer pixels, the network's input shape
result.prediction, result.cycles, result.spikes
```

The driver polls the accelerator's registers and the DMA channels against a deadline
(`Accelerator(..., timeout=5.0)`) and does not use interrupts. `program.json` belongs to this
bitstream: the driver refuses a program built for another design (`CONFIG_HASH`).
"""


def overlay_files(*, program, clock_hz, network_name, images=None, labels=None):
    """``{relative path: str or bytes}`` of the overlay folder (see the module docstring).

    ``images`` and ``labels`` (arrays of the same length) become ``test_images.npz``, at most
    :data:`OVERLAY_IMAGES` of them; without them there is no such file.
    """
    files = {f"{DRIVER_PACKAGE}/{name}": (_HERE / name).read_text() for name in DRIVER_MODULES}
    files[f"{DRIVER_PACKAGE}/__init__.py"] = (
        '"""spikeforge\'s PYNQ driver (copied from spikeforge/boards by spikeforge build)."""\n'
        "\nfrom .driver import Accelerator, DriverError, RunResult\n\n"
        '__all__ = ["Accelerator", "DriverError", "RunResult"]\n')
    files["program.json"] = json.dumps(program) + "\n"
    count = 0
    if images is not None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} test images but {len(labels)} labels")
        count = min(len(images), OVERLAY_IMAGES)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, images=np.asarray(images[:count]),
                            labels=np.asarray(labels[:count]))
        files["test_images.npz"] = buffer.getvalue()
    files["spikeforge.ipynb"] = notebook(clock_hz=clock_hz, network_name=network_name)
    files["README.md"] = readme(network_name=network_name, clock_hz=clock_hz, images=count)
    return files
