"""Pass 1: trace a trained spiking network into a float ``Graph``.

torch.fx traces ``forward_static`` (one time step's computation; time is not part of the graph)
with every module of a known kind kept as one node. An unsupported module, function or method
stops the export with an error naming it and saying why.
"""

from __future__ import annotations

import operator
from typing import Any

import torch
from torch import fx, nn

from sakd.export.fold import bn_scale_shift
from sakd.export.graph import ExportError, Graph, Node, infer_shape
from sakd.models.base import Network
from sakd.models.neurons import MultiStepLIF

_LEAVES = (nn.Conv2d, nn.Linear, nn.BatchNorm1d, nn.BatchNorm2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
           nn.MaxPool2d, nn.Flatten, nn.Identity, nn.Dropout, nn.ReLU, MultiStepLIF)


class _Static(nn.Module):
    def __init__(self, network: Network) -> None:
        super().__init__()
        self.net = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_static(x)


class _Tracer(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, _LEAVES) or super().is_leaf_module(module, qualified_name)


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
    modules = dict(network.named_modules())
    nodes: list[Node] = []
    alias: dict[str, str] = {}  # fx node name -> graph node name (identity modules vanish)
    shapes: dict[str, tuple[int, ...]] = {}

    def emit(node: Node) -> None:
        node.shape = infer_shape(node, [shapes[i] for i in node.inputs])
        shapes[node.name] = node.shape
        nodes.append(node)

    for fx_node in fx_graph.nodes:
        args = [alias[a.name] for a in fx_node.args if isinstance(a, fx.Node)]
        if fx_node.op == "placeholder":
            node = Node("input", "input", [], tuple(input_shape))
            shapes["input"] = node.shape
            nodes.append(node)
            alias[fx_node.name] = "input"
        elif fx_node.op == "output":
            emit(Node("readout", "output", args, ()))
        elif fx_node.op == "call_module":
            path = str(fx_node.target).removeprefix("net.")
            module = modules[path]
            if isinstance(module, (nn.Identity, nn.Dropout)):
                alias[fx_node.name] = args[0]
                continue
            node = _module_node(path, module, args)
            _check_finite(node)
            emit(node)
            alias[fx_node.name] = path
        elif fx_node.op == "call_function" and fx_node.target in (operator.add, torch.add):
            if len(args) != 2 or fx_node.kwargs:
                raise ExportError(f"'{fx_node.name}': only the sum of two tensors is supported "
                                  "(a residual add); got a constant or an alpha factor")
            emit(Node(fx_node.name, "add", args, (), origin=fx_node.name))
            alias[fx_node.name] = fx_node.name
        elif (fx_node.op == "call_function" and fx_node.target is torch.flatten) or (fx_node.op == "call_method" and fx_node.target == "flatten"):
            _check_flatten_dim(fx_node, fx_node.args[1:] or [fx_node.kwargs.get("start_dim", 0)])
            emit(Node(fx_node.name, "flatten", args, ()))
            alias[fx_node.name] = fx_node.name
        else:
            what = getattr(fx_node.target, "__name__", str(fx_node.target))
            raise ExportError(f"unsupported operation '{what}' at graph node '{fx_node.name}' "
                              f"({fx_node.op}): the exporter lowers conv, linear, batch norm, "
                              "pooling, flatten, residual add and LIF neurons only")
    graph = Graph(nodes, metadata={"arch": type(network).__name__,
                                   "time_steps": network.time_steps})
    if graph.output.inputs and graph[graph.output.inputs[0]].op == "neuron":
        raise ExportError("the network ends in a spiking neuron; the classifier must end in a "
                          "linear layer (it becomes the readout population)")
    return graph


def _check_finite(node: Node) -> None:
    """Weights, biases and BN statistics must be finite numbers before anything is quantized."""
    for key, value in node.attrs.items():
        if torch.is_tensor(value) and value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ExportError(f"{node.describe()}: its {key} holds NaN or infinite values (training "
                              f"diverged, or the checkpoint is damaged); nothing can be exported")


def _check_flatten_dim(fx_node: fx.Node, args: list[Any]) -> None:
    start = args[0] if args else 0
    if start != 1:
        raise ExportError(f"flatten at '{fx_node.name}' must start at dim 1 (keep the batch), "
                          f"got start_dim={start}")


def _module_node(path: str, module: nn.Module, args: list[str]) -> Node:
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
        if module.start_dim != 1 or module.end_dim != -1:
            raise ExportError(f"flatten '{path}' must flatten dims 1..-1, got "
                              f"{module.start_dim}..{module.end_dim}")
        return Node(path, "flatten", args, (), origin=path)
    if isinstance(module, MultiStepLIF):
        if module.v_reset is None:
            raise ExportError(f"neuron '{path}': soft reset (v_reset=None) has no Loihi form; "
                              "Loihi resets v to 0")
        if float(module.v_reset) != 0.0:
            raise ExportError(f"neuron '{path}': reset to {module.v_reset}; Loihi resets v to 0")
        return Node(path, "neuron", args, (), dict(
            kind="lif", tau=float(module.tau), v_threshold=float(module.v_threshold),
            decay_input=bool(module.decay_input)), origin=path)
    if isinstance(module, nn.ReLU):
        raise ExportError(f"'{path}' is still a ReLU: export a spiking network (spikify the ANN "
                          "or export the student's checkpoint)")
    raise ExportError(f"unsupported module '{path}' ({type(module).__name__})")
