"""spikeforge.train: PyTorch training, conversion and export (needs the [train] extra).

The public entry point for a network of your own is :func:`from_torch` (``docs/api.md``); it and
:class:`UnmappableModule` / :class:`TorchResult` load :mod:`spikeforge.train.api` (and torch)
on first use, so importing a torch-free submodule of this package stays torch-free.
"""

__all__ = ["from_torch", "TorchResult", "UnmappableModule"]


def __getattr__(name):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
