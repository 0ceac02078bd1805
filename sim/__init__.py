"""spikeforge.sim: placeholder package; its issue fills it in."""
