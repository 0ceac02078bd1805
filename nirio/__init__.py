"""NIR (the Neuromorphic Intermediate Representation, PyPI ``nir`` 1.0.8) in and out.

* :func:`write_graph` / :func:`export_graph` -- a :class:`~spikeforge.golden.Network` as a NIR
  graph under the convention of ``docs/nir.md`` (one NIR step = one timestep, ``dt = 1``),
  with a per-node verdict on whether NIR's own semantics reproduce the golden model exactly;
* :func:`read_graph` / :func:`import_graph` -- a NIR graph as a ``Network``: spikeforge's own
  export back to the identical network, any other graph only where the integer contract
  reproduces its semantics (otherwise :class:`NIRError` names the node and the reason).

Only ``spikeforge.golden`` is imported from the project (layer rule: golden <- nir); the
``nir`` package is imported when a function runs, so ``import spikeforge.nir`` needs no extra.
"""

from .common import NIRError
from .exporter import export_graph, write_graph
from .importer import import_graph, load_graph, read_graph

__all__ = ["NIRError", "export_graph", "import_graph", "load_graph", "read_graph", "write_graph"]
