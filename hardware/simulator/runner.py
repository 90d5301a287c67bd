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

from ..counts import NetworkCounts, PopulationCounts, ProjectionCounts, concatenate_counts
from ..errors import SakdError
from ..fixed_point import shift_exp
from ..ir import Network, upsample_row_bound
from ..neurons.base import WindowRun
from .backends import ProjectionPlan, SimulationInputError, make_ops
from .synapses import WRAP_HALF, conv_fanout, upsample_fanout, weight_bound

#: memory bound (bytes) of the state of one batch chunk when ``batch_size`` is None
AUTO_CHUNK_BYTES = 1 << 30


class SimulationOverflowError(SakdError):
    """Synaptic input or state beyond Lava's int32 state: the chip's result is undefined."""


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """What one simulation returns (arrays are numpy, axis 0 or 1 the sample).

    ``readouts``: every readout population's readout state (CUBA-LIF: ``v``) at the end of its
    window (step T + its latency; a free-running network: the last step), int64 [B, *shape].
    ``outputs``: every output population (no projection to another population): a readout's
    readout state, else its messages summed over its window (spike counts; sums of graded
    messages). ``readout_v`` / ``predictions``: the only readout's state and the argmax of the
    only output's flattened values (ties -> lowest index); None when the network has several.
    ``traces``: per recorded population its state variables and output ``s``, [steps, B, *shape]
    (T + L steps for a sample network, every step for a free-running one).
    ``schedule``: the network's; ``reset_interval`` / ``reset_offset``: a free run's options.
    """

    readouts: dict[str, np.ndarray]
    readout_v: np.ndarray | None
    predictions: np.ndarray | None
    counts: NetworkCounts
    traces: dict[str, dict[str, np.ndarray]]
    time_steps: int
    latency: int
    backend: str
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    schedule: str = "sample"
    reset_interval: int | None = None
    reset_offset: int = 0


@dataclass
class _Signal:
    """A source's output history: ``arr[i]`` is the output of global step ``t0 + i``; zero
    outside ``t0 .. t0 + n − 1``. ``static``: ``arr`` is one [B, ...] value held for all n steps."""

    arr: Any
    t0: int
    n: int
    static: bool = False


@dataclass(frozen=True)
class _Window:
    """Where a population runs (global steps ``t0 .. t0 + n − 1``), where it is counted (offset
    ``w0`` into that run, ``length`` steps) and when its readout is read (run index ``read``)."""

    t0: int
    n: int
    w0: int
    length: int
    read: int


@dataclass
class _Plan:
    network: Network
    steps: int  # T (sample) or the run's steps (free)
    free: bool
    order: tuple[str, ...]
    components: tuple[tuple[str, ...], ...]
    windows: dict[str, _Window]
    reset_interval: int | None
    reset_phase: dict[str, int]  # reset before step t when t % interval == phase % interval
    record: tuple[str, ...]
    projections: dict[str, ProjectionPlan]
    prepared: dict[str, Any] = field(default_factory=dict)  # population -> model constants
    # populations whose static |a| bound exceeds what their model handles without a check
    checked: frozenset[str] = frozenset()
    recurrent: frozenset[str] = frozenset()  # populations of recurrent components
    # target population -> groups of projections that share one synapse evaluation (merge_groups)
    merged: dict[str, list[list[str]]] = field(default_factory=dict)
    merge: bool = True  # False: every projection evaluated on its own (tests)


#: a bound that no check passes: graded messages are not clipped to their bits in Lava
UNBOUNDED = 1 << 62


def projection_dense_macs(network: Network, proj: Any) -> int:
    """Multiply-adds of one step of one sample of ``proj`` run densely (dense: out × in; conv:
    output neurons × the kernel's taps per output; upsample: output neurons × Cin/groups, the
    one source cell each reads in every channel of its group; direct: 0, the host writes the
    input)."""
    if proj.kind == "direct":
        return 0
    if proj.kind == "dense":
        return int(proj.weight.size)
    tgt = network.population(proj.target).shape
    if proj.kind == "upsample":
        return int(np.prod(tgt)) * int(proj.weight.shape[1])
    return int(np.prod(tgt)) * int(np.prod(proj.weight.shape[1:]))


def _make_plan(network: Network, time_steps: int, record: tuple[str, ...], ops: Any,
               reset_interval: int | None, reset_offset: int) -> _Plan:
    lat = network.latencies
    spec = network.target
    free = network.schedule == "free"
    T = time_steps
    L = network.latency
    if free:
        # everything runs every step: bias-driven activity, recurrence and unequal paths matter
        windows = {p.name: _Window(1, T, 0, T, T - 1) for p in network.populations}
        phase = {p.name: reset_offset + 1 + k for k, p in enumerate(network.populations)
                 if p.neuron.resettable}
        interval = reset_interval
    else:
        # recorded populations and all their ancestors run every step (exact traces)
        full: set[str] = set()
        stack = list(record)
        while stack:
            name = stack.pop()
            if name in full or name == network.input.name:
                continue
            full.add(name)
            stack.extend(p.source for p in network.projections_into(name))
        windows = {}
        for p in network.populations:
            ell = lat[p.name]
            windows[p.name] = (_Window(1, T + L, ell, T, T + ell - 1) if p.name in full
                               else _Window(1 + ell, T, 0, T, T - 1))
        phase = {p.name: 1 + lat[p.name] for p in network.populations}
        interval = T
    projections: dict[str, ProjectionPlan] = {}
    # copies of one synapse (a SEW-ResNet's shared convs) share their fan-out and bound
    fanouts: dict[tuple, np.ndarray] = {}
    bounds: dict[int, int] = {}
    for proj in network.projections:
        src = network.source_shape(proj.source)
        tgt = network.population(proj.target).shape
        flops = projection_dense_macs(network, proj)
        key = (proj.kind, src, proj.weight.shape, proj.stride, proj.padding, proj.dilation,
               proj.groups)
        if key not in fanouts:
            if proj.kind == "direct":  # the host writes each neuron's input: no synapse, no SynOp
                fanouts[key] = np.zeros(int(np.prod(src)), np.int64)
            elif proj.kind == "dense":
                fanouts[key] = np.full(int(np.prod(src)), proj.weight.shape[0], np.int64)
            elif proj.kind == "upsample":  # (Cout/groups)·fh·fw synapses per source neuron
                fanouts[key] = upsample_fanout(src, proj.weight.shape, proj.groups).reshape(-1)
            else:
                fanouts[key] = conv_fanout(
                    src, proj.weight.shape, proj.stride, proj.padding, proj.dilation, proj.groups
                ).reshape(-1)
        fanout = fanouts[key]
        fanout.flags.writeable = False  # shared by the copies
        if proj.kind != "direct" and id(proj.weight) not in bounds:
            # an upsample's target neuron reads one weight per channel of its group
            bounds[id(proj.weight)] = (upsample_row_bound(proj.weight) if proj.kind == "upsample"
                                       else weight_bound(proj.weight))
        wsum = 1 if proj.kind == "direct" else bounds[id(proj.weight)]
        if proj.source == network.input.name:
            xmax = 1 << (network.input.bits - 1)
        else:
            xmax = 1 if network.population(proj.source).binary else UNBOUNDED
        if proj.kind == "direct":
            bound = xmax
        elif proj.kind == "conv2d":
            bound = min(wsum * xmax, WRAP_HALF)
        else:  # dense, upsample: |floor(y / 2^k)| <= (|y| >> k) + 1
            bound = shift_exp(wsum * xmax, proj.weight_exp) + (proj.weight_exp < 0)
        plan = ProjectionPlan(proj, src, tgt, fanout, int(fanout.sum()), flops, wsum, bound)
        plan.prepared = None if proj.kind == "direct" else ops.prepare(plan)
        projections[proj.name] = plan
    checked = set()
    for pop in network.populations:
        per_port: dict[str, int] = {}
        for p in network.projections_into(pop.name):
            per_port[p.port] = per_port.get(p.port, 0) + projections[p.name].a_bound
        if any(bound > pop.neuron.safe_input(spec) for bound in per_port.values()) or (
                pop.neuron.safe_input(spec) == 0):
            checked.add(pop.name)
    prepared = {p.name: p.neuron.prepare(ops, p.shape, spec, p.is_readout)
                for p in network.populations}
    components = network.components()
    recurrent = frozenset(n for comp in components if network.is_recurrent(comp) for n in comp)
    return _Plan(network, T, free, network.topological_order(), components, windows, interval,
                 phase, record, projections, prepared, frozenset(checked), recurrent,
                 merge_groups(network, projections))


def merge_groups(network: Network, projections: dict[str, ProjectionPlan]
                  ) -> dict[str, list[list[str]]]:
    """Projections into one population and port with the same weights and geometry from binary
    sources (how a SEW-ResNet's spike additions are lowered: one copy of a conv per summed
    source, each with its own delay): they are evaluated once, on the sum of their sources'
    spikes aligned by each projection's latency. Exact: at every target step the input is
    ``Σ_p W·s_p(τ − lat_p) = W·(Σ_p s_p(τ − lat_p))`` in integers, provided no projection's own
    result is rounded or wrapped on its own — a conv only when its static bound ``Σ|w| < 2^23``
    keeps Lava's 24-bit wrap the identity for every member, a dense or upsample one only with
    ``weight_exp ≥ 0`` (a left shift distributes over the sum; a floor does not; neither
    wraps). The GEMM on the
    summed spikes keeps its own exactness bound (the sum's largest value is measured)."""
    groups: dict[str, list[list[str]]] = {}
    for pop in network.populations:
        buckets: dict[tuple, list[Any]] = {}
        for proj in network.projections_into(pop.name):
            if proj.kind == "direct" or proj.source == network.input.name:
                continue
            if not network.population(proj.source).binary:
                continue
            if proj.kind == "conv2d" and projections[proj.name].wsum >= WRAP_HALF:
                continue
            if proj.kind in ("dense", "upsample") and proj.weight_exp < 0:
                continue
            key = (proj.port, proj.kind, network.source_shape(proj.source), proj.weight.shape,
                   proj.stride, proj.padding, proj.dilation, proj.groups, proj.weight_exp)
            buckets.setdefault(key, []).append(proj)
        for members in buckets.values():
            while len(members) > 1:  # split by exact equality of the weights
                first, rest = members[0], members[1:]
                same = [first] + [p for p in rest if np.array_equal(p.weight, first.weight)]
                if len(same) > 1:
                    groups.setdefault(pop.name, []).append([p.name for p in same])
                members = [p for p in rest if p not in same]
    return groups


def _gather(plan: _Plan, ops: Any, name: str, B: int, signals: dict[str, _Signal],
            consumers: dict[str, int], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The summed input of population ``name`` over its run, per port: int64 [n, B, *shape]
    (ports without any input in the run are left out). Projections from ``skip`` (the
    population's own recurrent component) are evaluated step by step instead."""
    net = plan.network
    win = plan.windows[name]
    t0, n = win.t0, win.n
    shape = net.population(name).shape
    A: dict[str, Any] = {}
    views: set[str] = set()  # ports whose A is a read-only view (one static input)
    done: set[str] = set()
    for group in plan.merged.get(name, []) if plan.merge else []:
        members = [plan.projections[p].proj for p in group]
        members = [p for p in members if p.source not in skip]
        if len(members) < 2:
            continue
        pplan = plan.projections[members[0].name]
        X = None
        for proj in members:  # the summed spikes, aligned by each projection's latency
            sig = signals[proj.source]
            lat = proj.latency
            lo = max(t0 - lat, sig.t0)
            hi = min(t0 + n - 1 - lat, sig.t0 + sig.n - 1)
            if lo <= hi:
                if X is None:
                    X = ops.zeros((n, B) + pplan.source_shape)
                X[lo + lat - t0 : hi + lat - t0 + 1] += sig.arr[lo - sig.t0 : hi - sig.t0 + 1]
            done.add(proj.name)
            consumers[proj.source] -= 1
            if consumers[proj.source] == 0:
                del signals[proj.source]
        if X is not None:
            port = members[0].port
            a = ops.synapse(pplan, X.reshape((n * B,) + pplan.source_shape), wrap=False)
            a = a.reshape((n, B) + shape)
            if port in A:
                A[port] += a
            else:
                A[port] = a
    for proj in net.projections_into(name):
        if proj.source in skip or proj.name in done:
            continue
        sig = signals[proj.source]
        lat = proj.latency
        lo = max(t0 - lat, sig.t0)
        hi = min(t0 + n - 1 - lat, sig.t0 + sig.n - 1)
        if lo <= hi:
            dst = slice(lo + lat - t0, hi + lat - t0 + 1)
            pplan = plan.projections[proj.name]
            k = hi - lo + 1
            if not sig.static and proj.kind != "direct" and k == n and proj.port not in A:
                # the first input of the port over the whole run: the synapse's own fresh
                # result is the sum so far (no zero array and no addition)
                src = sig.arr[lo - sig.t0 : hi - sig.t0 + 1]
                a = ops.synapse(pplan, src.reshape((k * B,) + src.shape[2:]))
                A[proj.port] = a.reshape((n, B) + shape)
            else:
                if sig.static and k == n and proj.port not in A:
                    # the first input of the port, the same at every step of the run: one
                    # synapse evaluation, held as a read-only view over the steps
                    a = sig.arr if proj.kind == "direct" else ops.synapse(pplan, sig.arr)
                    A[proj.port] = ops.repeat_steps(a.reshape((B,) + shape), n)
                    views.add(proj.port)
                    consumers[proj.source] -= 1
                    if consumers[proj.source] == 0:
                        del signals[proj.source]
                    continue
                if proj.port not in A:
                    A[proj.port] = ops.zeros((n, B) + shape)
                elif proj.port in views:  # a second input: the sum needs its own array
                    A[proj.port] = ops.materialize(A[proj.port])
                    views.discard(proj.port)
                if sig.static:  # the same input every step: one synapse evaluation
                    a = sig.arr if proj.kind == "direct" else ops.synapse(pplan, sig.arr)
                    A[proj.port][dst] += a.reshape((B,) + shape)[None]
                else:
                    src = sig.arr[lo - sig.t0 : hi - sig.t0 + 1]
                    a = src if proj.kind == "direct" else ops.synapse(
                        pplan, src.reshape((k * B,) + src.shape[2:]))
                    A[proj.port][dst] += a.reshape((k, B) + shape)
        consumers[proj.source] -= 1
        if consumers[proj.source] == 0:
            del signals[proj.source]
    return A


def _tile_samples(ops: Any, members: Sequence[Any], B: int, recurrent: bool) -> int:
    """Samples per batch tile of the neuron recursion: about ``ops.tile_elements`` neurons, so
    that the dozen elementwise passes of a step run on arrays that stay in the CPU's cache
    (numpy allocates and streams a new array per operation; 3-4x faster than whole-batch
    arrays, measured). The whole batch on a GPU (``tile_elements`` None) and in a recurrent
    component (its projections inside run per step: one GEMM per tile and step)."""
    elements = getattr(ops, "tile_elements", None)
    if elements is None or recurrent:
        return B
    per_sample = max(m.size for m in members)
    return max(1, min(B, elements // max(per_sample, 1)))


def _run_component(plan: _Plan, ops: Any, component: tuple[str, ...], B: int,
                   signals: dict[str, _Signal], consumers: dict[str, int],
                   result: dict[str, Any]) -> None:
    """Run one component (a population, or a recurrent group stepped together) over its run:
    gather the inputs from outside, then the neuron recursion step by step, with the resets of
    the schedule; projections inside the component are evaluated at every step from the
    outputs of earlier steps (every projection has a latency of at least one step)."""
    net = plan.network
    spec = net.target
    members = [net.population(name) for name in component]
    inside = frozenset(component)
    recurrent = component[0] in plan.recurrent
    internal = {m.name: [p for p in net.projections_into(m.name) if p.source in inside]
                for m in members}
    A = {m.name: _gather(plan, ops, m.name, B, signals, consumers, inside) for m in members}
    win = {m.name: plan.windows[m.name] for m in members}
    for proj in (p for ps in internal.values() for p in ps):
        consumers[proj.source] -= 1  # evaluated inside the loop below
    R = plan.reset_interval
    if not recurrent and len(members) == 1:  # a fused kernel (SAKD_SIM_KERNELS=0: none)
        m = members[0]
        if m.name not in plan.record and m.name not in plan.checked and m.binary:
            w = win[m.name]
            phase = plan.reset_phase.get(m.name)
            resets = np.array([R is not None and phase is not None and
                               (w.t0 + i) % R == phase % R for i in range(w.n)], np.bool_)
            run = m.neuron.run_window(ops, A[m.name], plan.prepared[m.name], resets,
                                      (w.w0, w.length), w.read if m.is_readout else -1, B,
                                      m.shape)
            if run is not None:
                if m.is_readout:
                    result["readouts"][m.name] = run.read.reshape((B,) + m.shape)
                spikes = run.spikes.reshape((w.n, B) + m.shape)
                _finish(plan, ops, m, B, spikes, A[m.name], None, None, signals, consumers,
                        result, run)
                return
    S = {m.name: ops.zeros((win[m.name].n, B) + m.shape, boolean=m.binary) for m in members}
    traces = {m.name: {var.name: ops.zeros((win[m.name].n, B) + m.shape) for var in m.neuron.state}
              for m in members if m.name in plan.record}
    active_inside = {m.name: np.zeros(B, np.int64) for m in members}
    readouts = {m.name: [] for m in members if m.is_readout}
    tile = _tile_samples(ops, members, B, recurrent)
    for b0 in range(0, B, tile):  # batch tiles: the state of a tile stays in the CPU's cache
        b1 = min(B, b0 + tile)
        rows = slice(b0, b1)
        bt = b1 - b0
        state = {m.name: m.neuron.initial_state(ops, (bt,) + m.shape) for m in members}
        no_input = {m.name: ops.zeros((bt,) + m.shape) for m in members}
        for i in range(max(w.n for w in win.values())):
            for m in members:
                w = win[m.name]
                if i >= w.n:
                    continue
                t = w.t0 + i
                name, model = m.name, m.neuron
                if R is not None and name in plan.reset_phase and \
                        t % R == plan.reset_phase[name] % R:
                    state[name] = model.initial_state(ops, (bt,) + m.shape)
                inputs = {port: a[i, rows] for port, a in A[name].items()}
                first = model.ports[0]
                if first not in inputs:
                    inputs[first] = no_input[name]
                for proj in internal[name]:
                    j = i - proj.latency
                    if j >= 0:
                        a = ops.synapse(plan.projections[proj.name], S[proj.source][j, rows])
                        inputs[proj.port] = inputs.get(proj.port, no_input[name]) + a
                before = state[name]
                state[name], s = model.step(before, inputs, plan.prepared[name])
                if name in plan.checked:
                    problem = model.overflow(before, state[name], inputs, ops, spec)
                    if problem:
                        raise SimulationOverflowError(
                            f"population '{name}': {problem} (at step {t}). Reduce weight_exp, "
                            f"the input bits or the weights.")
                S[name][i, rows] = s
                if recurrent and w.w0 <= i < w.w0 + w.length:
                    nz = s if m.binary else s != 0
                    for a in inputs.values():
                        nz = nz | (a != 0)
                    active_inside[name][rows] += ops.numpy(
                        nz.reshape(bt, -1).sum(-1)).astype(np.int64)
                if name in traces:
                    for key in model.state:
                        traces[name][key.name][i, rows] = state[name][key.name]
                if m.is_readout and i == w.read:
                    readouts[name].append(ops.numpy(state[name][model.readout_state]))
    for name, parts in readouts.items():
        if parts:
            result["readouts"][name] = np.concatenate(parts)
    for m in members:
        _finish(plan, ops, m, B, S[m.name], A[m.name], traces.get(m.name),
                active_inside[m.name] if recurrent else None, signals, consumers, result)


def _finish(plan: _Plan, ops: Any, pop: Any, B: int, S: Any, A: dict[str, Any],
            trace: dict[str, Any] | None, active: np.ndarray | None,
            signals: dict[str, _Signal], consumers: dict[str, int],
            result: dict[str, Any], run: WindowRun | None = None) -> None:
    """Counts over the window, outputs, traces and the population's output signal (``run``: a
    fused kernel's window, whose counts are taken from it)."""
    net = plan.network
    name = pop.name
    w = plan.windows[name]
    if run is not None:
        result["pop"][name] = (np.ascontiguousarray(run.per_step.T), run.active)
        outgoing = net.projections_from(name)
        for proj in outgoing:
            dot = ops.count_dot(run.fired, plan.projections[proj.name].fanout)
            result["proj"][proj.name] = (dot, np.zeros(B, np.int64))
        if outgoing and consumers.get(name, 0) > 0:
            signals[name] = _Signal(S, w.t0, w.n)
        if not pop.is_readout and not any(p.target != name for p in outgoing):
            result["outputs"][name] = run.fired.reshape((B,) + pop.shape)
        return
    s_win = S[w.w0 : w.w0 + w.length]
    fired = s_win if pop.binary else s_win != 0
    L = w.length
    per_step = ops.numpy(fired.reshape(L, B, -1).sum(-1)).T
    if active is None:
        mask = fired
        for a in A.values():
            mask = mask | (a[w.w0 : w.w0 + L] != 0)
        active = ops.numpy(mask.reshape(L, B, -1).sum((0, 2))).astype(np.int64)
    result["pop"][name] = (per_step.astype(np.int64), active)
    if trace is not None:
        trace["s"] = S
        result["traces"][name] = {k: ops.numpy(val) for k, val in trace.items()}
    outgoing = net.projections_from(name)
    if outgoing:
        per_neuron = fired.sum(0).reshape(B, -1)
        for proj in outgoing:
            dot = ops.count_dot(per_neuron, plan.projections[proj.name].fanout)
            result["proj"][proj.name] = (dot, np.zeros(B, np.int64))
        if consumers.get(name, 0) > 0:
            signals[name] = _Signal(S, w.t0, w.n)
    if not pop.is_readout and not any(p.target != name for p in outgoing):
        total = s_win.sum(0) if not pop.binary else fired.sum(0)
        result["outputs"][name] = ops.numpy(total).astype(np.int64)


def _run_chunk(plan: _Plan, ops: Any, x: np.ndarray, sequence: bool) -> dict[str, Any]:
    net = plan.network
    T = plan.steps
    inp = net.input
    B = x.shape[1] if sequence else x.shape[0]
    xs = ops.asarray(x)
    signals: dict[str, _Signal] = {inp.name: _Signal(xs, 1, T, static=not sequence)}
    consumers = {name: len(net.projections_from(name)) for name in (inp.name, *plan.order)}
    result: dict[str, Any] = {"pop": {}, "proj": {}, "traces": {}, "readouts": {}, "outputs": {}}

    # input-side counts: window = steps 1..T
    if net.projections_from(inp.name):
        nz = xs != 0
        per_neuron = (nz.sum(0) if sequence else nz * T).reshape(B, -1)
        for proj in net.projections_from(inp.name):
            dot = ops.count_dot(per_neuron, plan.projections[proj.name].fanout)
            zero = np.zeros(B, np.int64)
            result["proj"][proj.name] = (zero, dot) if inp.encoding == "graded" else (dot, zero)

    for component in plan.components:
        _run_component(plan, ops, component, B, signals, consumers, result)
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


def _auto_chunk(network: Network, plan: _Plan, record: Sequence[str]) -> int:
    """Samples per chunk so that one chunk's state stays near AUTO_CHUNK_BYTES."""
    live = 0
    peak = 0
    for pop in network.populations:
        steps = plan.windows[pop.name].n
        size = pop.size * steps
        live += size * (1 if pop.binary else 8)  # output history of every population
        ports = max(1, len({p.port for p in network.projections_into(pop.name)}))
        peak = max(peak, (2 + ports) * 8 * size)  # a per port, a synapse result, a temporary
        if pop.name in record:
            live += len(pop.neuron.state) * 8 * pop.size * steps
    per_sample = live + peak + 8 * network.input.size * (plan.steps + 1)
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
    reset_interval: int | None = None,
    reset_offset: int = 0,
) -> SimulationResult:
    """Simulate ``network`` bit-accurately on a batch of encoded inputs (docs/ir.md).

    ``inputs``: integers from ``network.input.encode``, shape ``[B, *input.shape]`` (a static
    input, emitted at steps 1..T) or, with ``sequence=True``, ``[T, B, *input.shape]``.
    ``time_steps``: T (default: the network's own ``time_steps``); a free-running network runs
    exactly this many steps. ``reset_interval`` / ``reset_offset`` (free-running networks only,
    netx's run options): population k (declaration order) of a resettable model is reset before
    every step t with ``t ≡ reset_offset + 1 + k (mod reset_interval)``; None: never.
    ``record``: population names whose state and output are returned for all T + L steps (every
    step of a free run).
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
    free = network.schedule == "free"
    if reset_interval is not None:
        if not free:
            raise SimulationInputError(
                "reset_interval applies to free-running networks (netx files of other tools); "
                "a sample network resets every T steps by its own schedule")
        if isinstance(reset_interval, bool) or not isinstance(reset_interval, (int, np.integer)) \
                or reset_interval < 1:
            raise SimulationInputError(
                f"reset_interval must be a positive integer or None, got {reset_interval!r}")
        reset_interval = int(reset_interval)
    if isinstance(reset_offset, bool) or not isinstance(reset_offset, (int, np.integer)):
        raise SimulationInputError(f"reset_offset must be an integer, got {reset_offset!r}")
    ops = make_ops(backend, device)
    x = _check_inputs(network, inputs, time_steps, sequence)

    plan = _make_plan(network, time_steps, record, ops, reset_interval, int(reset_offset))
    total = x.shape[1] if sequence else x.shape[0]
    chunk = (
        int(batch_size)
        if batch_size is not None
        else _auto_chunk(network, plan, record)
    )

    parts: list[dict[str, Any]] = []
    for start in range(0, total, chunk):
        xc = x[:, start : start + chunk] if sequence else x[start : start + chunk]
        parts.append(_run_chunk(plan, ops, xc, sequence))
        if progress is not None:
            progress(min(start + chunk, total), total)

    readouts = {p.name: np.concatenate([part["readouts"][p.name] for part in parts]).astype(np.int64)
                for p in network.readouts}
    outputs = {}
    for p in network.outputs:
        outputs[p.name] = readouts[p.name] if p.is_readout else np.concatenate(
            [part["outputs"][p.name] for part in parts]).astype(np.int64)
    readout_v = predictions = None
    if len(readouts) == 1:
        readout_v = next(iter(readouts.values()))
    if len(outputs) == 1:
        only = next(iter(outputs.values()))
        predictions = np.argmax(only.reshape(total, -1), axis=1).astype(np.int64)
    pop_counts = {}
    for pop in network.populations:
        pop_counts[pop.name] = PopulationCounts(
            name=pop.name,
            neurons=pop.size,
            time_steps=time_steps,
            spikes_per_step=np.concatenate([p["pop"][pop.name][0] for p in parts]),
            active_updates=np.concatenate([p["pop"][pop.name][1] for p in parts]),
            message_bits=pop.message_bits,
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
        outputs=outputs,
        schedule=network.schedule,
        reset_interval=reset_interval,
        reset_offset=int(reset_offset),
    )


def concatenate_results(parts: Sequence[SimulationResult]) -> SimulationResult:
    """Several results of one network and schedule on consecutive sample ranges (e.g. the
    shards of a data-parallel run, in rank order) as the one result of all samples: what one
    ``simulate`` call on the concatenated inputs returns, bit for bit (arrays are only moved)."""
    if not parts:
        raise SimulationInputError("concatenate_results needs at least one result")
    first = parts[0]
    for part in parts[1:]:
        same = (part.time_steps, part.latency, part.schedule, part.reset_interval,
                part.reset_offset, sorted(part.readouts), sorted(part.outputs),
                sorted(part.traces))
        if same != (first.time_steps, first.latency, first.schedule, first.reset_interval,
                    first.reset_offset, sorted(first.readouts), sorted(first.outputs),
                    sorted(first.traces)):
            raise SimulationInputError("concatenate_results: the results come from different "
                                       "networks, schedules or recordings")
    readouts = {k: np.concatenate([p.readouts[k] for p in parts]) for k in first.readouts}
    outputs = {k: np.concatenate([p.outputs[k] for p in parts]) for k in first.outputs}
    traces = {name: {k: np.concatenate([p.traces[name][k] for p in parts], axis=1)
                     for k in tr} for name, tr in first.traces.items()}

    def joined(key: str) -> np.ndarray | None:
        arrays = [getattr(p, key) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays)

    return SimulationResult(
        readouts=readouts, readout_v=joined("readout_v"), predictions=joined("predictions"),
        counts=concatenate_counts([p.counts for p in parts]), traces=traces,
        time_steps=first.time_steps, latency=first.latency, backend=first.backend,
        outputs=outputs, schedule=first.schedule, reset_interval=first.reset_interval,
        reset_offset=first.reset_offset)


def readout_to_float(network: Network, readout_v: np.ndarray, time_steps: int | None = None,
                     readout: str | None = None) -> np.ndarray:
    """float64 mean outputs: ``readout_v / (64 · readout.scale · T)``. A readout's v at the end of
    its window is the integer image of the float SNN's outputs summed over the T steps
    (docs/ir.md). ``readout`` names the readout of a network with several."""
    spec = network.target
    pop = network.population(readout) if readout else network.readout
    scale = (1 << spec.act_shift) * pop.scale * network.steps_for(time_steps)
    return np.asarray(readout_v, dtype=np.float64) / scale
