"""sakd.hardware: what the chip runs, and a bit-accurate simulator of it.

numpy and h5py only (no torch, no spikingjelly), and Python 3.10 compatible, so that it also
runs inside the Lava reference environment. Submodules are not imported here (import what you
need):

- ``target``: ``TargetSpec`` and ``get_target`` -- every bit width and limit (``LOIHI2``).
- ``ir``: the IR (docs/ir.md) -- ``Input``, ``Population``, ``Projection``, ``Network``,
  ``IRError``, ``conv2d_output_shape``.
- ``netfile``: ``network.h5`` -- ``write_network``, ``read_network``, ``NetworkFileError``.
- ``simulator``: ``simulate(network, inputs, time_steps=T, ...) -> SimulationResult`` (readout v,
  predictions, exact counts, traces), ``readout_to_float``, and the pure integer step functions
  (``lif_step``, ``dense_synapse``, ``conv_synapse``, ``wrap24``, ``trunc_shift12``). Its
  optional torch backend imports torch only when used.
- ``counts``: ``NetworkCounts`` and friends, filled by the simulator.
- ``energy``: energy profiles applied to those counts.
- ``lava_runner`` / ``lava_bridge``: the same network on Intel Lava's bit-accurate models (the
  reference the simulator is checked against), run in the Python 3.10 Lava environment.
- ``atomic``: atomic file writes.
"""
