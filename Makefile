# The two set-up commands of the README:
#   make demo   create .venv, install spikeforge with every extra, run the golden model on the
#               shipped digits SNN and print its accuracy, then run the RTL on 20 test images
#               against the golden model (every membrane write and spike, and the cycle model),
#               then write the model's HTML report and print its path (build/report/index.html)
#   make test   same set-up, then the linter (ruff) and the whole test suite (warnings are
#               errors)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Re-install only when the package metadata changes.
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[train,test,bench,cosim,nir,report]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spikeforge bundle info
	$(VENV)/bin/spikeforge golden --dataset digits
	$(VENV)/bin/spikeforge simulate --dataset digits --images 20
	$(VENV)/bin/spikeforge report --dataset digits --out build/report

test: $(STAMP)
	$(PY) -m ruff check --quiet .
	$(PY) -m pytest

bench: $(STAMP)
	$(VENV)/bin/spikeforge bench golden

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
