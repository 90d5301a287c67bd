"""Passes 2-3 of the lowering: float graph surgery, each computing the same function as its input.

In order (``FLOAT_PASSES``):
- ``fold_batchnorm``: eval-mode BN folded into the preceding conv/linear (shortcuts included);
- ``fold_average_pooling``: average pooling (and global average pooling) composed into the
  following conv or linear, which then reads the spikes before the pool;
- ``lower_max_pooling``: max pooling over binary spikes = a depthwise ones-kernel sum into an OR
  neuron (fires iff any input spiked), exact;
- ``split_concat``: a conv (groups 1) or linear reading a ``concat`` of tensors (DeepLabV3's ASPP
  branches) = the sum of one synapse per part, each with its slice of the weight along the
  input channels (the bias on the first), exact: ``W · cat(x_1, .., x_n) = Σ_k W[:, k] · x_k``;
- ``fold_upsampling``: a 1x1 conv (stride 1, no padding) reading a nearest upsampling by (fh, fw)
  = one ``upsample_conv`` of the upsampling's input with the conv's weight tiled over the
  (fh, fw) offsets, exact (every output position reads one source position through the same
  1x1 kernel): DeepLabV3's pooling branch, a (C, 1, 1) map broadcast to (C, H, W) and projected;
- ``lower_residuals``: every neuron (and the output) gets one synapse (conv/linear/upsample_conv)
  per source population summed at its input (fan-in). Identity shortcuts become depthwise 1x1
  weight-1 synapses; a synapse reading a sum of spike tensors (SEW-ResNet's ADD) is repeated for
  each summand; flatten disappears (a linear reads its source in C,H,W order). Nearest
  upsampling of spikes (an FPN's top-down path) becomes a depthwise ``upsample_conv`` of weight
  1 from the source population (``nearest_upsampling``): the IR's ``upsample`` projection, one
  synapse per target neuron, stored by its structure.

After them the graph is *canonical* (``check_canonical``): input, neurons, synapses (conv/linear
whose input is the input or a neuron), adds of synapses, and the output.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F

from sakd.export.fold import fold_bn, pool_into_conv, spread_pooled_linear
from sakd.export.graph import SOURCE_OPS, SYNAPSE_OPS, ExportError, Graph, Node


def _replace_uses(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes:
        node.inputs = [new if i == old else i for i in node.inputs]


def _drop_unused(graph: Graph) -> Graph:
    """Remove nodes nothing reads (except the input and output)."""
    used = {i for n in graph.nodes for i in n.inputs}
    nodes = [n for n in graph.nodes if n.op in ("input", "output") or n.name in used]
    if len(nodes) == len(graph.nodes):
        return Graph(nodes, graph.metadata)
    return _drop_unused(Graph(nodes, graph.metadata))


# ---------------------------------------------------------------------------------------------
# fold batch norm


def fold_batchnorm(graph: Graph) -> Graph:
    """y = BN(conv(x)) -> conv'(x) with W' = W * s (per output channel), b' = b * s + t."""
    graph = graph.copy()
    for bn in [n for n in graph.nodes if n.op == "batchnorm"]:
        producer = graph[bn.inputs[0]]
        if producer.op not in SYNAPSE_OPS:
            raise ExportError(f"{bn.describe()} follows {producer.describe()}; only batch norm "
                              "directly after a conv or linear layer can be folded")
        if len(graph.consumers(producer.name)) != 1:
            raise ExportError(f"{bn.describe()}: its {producer.describe()} has other consumers, "
                              "so the BN cannot be folded into it")
        producer.attrs["weight"], producer.attrs["bias"] = fold_bn(
            producer.attrs["weight"], producer.attrs["bias"], bn.attrs["scale"], bn.attrs["shift"])
        _replace_uses(graph, bn.name, producer.name)
    return _drop_unused(Graph([n for n in graph.nodes if n.op != "batchnorm"], graph.metadata))


# ---------------------------------------------------------------------------------------------
# fold average pooling


def _linear_map_matrix(fn: Callable[[torch.Tensor], torch.Tensor], in_shape: tuple[int, ...]
                       ) -> torch.Tensor:
    """The matrix (out, in) of a linear map on inputs of ``in_shape`` (float64, exact composition
    of the pool and the following layer)."""
    n = 1
    for d in in_shape:
        n *= d
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    return fn(basis).reshape(n, -1).T.contiguous()


def fold_average_pooling(graph: Graph) -> Graph:
    """avgpool -> [flatten ->] linear becomes one dense map on the pool's input; avgpool -> conv
    becomes one conv with stride k*s, padding k*p and kernel k*kh (pool stride = kernel, no
    padding, sides divisible by k)."""
    graph = graph.copy()
    for pool in [n for n in graph.nodes if n.op == "avgpool"]:
        source_shape = graph[pool.inputs[0]].shape
        if len(source_shape) != 3:
            raise ExportError(f"{pool.describe()} needs a (C, H, W) input, got {source_shape}")
        if pool.attrs.get("global_pool"):
            pool.attrs.update(kernel=source_shape[1:], stride=source_shape[1:])
        for consumer in graph.consumers(pool.name):
            chain = [consumer]
            if consumer.op == "flatten":
                nexts = graph.consumers(consumer.name)
                if len(nexts) != 1 or nexts[0].op != "linear":
                    raise ExportError(f"{pool.describe()} -> {consumer.describe()} must feed "
                                      "exactly one linear layer to be folded")
                chain.append(nexts[0])
            last = chain[-1]
            if last.op == "linear":
                linear = last
                kernel, stride, weight = pool.attrs["kernel"], pool.attrs["stride"], linear.attrs["weight"]
                if tuple(kernel) == tuple(stride):  # non-overlapping (global included): spread
                    matrix = spread_pooled_linear(weight, source_shape, tuple(kernel))
                else:
                    def pooled_linear(x, kernel=kernel, stride=stride, weight=weight):
                        return F.linear(F.avg_pool2d(x, kernel, stride).flatten(1), weight)

                    matrix = _linear_map_matrix(pooled_linear, source_shape)
                linear.attrs["weight"] = matrix
                linear.inputs = [pool.inputs[0]]
            elif last.op == "conv":
                _compose_pool_conv(pool, last, source_shape)
                last.inputs = [pool.inputs[0]]
            else:
                raise ExportError(f"{pool.describe()} feeds {last.describe()}; average pooling "
                                  "can only be folded into a following conv or linear layer")
    return _drop_unused(Graph(graph.nodes, graph.metadata))


def _compose_pool_conv(pool: Node, conv: Node, source_shape: tuple[int, ...]) -> None:
    kh, kw = pool.attrs["kernel"]
    if tuple(pool.attrs["stride"]) != (kh, kw):
        raise ExportError(f"{pool.describe()} -> {conv.describe()}: only a pool with stride = "
                          "kernel folds into a conv")
    if source_shape[1] % kh or source_shape[2] % kw:
        raise ExportError(f"{pool.describe()}: input {source_shape[1:]} is not divisible by the "
                          f"kernel {(kh, kw)}, so the pool drops border pixels")
    if tuple(conv.attrs["dilation"]) != (1, 1):
        raise ExportError(f"{conv.describe()}: a dilated conv after a pool cannot be folded")
    expanded = pool_into_conv(conv.attrs["weight"], (kh, kw))
    sh, sw = conv.attrs["stride"]
    ph, pw = conv.attrs["padding"]
    conv.attrs.update(weight=expanded, stride=(sh * kh, sw * kw), padding=(ph * kh, pw * kw))


# ---------------------------------------------------------------------------------------------
# lower max pooling


def lower_max_pooling(graph: Graph) -> Graph:
    """maxpool over spikes -> depthwise ones-kernel conv (a sum pool) -> OR neuron."""
    if "maxpool" not in graph.ops():  # nothing to lower: no copy (large networks' weights)
        return graph
    graph = graph.copy()
    nodes: list[Node] = []
    for node in graph.nodes:
        if node.op != "maxpool":
            nodes.append(node)
            continue
        source = graph[node.inputs[0]]
        if source.op != "neuron":
            raise ExportError(f"{node.describe()} reads {source.describe()}, not binary spikes; "
                              "max pooling lowers exactly only over the spikes of a neuron layer")
        channels = source.shape[0]
        kh, kw = node.attrs["kernel"]
        ones = torch.ones(channels, 1, kh, kw, dtype=torch.float64)
        conv = Node(f"{node.name}.sum", "conv", [source.name], node.shape, dict(
            weight=ones, bias=None, stride=node.attrs["stride"], padding=node.attrs["padding"],
            dilation=(1, 1), groups=channels), origin=node.origin)
        neuron = Node(node.name, "neuron", [conv.name], node.shape, dict(kind="or"),
                      origin=node.origin)
        nodes += [conv, neuron]
    return Graph(nodes, graph.metadata)


# ---------------------------------------------------------------------------------------------
# residual adds -> fan-in, flatten removed


def identity_synapse(source: Node, name: str, reads: str | None = None) -> Node:
    """A one-to-one weight-1 synapse of ``source``'s shape called ``name``, reading ``reads``
    (default: ``source`` itself): a depthwise 1x1 conv for a (C, H, W) source, an identity
    linear otherwise (an identity shortcut; a relay's synapse)."""
    shape = source.shape
    reads = source.name if reads is None else reads
    if len(shape) == 3:
        weight = torch.ones(shape[0], 1, 1, 1, dtype=torch.float64)
        attrs = dict(weight=weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                     groups=shape[0])
        return Node(name, "conv", [reads], shape, attrs, origin=source.origin)
    n = shape[0]
    return Node(name, "linear", [reads], shape,
                dict(weight=torch.eye(n, dtype=torch.float64), bias=None), origin=source.origin)


def nearest_upsampling(source: Node, factor: tuple[int, int], shape: tuple[int, ...],
                       name: str, origin: str) -> Node:
    """Nearest upsampling of ``source``'s (C, H, W) map by integer ``factor`` as a synapse: a
    depthwise ``upsample_conv`` of weight 1 (groups C, kernel = stride = factor), target
    (c, i, j) reading (c, i // fh, j // fw)."""
    if len(source.shape) != 3:
        raise ExportError(f"nearest upsampling of {source.describe()} needs a (C, H, W) source, "
                          f"got {source.shape}")
    channels = source.shape[0]
    fh, fw = factor
    weight = torch.ones(channels, 1, fh, fw, dtype=torch.float64)
    return Node(name, "upsample_conv", [source.name], shape, dict(
        weight=weight, bias=None, factor=(fh, fw), groups=channels), origin=origin)


# ---------------------------------------------------------------------------------------------
# concat -> one synapse per part


def split_concat(graph: Graph) -> Graph:
    """A conv (groups 1) or linear reading a ``concat`` (directly, or a linear through a
    flatten) becomes an ``add`` of one synapse per part, named ``<synapse>.cat[k]``, each with its
    slice of the weight along the input (channels, or the part's flattened values), the bias on
    the first; the add keeps the synapse's name, so its consumers are unchanged. Any other use
    of a concat is an ExportError naming it."""
    if "concat" not in graph.ops():  # nothing to split: no copy (large networks' weights)
        return graph
    graph = graph.copy()
    nodes: list[Node] = []
    for node in graph.nodes:
        feed = graph[node.inputs[0]] if node.inputs else None
        through_flatten = (node.op == "linear" and feed is not None and feed.op == "flatten"
                           and graph[feed.inputs[0]].op == "concat")
        if node.op == "concat":
            for user in graph.consumers(node.name):
                ok = (user.op in ("conv", "linear") or (user.op == "flatten" and all(
                    c.op == "linear" for c in graph.consumers(user.name))))
                if not ok:
                    raise ExportError(f"{node.describe()} feeds {user.describe()}; a concat can "
                                      "only be read by a conv or linear layer (split into one "
                                      "synapse per part)")
        if not (node.op in ("conv", "linear") and feed is not None
                and (feed.op == "concat" or through_flatten)):
            nodes.append(node)
            continue
        cat = graph[feed.inputs[0]] if through_flatten else feed
        if node.op == "conv" and node.attrs["groups"] != 1:
            raise ExportError(f"{node.describe()} reads {cat.describe()} with groups "
                              f"{node.attrs['groups']}; only a conv of groups 1 splits into one "
                              "synapse per part")
        parts, start = [], 0
        for k, part in enumerate(cat.inputs):
            shape = graph[part].shape
            size = shape[0] if node.op == "conv" else int(torch.tensor(shape).prod())
            attrs = dict(node.attrs)
            attrs["weight"] = node.attrs["weight"][:, start:start + size].clone()
            attrs["bias"] = node.attrs["bias"] if k == 0 else None
            start += size
            source = part
            if node.op == "linear" and len(shape) > 1:
                flat = Node(f"{node.name}.cat[{k}].flatten", "flatten", [part],
                            (int(torch.tensor(shape).prod()),), origin=node.origin)
                nodes.append(flat)
                source = flat.name
            syn = Node(f"{node.name}.cat[{k}]", node.op, [source], node.shape, attrs,
                       origin=node.origin or node.name)
            nodes.append(syn)
            parts.append(syn.name)
        nodes.append(Node(node.name, "add", parts, node.shape, origin=node.origin))
    return _drop_unused(Graph(nodes, graph.metadata))


# ---------------------------------------------------------------------------------------------
# 1x1 conv of an upsampling -> upsample_conv


def fold_upsampling(graph: Graph) -> Graph:
    """A 1x1 conv (stride 1, padding 0, dilation 1) reading an ``upsample`` node by (fh, fw)
    becomes an ``upsample_conv`` of the upsampling's input: weight ``w[co, ci, a, b] =
    W[co, ci, 0, 0]`` for every offset (a, b), the conv's groups and bias. Exact. A conv of
    another shape, or a linear, reading an upsampling is an ExportError naming both (it has no
    projection form in which each target reads one source position)."""
    if "upsample" not in graph.ops():  # nothing to fold: no copy (large networks' weights)
        return graph
    graph = graph.copy()
    nodes: list[Node] = []
    for node in graph.nodes:
        feed = graph[node.inputs[0]] if node.inputs else None
        if node.op not in ("conv", "linear") or feed is None or feed.op != "upsample":
            nodes.append(node)
            continue
        a = node.attrs
        if node.op == "linear" or tuple(a["weight"].shape[2:]) != (1, 1) or tuple(
                a["stride"]) != (1, 1) or tuple(a["padding"]) != (0, 0):
            raise ExportError(f"{node.describe()} reads the upsampling {feed.describe()}; only a "
                              "1x1 conv (stride 1, no padding) of an upsampled map lowers "
                              "exactly (as one upsample projection): put a neuron between them")
        fh, fw = feed.attrs["factor"]
        weight = a["weight"].expand(-1, -1, fh, fw).clone()
        nodes.append(Node(node.name, "upsample_conv", [feed.inputs[0]], node.shape, dict(
            weight=weight, bias=a["bias"], factor=(fh, fw), groups=a["groups"]),
            origin=node.origin or node.name))
    return _drop_unused(Graph(nodes, graph.metadata))


def lower_residuals(graph: Graph) -> Graph:
    """Rebuild the graph in canonical form: each neuron and the output read one synapse or an
    add of synapses, each synapse reads the input or a neuron."""
    made: list[Node] = []
    names: set[str] = set()

    def spike_sources(name: str) -> list[str]:
        node = graph[name]
        if node.op in SOURCE_OPS:
            return [name]
        if node.op == "add":
            return [s for i in node.inputs for s in spike_sources(i)]
        if node.op == "flatten":
            return spike_sources(node.inputs[0])
        raise ExportError(f"{node.describe()} feeds a synapse but is neither spikes nor a sum "
                          "of spikes: two linear layers without a neuron between them cannot be "
                          "one projection")

    def drive(name: str, consumer: str) -> list[Node]:
        """Synapses (new nodes) whose sum is the value of ``name``."""
        node = graph[name]
        if node.op in SOURCE_OPS:
            return [identity_synapse(node, f"{consumer}.identity[{node.name}]")]
        if node.op == "add":
            return [s for i in node.inputs for s in drive(i, consumer)]
        if node.op == "upsample":
            return [nearest_upsampling(graph[source], tuple(node.attrs["factor"]), node.shape,
                                       f"{node.name}[{source}]", node.origin or node.name)
                    for source in spike_sources(node.inputs[0])]
        if node.op in SYNAPSE_OPS:
            sources = spike_sources(node.inputs[0])
            synapses = []
            for k, source in enumerate(sources):
                # the copies share the weight tensor (no pass after this one changes a tensor in
                # place): a SEW-ResNet stage of n blocks has O(n²) copies (666 of one 1x1 conv in
                # SEW-ResNet-152's 36-block stage), which as deep copies filled 20 GiB
                copy_ = Node(node.name if len(sources) == 1 else f"{node.name}[{source}]",
                             node.op, [source], node.shape, dict(node.attrs),
                             origin=node.origin or node.name)
                if k:  # the bias is added once
                    copy_.attrs["bias"] = None
                synapses.append(copy_)
            return synapses
        raise ExportError(f"{node.describe()} cannot drive a neuron directly; it must pass "
                          "through a conv or linear layer")

    def unique(node: Node) -> Node:
        base, k = node.name, 1
        while node.name in names:
            k += 1
            node.name = f"{base}#{k}"
        names.add(node.name)
        return node

    for node in graph.nodes:
        if node.op == "input":
            made.append(unique(copy.deepcopy(node)))
        elif node.op in ("neuron", "output"):
            synapses = [unique(s) for s in drive(node.inputs[0], node.name)]
            made += synapses
            if len(synapses) == 1:
                feed = synapses[0].name
            else:
                add = unique(Node(f"{node.name}.sum", "add", [s.name for s in synapses],
                                  synapses[0].shape))
                made.append(add)
                feed = add.name
            target = copy.deepcopy(node)
            target.inputs = [feed]
            made.append(unique(target))
    result = Graph(_topological(made), graph.metadata)
    check_canonical(result)
    return result


def _topological(nodes: list[Node]) -> list[Node]:
    by_name = {n.name: n for n in nodes}
    done: set[str] = set()
    order: list[Node] = []

    def visit(node: Node) -> None:
        if node.name in done:
            return
        for i in node.inputs:
            visit(by_name[i])
        done.add(node.name)
        order.append(node)

    for node in nodes:
        visit(node)
    return order


def check_canonical(graph: Graph) -> None:
    """The structure every later stage relies on; an error names the first violating node."""
    for node in graph.nodes:
        if node.op in ("batchnorm", "avgpool", "maxpool", "flatten", "upsample", "concat"):
            raise ExportError(f"{node.describe()} is left after lowering")
        if node.op in SYNAPSE_OPS:
            source = graph[node.inputs[0]]
            if source.op not in SOURCE_OPS:
                raise ExportError(f"{node.describe()} reads {source.describe()}, not a population")
        elif node.op == "add":
            for i in node.inputs:
                if graph[i].op not in SYNAPSE_OPS:
                    raise ExportError(f"{node.describe()} sums {graph[i].describe()}, not a synapse")
        elif node.op in ("neuron", "output"):
            feed = graph[node.inputs[0]]
            if feed.op not in SYNAPSE_OPS + ("add",):
                raise ExportError(f"{node.describe()} reads {feed.describe()}, not a synapse")


def synapses_into(graph: Graph, name: str) -> list[Node]:
    """The synapse nodes summed at the input of neuron/output ``name`` (canonical graph)."""
    feed = graph[graph[name].inputs[0]]
    return [graph[i] for i in feed.inputs] if feed.op == "add" else [feed]


FLOAT_PASSES: tuple[tuple[str, Callable[[Graph], Graph]], ...] = (
    ("fold_batchnorm", fold_batchnorm),
    ("fold_average_pooling", fold_average_pooling),
    ("lower_max_pooling", lower_max_pooling),
    ("split_concat", split_concat),
    ("fold_upsampling", fold_upsampling),
    ("lower_residuals", lower_residuals),
)
