"""Pass 1: trace a trained spiking network into a float ``Graph``.

torch.fx traces one time step's computation (time is not part of the graph) with every module
of a known kind kept as one node. An unsupported module, function or method stops the export
with an error naming it and saying why. Two entries:

- ``trace_network``: a sakd ``Network`` (its ``forward_static``; neurons are ``MultiStepLIF``).
- ``trace_module``: any torch module built from spikingjelly neurons and layers or their
  ``torch.nn`` equivalents (a user's own SNN, not built by sakd's registry), in spikingjelly's
  multi-step (``step_mode='m'``) or single-step (``'s'``) mode. Its result, ``TracedModule``,
  also says how the module is called (``TracedModule.run_module``), so that
  ``check_traced_module`` can prove the graph computes what the module computes.

Neurons (exact types; a subclass may change the math and is refused): spikingjelly ``LIFNode``
(``tau``, ``decay_input``, ``v_threshold``), ``IFNode`` (a LIF without leak: ``tau = inf``, so
``dv = 0``) and ``ParametricLIFNode`` (its learned ``w`` read out as the float
``tau = 1 / sigmoid(w)``, then mapped like a LIF's: ``dv = round(4096 / tau)``), each with a hard
reset to 0.
"""

from __future__ import annotations

import copy
import math
import operator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import base as sj_base
from spikingjelly.activation_based import functional as sj_functional
from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from torch import fx, nn

from sakd.export.fold import bn_scale_shift
from sakd.export.graph import ExportError, Graph, Node, infer_shape, run_graph
from sakd.models.base import Network
from sakd.models.neurons import MultiStepLIF

_LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
           nn.MaxPool2d, nn.Flatten, nn.Identity, nn.Dropout, nn.ReLU, MultiStepLIF)
#: modules that are the identity in eval mode (spikingjelly's dropouts keep one mask over time)
_IDENTITY = (nn.Identity, nn.Dropout, sj_layer.Dropout)
#: spikingjelly's neurons the exporter lowers (exact types)
USER_NEURONS = (sj_neuron.LIFNode, sj_neuron.IFNode, sj_neuron.ParametricLIFNode)
#: spikingjelly containers that run their children once per step (the children see one step)
_STEP_CONTAINERS = (sj_layer.SeqToANNContainer, sj_layer.MultiStepContainer)
#: the conv, linear, BN, pooling and flatten kinds of ``_module_node`` (torch or spikingjelly)
_LAYERS = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d,
           nn.AdaptiveAvgPool2d, nn.MaxPool2d, nn.Flatten)
#: of those, the torch.nn layers that also run on a [T, B, ...] sequence (they act on the last axis)
_SEQUENCE_SAFE = (nn.Linear,)
SUPPORTED = ("conv2d, linear, batch norm (1d/2d, eval mode), average/adaptive-average/max pooling, "
             "flatten, dropout/identity, residual adds, and spikingjelly LIFNode, IFNode and "
             "ParametricLIFNode with a hard reset to 0")


class _Static(nn.Module):
    """One step of a sakd Network: ``forward_chip`` where the network has one (a detector: its
    readout maps by name, before the host's reshaping), else ``forward_static``."""

    def __init__(self, network: Network) -> None:
        super().__init__()
        self.net = network

    def forward(self, x: torch.Tensor) -> Any:
        if hasattr(self.net, "forward_chip"):
            return self.net.forward_chip(x)
        return self.net.forward_static(x)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, _LEAVES) or super().is_leaf_module(module, qualified_name)


class _UserTracer(fx.Tracer):
    """Every torch.nn and spikingjelly module is one node (the exporter decides whether it is
    supported); a user's own modules are traced through; spikingjelly's step containers are
    traced through as the sequence of their children."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        if isinstance(module, _STEP_CONTAINERS) or _is_step_container(module):
            return False
        if type(module).__module__.startswith("spikingjelly"):
            return True
        return isinstance(module, _LEAVES) or super().is_leaf_module(module, qualified_name)

    def call_module(self, m: nn.Module, forward: Any, args: Any, kwargs: Any) -> Any:
        if isinstance(m, _STEP_CONTAINERS) or _is_step_container(m):
            return nn.Sequential.forward(m, *args, **kwargs)
        return super().call_module(m, forward, args, kwargs)


def _is_step_container(module: nn.Module) -> bool:
    """A ``StepModeContainer`` in multi-step mode (seq-to-ANN or multi-step forward of its children)."""
    return isinstance(module, sj_layer.StepModeContainer) and module.step_mode == "m"


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _f64(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A float64 CPU copy (the lowering runs on the CPU whatever device the network is on)."""
    return None if tensor is None else tensor.detach().to("cpu", torch.float64).clone()


def trace_network(network: Network, input_shape: tuple[int, ...]) -> Graph:
    """The float graph of a spiking ``network`` (``time_steps >= 1``) for inputs of ``input_shape``
    (C, H, W) or (N,). BatchNorm is taken in eval mode (running statistics)."""
    if not isinstance(network, Network):
        raise ExportError(f"export expects a sakd Network, got {type(network).__name__}")
    if not network.is_spiking:
        raise ExportError("export lowers a spiking network (time_steps >= 1); this is an ANN. "
                          "Spikify it (or export the SAKD student's checkpoint)")
    try:
        fx_graph = _Tracer().trace(_Static(network))
    except Exception as exc:  # fx raises many exception types for untraceable code
        raise ExportError(f"cannot trace {type(network).__name__} with torch.fx: {exc}") from exc
    builder = _Builder(dict(network.named_modules()), tuple(input_shape), prefix="net.")
    nodes = builder.build(fx_graph)
    graph = Graph(nodes, metadata={"arch": type(network).__name__,
                                   "time_steps": network.time_steps})
    for out in graph.outputs:
        if out.inputs and graph[out.inputs[0]].op == "neuron":
            which = "" if len(graph.outputs) == 1 else f" (readout '{out.name}')"
            raise ExportError(f"the network ends in a spiking neuron{which}; the classifier must "
                              "end in a linear layer (it becomes the readout population)")
    return graph


# ---------------------------------------------------------------------------------------------
# a user's own module


@dataclass
class TracedModule:
    """A user's module traced for export: its float graph, its T, and how it is called.

    ``step_mode``: ``'m'`` (forward takes a sequence ``[T, B, *shape]``, or a static ``[B, *shape]``
    that it repeats over T itself: ``repeats_input``; it returns ``[T, B, classes]``, or the mean
    or sum over T: ``reduces_output``) or ``'s'`` (forward takes one step ``[B, *shape]`` and
    returns ``[B, classes]``; called T times, state kept in between). The logits are the mean
    over T of the per-step outputs. ``spike_count_readout``: the module ends in a spiking layer,
    whose spike counts are the logits (an identity projection into the readout population).
    """

    graph: Graph
    time_steps: int
    step_mode: str
    repeats_input: bool = False
    reduces_output: str | None = None
    spike_count_readout: bool = False
    neurons: dict[str, dict[str, Any]] = field(default_factory=dict)

    def convention(self) -> str:
        """How the module is called, in words (reports and errors)."""
        if self.step_mode == "s":
            return "single-step: forward(x[B, ...]) -> [B, classes], called T times"
        given = "x[B, ...] (forward repeats it over T)" if self.repeats_input else "x_seq[T, B, ...]"
        out = f"the {self.reduces_output} over T" if self.reduces_output else "[T, B, classes]"
        return f"multi-step: forward({given}) -> {out}"

    def run_module(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The module's logits (mean over T of its per-step outputs) for a static input ``x``
        ``[B, *shape]``, called by its convention; spikingjelly state is reset before and after."""
        steps = self.time_steps
        sj_functional.reset_net(module)
        try:
            with torch.no_grad():
                if self.step_mode == "s":
                    total = None
                    for _ in range(steps):
                        out = module(x)
                        total = out if total is None else total + out
                    return total / steps
                seq = x if self.repeats_input else x.unsqueeze(0).repeat(steps, *([1] * x.dim()))
                out = module(seq)
                if self.reduces_output == "mean":
                    return out
                if self.reduces_output == "sum":
                    return out / steps
                if out.dim() < 2 or out.shape[0] != steps:
                    raise ExportError(f"{type(module).__name__} returned shape "
                                      f"{tuple(out.shape)} for a sequence of T = {steps} steps; a "
                                      f"multi-step module returns [T, B, classes]")
                return out.mean(0)
        finally:
            sj_functional.reset_net(module)


def trace_module(module: nn.Module, input_shape: tuple[int, ...], time_steps: int | None = None,
                 ) -> TracedModule:
    """Trace a user's spiking ``module`` (spikingjelly neurons and layers, or torch.nn layers)
    for static inputs of ``input_shape`` (C, H, W) or (N,) and T = ``time_steps`` (None: the T
    that forward repeats its input by). BatchNorm is taken in eval mode (running statistics).

    Every module is checked: its kind (``SUPPORTED``), its parameters (hard reset to 0, a
    threshold > 0, tau >= 1, no padding modes, ...) and its step mode (one mode for the whole
    model; a torch.nn conv, BN or pool sees ``[T, B, ...]`` in a multi-step model and is refused
    unless it sits in a ``SeqToANNContainer``). An error names the module by its qualified name.
    """
    if not isinstance(module, nn.Module):
        raise ExportError(f"export expects a torch nn.Module, got {type(module).__name__}")
    if isinstance(module, Network):
        raise ExportError(f"{type(module).__name__} is a sakd Network: export its checkpoint "
                          "(`sakd export CKPT`), or lower it with sakd.export.lower.lower")
    shape = _check_input_shape(input_shape)
    if time_steps is not None and (isinstance(time_steps, bool) or not isinstance(time_steps, int)
                                   or time_steps < 1):
        raise ExportError(f"time_steps (T) must be a positive integer, got {time_steps!r}")
    contexts, step_mode = _step_contexts(module)
    try:
        fx_graph = _UserTracer().trace(module)
    except ExportError:
        raise
    except Exception as exc:  # fx raises many exception types for untraceable code
        raise ExportError(f"cannot trace {type(module).__name__} with torch.fx ({exc}); forward "
                          "must be a fixed sequence of layers, neurons, flatten and adds "
                          "(no shape-dependent Python control flow)") from exc
    builder = _Builder(dict(module.named_modules()), shape, contexts=contexts, step_mode=step_mode)
    nodes = builder.build(fx_graph)
    if builder.repeats is not None:
        if time_steps is not None and time_steps != builder.repeats:
            raise ExportError(f"forward repeats its input {builder.repeats} times but "
                              f"time_steps (T) = {time_steps} was given")
        time_steps = builder.repeats
    if time_steps is None:
        raise ExportError(f"{type(module).__name__}: give time_steps (T, the steps per sample); "
                          "the module does not fix it")
    neurons = {n.name: n for n in nodes if n.op == "neuron"}
    if not neurons:
        raise ExportError(f"{type(module).__name__} has no spiking neuron ({SUPPORTED})")
    out = nodes[-1]
    count = False
    if out.inputs and out.inputs[0] in neurons:  # a spike-count readout (spikingjelly tutorials)
        last = neurons[out.inputs[0]]
        if len(last.shape) != 1:
            raise ExportError(f"{last.describe()}: the module ends in a spiking layer of shape "
                              f"{last.shape}; a spike-count readout needs a flat (N,) layer")
        count_node = Node(f"{last.name}.count", "linear", [last.name], last.shape, dict(
            weight=torch.eye(last.shape[0], dtype=torch.float64), bias=None), origin=last.origin)
        out.inputs = [count_node.name]
        nodes.insert(len(nodes) - 1, count_node)
        count = True
    graph = Graph(nodes, metadata={"arch": type(module).__name__, "time_steps": time_steps})
    info = {n.name: {k: n.attrs[k] for k in ("model", "tau", "decay_input", "v_threshold")}
            for n in neurons.values()}
    return TracedModule(graph, int(time_steps), step_mode, builder.repeats is not None,
                        builder.reduce, count, info)


def check_traced_module(traced: TracedModule, module: nn.Module, x: torch.Tensor,
                        rtol: float = 1e-6) -> dict[str, Any]:
    """Run ``module`` (a float64 CPU copy, eval mode; the spikingjelly state of ``module`` itself
    is reset first, as between samples) by its convention and the traced graph on
    the same static inputs ``x`` ``[B, *shape]`` and compare their logits: the graph must compute
    what the module computes (a forward doing something the tracer does not see, e.g. scaling
    the input, is caught here). Returns samples, max_abs_diff, the logits' scale and the
    fraction of (neuron, step) pairs that spiked; raises ``ExportError`` on a mismatch."""
    x = x.detach().to("cpu", torch.float64)
    sj_functional.reset_net(module)  # a neuron's state left by training holds autograd history
    try:
        model = copy.deepcopy(module).to("cpu", torch.float64).eval()
    except RuntimeError as exc:
        raise ExportError(f"{type(module).__name__} cannot be copied for the check ({exc})") from exc
    try:
        got = traced.run_module(model, x)
    except ExportError:
        raise
    except Exception as exc:  # the user's forward failed on its own convention
        raise ExportError(f"{type(module).__name__} cannot be run as {traced.convention()} on "
                          f"inputs of shape {tuple(x.shape[1:])}: {type(exc).__name__}: "
                          f"{exc}") from exc
    run = run_graph(traced.graph, x, traced.time_steps, record=True)
    want = run.logits
    if tuple(got.shape) != tuple(want.shape):
        raise ExportError(f"{type(module).__name__} returns logits of shape {tuple(got.shape)} "
                          f"but its traced graph gives {tuple(want.shape)}: forward does "
                          "something the exporter does not see")
    scale = max(1.0, float(want.abs().max()))
    diff = float((got - want).abs().max())
    if diff > rtol * scale:
        raise ExportError(f"the traced graph of {type(module).__name__} does not compute its "
                          f"output (max |difference| {diff:.3g} over {len(x)} inputs; called as "
                          f"{traced.convention()}): forward does something the exporter does not "
                          "see, or a layer's state or mode is not what the export assumes")
    rates = [float(s.mean()) for s in run.spikes.values()]
    return {"samples": int(len(x)), "max_abs_diff": diff, "logit_scale": scale,
            "spike_rate": sum(rates) / len(rates) if rates else 0.0}


def _check_input_shape(input_shape: Any) -> tuple[int, ...]:
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = ()
    if len(shape) not in (1, 3) or not all(isinstance(d, int) and not isinstance(d, bool)
                                          and d >= 1 for d in shape):
        raise ExportError(f"input shape {input_shape!r}: give (C, H, W) or (N,) with positive "
                          "integer sizes (no batch or time axis)")
    return shape


def _step_contexts(module: nn.Module) -> tuple[dict[str, str], str]:
    """Per module path, what its input is: ``sequence`` ([T, B, ...], outside any step container
    of a multi-step model), ``step`` (one step [B, ...]: a single-step model, or inside a
    MultiStepContainer) or ``folded`` ([T*B, ...] inside a SeqToANNContainer: stateless layers
    only); and the model's step mode. The modes outside containers must agree."""
    contexts: dict[str, str] = {}
    modes: list[tuple[str, str]] = []
    container: dict[str, str] = {}  # container path -> context of its children

    def inside(path: str) -> str | None:
        found = None
        for prefix, ctx in container.items():
            if path.startswith(prefix + ".") and (found is None or len(prefix) > len(found[0])):
                found = (prefix, ctx)
        return None if found is None else found[1]

    for path, sub in module.named_modules():
        if not path:
            continue
        ctx = inside(path)
        if ctx is None:
            if isinstance(sub, _STEP_CONTAINERS) or _is_step_container(sub):
                modes.append((path, "m"))
            elif isinstance(sub, sj_base.StepModule) and type(sub).__module__.startswith("spikingjelly"):
                modes.append((path, sub.step_mode))
        contexts[path] = ctx or ""
        if isinstance(sub, sj_layer.SeqToANNContainer) or (
                _is_step_container(sub) and not sub.stateful):
            container[path] = "folded"
        elif isinstance(sub, sj_layer.MultiStepContainer) or _is_step_container(sub):
            container[path] = "step"
    root = module.step_mode if isinstance(module, sj_base.StepModule) else None
    if root is not None:
        modes.insert(0, ("(the model)", root))
    if not modes:
        raise ExportError(f"{type(module).__name__} has no spikingjelly neuron or layer, so it has "
                          f"no step mode; the exporter lowers spikingjelly SNNs ({SUPPORTED})")
    first_path, mode = modes[0]
    for path, other in modes[1:]:
        if other != mode:
            raise ExportError(f"module '{path}' runs step_mode '{other}' but '{first_path}' runs "
                              f"'{mode}': give the whole model one step mode "
                              f"(spikingjelly.activation_based.functional.set_step_mode(model, "
                              f"'{mode}'))")
    outer = "sequence" if mode == "m" else "step"
    return {p: (c or outer) for p, c in contexts.items()}, mode


# ---------------------------------------------------------------------------------------------
# the graph builder shared by both entries


class _Builder:
    """fx graph -> ``Node`` list. ``contexts``/``step_mode`` are given for a user's module
    (``trace_module``): they decide how flatten dims are read and which time operations of a
    multi-step forward are recognized (the input repeated over T at the start, the mean or sum
    over T at the end)."""

    def __init__(self, modules: dict[str, nn.Module], input_shape: tuple[int, ...], *,
                 prefix: str = "", contexts: dict[str, str] | None = None,
                 step_mode: str = "s") -> None:
        self.modules = modules
        self.input_shape = input_shape
        self.prefix = prefix
        self.contexts = contexts
        self.sequence = contexts is not None and step_mode == "m"  # forward sees [T, B, ...]
        self.nodes: list[Node] = []
        self.alias: dict[str, str] = {}  # fx node name -> graph node name (identity modules vanish)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.emitted: set[str] = set()
        self.unsqueezed: set[str] = set()  # x.unsqueeze(0) of the input, waiting for its repeat
        self.reduced: dict[str, str] = {}  # fx node -> "mean" | "sum" over the time axis
        self.repeats: int | None = None
        self.reduce: str | None = None
        self.uses: dict[str, int] = {}  # conv/linear path -> times called (shared weights)
        self.constants: dict[str, Any] = {}  # fx node -> a shape (or part of one) known here

    def emit(self, node: Node) -> None:
        inputs = [self.shapes[i] for i in node.inputs]
        try:
            node.shape = infer_shape(node, inputs)
        except RuntimeError as exc:
            shown = ", ".join(str(s) for s in inputs)
            raise ExportError(f"{node.describe()} does not fit its input of shape {shown} "
                              f"({str(exc).splitlines()[0]}); check the input shape "
                              f"{self.input_shape}") from exc
        self.shapes[node.name] = node.shape
        self.nodes.append(node)

    def build(self, fx_graph: fx.Graph) -> list[Node]:
        for fx_node in fx_graph.nodes:
            self.visit(fx_node)
        return self.nodes

    def visit(self, fx_node: fx.Node) -> None:
        for a in fx_node.all_input_nodes:
            if a.name in self.reduced and fx_node.op != "output":
                raise ExportError(f"'{a.name}': the {self.reduced[a.name]} over time must be the "
                                  f"last operation of forward (it feeds '{fx_node.name}')")
            if a.name in self.unsqueezed and not self._is_repeat(fx_node):
                raise ExportError(f"'{fx_node.name}' reads the input unsqueezed to [1, B, ...]; "
                                  "only x.unsqueeze(0).repeat(T, 1, ...) (the static input "
                                  "repeated over T) is understood")
        args = [self.alias[a.name] for a in fx_node.args if isinstance(a, fx.Node)]
        if fx_node.op == "placeholder":
            if "input" in self.shapes:
                raise ExportError(f"forward takes more than one input ('{fx_node.name}'); the "
                                  "exporter feeds one image tensor")
            node = Node("input", "input", [], tuple(self.input_shape))
            self.shapes["input"] = node.shape
            self.nodes.append(node)
            self.alias[fx_node.name] = "input"
        elif fx_node.op == "output":
            out = fx_node.args[0]
            if isinstance(out, dict) and not self.sequence and out and all(
                    isinstance(k, str) and isinstance(v, fx.Node) for k, v in out.items()):
                for key, value in out.items():  # several readouts (a detector's head outputs)
                    self.emit(Node(key, "output", [self.alias[value.name]], ()))
                return
            if not isinstance(out, fx.Node):
                raise ExportError("forward must return one tensor (the logits), got "
                                  f"{type(out).__name__}")
            self.reduce = self.reduced.get(out.name)
            self.emit(Node("readout", "output", [self.alias[out.name]], ()))
        elif fx_node.op == "call_function" and fx_node.target is getattr and \
                fx_node.args[1] == "shape" and not self.sequence:
            self.constants[fx_node.name] = (1, *self.shapes[args[0]])  # batch axis of 1
            self.alias[fx_node.name] = fx_node.name
        elif fx_node.op == "call_function" and fx_node.target is operator.getitem and \
                isinstance(fx_node.args[0], fx.Node) and fx_node.args[0].name in self.constants:
            self.constants[fx_node.name] = self.constants[fx_node.args[0].name][fx_node.args[1]]
            self.alias[fx_node.name] = fx_node.name
        elif fx_node.op == "call_function" and fx_node.target is F.interpolate and not self.sequence:
            self.visit_interpolate(fx_node, args)
        elif fx_node.op == "call_function" and fx_node.target is torch.cat and not self.sequence:
            self.visit_cat(fx_node)
        elif fx_node.op == "call_module":
            self.visit_module(fx_node, args)
        elif fx_node.op == "call_function" and fx_node.target in (operator.add, torch.add):
            if len(args) != 2 or fx_node.kwargs:
                raise ExportError(f"'{fx_node.name}': only the sum of two tensors is supported "
                                  "(a residual add); got a constant or an alpha factor")
            self.emit(Node(fx_node.name, "add", args, (), origin=fx_node.name))
            self.alias[fx_node.name] = fx_node.name
        elif (fx_node.op == "call_function" and fx_node.target is torch.flatten) or (
                fx_node.op == "call_method" and fx_node.target == "flatten"):
            _check_flatten_dim(fx_node, fx_node.args[1:] or [fx_node.kwargs.get("start_dim", 0)],
                               batch_axes=2 if self.sequence else 1)
            self.emit(Node(fx_node.name, "flatten", args, ()))
            self.alias[fx_node.name] = fx_node.name
        elif self.sequence and self.visit_time_op(fx_node, args):
            pass
        else:
            what = getattr(fx_node.target, "__name__", str(fx_node.target))
            raise ExportError(f"unsupported operation '{what}' at graph node '{fx_node.name}' "
                              f"({fx_node.op}): the exporter lowers conv, linear, batch norm, "
                              "pooling, flatten, residual add, channel concat, nearest "
                              "upsampling and LIF neurons only")

    def visit_interpolate(self, fx_node: fx.Node, args: list[str]) -> None:
        """``F.interpolate(x, size=... | scale_factor=..., mode="nearest")`` by integer factors
        (``"nearest-exact"`` is the same there), or ``mode="bilinear"`` of a 1x1 map (a
        broadcast, DeepLabV3's pooling branch): an ``upsample`` node (lowered as an upsample
        projection from spikes)."""
        kwargs = dict(fx_node.kwargs)
        names = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor",
                 "antialias")
        kwargs.update(zip(names, fx_node.args[1:]))
        mode = kwargs.get("mode", "nearest")
        source = self.shapes[args[0]]
        if len(source) != 3:
            raise ExportError(f"'{fx_node.name}': interpolation of a {source} value; a (C, H, W) "
                              "map is needed")
        # a bilinear interpolation of a 1x1 map reads its one value everywhere (every tap
        # clamps to it; align_corners does not matter): a broadcast, nearest upsampling by (H, W)
        broadcast = mode == "bilinear" and tuple(source[1:]) == (1, 1)
        if (mode not in ("nearest", "nearest-exact") and not broadcast) or kwargs.get("antialias"):
            raise ExportError(f"'{fx_node.name}': {mode} interpolation has no exact projection "
                              f"form (of a {source[1]}x{source[2]} map); only nearest upsampling "
                              "by integer factors (and a bilinear one of a 1x1 map, a broadcast) "
                              "is lowered")
        size = kwargs.get("size")
        if isinstance(size, fx.Node):
            if size.name not in self.constants:
                raise ExportError(f"'{fx_node.name}': its size comes from a value the exporter "
                                  "cannot fix; give a constant size or scale_factor")
            size = self.constants[size.name]
        if size is not None:
            size = _pair(size) if isinstance(size, int) else tuple(int(v) for v in size)
            if size[0] % source[1] or size[1] % source[2]:
                raise ExportError(f"'{fx_node.name}': size {size} is not an integer multiple of "
                                  f"{source[1:]}; nearest upsampling lowers exactly only by "
                                  "integer factors")
            factor = (size[0] // source[1], size[1] // source[2])
        else:
            scale = kwargs.get("scale_factor")
            pair = (scale, scale) if not isinstance(scale, (tuple, list)) else tuple(scale)
            if scale is None or any(float(v) != int(v) or int(v) < 1 for v in pair):
                raise ExportError(f"'{fx_node.name}': scale_factor {scale!r}; nearest "
                                  "upsampling lowers exactly only by integer factors")
            factor = (int(pair[0]), int(pair[1]))
        self.emit(Node(fx_node.name, "upsample", [args[0]], (), dict(factor=factor),
                       origin=fx_node.name))
        self.alias[fx_node.name] = fx_node.name

    def visit_cat(self, fx_node: fx.Node) -> None:
        """``torch.cat([x_1, .., x_n], dim=1)`` of tensors of the same rank, joined along the
        channel axis: a ``concat`` node (split into one synapse per part by the passes)."""
        parts = fx_node.args[0] if fx_node.args else fx_node.kwargs.get("tensors")
        dim = fx_node.args[1] if len(fx_node.args) > 1 else fx_node.kwargs.get("dim", 0)
        if not isinstance(parts, (list, tuple)) or len(parts) < 2 or not all(
                isinstance(t, fx.Node) for t in parts):
            raise ExportError(f"'{fx_node.name}': torch.cat of {parts!r}; a list of two or more "
                              "tensors computed in forward is needed")
        names = [self.alias[t.name] for t in parts]
        ranks = {len(self.shapes[n]) for n in names}
        if len(ranks) != 1:
            raise ExportError(f"'{fx_node.name}': torch.cat of tensors of different ranks")
        rank = ranks.pop() + 1  # with the batch axis
        if not isinstance(dim, int) or dim % rank != 1:
            raise ExportError(f"'{fx_node.name}': torch.cat along dim {dim!r}; only the channel "
                              "axis (dim 1) is lowered")
        self.emit(Node(fx_node.name, "concat", names, (), origin=fx_node.name))
        self.alias[fx_node.name] = fx_node.name

    def visit_module(self, fx_node: fx.Node, args: list[str]) -> None:
        path = str(fx_node.target).removeprefix(self.prefix)
        module = self.modules[path]
        if path in self.emitted and self.contexts is None and isinstance(module, (nn.Conv2d, nn.Linear)):
            # a layer whose weights several uses share (FCOS's head convs across pyramid
            # levels): each use is its own projection with a copy of the weights
            use = self.uses.get(path, 1)
            self.uses[path] = use + 1
            node = _module_node(path, module, args)
            node.name = f"{path}[{use}]"
            _check_finite(node)
            self.emit(node)
            self.alias[fx_node.name] = node.name
            return
        if path in self.emitted:
            raise ExportError(f"module '{path}' ({type(module).__name__}) is called more than "
                              "once in forward; a neuron used twice would share its state, a "
                              "layer used twice its weights: give each use its own module")
        self.emitted.add(path)
        if self.contexts is not None:
            _check_context(path, module, self.contexts.get(path, "step"))
            if isinstance(module, nn.Linear) and len(self.shapes[args[0]]) != 1:
                raise ExportError(f"linear '{path}' receives shape {self.shapes[args[0]]}: a "
                                  "Linear acts on the last axis only; flatten its input first")
        if isinstance(module, _IDENTITY):
            self.alias[fx_node.name] = args[0]
            return
        offset = 1 if (self.contexts is not None and self.contexts.get(path) == "sequence"
                       and not isinstance(module, sj_base.StepModule)) else 0
        node = _module_node(path, module, args, user=self.contexts is not None,
                            flatten_offset=offset)
        _check_finite(node)
        self.emit(node)
        self.alias[fx_node.name] = path

    @staticmethod
    def _is_repeat(fx_node: fx.Node) -> bool:
        return fx_node.op == "call_method" and fx_node.target in ("repeat", "expand")

    def visit_time_op(self, fx_node: fx.Node, args: list[str]) -> bool:
        """The time operations of a multi-step forward that take a static input: ``x.unsqueeze(0)``
        then ``.repeat(T, 1, ...)`` / ``.expand(T, ...)`` on the input, and ``.mean(0)`` /
        ``.sum(0)`` (or torch.mean/torch.sum) right before the output. True when recognized."""
        op, target = fx_node.op, fx_node.target
        dim = fx_node.args[1] if len(fx_node.args) > 1 else fx_node.kwargs.get("dim")
        if op == "call_method" and target == "unsqueeze" and args == ["input"]:
            if dim != 0 or self.repeats is not None:
                raise ExportError(f"'{fx_node.name}': only x.unsqueeze(0) (a time axis in front "
                                  "of the static input) is understood")
            self.unsqueezed.add(fx_node.name)
            self.alias[fx_node.name] = "input"
            return True
        if self._is_repeat(fx_node) and fx_node.args and getattr(fx_node.args[0], "name", None) in self.unsqueezed:
            counts = list(fx_node.args[1:])
            if len(counts) == 1 and isinstance(counts[0], (tuple, list)):
                counts = list(counts[0])
            rest = 1 if target == "repeat" else -1  # repeat(T, 1, ...), expand(T, -1, ...)
            ok = (len(counts) == len(self.input_shape) + 2 and isinstance(counts[0], int)
                  and not isinstance(counts[0], bool) and counts[0] >= 1
                  and all(c == rest for c in counts[1:]))
            if not ok:
                raise ExportError(f"'{fx_node.name}': {target}{tuple(counts)} of the input: only "
                                  f"x.unsqueeze(0).{target}(T, {rest}, ...) with a constant T is "
                                  "understood")
            self.repeats = int(counts[0])
            self.unsqueezed.discard(fx_node.args[0].name)
            self.alias[fx_node.name] = "input"
            return True
        reducer = (target if op == "call_method" else getattr(target, "__name__", None))
        if reducer in ("mean", "sum") and (op == "call_method" or target in (torch.mean, torch.sum)):
            keep = fx_node.kwargs.get("keepdim", fx_node.args[2] if len(fx_node.args) > 2 else False)
            if dim not in (0, (0,), [0]) or keep:
                raise ExportError(f"'{fx_node.name}': {reducer} over dim {dim!r}; only the "
                                  f"{reducer} over the time axis (dim 0) at the end of forward "
                                  "is understood")
            self.reduced[fx_node.name] = reducer
            self.alias[fx_node.name] = args[0]
            return True
        return False


def _check_context(path: str, module: nn.Module, context: str) -> None:
    """A module's step mode must fit where it sits (``_step_contexts``)."""
    name = type(module).__name__
    if isinstance(module, sj_base.StepModule) and type(module).__module__.startswith("spikingjelly"):
        want = "m" if context == "sequence" else "s"
        if module.step_mode != want:
            raise ExportError(f"module '{path}' ({name}) runs step_mode '{module.step_mode}' where "
                              f"it receives {'a sequence [T, B, ...]' if want == 'm' else 'one step'}"
                              f": set it to '{want}'")
    if context == "folded" and isinstance(module, (*USER_NEURONS, sj_base.MemoryModule)) \
            and not isinstance(module, _IDENTITY):
        raise ExportError(f"module '{path}' ({name}) sits in a SeqToANNContainer, which folds T "
                          "into the batch: a neuron there has no state over time")
    if context == "sequence" and isinstance(module, _LAYERS) and not isinstance(
            module, (sj_base.StepModule, *_SEQUENCE_SAFE)) and not (
            isinstance(module, nn.Flatten)):
        raise ExportError(f"module '{path}' is a torch.nn.{name} in a multi-step model, where it "
                          f"receives [T, B, ...]: use spikingjelly's layer.{name} (step_mode "
                          "'m') or wrap it in layer.SeqToANNContainer")


def _check_finite(node: Node) -> None:
    """Weights, biases and BN statistics must be finite numbers before anything is quantized."""
    for key, value in node.attrs.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ExportError(f"{node.describe()}: its {key} holds NaN or infinite values (training "
                              f"diverged, or the checkpoint is damaged); nothing can be exported")


def _check_flatten_dim(fx_node: fx.Node, args: list[Any], batch_axes: int = 1) -> None:
    start = args[0] if args else 0
    if start != batch_axes:
        keep = "the batch" if batch_axes == 1 else "time and batch: [T, B, ...]"
        raise ExportError(f"flatten at '{fx_node.name}' must start at dim {batch_axes} (keep "
                          f"{keep}), got start_dim={start}")


def _neuron_node(path: str, module: nn.Module, args: list[str]) -> Node:
    """A spikingjelly LIFNode, IFNode or ParametricLIFNode as a graph neuron (module docstring)."""
    kind = type(module)
    name = kind.__name__
    if kind not in USER_NEURONS:
        parent = next((k.__name__ for k in USER_NEURONS if isinstance(module, k)), None)
        why = (f"a subclass of {parent} whose math the exporter cannot vouch for" if parent
               else "not a neuron model the exporter lowers")
        raise ExportError(f"neuron '{path}' ({name}): {why}; supported: spikingjelly LIFNode, "
                          "IFNode and ParametricLIFNode (hard reset to 0)")
    if module.v_reset is None:
        raise ExportError(f"neuron '{path}' ({name}): soft reset (v_reset=None) has no Loihi "
                          "form; Loihi resets v to 0")
    if float(module.v_reset) != 0.0:
        raise ExportError(f"neuron '{path}' ({name}): reset to {module.v_reset}; Loihi resets v to 0")
    theta = module.v_threshold
    if torch.is_tensor(theta) and theta.numel() != 1:
        raise ExportError(f"neuron '{path}' ({name}): a per-neuron threshold is not supported")
    theta = float(theta)
    if not theta > 0 or not math.isfinite(theta):
        raise ExportError(f"neuron '{path}' ({name}): threshold {theta} must be a finite number > 0")
    if kind is sj_neuron.IFNode:
        tau, decay_input = math.inf, False
    elif kind is sj_neuron.ParametricLIFNode:
        if module.w.numel() != 1:
            raise ExportError(f"neuron '{path}' ({name}): a per-neuron time constant is not supported")
        tau = float(1.0 / torch.sigmoid(module.w.detach().to(torch.float64)).item())
        decay_input = bool(module.decay_input)
    else:
        tau, decay_input = module.tau, bool(module.decay_input)
        if torch.is_tensor(tau):
            if tau.numel() != 1:
                raise ExportError(f"neuron '{path}' ({name}): a per-neuron tau is not supported")
            tau = tau.item()
        tau = float(tau)
    if not tau >= 1.0:
        raise ExportError(f"neuron '{path}' ({name}): tau = {tau:g} < 1 has no Loihi decay "
                          "(dv = 4096 / tau must be at most 4096)")
    return Node(path, "neuron", args, (), dict(kind="lif", tau=tau, v_threshold=theta,
                                                decay_input=decay_input, model=name), origin=path)


def _module_node(path: str, module: nn.Module, args: list[str], user: bool = False,
                 flatten_offset: int = 0) -> Node:
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise ExportError(f"conv '{path}': padding {module.padding!r} with mode "
                              f"'{module.padding_mode}' is not supported; use integer zero padding")
        return Node(path, "conv", args, (), dict(
            weight=_f64(module.weight), bias=_f64(module.bias), stride=_pair(module.stride),
            padding=_pair(module.padding), dilation=_pair(module.dilation),
            groups=int(module.groups)), origin=path)
    if isinstance(module, nn.Linear):
        return Node(path, "linear", args, (), dict(weight=_f64(module.weight),
                                                   bias=_f64(module.bias)), origin=path)
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        if module.running_mean is None or module.running_var is None:
            raise ExportError(f"batch norm '{path}' has no running statistics "
                              "(track_running_stats=False); it cannot be folded")
        gamma = module.weight if module.affine else torch.ones_like(module.running_mean)
        beta = module.bias if module.affine else torch.zeros_like(module.running_mean)
        scale, shift = bn_scale_shift(_f64(gamma), _f64(beta), _f64(module.running_mean),
                                      _f64(module.running_var), module.eps)
        return Node(path, "batchnorm", args, (), dict(scale=scale, shift=shift), origin=path)
    if isinstance(module, nn.AdaptiveAvgPool2d):
        if _pair(module.output_size) != (1, 1):
            raise ExportError(f"adaptive average pool '{path}': only global pooling "
                              f"(output size 1) is supported, got {module.output_size}")
        return Node(path, "avgpool", args, (), dict(kernel=None, stride=None, padding=(0, 0),
                                                    global_pool=True), origin=path)
    if isinstance(module, nn.AvgPool2d):
        if module.ceil_mode or _pair(module.padding) != (0, 0) or module.divisor_override:
            raise ExportError(f"average pool '{path}': ceil_mode, padding and divisor_override "
                              "are not supported (they have no exact projection form)")
        return Node(path, "avgpool", args, (), dict(
            kernel=_pair(module.kernel_size), stride=_pair(module.stride or module.kernel_size),
            padding=(0, 0)), origin=path)
    if isinstance(module, nn.MaxPool2d):
        if module.ceil_mode or _pair(module.dilation) != (1, 1):
            raise ExportError(f"max pool '{path}': ceil_mode and dilation are not supported")
        return Node(path, "maxpool", args, (), dict(
            kernel=_pair(module.kernel_size), stride=_pair(module.stride or module.kernel_size),
            padding=_pair(module.padding)), origin=path)
    if isinstance(module, nn.Flatten):
        start = module.start_dim - flatten_offset
        if start != 1 or module.end_dim != -1:
            raise ExportError(f"flatten '{path}' must flatten dims {1 + flatten_offset}..-1 "
                              f"(keep {'time and ' if flatten_offset else ''}the batch), got "
                              f"{module.start_dim}..{module.end_dim}")
        return Node(path, "flatten", args, (), origin=path)
    if isinstance(module, MultiStepLIF) and not user:
        if module.v_reset is None:
            raise ExportError(f"neuron '{path}': soft reset (v_reset=None) has no Loihi form; "
                              "Loihi resets v to 0")
        if float(module.v_reset) != 0.0:
            raise ExportError(f"neuron '{path}': reset to {module.v_reset}; Loihi resets v to 0")
        return Node(path, "neuron", args, (), dict(
            kind="lif", tau=float(module.tau), v_threshold=float(module.v_threshold),
            decay_input=bool(module.decay_input)), origin=path)
    if user and isinstance(module, (sj_neuron.BaseNode, MultiStepLIF)):
        if isinstance(module, MultiStepLIF):
            raise ExportError(f"neuron '{path}' is sakd's MultiStepLIF (T folded into the batch); "
                              "in your own model use spikingjelly's LIFNode")
        return _neuron_node(path, module, args)
    if isinstance(module, nn.ReLU) and not user:
        raise ExportError(f"'{path}' is still a ReLU: export a spiking network (spikify the ANN "
                          "or export the student's checkpoint)")
    if user:
        raise ExportError(f"unsupported module '{path}' ({type(module).__name__}): the exporter "
                          f"lowers {SUPPORTED}")
    raise ExportError(f"unsupported module '{path}' ({type(module).__name__})")
