"""Quantization-aware fine-tuning (QAT): train the SNN with the export's integer weights.

``enable_qat(snn, input_shape=..., input_range=...)`` makes the network's forward compute with
exactly the weights and biases that ``lower(snn, ...)`` gives the chip, dequantized
(``dequantized_graph``: ``W_int / (c S)``, biases ``bias_mant << bias_exp / (64 c S)``), on the
graded input ``clip(round(x Q)) / Q``, with straight-through gradients to the float parameters
(conv/linear weights and biases, BN gamma and beta). What the chip runs is what is trained.

How (instance patches only: parameters, buffers and state-dict keys are unchanged):

- The lowering's float passes (``trace_network`` + ``FLOAT_PASSES``) run once to learn the
  structure: which conv/linear module (``Node.origin``) feeds which population, which BN follows
  it, which average pool is composed into it, which synapse reads the graded input. Identity
  shortcuts and max-pool sums are fixed synapses; OR populations are left alone.
- Each such conv/linear ``forward`` is replaced. It folds its BN in float64 with the export's
  operations (running statistics: BN is frozen), composes a folded average pool as
  ``fold_average_pooling`` does, and quantizes its population with the export's own functions:
  ``quantize_graph`` and ``dequantized_graph`` run on a one-population graph holding the current
  (detached) weights of *all* synapses into that population. So the scale S, the integer weights
  and the bias are the export's by construction, recomputed at every forward. The forward uses
  the dequantized weight, the backward the identity (straight-through). The population's whole
  quantized bias is added by its first module (the others add 0 in the forward and pass the
  gradient to their own bias), as in ``dequantized_graph``.
- The BN's and the pool's ``forward`` become the identity (the pool is part of the composed
  weight, so the layer reads the unpooled tensor). BN stays frozen in ``.train()`` too: its own
  forward, the only place that updates running statistics, never runs while QAT is on.
- Ties (``chip_ties=True``): with integer weights, membrane potentials sit on a lattice (steps of
  theta / (64 S)) and land exactly on the threshold often; spikingjelly fires there (V >= theta),
  the chip does not (``v_int >= 64 vth + 1``). Each LIF's forward therefore compares with
  ``theta (vth + 1/128) / S`` (halfway between two lattice steps); its ``v_threshold`` attribute
  is swapped only during its own call, so the export still reads theta.

``QATHandle.disable()`` restores the original forwards; ``QATHandle.sync_check(lower(...))``
compares the lowering's integers with those of QAT's last forward (0 expected).

The synapse forwards run in the module's dtype with autocast off (bf16/fp16 would round the
dequantized weights). Cost per forward: each population is quantized once per module feeding it
(deep copies of its weights in ``quantize_graph``/``dequantized_graph``): ~6 ms for the digits
ConvNet on 2 CPU cores (a ~5 % longer training step).

Limits:
- Not supported (``ExportError``): an average pool with stride != kernel folded into a linear
  layer; a graded input reaching a population through an identity shortcut or a repeated (SEW)
  synapse; a module feeding two populations.
- A fixed identity synapse is added exactly by the network, but the export rounds it to
  ``2 round(c S / 2) / (c S)``, exact only when c S is an even integer (always for theta = 1,
  decay_input False). Otherwise QAT warns once and that population differs from the chip
  (``sync_check(...)["inexact_fixed"]``).
- While QAT is on, an average pool's forward is the identity (hooks on it, e.g. MAC counting,
  see the unpooled tensor). Do not deepcopy, pickle or ONNX-export a network with QAT on (the
  patches are instance attributes): ``disable()`` first; ``lower()`` works either way.
"""

from __future__ import annotations

import copy
import types
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sakd.export.fold import bn_scale_shift, fold_bn, pool_into_conv, spread_pooled_linear
from sakd.export.graph import ExportError, Graph, Node
from sakd.export.lower import Lowering
from sakd.export.passes import FLOAT_PASSES, synapses_into
from sakd.export.quantize import InputQuantization, dequantized_graph, quantize_graph
from sakd.export.trace import trace_network
from sakd.hardware.errors import SakdError
from sakd.hardware.ir import DEFAULT_GRADED_BITS
from sakd.hardware.target import DEFAULT_TARGET, TargetSpec, get_target
from sakd.models.base import Network

_ATTR = "_sakd_qat"  # the per-module QAT record (a plain attribute: not in the state dict)
_SOURCE = "_qat_source"  # stand-in spike source of the one-population graphs
_SINK = "_qat_sink"  # stand-in output of the one-population graphs


class _StraightThrough(torch.autograd.Function):
    """Forward: ``quantized`` exactly; backward: the gradient goes to ``value`` unchanged."""

    @staticmethod
    def forward(ctx, value: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
        return quantized.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def straight_through(value: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` in the forward, the identity to ``value`` in the backward."""
    return _StraightThrough.apply(value, quantized.to(device=value.device, dtype=value.dtype))


def fake_quantize_input(x: torch.Tensor, input_q: InputQuantization) -> torch.Tensor:
    """``clip(round(x Q), -2^(b-1), 2^(b-1) - 1) / Q`` in the forward (``Input.encode``'s
    integers, computed in float64), the identity in the backward."""
    lo, hi = -(1 << (input_q.bits - 1)), (1 << (input_q.bits - 1)) - 1
    x_int = torch.round(x.detach().to(torch.float64) * input_q.scale).clamp(lo, hi)
    return straight_through(x, x_int / input_q.scale)


# ---------------------------------------------------------------------------------------------
# structure


@dataclass
class _Synapse:
    """One synapse of the canonical graph into a population."""

    name: str
    op: str  # conv | linear
    graded: bool  # reads the graded input
    module: str | None  # conv/linear module path; None for a fixed synapse (identity shortcut)
    attrs: dict[str, Any]  # canonical attributes (a fixed synapse's weight included)
    carries_bias: bool  # the module's bias enters here (first copy of a repeated synapse)


@dataclass
class _Population:
    name: str
    op: str  # neuron | output
    attrs: dict[str, Any]  # the canonical node's attributes (kind, tau, v_threshold, ...)
    synapses: list[_Synapse]
    modules: list[str]  # distinct module paths, in synapse order
    neuron: nn.Module | None = None  # the LIF module (None for the readout)


@dataclass
class PopulationQuant:
    """One population's integers as the export computes them, and their float values."""

    scale: int
    vth: int | None  # None for the readout
    limited_by: str
    weight_int: dict[str, torch.Tensor]  # synapse name -> int64
    bias_mant: torch.Tensor
    bias_exp: int
    weight_deq: dict[str, torch.Tensor]  # synapse name -> float64 (dequantized_graph)
    bias_deq: torch.Tensor  # float64, the population's whole bias
    threshold: float | None = None  # the LIF's comparison threshold under QAT
    versions: tuple[int, ...] = ()  # of the parameters and buffers it was computed from


@dataclass
class _Layer:
    """A patched conv/linear: folds its BN and pool, and runs fake-quantized."""

    handle: QATHandle
    path: str
    module: nn.Module
    op: str  # conv | linear
    population: str
    graded: bool
    bn: nn.Module | None = None
    pool: tuple[tuple[int, int], tuple[int, ...]] | None = None  # (kernel, source (C, H, W))
    conv_args: dict[str, Any] = field(default_factory=dict)  # stride/padding/... after composition

    def tensors(self) -> list[torch.Tensor]:
        mods = [self.module] + ([self.bn] if self.bn is not None else [])
        return [t for m in mods
                for t in list(m.parameters(recurse=False)) + list(m.buffers(recurse=False))]

    def fold(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The float64 weight and bias of this synapse in the canonical graph (BN folded, pool
        composed) with the same operations as the export passes (bit-identical values),
        differentiable in the module's and the BN's parameters."""
        f64 = torch.float64
        weight = self.module.weight.to(f64)
        bias = None if self.module.bias is None else self.module.bias.to(f64)
        bn = self.bn
        if bn is not None:  # as trace._module_node + passes.fold_batchnorm
            mean, var = bn.running_mean.to(f64), bn.running_var.to(f64)
            gamma = bn.weight.to(f64) if bn.affine else torch.ones_like(mean)
            beta = bn.bias.to(f64) if bn.affine else torch.zeros_like(mean)
            weight, bias = fold_bn(weight, bias, *bn_scale_shift(gamma, beta, mean, var, bn.eps))
        if self.pool is not None:  # as passes.fold_average_pooling
            kernel, source_shape = self.pool
            if self.op == "conv":
                weight = pool_into_conv(weight, kernel)
            else:
                weight = spread_pooled_linear(weight, source_shape, kernel)
        return weight, bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The synapse with the export's dequantized weights, in the module's dtype; autocast
        is off here (bf16/fp16 would round W_int / (c S) and move membranes off the lattice)."""
        handle = self.handle
        dtype = self.module.weight.dtype
        x = x.to(dtype)
        if self.graded:
            x = fake_quantize_input(x, handle.input)
        weight, bias = handle._quantized_parameters(self)
        weight = weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self.op == "conv":
                return F.conv2d(x, weight, bias, **self.conv_args)
            return F.linear(x.flatten(1) if self.pool is not None else x, weight, bias)


def _layer_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return getattr(module, _ATTR).forward(x)


def _identity_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return x


def _neuron_forward(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The LIF's own forward with the chip's tie rule as its threshold, during this call only."""
    handle, name = getattr(module, _ATTR)
    quant = handle._last.get(name)
    saved = module.v_threshold
    if quant is not None and quant.threshold is not None:
        module.v_threshold = quant.threshold
    try:
        return type(module).forward(module, x)
    finally:
        module.v_threshold = saved


def _structure(network: Network, input_shape: tuple[int, ...]) -> tuple[Graph, Graph]:
    """The traced graph and the canonical float graph (traced on a CPU copy if needed)."""
    source = network
    if any(t.device.type != "cpu" for t in list(network.parameters()) + list(network.buffers())):
        source = copy.deepcopy(network).cpu()
    traced = trace_network(source, tuple(input_shape))
    graph = traced
    for _, fn in FLOAT_PASSES:
        graph = fn(graph)
    return traced, graph


def _population_graph(pop: _Population, folded: dict[str, tuple[torch.Tensor, Any]],
                      device: torch.device) -> Graph:
    """A canonical graph holding only ``pop`` and its synapses (current weights), with stand-in
    source and sink populations, for ``quantize_graph``: its scale is per population."""
    one = torch.ones(1, 1, dtype=torch.float64, device=device)
    nodes = [Node("input", "input", [], (1,))]
    if any(not s.graded for s in pop.synapses):
        nodes += [Node(f"{_SOURCE}.syn", "linear", ["input"], (1,), {"weight": one, "bias": None}),
                  Node(_SOURCE, "neuron", [f"{_SOURCE}.syn"], (1,), {"kind": "or"})]
    names = []
    for syn in pop.synapses:
        attrs = dict(syn.attrs)
        if syn.module is not None:
            weight, bias = folded[syn.module]
            attrs.update(weight=weight, bias=bias if syn.carries_bias else None)
        else:
            attrs["weight"] = attrs["weight"].to(device)
        nodes.append(Node(syn.name, syn.op, ["input" if syn.graded else _SOURCE], (), attrs))
        names.append(syn.name)
    feed = names[0]
    if len(names) > 1:
        feed = f"{_SINK}.sum"
        nodes.append(Node(feed, "add", names, ()))
    nodes.append(Node(pop.name, pop.op, [feed], (), dict(pop.attrs)))
    if pop.op != "output":
        nodes += [Node(f"{_SINK}.syn", "linear", [pop.name], (), {"weight": one, "bias": None}),
                  Node(_SINK, "output", [f"{_SINK}.syn"], ())]
    return Graph(nodes)


# ---------------------------------------------------------------------------------------------
# the handle


class QATHandle:
    """QAT state of one network: ``disable()``, ``sync_check(lowering)``, ``refresh()``,
    ``report()``, ``integer_weights()``."""

    def __init__(self, network: Network, spec: TargetSpec, input_q: InputQuantization,
                 chip_ties: bool) -> None:
        self.network = network
        self.spec = spec
        self.input = input_q
        self.chip_ties = chip_ties
        self.populations: dict[str, _Population] = {}
        self.layers: dict[str, _Layer] = {}
        self.folded_modules: dict[str, nn.Module] = {}  # BN and pools patched to the identity
        self._patched: list[tuple[nn.Module, Any]] = []  # (module, previous instance forward)
        self._last: dict[str, PopulationQuant] = {}
        self.inexact_fixed: set[str] = set()  # fixed synapses the export rounds (warned once)
        self.enabled = False

    # quantization ------------------------------------------------------------------------------
    def _quantize(self, pop: _Population, folded: dict[str, tuple[torch.Tensor, Any]],
                  device: torch.device) -> PopulationQuant:
        """The export's integers for ``pop`` (quantize_graph and dequantized_graph on a
        one-population graph), from detached float64 weights."""
        if pop.neuron is not None:
            pop.attrs["v_threshold"] = float(pop.neuron.v_threshold)  # as trace reads it
        qgraph = quantize_graph(_population_graph(pop, folded, device), self.spec, self.input,
                                self.network.time_steps)
        deq = dequantized_graph(qgraph)
        node = qgraph.graph[pop.name]
        row = next(r for r in qgraph.report if r.name == pop.name)
        first = pop.synapses[0].name
        scale = int(node.attrs["scale"])
        quant = PopulationQuant(
            scale=scale, vth=int(node.attrs["vth"]) if pop.op == "neuron" else None,
            limited_by=row.scale_limited_by,
            weight_int={s.name: qgraph.graph[s.name].attrs["weight_int"] for s in pop.synapses},
            bias_mant=node.attrs["bias_mant"], bias_exp=int(node.attrs["bias_exp"]),
            weight_deq={s.name: deq[s.name].attrs["weight"] for s in pop.synapses},
            bias_deq=deq[first].attrs["bias"])
        if pop.neuron is not None and self.chip_ties:
            # fire iff v_int >= 64 vth + 1, v_int = 64 S V / theta: halfway, V >= theta (vth + 1/128) / S
            quant.threshold = pop.attrs["v_threshold"] * (quant.vth + 1.0 / 128.0) / scale
        for syn in pop.synapses:
            if syn.module is None and syn.name not in self.inexact_fixed and not torch.equal(
                    quant.weight_deq[syn.name].cpu(), syn.attrs["weight"]):
                self.inexact_fixed.add(syn.name)
                warnings.warn(f"QAT: the export quantizes the fixed synapse '{syn.name}' (weight "
                              f"1) inexactly at scale {scale} (c S is not an even integer), but "
                              "the network adds it exactly: population "
                              f"'{pop.name}' differs from the chip by that rounding", stacklevel=2)
        quant.versions = self._versions(pop)
        self._last[pop.name] = quant
        return quant

    def _versions(self, pop: _Population) -> tuple[int, ...]:
        return tuple(t._version for path in pop.modules for t in self.layers[path].tensors())

    def _quantized_parameters(self, layer: _Layer) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The straight-through weight and bias of ``layer`` (float64) for this forward."""
        pop = self.populations[layer.population]
        folded: dict[str, tuple[torch.Tensor, Any]] = {}
        with torch.no_grad():
            for path in pop.modules:
                if path != layer.path:
                    folded[path] = self.layers[path].fold()
        weight, bias = layer.fold()
        folded[layer.path] = (weight.detach(), None if bias is None else bias.detach())
        quant = self._quantize(pop, folded, weight.device)
        syn = next(s for s in pop.synapses if s.module == layer.path)
        weight_q = straight_through(weight, quant.weight_deq[syn.name])
        if layer.path == pop.modules[0]:  # carries the population's whole bias
            total = quant.bias_deq
            if bias is None:
                bias_q = total.to(weight.device) if bool(total.any()) else None
            else:
                bias_q = straight_through(bias, total)
        else:
            bias_q = None if bias is None else straight_through(bias, torch.zeros_like(bias))
        return weight_q, bias_q

    def refresh(self) -> None:
        """Recompute every population's integers from the current parameters (no forward)."""
        with torch.no_grad():
            for pop in self.populations.values():
                folded = {path: self.layers[path].fold() for path in pop.modules}
                self._quantize(pop, folded, folded[pop.modules[0]][0].device)

    # inspection --------------------------------------------------------------------------------
    def report(self) -> list[dict[str, Any]]:
        """Per population: the scale and what limits it, from the last forward (or refresh)."""
        return [{"population": name, "scale": q.scale, "limited_by": q.limited_by,
                 "bias_exp": q.bias_exp, "threshold": q.threshold}
                for name, q in self._last.items()]

    def last(self, population: str) -> PopulationQuant:
        """The integers QAT used for ``population`` in its last forward (or refresh)."""
        return self._last[population]

    def integer_weights(self) -> dict[str, torch.Tensor]:
        """Synapse name -> the int64 weights QAT used in its last forward."""
        return {name: w.detach().cpu() for q in self._last.values()
                for name, w in q.weight_int.items()}

    def sync_check(self, lowering: Lowering, *, refresh: bool = False) -> dict[str, Any]:
        """Compare the lowering's integers with those QAT used in its last forward.

        Returns ``max_weight_diff`` (integer weight units), ``max_bias_diff`` (units of
        ``bias_mant << bias_exp``), ``scale_mismatches`` (population names), ``stale``
        (populations whose parameters changed since QAT last used them: run a forward, or pass
        ``refresh=True``) and the numbers of populations and synapses compared.
        """
        if refresh:
            self.refresh()
        graph = lowering.quantized.graph
        weight_diff = bias_diff = synapses = 0
        scale_mismatches, stale = [], []
        for pop in self.populations.values():
            quant = self._last[pop.name]
            missing = [n for n in [pop.name] + [s.name for s in pop.synapses] if n not in graph]
            if missing:
                raise ExportError(f"sync_check: the lowering has no node '{missing[0]}'; it is "
                                  "not a lowering of this network")
            if quant.versions != self._versions(pop):
                stale.append(pop.name)
            node = graph[pop.name]
            if int(node.attrs["scale"]) != quant.scale:
                scale_mismatches.append(pop.name)
            for syn in pop.synapses:
                ours = quant.weight_int[syn.name].detach().cpu().to(torch.int64)
                theirs = graph[syn.name].attrs["weight_int"].to(torch.int64)
                if ours.shape != theirs.shape:
                    raise ExportError(f"sync_check: synapse '{syn.name}' has shape "
                                      f"{tuple(theirs.shape)} in the lowering, {tuple(ours.shape)} here")
                weight_diff = max(weight_diff, int((ours - theirs).abs().max()))
                synapses += 1
            ours_b = quant.bias_mant.detach().cpu().to(torch.int64) << quant.bias_exp
            theirs_b = node.attrs["bias_mant"].to(torch.int64) << int(node.attrs["bias_exp"])
            bias_diff = max(bias_diff, int((ours_b - theirs_b).abs().max()))
        return {"max_weight_diff": weight_diff, "max_bias_diff": bias_diff,
                "scale_mismatches": scale_mismatches, "stale": stale,
                "inexact_fixed": sorted(self.inexact_fixed),
                "populations": len(self.populations), "synapses": synapses}

    # patching ----------------------------------------------------------------------------------
    def _patch(self, module: nn.Module, forward, record: Any) -> None:
        self._patched.append((module, module.__dict__.get("forward")))
        setattr(module, _ATTR, record)
        module.forward = types.MethodType(forward, module)

    def disable(self) -> None:
        """Restore the original forwards (the float network, exactly)."""
        for module, previous in reversed(self._patched):
            if previous is None:
                del module.forward
            else:
                module.forward = previous
            if _ATTR in module.__dict__:
                delattr(module, _ATTR)
        self._patched = []
        self.enabled = False


def enable_qat(snn: Network, *, input_shape: tuple[int, ...], input_range: tuple[float, float],
               input_bits: int = DEFAULT_GRADED_BITS,
               target: str | TargetSpec = DEFAULT_TARGET, chip_ties: bool = True) -> QATHandle:
    """Make ``snn`` train with the integer weights ``lower(snn, ...)`` gives (same arguments);
    returns the handle that disables it and checks the sync. ``chip_ties``: a membrane exactly at
    the threshold does not fire, as on the chip (module docstring). Raises ``ExportError`` for a
    network the export, or QAT, cannot handle."""
    if qat_enabled(snn):
        raise ExportError("QAT is already enabled on this network; disable() it first")
    try:
        spec = get_target(target)
    except SakdError as exc:
        raise ExportError(str(exc)) from exc
    input_q = InputQuantization.for_range(input_bits, *input_range)
    traced, graph = _structure(snn, input_shape)
    modules = dict(snn.named_modules())
    handle = QATHandle(snn, spec, input_q, chip_ties)
    layer_population: dict[str, str] = {}
    for node in graph.nodes:
        if node.op not in ("neuron", "output") or node.attrs.get("kind") == "or":
            continue  # OR populations (max pooling): fixed weights, nothing to train
        synapses = []
        for syn in synapses_into(graph, node.name):
            if syn.op == "upsample_conv" or ".cat[" in syn.name:
                raise ExportError(f"QAT: synapse '{syn.name}' comes from an upsampling or a "
                                  "concat, which QAT does not train; QAT is for classifiers "
                                  "without them (export without QAT)")
            graded = graph[syn.inputs[0]].op == "input"
            module = modules.get(syn.origin)
            attrs = {k: v for k, v in syn.attrs.items() if k not in ("weight", "bias", "weight_int")}
            if isinstance(module, (nn.Conv2d, nn.Linear)) and syn.origin in traced:
                path = syn.origin
                if layer_population.setdefault(path, node.name) != node.name:
                    raise ExportError(f"QAT: module '{path}' feeds two populations "
                                      f"('{layer_population[path]}' and '{node.name}'), which "
                                      "need different scales")
                synapses.append(_Synapse(syn.name, syn.op, graded, path, attrs,
                                         syn.attrs.get("bias") is not None))
            else:
                if graded:
                    raise ExportError(f"QAT: the graded input reaches '{node.name}' through the "
                                      f"fixed synapse '{syn.name}'; QAT does not support that")
                attrs["weight"] = syn.attrs["weight"].detach().clone()
                synapses.append(_Synapse(syn.name, syn.op, False, None, attrs, False))
        paths = list(dict.fromkeys(s.module for s in synapses if s.module is not None))
        if not paths:
            raise ExportError(f"QAT: population '{node.name}' has no trainable synapse")
        neuron = modules[node.origin] if node.op == "neuron" else None
        handle.populations[node.name] = _Population(node.name, node.op, dict(node.attrs),
                                                    synapses, paths, neuron)
    for path, pop_name in layer_population.items():
        node, module = traced[path], modules[path]
        copies = [s for s in handle.populations[pop_name].synapses if s.module == path]
        graded = any(s.graded for s in copies)
        if graded and len(copies) > 1:
            raise ExportError(f"QAT: module '{path}' reads the graded input and other sources "
                              "(a repeated synapse); QAT does not support that")
        layer = _Layer(handle, path, module, node.op, pop_name, graded)
        consumers = traced.consumers(path)
        if len(consumers) == 1 and consumers[0].op == "batchnorm":
            layer.bn = modules[consumers[0].origin or consumers[0].name]
            handle.folded_modules[consumers[0].name] = layer.bn
        source = traced[node.inputs[0]]
        if source.op == "flatten" and node.op == "linear":
            source = traced[source.inputs[0]]
        if source.op == "avgpool":
            pool_in = tuple(traced[source.inputs[0]].shape)
            glob = source.attrs.get("global_pool")
            kernel = pool_in[1:] if glob else tuple(source.attrs["kernel"])
            stride = pool_in[1:] if glob else tuple(source.attrs["stride"])
            if stride != kernel:
                raise ExportError(f"QAT: average pool '{source.name}' (stride {stride} != kernel "
                                  f"{kernel}) folded into '{path}' is not supported by QAT yet")
            layer.pool = (kernel, pool_in)
            handle.folded_modules[source.name] = modules[source.origin or source.name]
        if node.op == "conv":
            canon = graph[copies[0].name]
            layer.conv_args = {k: canon.attrs[k] for k in ("stride", "padding", "dilation", "groups")}
        handle.layers[path] = layer
    try:
        for layer in handle.layers.values():
            handle._patch(layer.module, _layer_forward, layer)
        for module in handle.folded_modules.values():
            handle._patch(module, _identity_forward, True)
        if chip_ties:
            for pop in handle.populations.values():
                if pop.neuron is not None:
                    handle._patch(pop.neuron, _neuron_forward, (handle, pop.name))
        handle.enabled = True
        handle.refresh()  # the integers (and thresholds) before the first forward
    except BaseException:
        handle.disable()
        raise
    return handle


def qat_enabled(network: nn.Module) -> bool:
    """Whether QAT patches are active on ``network``."""
    return any(_ATTR in m.__dict__ for m in network.modules())


__all__ = ["PopulationQuant", "QATHandle", "enable_qat", "fake_quantize_input", "qat_enabled",
           "straight_through"]
