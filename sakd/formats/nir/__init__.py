"""NIR (Neuromorphic Intermediate Representation, ``nir`` 1.0.x): the writer, the graph
composition and the reader for the IR, as one registered format.

Modules: ``write`` (``ir_to_nir``, ``write_nir``), ``compose`` (linear chains between neurons as one
projection), ``read`` (``import_nir``, ``read_nir``), ``inspect`` (``sakd inspect``), ``common``.

Writing (``ir_to_nir``, ``write_nir``) turns any IR network into a NIR graph that stands on its
own; reading (``import_nir``, ``read_nir``) turns a NIR graph (ours, or one exported by
spikingjelly, snnTorch, Norse, sinabs...) back into an IR network, quantizing float weights.

Conventions (shared/spec/fixed-point.md §3)
-------------------------------------------

**Time.** NIR is continuous-time. Both directions use **forward Euler at a time step dt** and,
for the current-based neuron, update the current first and then the voltage with the new current:

    I[t] = I[t-1] + (dt/τ_syn)·(−I[t-1] + w_in·X[t])
    v[t] = v[t-1] + (dt/τ_mem)·(v_leak − v[t-1] + r·I[t]);   spike iff v[t] > v_threshold; v ← v_reset

The writer uses ``dt = 1e-4`` (``DEFAULT_DT``), the convention of spikingjelly's and snnTorch's
exporters and of NIR's Lava examples, so that their importers read our files at their defaults.
(Only τ/dt matters; one dt across writer, reader and peers avoids a silent factor of 10.)

**Loihi neuron → NIR** (fixed-point.md §3.3): dt/τ_syn = (du + 1)/4096, dt/τ_mem = dv/4096,
w_in = τ_syn/dt, r = τ_mem/dt, v_leak = 0, v_reset = 0. Then Euler gives exactly Lava's
recursion ``u = (1 − (du+1)/4096)·u + X``, ``v = (1 − dv/4096)·v + u`` (without the truncation
toward zero of each decay product). The node used for each population is the faithful one:

| population | NIR node(s) |
|---|---|
| spiking, dv > 0 | ``CubaLIF`` |
| spiking, dv = 0, du = 4095 | ``IF(r = 1/dt)`` (τ_mem = ∞ has no finite CubaLIF form) |
| spiking, dv = 0, du < 4095 | ``LI(τ_syn, r = 1/α)`` → ``IF`` (the LI is the synaptic current) |
| readout, dv > 0 | ``CubaLI`` (never fires) |
| readout, dv = 0, du = 4095 | ``I(r = 1/dt)`` (integrator: v sums its input) |
| readout, dv = 0, du < 4095 | ``LI`` → ``I`` |

**Units: the graph is the integer network.** Currents and voltages are in *weight units*:
``I = u_int / 64`` and ``v = v_int / 64`` (Lava's ``act_shift = 6``). So the Affine/Linear/Conv2d
weights are the IR's integer weights (times ``2^weight_exp`` for dense projections; the floor of a
negative exponent is not represented), ``v_threshold = vth`` (an integer: ``v_int > vth << 6``
⟺ ``v > vth``), and a population's bias ``bias_mant << bias_exp`` enters as ``(bias_mant <<
bias_exp) / 64`` per step, exactly (a power-of-two division). The graph's input is the encoded
integer input ``x_int`` of the IR (``clip(round(x · input.scale))`` for a graded input, recorded
in the metadata). A population's float scale S (``v_int ≈ 64·S·V_float``) is in the metadata:
divide by S to get the float SNN's units.

**Bias.** NIR's neurons have no bias input: the bias goes into the ``bias`` of one incoming
Affine/Conv2d node (the first projection into the population; a per-neuron bias of a
convolutional population, which Conv2d's per-channel bias cannot hold, goes into ``v_leak``
instead: ``β·v_leak`` per step). With du < 4095 the bias goes into ``v_leak`` (an Affine bias
would be filtered by the synaptic current); with du < 4095 and dv = 0 a nonzero bias has no exact
NIR form and is refused.

**Timing.** NIR edges are instantaneous: a NIR time step runs the graph from input to output
(snnTorch, spikingjelly, Norse and nirtorch execute it so). The IR adds one step per synapse and
balances converging paths with projection delays; shifting each population by its latency ℓ_p
maps one onto the other exactly (population p's window ``1 + ℓ_p .. T + ℓ_p`` ↔ NIR steps 1..T),
so in the default ``timing="layered"`` the IR's delays are implicit: **no Delay nodes**, and the
reader re-derives them by balancing. (A ``Delay`` of d·dt on a residual shortcut would put it one
step out of line in every layered backend.) ``timing="lava"`` writes the IR's delays as ``Delay``
nodes of ``delay·dt`` after each projection with delay > 0, for backends that add one step per
synapse node as Lava's Dense/Conv do; the reader then takes them literally.

**Other NIR 1.0.8 quirks.** ``Conv2d``'s type inference uses ``Cin/groups`` as the input's
channels, so a grouped convolution fails ``nir.read`` with type checking: grouped convolutions
are written with ``groups = 1`` and a block-diagonal kernel (exact). A dense projection from a
(C,H,W) source reads it through a ``Flatten(start_dim=0)`` node (C,H,W order, as the IR).

**Metadata** (advisory per NIR; the graph stands on its own): ``generator = "sakd"``, ``dt``,
``timing``, ``units`` and ``sakd`` (JSON: the IR's names, scales, origins, bias exponents, groups,
delays, input encoding, target and network metadata). The reader uses it **only for our own
files**, for what the equations cannot give back (names, scales, origins, the bias_exp split,
groups, non-minimal delays, the input encoding and the metadata), so that reading our own file
returns a network that ``equals`` the original. ``trust_metadata=False`` reads it like any file.

Reading files from others
-------------------------

``import_nir(path_or_graph, dt=1e-4, ...)`` reads the graph by the equations above at the given
dt. spikingjelly and snnTorch write for dt = 1e-4 (``r = τ/dt``; IF with ``r = 1/dt``); sinabs
writes for dt = 1 (IF with ``r = 1``): pass ``dt=1`` for sinabs files. Supported: ``Input``,
``Output``, ``Affine``, ``Linear``, ``Conv2d``, ``Flatten``, ``SumPool2d``/``AvgPool2d`` (folded
into the adjacent projection; on their own they become a depthwise projection), ``Delay``,
neurons ``LIF``, ``IF``, ``CubaLIF`` (spiking) and ``LI``, ``CubaLI``, ``I`` (only as the readout,
or an ``LI`` as the synaptic current of the next neuron), and converging edges (summed). A chain
of linear nodes between two neurons becomes one projection (composed exactly; conv structure is
kept for pool+conv, otherwise a dense matrix up to 2^24 entries).

- Per population: α = dt/τ_syn (1 without a current state) → ``du = round(4096 α) − 1``;
  β = dt/τ_mem → ``dv = round(4096 β)`` (0 for IF/I); the gain g from the synaptic input to v per
  step (LIF: β·r; IF: dt·r; CubaLIF: α·w_in·β·r). Decays are rounded to 1/4096 (reported).
- Float weights get one integer scale S per population, as the exporter does
  (sakd.export.quantize): the largest even S with every ``|S·g·W| ≤ 254``, ``S·θ ≤ 2^17 − 1``,
  (graded input) the worst synaptic sum within 2^17 − 1, and the bias within range;
  ``W_int = 2·round(S·g·W/2)``, ``vth = round(S·θ)``, bias ``≈ 64·S·(g·b + β·v_leak)``.
- Spike rule: NIR's ``v > θ`` is Lava's strict ``>``, kept by default. ``firing=">="`` reads the
  file as its source framework meant it (spikingjelly and sinabs fire on ``v ≥ θ``):
  ``vth = ceil(S·θ) − 1``, exact when v moves in multiples of 64 (IF with integer weights).
- Readout: an integrating node (``LI``/``CubaLI``/``I``) before ``Output`` becomes the readout; a
  spiking neuron before ``Output`` keeps its spikes and gets a spike-count readout (identity
  weights 2, du = 4095, dv = 0: argmax of the spike counts); a projection straight into
  ``Output`` becomes an integrating readout (argmax of the summed output).
- Not representable, refused with :class:`NirImportError` naming the node: ``Threshold``,
  ``Scale``, ``Conv1d``, nested graphs (recurrent layers), recurrent edges, unknown nodes,
  ``v_reset ≠ 0``, non-uniform τ/θ/r/w_in, τ < dt (Euler unstable), a reset by subtraction
  recorded in metadata, an integrating node inside the network.
- A bias that passes through a leaky synaptic current (α < 1) is applied at its steady-state
  value (reported): the IR adds the bias to v directly.

The network's ``metadata["nir_import"]`` (foreign files) and ``NirImport.assumptions`` say what
was assumed: dt, spike rule, timing, input encoding, rounded decays, scales, clipped weights.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from sakd.formats.base import Format
from sakd.formats.nir.common import DEFAULT_DT, FIRING_RULES, NirExportError, NirImportError
from sakd.formats.nir.inspect import inspect_nir
from sakd.formats.nir.read import NirImport, import_nir, read_nir
from sakd.formats.nir.write import SUPPORT, ir_to_nir, write_nir


def detect(path: Path) -> bool:
    """A NIR file: HDF5 with a ``version`` dataset and a ``node`` group (``nir.write``)."""
    try:
        with h5py.File(path, "r") as f:
            return "version" in f and "node" in f
    except (OSError, RuntimeError, ValueError):
        return False


FORMAT = Format(
    name="nir", title="NIR", suffixes=(".nir",), file_name="network.nir", supports=SUPPORT,
    detect=detect, read=read_nir, write=write_nir, inspect=inspect_nir,
    read_options=("dt", "firing", "input_encoding", "input_bits", "input_scale", "time_steps"),
    description="the Neuromorphic Intermediate Representation (nir 1.0): the integer network "
                "as a graph any NIR framework reads (spikingjelly, snnTorch, Norse, sinabs, ...)",
)

__all__ = ["DEFAULT_DT", "FIRING_RULES", "FORMAT", "NirExportError", "NirImport", "NirImportError",
           "import_nir", "ir_to_nir", "read_nir", "write_nir"]
