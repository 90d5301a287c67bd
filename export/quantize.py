"""Pass 4: quantize a canonical float graph to the target's integers, one scale per population.

Every population's spikes are binary with a hard reset to 0, so scaling the weights, bias and
threshold of one population by the same S leaves its spikes unchanged (fixed-point.md §5): each
population gets its own integer scale S, as large as the target's ranges allow.

For a population with LIF settings (tau, decay_input, v_threshold theta) and
c = (1/tau if decay_input else 1) / theta (theta folded into W and b: same spikes, threshold 1):
- weights  ``W_int = 2 * round(c * S * W_eff / 2)`` (even; Loihi mixed-sign weights are 2 x int8),
  ``W_eff = W`` for spike sources and ``W / Q`` for the graded input (``x_int = round(x * Q)``);
- bias     ``bias_mant << bias_exp ~= 64 * c * S * b`` (bias_exp 6, or 7 if the mantissa needs it);
- decays   ``du = 4095`` (u carries only this step's input), ``dv = round(4096 / tau)``;
- threshold ``vth = S`` (leaky, dv > 0) or ``S - 1`` (IF, dv = 0: reproduces V >= 1 exactly);
- S is the largest even integer with every ``|c * S * W_eff| <= 254``, ``S <= vth max`` and, for
  graded input, a worst-case synaptic sum ``|a| <= 2^17 - 1`` (so ``u = a << 6`` cannot wrap).
  Even, so that identity shortcuts (W = 1) stay exact.
- OR populations (max pooling): weights 2, du = 4095, dv = 4095, vth = 1: fire iff any input spiked.
- The readout (classifier): du = 4095, dv = 0 (v sums 64 * (W s + b) over the T steps), never fires;
  its S also keeps every bias within ``bias_mant_max << bias_exp_max`` (no readout bias clipped).

Rounding: ``torch.round`` (half to even). Nothing is clipped silently: clipped weights and biases
are counted in the per-population report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from sakd.export.graph import ExportError, Graph
from sakd.export.passes import synapses_into
from sakd.hardware.neurons.cuba_lif import (
    CubaLif,
    lif_decays,
    lif_input_factor,
    lif_threshold,
)
from sakd.hardware.target import NETX_BIAS_EXP, TargetSpec


@dataclass
class InputQuantization:
    """Graded input: ``x_int = clip(round(x * scale), -2^(bits-1), 2^(bits-1) - 1)`` where x is
    the normalized image; ``scale = (2^(bits-1) - 1) / max |x|`` over the data range."""

    bits: int
    scale: float
    max_abs: float

    @classmethod
    def for_range(cls, bits: int, low: float, high: float) -> InputQuantization:
        max_abs = max(abs(low), abs(high))
        if not math.isfinite(max_abs) or max_abs <= 0:
            raise ExportError(f"input range [{low}, {high}] cannot be quantized")
        return cls(bits, ((1 << (bits - 1)) - 1) / max_abs, max_abs)


@dataclass
class PopulationQuantization:
    """What quantization did to one population (one row of the export report)."""

    name: str
    kind: str  # lif | or | readout
    origin: str
    scale: int
    scale_limited_by: str
    du: int
    dv: int
    vth: int
    bias_exp: int
    weight_max_used: int
    weights: int
    weights_clipped: int
    biases_clipped: int
    weight_rms_error: float  # RMS of (W_int / (c S) - W_eff) / max|W_eff| over incoming weights
    worst_case_input: int  # max over neurons of sum |W_int| * max |source value|
    input_limit: int
    decay_exact: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class QuantizedGraph:
    """The canonical graph with integer attributes: synapses gain ``weight_int``; neurons and
    the output gain ``du, dv, vth, bias_mant, bias_exp, scale``."""

    graph: Graph
    input: InputQuantization
    target: TargetSpec
    report: list[PopulationQuantization] = field(default_factory=list)


#: the scale chosen when nothing limits it (no weights, no threshold)
UNLIMITED_SCALE = 1 << 16


def largest_even_scale(limit: float, rel_tol: float = 0.0) -> int:
    """The largest even integer scale S <= ``limit · (1 + rel_tol)``: even, so that identity
    shortcuts (W = 1) and OR populations (W = 2) stay exact in Loihi's even mixed-sign weights.
    ``rel_tol`` forgives float noise in limits computed from a file (the NIR reader: a float32 τ
    of 2·dt gives dt/τ = 0.50000001, which must not turn a limit of exactly 256 into 254); the
    exporter's limits are exact (tolerance 0). The exporter and the NIR reader both choose S by
    this rule."""
    if not math.isfinite(limit):
        return UNLIMITED_SCALE
    return int(2 * math.floor(limit * (1 + rel_tol) / 2.0))


def quantize_graph(graph: Graph, target: TargetSpec, input_q: InputQuantization,
                   time_steps: int) -> QuantizedGraph:
    """Quantize a canonical float graph for ``time_steps`` steps per sample (the readout's
    range depends on T)."""
    graph = graph.copy()
    report: list[PopulationQuantization] = []
    act = float(1 << target.act_shift)  # 64: v_int = 64 · V for a synaptic input of weight 1
    half_w = target.weight_max // 2  # 127: W_int = 2 * round(.) <= 254
    max_x = (1 << (input_q.bits - 1))  # |x_int| <= 2^(bits-1)
    for node in graph.nodes:
        if node.op not in ("neuron", "output"):
            continue
        synapses = synapses_into(graph, node.name)
        kind = "readout" if node.op == "output" else node.attrs["kind"]
        if kind == "or":
            for syn in synapses:
                # weight 2 on every synapse (a max pool's ones kernel, a relay's identity)
                syn.attrs["weight_int"] = (syn.attrs["weight"] != 0).to(torch.int64) * 2
            gate = CubaLif.or_gate(target)
            node.attrs.update(du=gate.du, dv=gate.dv, vth=gate.vth,
                              bias_mant=torch.zeros((), dtype=torch.int64), bias_exp=0, scale=2.0)
            report.append(PopulationQuantization(
                node.name, kind, node.origin, 2, "fixed (OR)", gate.du, gate.dv, gate.vth, 0,
                2, sum(s.attrs["weight"].numel() for s in synapses), 0, 0, 0.0,
                max(_row_abs_sum(s.op, s.attrs["weight_int"]) for s in synapses), target.max_synaptic_input,
                True))
            continue
        if kind == "lif":
            c = _input_factor(node.attrs)
            du, dv, decay_exact = lif_decays(node.attrs["tau"], target)
        else:
            readout = CubaLif.readout(target)
            c, du, dv, decay_exact = 1.0, readout.du, readout.dv, True
        effective = []
        scaled: dict[tuple[int, bool], torch.Tensor] = {}  # copies of one weight: scaled once
        for syn in synapses:
            graded = graph[syn.inputs[0]].op == "input"
            key = (id(syn.attrs["weight"]), graded)
            if key not in scaled:
                scaled[key] = syn.attrs["weight"] * c / (input_q.scale if graded else 1.0)
            effective.append((syn, scaled[key], graded))
        max_abs_w = max(float(w.abs().max()) for _, w, _ in effective)
        limits = {"weights": (2 * half_w) / max_abs_w if max_abs_w > 0 else float("inf")}
        if kind == "lif":
            limits["threshold"] = float(target.vth_max)
        bias_sum = None
        for syn, _, _ in effective:
            b = syn.attrs.get("bias")
            if b is not None:
                bias_sum = b.abs() if bias_sum is None else bias_sum + b.abs()
        if kind == "readout" and bias_sum is not None and float(bias_sum.max()) > 0:
            # a readout's scale also keeps its biases within the largest the mantissa and
            # exponent hold, so none is clipped (a detector's focal-loss prior, -log(99), on
            # class logits with small weights); spiking populations are unchanged
            largest = target.bias_mant_max * float(1 << target.bias_exp_max)
            limits["bias range"] = largest / (act * c * float(bias_sum.max()))
        for syn, w, graded in effective:
            if graded:  # dense analog input: the worst case is realistic
                rows = _rows_abs(syn.op, w).max()
                limits["input sum"] = 0.98 * target.max_synaptic_input / (float(rows) * max_x)
        if kind == "readout":
            # v integrates 64 * (W s + b) over T steps and saturates at 2^23 - 1: keep the worst
            # case (every source spiking every step) below the clip, so the argmax never sees it
            steps = time_steps
            bias_total = sum((s.attrs["bias"].abs() if s.attrs.get("bias") is not None else 0.0)
                             for s, _, _ in effective)
            rows = sum(_rows_abs(s.op, w) * (max_x if graded else 1.0)
                       for s, w, graded in effective) + bias_total
            worst = float(rows.max()) if torch.is_tensor(rows) else float(rows)
            if worst > 0:
                limits["readout range"] = 0.98 * (target.state_max - 1) / (act * steps * (worst + 1.0))
        limited_by = min(limits, key=limits.get)
        scale = largest_even_scale(limits[limited_by])
        if scale < 2:
            raise ExportError(f"population '{node.name}': no integer scale >= 2 fits the target "
                              f"({limited_by} allows {limits[limited_by]:.3g}); the weights are "
                              "too large relative to the threshold")
        # rounding to even adds up to 1 per weight: re-check the graded worst case after rounding
        # (the rounded row sums grow monotonically with S: bisect for the largest even S that fits)
        def fits(s: int, effective: list = effective) -> bool:
            return all(not graded or _row_abs_sum(syn.op, 2.0 * torch.round(w * s / 2.0)) * max_x
                       <= target.max_synaptic_input for syn, w, graded in effective)

        if not fits(scale):
            lo, hi = 1, scale // 2  # in units of 2: fits(2 * lo) is assumed, fits(2 * hi) is not
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if fits(2 * mid) else (lo, mid)
            scale, limited_by = 2 * lo, "input sum"
        clipped = total = 0
        sq_err = 0.0
        worst = 0
        rounded: dict[int, tuple[torch.Tensor, int, float, int]] = {}  # id(w) -> w_int, stats
        for syn, w, graded in effective:
            if id(w) not in rounded:  # copies of one weight share one integer tensor
                w_int = 2.0 * torch.round(w * scale / 2.0)
                bad = (w_int < target.weight_min) | (w_int > target.weight_max)
                w_int = w_int.clamp(target.weight_min, target.weight_max)
                err = float(((w_int / scale - w) / max_abs_w).pow(2).sum()) if max_abs_w > 0 \
                    else 0.0
                w_int = w_int.to(torch.int64)
                rounded[id(w)] = (w_int, int(bad.sum()), err, _row_abs_sum(syn.op, w_int))
            w_int, n_bad, err, row_sum = rounded[id(w)]
            syn.attrs["weight_int"] = w_int
            clipped += n_bad
            total += w.numel()
            sq_err += err
            # upper bound of |a| over the population's neurons: the synapses' worst rows add up
            worst += row_sum * (max_x if graded else 1)
        bias = None
        for syn, _, _ in effective:
            b = syn.attrs.get("bias")
            if b is not None:
                bias = b.clone() if bias is None else bias + b
        bias_mant, bias_exp, biases_clipped = _quantize_bias(bias, act * c * scale, target)
        if kind == "readout":
            steps = time_steps
            peak = steps * ((worst << target.act_shift) + int((bias_mant.abs() << bias_exp).max()))
            if peak > target.state_max - 1:
                raise ExportError(f"readout '{node.name}': its voltage could reach {peak} after "
                                  f"{steps} steps, beyond the {target.state_bits}-bit clip; "
                                  "lower the classifier's weights or T")
        vth = target.readout_vth if kind == "readout" else lif_threshold(scale, dv)
        node.attrs.update(du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp,
                          scale=float(scale))
        report.append(PopulationQuantization(
            node.name, kind, node.origin, scale, limited_by, du, dv, vth, bias_exp,
            max(int(s.attrs["weight_int"].abs().max()) for s, _, _ in effective), total, clipped,
            biases_clipped, math.sqrt(sq_err / max(total, 1)), int(worst),
            target.max_synaptic_input, decay_exact))
    return QuantizedGraph(graph, input_q, target, report)


def _input_factor(attrs: dict[str, Any]) -> float:
    """c / v_threshold for a LIF: dividing X (hence W and b) by the threshold theta gives the same
    spikes with threshold 1 (V' = V / theta; hard reset to 0), which is what vth = S encodes."""
    theta = float(attrs["v_threshold"])
    if not theta > 0:
        raise ExportError(f"LIF threshold {theta} must be > 0 to be lowered")
    return lif_input_factor(attrs["tau"], attrs["decay_input"], theta)


def _rows_abs(op: str, weight: torch.Tensor) -> torch.Tensor:
    """Per output channel, the largest Σ|w| over the weights one target neuron reads: a conv's
    or linear's row; an ``upsample_conv``'s w[co, :, a, b] at its worst offset (a, b)."""
    if op == "upsample_conv":
        return weight.abs().sum(1).reshape(weight.shape[0], -1).max(1).values
    return weight.reshape(weight.shape[0], -1).abs().sum(1)


def _row_abs_sum(op: str, weight_int: torch.Tensor) -> int:
    return int(_rows_abs(op, weight_int).max())


def _quantize_bias(bias: torch.Tensor | None, factor: float, target: TargetSpec
                   ) -> tuple[torch.Tensor, int, int]:
    """``bias_mant << bias_exp ~= factor * bias`` by the target's rule (``TargetSpec.split_bias``)."""
    if bias is None:
        return torch.zeros((), dtype=torch.int64), NETX_BIAS_EXP, 0
    mant, exp, clipped = target.split_bias((bias * factor).cpu().numpy())
    return torch.from_numpy(mant), exp, clipped


def dequantized_graph(qgraph: QuantizedGraph) -> Graph:
    """The float graph that the integer weights and biases represent (W_int / (c S), biases
    likewise): runs the quantized network in float, without the integer state's truncation."""
    graph = qgraph.graph.copy()
    for node in graph.nodes:
        if node.op not in ("neuron", "output"):
            continue
        synapses = synapses_into(graph, node.name)
        if node.op == "neuron" and node.attrs["kind"] == "or":
            continue
        c = _input_factor(node.attrs) if node.op == "neuron" else 1.0
        scale = node.attrs["scale"]
        first = True
        for syn in synapses:
            graded = graph[syn.inputs[0]].op == "input"
            factor = c * scale / (qgraph.input.scale if graded else 1.0)
            syn.attrs["weight"] = syn.attrs["weight_int"].to(torch.float64) / factor
            if first:
                mant = node.attrs["bias_mant"].to(torch.float64)
                act = float(1 << qgraph.target.act_shift)
                bias = mant * (1 << node.attrs["bias_exp"]) / (act * c * scale)
                out_channels = syn.attrs["weight"].shape[0]
                syn.attrs["bias"] = bias.expand(out_channels).clone() if bias.dim() == 0 else bias
                first = False
            else:
                syn.attrs["bias"] = None
    return graph
