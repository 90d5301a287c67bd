"""The float passes of the lowering (trace, fold BN, fold average pooling, lower max pooling,
lower residuals): each computes the same function as its input, and the errors they raise.

Every tiny registry SNN is random-init with non-trivial BatchNorm (running statistics from a few
train-mode passes, affine parameters drawn) and positive biases, so that every LIF layer fires
(asserted: 1 % to 90 % of neuron-steps). Then, in float64 and on the same inputs:

- ``run_graph(trace)`` equals the torch SNN's own forward (logits to 1e-9, every neuron's spike
  train identical: the evaluator's LIF is spikingjelly's arithmetic);
- after every pass, the logits (1e-9) and the spike train of every neuron of the graph before the
  pass are those before it. Folding BN changes the rounding of the pre-activations in the last
  bit (conv(x, W s) + b' instead of conv(x, W) s + t), so a potential lying within ~1e-15 of the
  threshold could flip; the comparison allows a spike mismatch fraction of 1e-4 for that reason
  and compares logits on the samples without a flip. None occurred when this was written.
"""

from __future__ import annotations

import pytest
import torch
from random_snn import T, input_shape, make_snn, randomize
from torch import nn

from sakd.export.graph import ExportError, Graph, run_graph
from sakd.export.lower import lower
from sakd.export.passes import (
    FLOAT_PASSES,
    check_canonical,
    fold_average_pooling,
    fold_batchnorm,
    lower_residuals,
    synapses_into,
)
from sakd.export.trace import trace_network
from sakd.models import ARCHITECTURES, MultiStepLIF, spikify
from sakd.models.base import Network, SpikeSite

BATCH = 16
TIGHT = 1e-9
MAX_TIE_FLIPS = 1e-4

TINY = sorted(name for name, spec in ARCHITECTURES.items() if spec.tiny)


def make_inputs(shape: tuple[int, ...], n: int = BATCH, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=gen, dtype=torch.float64).clamp(-3, 3)


def torch_spikes(snn: Network, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The torch SNN's logits and every LIF module's spikes as [T, B, ...]."""
    spikes: dict[str, torch.Tensor] = {}

    def hook(name):
        return lambda _m, _i, out: spikes.__setitem__(
            name, out.detach().reshape(snn.time_steps, -1, *out.shape[1:]).clone())

    handles = [m.register_forward_hook(hook(name)) for name, m in snn.named_modules()
               if isinstance(m, MultiStepLIF)]
    try:
        with torch.no_grad():
            logits = snn(x)
    finally:
        for h in handles:
            h.remove()
    return logits, spikes


def assert_same_function(before, after, label: str) -> None:
    """``before`` and ``after``: (logits, spikes by neuron name); every neuron of ``before``
    must exist in ``after`` with the same spike train (up to exact-tie flips)."""
    logits_b, spikes_b = before
    logits_a, spikes_a = after
    assert set(spikes_b) <= set(spikes_a), f"{label}: neurons lost {set(spikes_b) - set(spikes_a)}"
    flipped = torch.zeros(logits_b.shape[0], dtype=torch.bool)
    for name, s in spikes_b.items():
        other = spikes_a[name]
        assert other.shape == s.shape, (label, name)
        diff = other != s
        frac = diff.double().mean().item()
        assert frac <= MAX_TIE_FLIPS, f"{label}: neuron '{name}' spike mismatch {frac:.2e}"
        flipped |= diff.reshape(diff.shape[0], diff.shape[1], -1).any(2).any(0)
    assert flipped.double().mean().item() <= 1 / BATCH, f"{label}: {int(flipped.sum())} samples flip"
    keep = ~flipped
    err = (logits_a[keep] - logits_b[keep]).abs().max().item()
    assert err <= TIGHT, f"{label}: logits differ by {err:.3e}"


def graph_run(graph: Graph, x: torch.Tensor):
    run = run_graph(graph, x, T, record=True)
    return run.logits, run.spikes


# ---------------------------------------------------------------------------------------------
# every tiny registry model, pass by pass


@pytest.fixture(scope="module", params=TINY)
def lowered(request):
    arch = request.param
    snn = make_snn(arch)
    x = make_inputs(input_shape(arch))
    graphs = {"trace": trace_network(snn, input_shape(arch))}
    graph = graphs["trace"]
    for name, fn in FLOAT_PASSES:
        graph = fn(graph)
        graphs[name] = graph
    runs = {name: graph_run(g, x) for name, g in graphs.items()}
    return arch, snn, x, graphs, runs


def test_tiny_list_is_the_registry():
    assert {"test_convnet", "test_convnet_pool", "test_resnet", "test_sew_resnet"} <= set(TINY)


def test_trace_matches_torch(lowered):
    arch, snn, x, graphs, runs = lowered
    logits, spikes = torch_spikes(snn, x)
    assert set(spikes) == {n.name for n in graphs["trace"] if n.op == "neuron"}
    for name, s in spikes.items():
        rate = s.mean().item()
        assert 0.01 <= rate <= 0.9, f"{arch}: '{name}' fires at {rate:.3f}; the test is vacuous"
    # the evaluator is spikingjelly's arithmetic: identical spikes, logits to rounding
    for name, s in spikes.items():
        assert torch.equal(runs["trace"][1][name], s), f"{arch}: '{name}' differs from torch"
    assert (runs["trace"][0] - logits).abs().max().item() <= TIGHT


@pytest.mark.parametrize("index", range(len(FLOAT_PASSES)), ids=[n for n, _ in FLOAT_PASSES])
def test_pass_preserves_function(lowered, index):
    arch, _, _, _graphs, runs = lowered
    names = ["trace"] + [n for n, _ in FLOAT_PASSES]
    before, after = names[index], names[index + 1]
    assert_same_function(runs[before], runs[after], f"{arch} {after}")


def test_pass_structure(lowered):
    arch, _, _, graphs, _ = lowered
    trace = graphs["trace"]
    assert "batchnorm" not in graphs["fold_batchnorm"].ops()
    assert ("batchnorm" in trace.ops()) == (arch != "test_convnet_nobn")
    assert "avgpool" not in graphs["fold_average_pooling"].ops()
    after_max = graphs["lower_max_pooling"]
    assert "maxpool" not in after_max.ops()
    for pool in [n for n in trace if n.op == "maxpool"]:
        neuron = after_max[pool.name]
        assert neuron.op == "neuron" and neuron.attrs["kind"] == "or"
        conv = after_max[neuron.inputs[0]]
        channels = trace[pool.inputs[0]].shape[0]
        assert conv.op == "conv" and conv.attrs["groups"] == channels
        assert conv.attrs["weight"].shape == (channels, 1, *pool.attrs["kernel"])
        assert torch.equal(conv.attrs["weight"], torch.ones_like(conv.attrs["weight"]))
        assert conv.attrs["bias"] is None and conv.inputs == pool.inputs
        assert conv.attrs["stride"] == pool.attrs["stride"]
        assert conv.attrs["padding"] == pool.attrs["padding"]
    canonical = graphs["lower_residuals"]
    check_canonical(canonical)
    assert not canonical.ops() & {"batchnorm", "avgpool", "maxpool", "flatten"}
    # one population per LIF (and OR) neuron plus the output
    assert ({n.name for n in canonical if n.op == "neuron"}
            == {n.name for n in after_max if n.op == "neuron"})


def _sources(graph: Graph, name: str) -> list[str]:
    return sorted(s.inputs[0] for s in synapses_into(graph, name))


def test_residual_fan_in_spiking_resnet():
    """Spiking-ResNet: the neuron after each add reads two synapses, conv2 of the block and the
    shortcut (a depthwise 1x1 weight-1 identity, or the downsample conv)."""
    graph = lower_residuals(fold_average_pooling(fold_batchnorm(
        trace_network(make_snn("test_resnet"), (3, 8, 8)))))
    identity = synapses_into(graph, "layer1.0.relu2")
    assert len(identity) == 2
    assert _sources(graph, "layer1.0.relu2") == ["layer1.0.relu1", "relu"]
    shortcut = next(s for s in identity if s.inputs == ["relu"])
    assert shortcut.op == "conv" and shortcut.attrs["groups"] == 8
    assert torch.equal(shortcut.attrs["weight"], torch.ones(8, 1, 1, 1, dtype=torch.float64))
    assert shortcut.attrs["bias"] is None
    down = synapses_into(graph, "layer2.0.relu2")
    assert len(down) == 2
    assert sorted(s.name for s in down) == ["layer2.0.conv2", "layer2.0.downsample.0"]
    assert _sources(graph, "layer2.0.relu2") == ["layer1.0.relu2", "layer2.0.relu1"]
    # both carry their folded BN bias; the population's bias is their sum
    assert all(s.attrs["bias"] is not None for s in down)
    assert len(synapses_into(graph, graph.output.name)) == 1


def test_residual_fan_in_sew_resnet():
    """SEW-ResNet (ADD): a synapse reading a sum of spike tensors is repeated per summand, with
    the same weights and the bias once."""
    graph = lower_residuals(fold_average_pooling(fold_batchnorm(
        trace_network(make_snn("test_sew_resnet"), (3, 8, 8)))))
    block1 = ["layer1.0.relu2", "relu"]  # the first block's output: relu2 + identity
    block2 = ["layer2.0.downsample.2", "layer2.0.relu2"]
    for name, sources in (("layer2.0.relu1", block1), ("layer2.0.downsample.2", block1),
                          (graph.output.name, block2)):
        synapses = synapses_into(graph, name)
        assert len(synapses) == 2, name
        assert _sources(graph, name) == sources, name
        assert torch.equal(synapses[0].attrs["weight"], synapses[1].attrs["weight"])
        assert sum(s.attrs["bias"] is not None for s in synapses) == 1, name
    assert len(synapses_into(graph, "layer1.0.relu1")) == 1


# ---------------------------------------------------------------------------------------------
# custom networks: errors and the pool -> conv composition


class Custom(Network):
    """conv -> act -> [extra] -> flatten -> fc, with ``extra`` any module list."""

    def __init__(self, *extra: nn.Module, conv: nn.Conv2d | None = None,
                 features: int = 4 * 8 * 8, head: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = conv or nn.Conv2d(1, 4, 3, padding=1)
        self.act = SpikeSite()
        self.extra = nn.Sequential(*extra)
        self.flatten = nn.Flatten(1)
        self.fc = head or nn.Linear(features, 3)

    def forward_static(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.extra(self.act(self.conv(x)))))


def _lower(net: Network, shape=(1, 8, 8)):
    return lower(net, input_shape=shape, input_range=(-1.0, 1.0))


@pytest.mark.parametrize("module,kind", [(nn.Sigmoid(), "Sigmoid"),
                                         (nn.Upsample(scale_factor=1), "Upsample")])
def test_unsupported_module_is_named(module, kind):
    with pytest.raises(ExportError, match=rf"'extra\.0'.*{kind}"):
        _lower(spikify(Custom(module), T))


def test_ann_is_refused():
    with pytest.raises(ExportError, match="ANN"):
        _lower(Custom())


def test_max_pooling_over_non_spikes():
    class PoolFirst(Network):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2)
            self.act = SpikeSite()
            self.fc = nn.Linear(4 * 4 * 4, 3)

        def forward_static(self, x):
            return self.fc(self.act(self.pool(self.conv(x))).flatten(1))

    with pytest.raises(ExportError, match="maxpool 'pool'.*not binary spikes"):
        _lower(spikify(PoolFirst(), T))


def test_batchnorm_not_after_synapse():
    with pytest.raises(ExportError, match="batchnorm 'extra.0' follows neuron 'act'"):
        _lower(spikify(Custom(nn.BatchNorm2d(4)), T).eval())


def test_soft_reset_is_refused():
    snn = spikify(Custom(), T)
    snn.act.v_reset = None
    with pytest.raises(ExportError, match="'act'.*soft reset"):
        _lower(snn)
    snn.act.v_reset = 0.5
    with pytest.raises(ExportError, match="'act'.*reset to 0.5"):
        _lower(snn)


def test_reflect_padding_is_refused():
    conv = nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ExportError, match="conv 'conv'.*reflect"):
        _lower(spikify(Custom(conv=conv), T))


def test_two_linear_layers_in_a_row():
    head = nn.Sequential(nn.Linear(4 * 8 * 8, 6), nn.Linear(6, 3))
    with pytest.raises(ExportError, match="linear 'fc.0'.*two linear layers"):
        _lower(spikify(Custom(head=head), T))


def test_network_ending_in_a_neuron():
    head = nn.Sequential(nn.Linear(4 * 8 * 8, 3), SpikeSite())
    with pytest.raises(ExportError, match="ends in a spiking neuron"):
        _lower(spikify(Custom(head=head), T))


class PoolConv(Network):
    """conv -> act -> avgpool k -> conv (stride s, padding p) -> BN -> act -> flatten -> fc."""

    def __init__(self, k: int, stride: int, padding: int, groups: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.act1 = SpikeSite()
        self.pool = nn.AvgPool2d(k)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=stride, padding=padding, groups=groups)
        self.bn2 = nn.BatchNorm2d(6)
        self.act2 = SpikeSite()
        side = (12 // k + 2 * padding - 3) // stride + 1
        self.fc = nn.Linear(6 * side * side, 3)

    def forward_static(self, x):
        x = self.act2(self.bn2(self.conv2(self.pool(self.act1(self.conv1(x))))))
        return self.fc(x.flatten(1))


@pytest.mark.parametrize("k,stride,padding,groups", [(2, 1, 1, 1), (3, 2, 0, 2), (2, 2, 2, 1)])
def test_average_pool_folds_into_conv(k, stride, padding, groups):
    torch.manual_seed(k)  # the layers' initial weights: not the global state other tests leave
    ann = PoolConv(k, stride, padding, groups)
    randomize(ann, torch.Generator().manual_seed(k), (2, 12, 12))
    with torch.no_grad():
        ann.conv2.weight.mul_(2.0)
    snn = spikify(ann, T).eval().double()
    x = make_inputs((2, 12, 12), n=32)
    traced = trace_network(snn, (2, 12, 12))
    folded = fold_batchnorm(traced)
    pooled = fold_average_pooling(folded)
    assert "avgpool" not in pooled.ops()
    conv = pooled["conv2"]
    assert conv.inputs == ["act1"]
    assert conv.attrs["weight"].shape == (6, 4 // groups, 3 * k, 3 * k)
    assert conv.attrs["stride"] == (stride * k, stride * k)
    assert conv.attrs["padding"] == (padding * k, padding * k)
    assert conv.shape == folded["conv2"].shape
    before, after = graph_run(folded, x), graph_run(pooled, x)
    rate = before[1]["act2"].mean().item()
    assert 0.01 <= rate <= 0.9, rate
    assert_same_function(before, after, "pool->conv")
    logits, _ = torch_spikes(snn, x)
    assert (after[0] - logits).abs().max().item() <= TIGHT


def test_average_pool_that_cannot_fold_into_conv():
    class Overlap(PoolConv):
        def __init__(self) -> None:
            super().__init__(2, 1, 1)
            self.pool = nn.AvgPool2d(2, stride=1)
            self.fc = nn.Linear(6 * 11 * 11, 3)

    with pytest.raises(ExportError, match="stride = kernel"):
        _lower(spikify(Overlap(), T).eval(), (2, 12, 12))
