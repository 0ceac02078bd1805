"""spikeforge.data: the datasets a bundle is trained and tested on, and test-set evaluation.

* :mod:`~spikeforge.data.datasets` -- where the data lives (``--data-dir``, default
  ``../shared/datasets``), the digits and MNIST splits, :class:`DatasetError`;
* :mod:`~spikeforge.data.hsi` -- hyperspectral scenes: ``.mat`` reading, integer PCA, patches,
  random and spatially disjoint splits, OA / AA / kappa;
* :mod:`~spikeforge.data.evaluate` -- a bundle's test set and the golden model's accuracy and
  operation counts over it.

Layer rule: this package imports only :mod:`spikeforge.golden`; ``train``, ``sim``,
``boards`` and ``tools`` import it (``tests/test_import_direction.py``).
"""
