"""spikeforge.train: PyTorch training, conversion and export (needs the [train] extra)."""
