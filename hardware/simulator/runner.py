"""The simulator's runner: the schedule (one population at a time over all its steps), the staggered
reset, the counts, and the public ``simulate`` (see ``sakd.hardware.simulator`` for the semantics
and the exactness argument).

numpy only at import; Python 3.10 compatible.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..counts import NetworkCounts, PopulationCounts, ProjectionCounts
from ..errors import SakdError
from ..fixed_point import shift_exp
from ..ir import Network
from .backends import ProjectionPlan, SimulationInputError, make_ops
from .synapses import WRAP_HALF, conv_fanout, weight_bound

#: memory bound (bytes) of the state of one batch chunk when ``batch_size`` is None
AUTO_CHUNK_BYTES = 1 << 30


class SimulationOverflowError(SakdError):
    """Synaptic input or state beyond Lava's int32 state: the chip's result is undefined."""


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What one simulation returns (arrays are numpy, axis 0 or 1 the sample).

    ``readouts``: every readout population's readout state (CUBA-LIF: ``v``) at the end of its
    window (step T + its latency), int64 [B, *shape]. ``readout_v`` / ``predictions``: the same
    for the network's only readout (a classifier) and the argmax of its flattened values (ties ->
    lowest index); None when the network has several readouts. ``traces``: per recorded
    population its state variables and output ``s``, [T + L, B, *shape].
    """

    readouts: dict[str, np.ndarray]
    readout_v: np.ndarray | None
    predictions: np.ndarray | None
    counts: NetworkCounts
    traces: dict[str, dict[str, np.ndarray]]
    time_steps: int
    latency: int
    backend: str


@dataclass
class _Signal:
    """A source's output history: ``arr[i]`` is the output of global step ``t0 + i``; zero
    outside ``t0 .. t0 + n − 1``. ``static``: ``arr`` is one [B, ...] value held for all n steps."""

    arr: Any
    t0: int
    n: int
    static: bool = False


@dataclass
class _Plan:
    network: Network
    time_steps: int
    order: tuple[str, ...]
    latencies: dict[str, int]
    full: frozenset[str]
    record: tuple[str, ...]
    projections: dict[str, ProjectionPlan]
    prepared: dict[str, Any] = field(default_factory=dict)  # population -> model constants
    # populations whose static |a| bound exceeds what their model handles without a check
    checked: frozenset[str] = frozenset()


def _make_plan(network: Network, time_steps: int, record: tuple[str, ...], ops: Any) -> _Plan:
    lat = network.latencies
    spec = network.target
    # recorded populations and all their ancestors run every step (exact traces)
    full: set[str] = set()
    stack = list(record)
    while stack:
        name = stack.pop()
        if name in full or name == network.input.name:
            continue
        full.add(name)
        stack.extend(p.source for p in network.projections_into(name))
    projections: dict[str, ProjectionPlan] = {}
    for proj in network.projections:
        src = network.source_shape(proj.source)
        tgt = network.population(proj.target).shape
        if proj.kind == "dense":
            fanout = np.full(int(np.prod(src)), proj.weight.shape[0], np.int64)
            flops = int(proj.weight.size)
        else:
            fanout = conv_fanout(
                src, proj.weight.shape, proj.stride, proj.padding, proj.dilation, proj.groups
            ).reshape(-1)
            flops = int(np.prod(tgt)) * int(np.prod(proj.weight.shape[1:]))
        wsum = weight_bound(proj.weight)
        if proj.source == network.input.name:
            xmax = 1 << (network.input.bits - 1)
        else:
            bits = network.population(proj.source).message_bits
            xmax = 1 if bits == 1 else 1 << (bits - 1)
        if proj.kind == "conv2d":
            bound = min(wsum * xmax, WRAP_HALF)
        else:  # |floor(y / 2^k)| <= (|y| >> k) + 1
            bound = shift_exp(wsum * xmax, proj.weight_exp) + (proj.weight_exp < 0)
        plan = ProjectionPlan(proj, src, tgt, fanout, int(fanout.sum()), flops, wsum, bound)
        plan.prepared = ops.prepare(plan)
        projections[proj.name] = plan
    checked = frozenset(
        pop.name for pop in network.populations
        if sum(projections[p.name].a_bound for p in network.projections_into(pop.name))
        > pop.neuron.safe_input(spec)
    )
    prepared = {p.name: p.neuron.prepare(ops, p.shape, spec, p.is_readout)
                for p in network.populations}
    return _Plan(network, time_steps, network.topological_order(), lat, frozenset(full), record,
                 projections, prepared, checked)


def _run_chunk(plan: _Plan, ops: Any, x: np.ndarray, sequence: bool) -> dict[str, Any]:
    net, T = plan.network, plan.time_steps
    spec = net.target
    L = net.latency
    inp = net.input
    B = x.shape[1] if sequence else x.shape[0]
    xs = ops.asarray(x)
    signals: dict[str, _Signal] = {inp.name: _Signal(xs, 1, T, static=not sequence)}
    consumers = {name: len(net.projections_from(name)) for name in (inp.name, *plan.order)}
    result: dict[str, Any] = {"pop": {}, "proj": {}, "traces": {}, "readouts": {}}

    # input-side counts: window = steps 1..T
    if net.projections_from(inp.name):
        nz = xs != 0
        per_neuron = (nz.sum(0) if sequence else nz * T).reshape(B, -1)
        for proj in net.projections_from(inp.name):
            dot = ops.count_dot(per_neuron, plan.projections[proj.name].fanout)
            zero = np.zeros(B, np.int64)
            result["proj"][proj.name] = (zero, dot) if inp.encoding == "graded" else (dot, zero)

    for name in plan.order:
        pop = net.population(name)
        model = pop.neuron
        ell = plan.latencies[name]
        full = name in plan.full
        t0, n = (1, T + L) if full else (1 + ell, T)
        shape = pop.shape

        # summed synaptic input a for steps t0 .. t0 + n - 1: source step t - 1 - delay
        A = None
        for proj in net.projections_into(name):
            sig = signals[proj.source]
            d = proj.delay
            lo = max(t0 - 1 - d, sig.t0)
            hi = min(t0 + n - 2 - d, sig.t0 + sig.n - 1)
            if lo <= hi:
                if A is None:
                    A = ops.zeros((n, B) + shape)
                dst = slice(lo + 1 + d - t0, hi + 2 + d - t0)
                pplan = plan.projections[proj.name]
                if sig.static:  # the same input every step: one synapse evaluation
                    A[dst] += ops.synapse(pplan, sig.arr)[None]
                else:
                    src = sig.arr[lo - sig.t0 : hi - sig.t0 + 1]
                    k = hi - lo + 1
                    a = ops.synapse(pplan, src.reshape((k * B,) + src.shape[2:]))
                    A[dst] += a.reshape((k, B) + shape)
            consumers[proj.source] -= 1
            if consumers[proj.source] == 0:
                del signals[proj.source]

        # the neuron recursion, with the staggered reset (interval T, offset 1 + latency)
        binary = pop.message_bits == 1
        S = ops.zeros((n, B) + shape, boolean=binary)
        state = model.initial_state(ops, (B,) + shape)
        record = name in plan.record
        if record:
            tr = {var.name: ops.zeros((n, B) + shape) for var in model.state}
            tr["s"] = S
        prepared = plan.prepared[name]
        no_input = ops.zeros((B,) + shape) if A is None else None
        checked = name in plan.checked
        for i in range(n):
            t = t0 + i
            if (t - 1 - ell) % T == 0:
                state = model.initial_state(ops, (B,) + shape)
            a = A[i] if A is not None else no_input
            state, s = model.step(state, a, prepared)
            if checked:
                problem = model.overflow(state, a, ops, spec)
                if problem:
                    raise SimulationOverflowError(
                        f"population '{name}': {problem} (at step {t}). Reduce weight_exp, the "
                        f"input bits or the weights.")
            S[i] = s
            if record:
                for key in model.state:
                    tr[key.name][i] = state[key.name]
        if record:
            result["traces"][name] = {k: ops.numpy(val) for k, val in tr.items()}
        if pop.is_readout:
            result["readouts"][name] = ops.numpy(state[model.readout_state])

        # counts over the window (global steps 1 + ell .. T + ell)
        w0 = 1 + ell - t0
        s_win = S[w0 : w0 + T]
        fired = s_win if binary else s_win != 0
        per_step = ops.numpy(fired.reshape(T, B, -1).sum(-1)).T
        active_mask = fired if A is None else ((A[w0 : w0 + T] != 0) | fired)
        active = ops.numpy(active_mask.reshape(T, B, -1).sum((0, 2)))
        result["pop"][name] = (per_step.astype(np.int64), active.astype(np.int64))
        outgoing = net.projections_from(name)
        if outgoing:
            per_neuron = fired.sum(0).reshape(B, -1)
            for proj in outgoing:
                dot = ops.count_dot(per_neuron, plan.projections[proj.name].fanout)
                result["proj"][proj.name] = (dot, np.zeros(B, np.int64))
            signals[name] = _Signal(S, t0, n)
        del A
    return result


# ---------------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------------


def _check_inputs(network: Network, inputs: Any, time_steps: int, sequence: bool) -> np.ndarray:
    inp = network.input
    if hasattr(inputs, "detach") and hasattr(inputs, "cpu"):  # a torch tensor
        inputs = inputs.detach().cpu().numpy()
    try:
        arr = np.asarray(inputs)
    except Exception as exc:
        raise SimulationInputError(f"inputs are not an array: {exc}") from exc
    if arr.dtype.kind in "fc":
        if np.isnan(arr).any():
            raise SimulationInputError(f"inputs for input '{inp.name}' contain NaN")
        raise SimulationInputError(
            f"inputs for input '{inp.name}' have dtype {arr.dtype}; the simulator takes the encoded "
            f"integers: pass network.input.encode(x)"
        )
    if arr.dtype.kind not in "biu":
        raise SimulationInputError(
            f"inputs for input '{inp.name}' have non-integer dtype {arr.dtype}"
        )
    expected = ("T", "B") + inp.shape if sequence else ("B",) + inp.shape
    ok = arr.ndim == len(expected) and tuple(arr.shape[-len(inp.shape) :]) == inp.shape
    if ok and sequence and arr.shape[0] != time_steps:
        ok = False
    if not ok:
        raise SimulationInputError(
            f"inputs for input '{inp.name}' have shape {arr.shape}; expected "
            f"[{', '.join(map(str, expected))}]"
            + (f" with T = {time_steps}" if sequence else "")
            + (
                " (a sequence input needs sequence=True)"
                if not sequence and arr.ndim == len(inp.shape) + 2
                else ""
            )
        )
    batch = arr.shape[1] if sequence else arr.shape[0]
    if batch == 0:
        raise SimulationInputError(f"inputs for input '{inp.name}' hold no samples")
    lo, hi = inp.value_range
    if arr.size:
        amin, amax = int(arr.min()), int(arr.max())
        if amin < lo or amax > hi:
            bad = amin if amin < lo else amax
            what = (
                "spike input takes 0 or 1"
                if inp.encoding == "spikes"
                else f"{inp.bits}-bit graded input takes [{lo}, {hi}]"
            )
            raise SimulationInputError(
                f"inputs for input '{inp.name}': value {bad} is out of range (a {what}); encode with "
                f"network.input.encode(x)"
            )
    return arr.astype(np.int64)


def _auto_chunk(
    network: Network, time_steps: int, full: frozenset[str], record: Sequence[str]
) -> int:
    """Samples per chunk so that one chunk's state stays near AUTO_CHUNK_BYTES."""
    L = network.latency
    live = 0
    peak = 0
    for pop in network.populations:
        steps = time_steps + L if pop.name in full else time_steps
        size = pop.size * steps
        live += size * (1 if pop.message_bits == 1 else 8)  # output history of every population
        peak = max(peak, 3 * 8 * size)  # a (int64) plus a synapse result and a temporary
        if pop.name in record:
            live += len(pop.neuron.state) * 8 * pop.size * (time_steps + L)
    per_sample = live + peak + 8 * network.input.size * (time_steps + 1)
    return max(1, AUTO_CHUNK_BYTES // max(per_sample, 1))


def simulate(
    network: Network,
    inputs: Any,
    *,
    time_steps: int | None = None,
    sequence: bool = False,
    record: Sequence[str] = (),
    backend: str = "numpy",
    device: str = "cpu",
    batch_size: int | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> SimulationResult:
    """Simulate ``network`` bit-accurately on a batch of encoded inputs (docs/ir.md).

    ``inputs``: integers from ``network.input.encode``, shape ``[B, *input.shape]`` (a static
    input, emitted at steps 1..T) or, with ``sequence=True``, ``[T, B, *input.shape]``.
    ``time_steps``: T (default: the network's own ``time_steps``).
    ``record``: population names whose state and output are returned for all T + L steps.
    ``backend``: ``numpy`` or ``torch`` (``device`` e.g. ``cuda``; same results bit for bit).
    ``batch_size``: samples per chunk (memory bound); None picks one from a ~1 GiB budget.
    ``progress(done, total)`` is called after each chunk.
    """
    if not isinstance(network, Network):
        raise SimulationInputError(f"simulate needs a Network, got {type(network).__name__}")
    try:
        time_steps = network.steps_for(time_steps)
    except SakdError as exc:
        raise SimulationInputError(str(exc)) from exc
    if isinstance(record, str):
        record = (record,)
    record = tuple(record)
    names = {p.name for p in network.populations}
    for name in record:
        if name not in names:
            raise SimulationInputError(
                f"cannot record '{name}': not a population of the network (populations: {sorted(names)})"
            )
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise SimulationInputError(
            f"batch_size must be a positive integer or None, got {batch_size!r}"
        )
    ops = make_ops(backend, device)
    x = _check_inputs(network, inputs, time_steps, sequence)

    plan = _make_plan(network, time_steps, record, ops)
    total = x.shape[1] if sequence else x.shape[0]
    chunk = (
        int(batch_size)
        if batch_size is not None
        else _auto_chunk(network, time_steps, plan.full, record)
    )

    parts: list[dict[str, Any]] = []
    for start in range(0, total, chunk):
        xc = x[:, start : start + chunk] if sequence else x[start : start + chunk]
        parts.append(_run_chunk(plan, ops, xc, sequence))
        if progress is not None:
            progress(min(start + chunk, total), total)

    readouts = {p.name: np.concatenate([part["readouts"][p.name] for part in parts]).astype(np.int64)
                for p in network.readouts}
    readout_v = predictions = None
    if len(readouts) == 1:
        readout_v = next(iter(readouts.values()))
        predictions = np.argmax(readout_v.reshape(total, -1), axis=1).astype(np.int64)
    pop_counts = {}
    for pop in network.populations:
        pop_counts[pop.name] = PopulationCounts(
            name=pop.name,
            neurons=pop.size,
            time_steps=time_steps,
            spikes_per_step=np.concatenate([p["pop"][pop.name][0] for p in parts]),
            active_updates=np.concatenate([p["pop"][pop.name][1] for p in parts]),
        )
    proj_counts = {}
    for proj in network.projections:
        pp = plan.projections[proj.name]
        proj_counts[proj.name] = ProjectionCounts(
            name=proj.name,
            source=proj.source,
            target=proj.target,
            synapses=pp.synapses,
            synops=np.concatenate([p["proj"][proj.name][0] for p in parts]),
            graded_macs=np.concatenate([p["proj"][proj.name][1] for p in parts]),
            dense_flops=pp.dense_flops,
        )
    traces = {
        name: {
            key: np.concatenate([p["traces"][name][key] for p in parts], axis=1)
            for key in parts[0]["traces"][name]
        }
        for name in record
    }
    return SimulationResult(
        readouts=readouts,
        readout_v=readout_v,
        predictions=predictions,
        counts=NetworkCounts(
            time_steps=time_steps, samples=total, populations=pop_counts, projections=proj_counts
        ),
        traces=traces,
        time_steps=time_steps,
        latency=network.latency,
        backend=backend,
    )


def readout_to_float(network: Network, readout_v: np.ndarray, time_steps: int | None = None,
                     readout: str | None = None) -> np.ndarray:
    """float64 mean outputs: ``readout_v / (64 · readout.scale · T)``. A readout's v at the end of
    its window is the integer image of the float SNN's outputs summed over the T steps
    (docs/ir.md). ``readout`` names the readout of a network with several."""
    spec = network.target
    pop = network.population(readout) if readout else network.readout
    scale = (1 << spec.act_shift) * pop.scale * network.steps_for(time_steps)
    return np.asarray(readout_v, dtype=np.float64) / scale
