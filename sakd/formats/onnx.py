"""ONNX export of a sakd ``Network``: the ANN as it is, the SNN unrolled over its T time steps.

An SNN is exported as a plain feed-forward graph. Every ``MultiStepLIF`` (spikingjelly's
``LIFNode`` in multi-step mode) is replaced, in a deep copy, by an ``UnrolledLIF`` that computes
the same float32 arithmetic, in the same order, with ordinary tensor ops over an explicit Python
loop of T steps; tracing unrolls that loop, so the ONNX file holds only Sub/Div/Add/Mul/compare/
Not/Concat nodes for the neurons: no custom op, no spikingjelly kernel, no Loop or Scan.

Time stays folded into the batch exactly as in ``Network.forward``: the input ``[B, ...]`` is
repeated to ``[T*B, ...]``, every stateless layer runs once on it, each neuron unfolds its input
to ``[T, B, ...]`` and integrates step by step, and the output is the mean over T of the per-step
logits. The batch axis is dynamic; T is fixed in the graph.

The neuron math is spikingjelly 2.0's CPU/reference kernel (``_ops/lif/cpu.py``), written once as
the CUBA-LIF model's float twin (``sakd.hardware.neurons.cuba_lif.lif_float_step``):
``H = V - (V - V_reset)/tau + X`` (decay_input=False) or ``H = V + (X - (V - V_reset))/tau``
(decay_input=True); ``S = (H >= V_th)``; hard reset ``V = S*V_reset + (1 - S)*H`` (soft reset
``V = H - S*V_th`` when ``v_reset is None``);
``V`` starts at ``V_reset`` (0 for a soft reset) on every call. Exported BatchNorm is folded into
the preceding conv by the exporter, and onnxruntime's convolutions sum in another order than
torch's, so currents differ from torch in the last float32 bits: a membrane potential within
that distance of the threshold can spike on one side and not the other (see ``check_onnx``).
"""

from __future__ import annotations

import copy
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from sakd.formats.base import Format, FormatError, Inspection, LayerRow, Support
from sakd.hardware.atomic import atomic_path
from sakd.hardware.neurons.cuba_lif import lif_float_charge, lif_float_fire, lif_float_step
from sakd.models.base import Network
from sakd.models.neurons import MultiStepLIF

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_AXIS = "batch"


class OnnxExportError(FormatError):
    """The network cannot be exported to ONNX faithfully; the message names the module."""


# ---------------------------------------------------------------------------------------------
# neuron math (pure) and the module around it


def lif_step(x: torch.Tensor, v: torch.Tensor | float, *, tau: float, decay_input: bool,
             v_threshold: float, v_reset: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One LIF step (charge, fire, reset) of the CUBA-LIF model's float twin
    (``lif_float_step``, spikingjelly's operation order): ``(spike, v_next)`` with ``spike``
    float 0/1 (a potential exactly at threshold fires, as in spikingjelly)."""
    fired, v_next = lif_float_step(v, x, tau=tau, decay_input=decay_input,
                                   v_threshold=v_threshold, v_reset=v_reset)
    return fired.to(x.dtype), v_next


class UnrolledLIF(nn.Module):
    """``MultiStepLIF``'s forward on ``[T*B, ...]`` as T explicit steps of ``lif_step``."""

    def __init__(self, time_steps: int, tau: float, decay_input: bool, v_threshold: float,
                 v_reset: float | None) -> None:
        super().__init__()
        if time_steps < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        self.time_steps = int(time_steps)
        self.tau = float(tau)
        self.decay_input = bool(decay_input)
        self.v_threshold = float(v_threshold)
        self.v_reset = None if v_reset is None else float(v_reset)

    @classmethod
    def from_neuron(cls, neuron: MultiStepLIF, time_steps: int) -> UnrolledLIF:
        return cls(time_steps, neuron.tau, neuron.decay_input, neuron.v_threshold, neuron.v_reset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # only the batch is dynamic: the feature sizes enter the graph as constants
        features = [int(n) for n in x.shape[1:]]
        sequence = x.reshape(self.time_steps, -1, *features)
        v: torch.Tensor | float = 0.0 if self.v_reset is None else self.v_reset
        spikes = []
        for t in range(self.time_steps):
            spike, v = lif_step(sequence[t], v, tau=self.tau, decay_input=self.decay_input,
                                v_threshold=self.v_threshold, v_reset=self.v_reset)
            spikes.append(spike)
        return torch.cat(spikes, 0)

    def extra_repr(self) -> str:
        return (f"T={self.time_steps}, tau={self.tau}, decay_input={self.decay_input}, "
                f"v_threshold={self.v_threshold}, v_reset={self.v_reset}")


# ---------------------------------------------------------------------------------------------
# graph surgery


def _is_spikingjelly_stateful(module: nn.Module) -> bool:
    """A spikingjelly neuron or other stateful module (anything with memory across steps)."""
    try:
        from spikingjelly.activation_based import base
        from spikingjelly.activation_based.neuron import base_node
    except ImportError:  # pragma: no cover - spikingjelly is a dependency
        return False
    kinds = (base.MemoryModule, base_node.NonSpikingBaseNode, base_node.SimpleBaseNode)
    return isinstance(module, kinds)


def _check_neuron(name: str, neuron: MultiStepLIF, time_steps: int) -> None:
    if type(neuron) is not MultiStepLIF:
        raise OnnxExportError(f"module '{name}' is a {type(neuron).__name__}, a subclass of "
                              "MultiStepLIF whose math the exporter cannot vouch for")
    if neuron.time_steps != time_steps:
        raise OnnxExportError(f"neuron '{name}' runs T={neuron.time_steps} steps but the "
                              f"network has time_steps={time_steps}")
    if getattr(neuron, "_neuron_precision", None) is not None:
        raise OnnxExportError(f"neuron '{name}' uses a reduced-precision kernel "
                              f"({neuron._neuron_precision}); only float32 neurons are exported")
    if not isinstance(neuron.tau, (int, float)) or not isinstance(neuron.v_threshold, (int, float)):
        raise OnnxExportError(f"neuron '{name}': tau and v_threshold must be Python numbers "
                              "(per-neuron or learnable parameters are not supported)")


class UnrolledSNN(nn.Module):
    """The traced form of a spiking ``Network``: ``Network.forward``'s time folding around the
    copy's ``forward_static`` (whose neurons are ``UnrolledLIF``).

    The input ``[B, ...]`` is tiled to ``[T*B, ...]`` (time-major, as ``expand`` + ``reshape``
    in ``Network.forward``: one Tile node instead of a chain of shape arithmetic) and the output
    is the mean over T of the per-step logits.
    """

    def __init__(self, network: Network, time_steps: int) -> None:
        super().__init__()
        self.network = network
        self.time_steps = int(time_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        folded = x.repeat(self.time_steps, *([1] * (x.ndim - 1)))
        logits = self.network.forward_static(folded)
        return logits.reshape(self.time_steps, -1, *[int(n) for n in logits.shape[1:]]).mean(0)


def unroll(network: nn.Module) -> nn.Module:
    """A deep copy of ``network`` on the CPU in eval mode, ready for tracing: an ANN as it is; an
    SNN as an ``UnrolledSNN`` with every ``MultiStepLIF`` replaced by an ``UnrolledLIF`` of
    identical float math. The argument is not modified.

    Raises ``OnnxExportError`` naming the first module it cannot export.
    """
    time_steps = network.time_steps if isinstance(network, Network) else 0
    neurons: list[str] = []
    for name, module in network.named_modules():
        if isinstance(module, MultiStepLIF):
            if not time_steps:
                raise OnnxExportError(
                    f"module '{name}' is a spiking neuron but the network is not a spiking sakd "
                    "Network (time_steps = 0 or not a Network): build the SNN with spikify(ann, T)")
            _check_neuron(name, module, time_steps)
            neurons.append(name)
        elif _is_spikingjelly_stateful(module):
            raise OnnxExportError(
                f"module '{name}' ({type(module).__name__}) is a neuron type the ONNX exporter "
                "does not support; only sakd's MultiStepLIF (spikingjelly LIFNode, multi-step) "
                "is unrolled")
    if time_steps and not neurons:  # pragma: no cover - the time_steps setter forbids it
        raise OnnxExportError("the network says time_steps > 0 but has no spiking neuron")
    unrolled = copy.deepcopy(network).cpu().eval()
    for parameter in unrolled.parameters():
        parameter.requires_grad_(False)
    if not time_steps:
        return unrolled
    for name in neurons:
        neuron = unrolled.get_submodule(name)
        unrolled.set_submodule(name, UnrolledLIF.from_neuron(neuron, time_steps))
    return UnrolledSNN(unrolled, time_steps).eval()


# ---------------------------------------------------------------------------------------------
# export


def _value_shapes(values: Sequence[onnx.ValueInfoProto]) -> list[dict[str, Any]]:
    out = []
    for value in values:
        dims = [d.dim_param if d.HasField("dim_param") else int(d.dim_value)
                for d in value.type.tensor_type.shape.dim]
        out.append({"name": value.name, "shape": dims})
    return out


def describe_onnx(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Inputs, outputs, opset, node count and op histogram of an ONNX file."""
    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    ops = Counter(node.op_type for node in model.graph.node)
    return {
        "path": str(path),
        "opset": opset,
        "inputs": _value_shapes(model.graph.input),
        "outputs": _value_shapes(model.graph.output),
        "node_count": len(model.graph.node),
        "op_counts": dict(sorted(ops.items())),
        "file_bytes": Path(path).stat().st_size,
    }


def _fix_output_shapes(path: Path, shape: tuple[int, ...]) -> None:
    """Name the batch axis and pin the other output sizes: the time unfolding reshapes with
    -1, after which the exporter's shape inference leaves the class axis symbolic."""
    model = onnx.load(str(path))
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != len(shape):
        raise OnnxExportError(f"the exported output has rank {len(dims)}, torch's {len(shape)}")
    for k, (dim, size) in enumerate(zip(dims, shape)):
        if k == 0:
            dim.dim_param = BATCH_AXIS
        else:
            dim.dim_value = size
    onnx.save(model, str(path))


def export_onnx(network: nn.Module, path: str | os.PathLike[str], *,
                example_input_shape: Sequence[int], opset: int = 17) -> dict[str, Any]:
    """Write ``network`` (ANN, or SNN unrolled over T) to ``path`` as an ONNX file.

    ``example_input_shape`` is one input batch's shape ``[B, C, H, W]``; the batch axis is
    exported as dynamic (``batch``). The file is traced from a deep copy in eval mode (BatchNorm
    with its running statistics; the caller's network is not modified), checked with
    ``onnx.checker`` and only then moved over ``path`` (atomic: an interrupted export leaves the
    old file or none). Returns a report: path, opset, kind, time_steps, input/output names and
    shapes, node count, op histogram, neuron count, file size.
    """
    shape = tuple(int(n) for n in example_input_shape)
    if len(shape) < 2 or min(shape) < 1:
        raise OnnxExportError(f"example_input_shape must be [batch, ...] with positive sizes, "
                              f"got {list(example_input_shape)}")
    if opset < 13:
        raise OnnxExportError(f"opset {opset} is too old; use 13 or newer (default 17)")
    unrolled = unroll(network)
    time_steps = network.time_steps if isinstance(network, Network) else 0
    neurons = sum(isinstance(m, UnrolledLIF) for m in unrolled.modules())
    first = next(iter(unrolled.parameters()), None)
    example = torch.zeros(shape, dtype=first.dtype if first is not None else torch.float32)
    with torch.no_grad():
        expected_output = tuple(unrolled(example).shape)
    with atomic_path(path) as tmp:
        with warnings.catch_warnings():
            # the TorchScript exporter's deprecation notices, and the tracer's notes that the
            # feature sizes (int(...) in UnrolledLIF/UnrolledSNN) become constants: intended,
            # only the batch axis is dynamic
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                unrolled, (example,), str(tmp),
                dynamo=False,  # TorchScript exporter: no onnxscript needed, unrolls the loop
                opset_version=opset,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: BATCH_AXIS}, OUTPUT_NAME: {0: BATCH_AXIS}},
                do_constant_folding=True,
                training=torch.onnx.TrainingMode.EVAL,
            )
        _fix_output_shapes(tmp, expected_output)
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except Exception as exc:
            raise OnnxExportError(f"the exported graph of {type(network).__name__} fails "
                                  f"onnx.checker: {exc}") from exc
    report = describe_onnx(path)
    report.update(kind="snn" if time_steps else "ann", time_steps=time_steps, neurons=neurons,
                  architecture=getattr(network, "arch", type(network).__name__))
    return report


# ---------------------------------------------------------------------------------------------
# check


def threshold_margins(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per sample: the smallest |H - V_th| over every neuron and step of the unrolled SNN, i.e.
    how close the sample comes to a spike that float rounding could flip (a sample with a margin
    above ``check_onnx``'s tolerance on the potentials cannot differ between torch and ONNX)."""
    unrolled = unroll(network)
    margins: list[torch.Tensor] = []

    def record(module: UnrolledLIF, args, _out) -> None:
        sequence = args[0].reshape(module.time_steps, -1, *args[0].shape[1:])
        v: torch.Tensor | float = 0.0 if module.v_reset is None else module.v_reset
        for step in sequence:
            h = lif_float_charge(v, step, tau=module.tau, decay_input=module.decay_input,
                                 v_reset=module.v_reset)
            margins.append((h - module.v_threshold).abs().flatten(1).min(1).values)
            _, v = lif_float_fire(h, v_threshold=module.v_threshold, v_reset=module.v_reset)

    for module in unrolled.modules():
        if isinstance(module, UnrolledLIF):
            module.register_forward_hook(record)
    with torch.no_grad():
        unrolled(x)
    return torch.stack(margins).min(0).values


#: a membrane potential within this distance of its threshold (in threshold units) can be moved
#: across it by float32 rounding: torch and onnxruntime sum convolutions in different orders
FLIP_MARGIN = 1e-4


def check_onnx(network: nn.Module, path: str | os.PathLike[str],
               inputs: torch.Tensor | np.ndarray, *, atol: float = 1e-4,
               batch_size: int = 512) -> dict[str, Any]:
    """Run the ONNX file (onnxruntime, CPUExecutionProvider) and ``network`` (torch, eval mode,
    on the device its parameters are on) on the same ``inputs`` ``[N, ...]`` and compare their
    logits. The network's train/eval mode is restored afterwards.

    Returns ``max_abs_diff``, ``mean_abs_diff``, ``prediction_agreement`` (fraction of equal
    argmax), ``disagreements``, ``samples_over_atol`` (samples whose largest logit difference
    exceeds ``atol``) and ``samples``. For an SNN a sample over ``atol`` means a spike went the
    other way; that happens only for a membrane potential within float32 rounding of the
    threshold (see the module docstring), so report it rather than assume it cannot happen:
    ``threshold_flips`` counts the samples over ``atol`` whose smallest |H − θ| (torch) is within
    ``FLIP_MARGIN`` of a threshold, ``unexplained`` those that are not (a real mismatch).
    """
    import onnxruntime as ort

    x = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, torch.Tensor) else inputs)
    x = x.detach().to("cpu", torch.float32)
    if x.ndim < 2 or len(x) == 0:
        raise OnnxExportError(f"inputs must be a non-empty batch [N, ...], got shape {tuple(x.shape)}")
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    device = next((p.device for p in network.parameters()), torch.device("cpu"))
    was_training = network.training
    network.eval()
    torch_chunks, onnx_chunks = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                chunk = x[start:start + batch_size]
                torch_chunks.append(network(chunk.to(device)).float().cpu().numpy())
                onnx_chunks.append(session.run(None, {input_name: chunk.numpy()})[0])
    finally:
        network.train(was_training)
    expected = np.concatenate(torch_chunks)
    got = np.concatenate(onnx_chunks)
    if expected.shape != got.shape:
        raise OnnxExportError(f"{path}: onnxruntime returned logits of shape {got.shape}, "
                              f"torch {expected.shape}")
    diff = np.abs(expected.astype(np.float64) - got.astype(np.float64))
    per_sample = diff.reshape(len(diff), -1).max(axis=1)
    agree = expected.argmax(axis=1) == got.argmax(axis=1)
    over = np.flatnonzero(per_sample > atol)
    flips = 0
    if over.size and any(isinstance(m, MultiStepLIF) for m in network.modules()):
        margins = threshold_margins(network, x[torch.as_tensor(over)].to(device))
        thresholds = [float(m.v_threshold) for m in network.modules() if isinstance(m, MultiStepLIF)]
        flips = int((margins.cpu().numpy() <= FLIP_MARGIN * max(thresholds)).sum())
    return {
        "samples": len(x),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "prediction_agreement": float(agree.mean()),
        "disagreements": int((~agree).sum()),
        "atol": atol,
        "samples_over_atol": int(over.size),
        "threshold_flips": flips,
        "unexplained": int(over.size) - flips,
        "flip_margin": FLIP_MARGIN,
    }


# ---------------------------------------------------------------------------------------------
# the format record
# ---------------------------------------------------------------------------------------------


def detect(path: Path) -> bool:
    """An ONNX model: a ``.onnx`` file that parses as an ONNX protobuf."""
    if Path(path).suffix != ".onnx":
        return False
    try:
        onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx raises DecodeError and others on a file that is not ONNX
        return False
    return True


def inspect_onnx(path: Path) -> Inspection:
    """``sakd inspect`` for an ONNX file: its inputs, outputs, opset and op histogram."""
    try:
        info = describe_onnx(path)
    except Exception as exc:  # a damaged protobuf
        raise FormatError(f"{path}: not a readable ONNX file: {type(exc).__name__}: {exc}") from exc
    rows = [LayerRow(name=op, kind="op", params=count) for op, count in info["op_counts"].items()]
    return Inspection(
        path=str(path), format="onnx", version=info["opset"], target=None,
        input={"inputs": info["inputs"]}, layers=rows,
        totals={"nodes": info["node_count"], "bytes": info["file_bytes"]},
        ranges={}, delays={}, latency=None, metadata={"outputs": info["outputs"]},
        notes=["ONNX holds the float model (the SNN unrolled over T, or the ANN teacher), not the "
               "integer network; onnxruntime runs it (sakd verify --onnx)"])


SUPPORT = Support(
    neuron_models=("spikingjelly LIF, IF, ParametricLIF (float)",), layer_kinds=("any torch layer the model uses",),
    residual_fan_in=True, delays="none (float model, no synapse latency)", recurrence=False,
    graded_messages=False, multiple_readouts=False,
    notes=("the float SNN unrolled over its T steps (and the ANN teacher), for onnxruntime; "
           "not read back into the IR",))

FORMAT = Format(
    name="onnx", title="ONNX", suffixes=(".onnx",), file_name="student.onnx", supports=SUPPORT,
    detect=detect, read=None, write=export_onnx, inspect=inspect_onnx, writes="float model",
    description="the float SNN unrolled over T (and the ANN teacher) for onnxruntime",
)
