"""spikeforge.tools: the command line."""
