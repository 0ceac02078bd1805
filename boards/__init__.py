"""spikeforge.boards: placeholder package; its issue fills it in."""
