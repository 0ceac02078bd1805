"""spikeforge.rtl: placeholder package; its issue fills it in."""
