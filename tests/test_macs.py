"""ANN MAC counts (sakd.models.macs) against hand arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sakd.hardware.energy import ANN_TOTAL_KEY, estimate_ann_energy
from sakd.models import build_model, spikify
from sakd.models.macs import TOTAL_KEY, count_ann_macs


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, padding=1)  # 3x9x9 -> 4x5x5
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 8, 3, groups=2)  # 4x5x5 -> 8x3x3, 2 input channels per group
        self.fc = nn.Linear(72, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv1(x)))
        x = torch.relu(self.conv2(x))
        return self.fc(x.flatten(1))


def test_tiny_conv_net_by_hand():
    model = Tiny().train()
    macs = count_ann_macs(model, (3, 9, 9))
    assert macs == {
        "conv1": 4 * 5 * 5 * 3 * 3 * 3,  # Cout Hout Wout x Cin kh kw = 2700
        "conv2": 8 * 3 * 3 * (4 // 2) * 3 * 3,  # x Cin/groups = 1296
        "fc": 72 * 5,  # in x out = 360
        "total": 2700 + 1296 + 360,
    }
    assert list(macs) == ["conv1", "conv2", "fc", "total"]
    assert model.training  # the mode is restored
    assert not model.conv1._forward_hooks  # hooks removed


def test_reused_module_counts_every_call():
    class Twice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            return self.fc(self.fc(x))

    assert count_ann_macs(Twice(), (6,)) == {"fc": 72, "total": 72}


def test_registry_convnet_and_its_snn():
    # test_convnet: conv 1->4 (8x8, s1), conv 4->8 (s2 -> 4x4), fc1 128->16, fc 16->10
    ann = build_model("test_convnet", num_classes=10, in_channels=1, image_size=(8, 8))
    expected = {"stage1.0": 4 * 8 * 8 * 1 * 9, "stage2.0": 8 * 4 * 4 * 4 * 9,
                "fc1": 8 * 4 * 4 * 16, "fc": 16 * 10}
    expected[TOTAL_KEY] = sum(expected.values())
    assert count_ann_macs(ann, (1, 8, 8)) == expected
    snn = spikify(ann, 3)  # time folded into the batch does not change the per-sample count
    assert count_ann_macs(snn, (1, 8, 8)) == expected and snn.time_steps == 3
    assert TOTAL_KEY == ANN_TOTAL_KEY
    assert estimate_ann_energy(expected, "cmos45-int8").total_pj == \
        pytest.approx(expected[TOTAL_KEY] * 0.23)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="input_shape"):
        count_ann_macs(Tiny(), (3, 0, 9))


# ---------------------------------------------------------------------------------------------
# nearest upsampling, and the dense networks against their traced graph


class Upsampling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)  # 1x4x4 -> 2x4x4
        self.inner = nn.Sequential(nn.Conv2d(2, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(self.conv(x), scale_factor=2, mode="nearest")  # 2x8x8
        y = nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
        return self.inner(x).sum() + y.sum()


def test_nearest_upsampling_counts_one_mac_per_output_value():
    macs = count_ann_macs(Upsampling(), (1, 4, 4))
    assert macs == {"conv": 2 * 4 * 4 * 9, "interpolate": 2 * 8 * 8,  # the bilinear one: not counted
                    "inner.0": 2 * 8 * 8 * 2, "total": 288 + 128 + 256}


def _graph_macs(snn: nn.Module, input_shape: tuple[int, ...]) -> dict[str, int]:
    """An independent count: the exporter's torch.fx graph of the network's chip part, each conv
    node (a shared head conv once per use) Cout x Ho x Wo x Cin/groups x kh x kw, each upsample
    node its output values; summed by the module the node came from."""
    from sakd.export.trace import trace_network

    graph = trace_network(snn, input_shape)
    counts: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "conv":
            c_out, ho, wo = node.shape
            key, value = node.origin, c_out * ho * wo * int(np.prod(node.attrs["weight"].shape[1:]))
        elif node.op == "upsample":
            key, value = "backbone.fpn.interpolate", int(np.prod(node.shape))
        else:
            assert node.op != "linear", node.describe()
            continue
        counts[key] = counts.get(key, 0) + value
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("arch, classes", [("fcos_resnet_small", 3), ("fcn_resnet_small", 11)])
def test_a_dense_network_counts_what_its_traced_graph_holds(arch, classes):
    ann = build_model(arch, classes, 1, (64, 64))
    macs = count_ann_macs(ann, (1, 64, 64))
    total = macs.pop(TOTAL_KEY)
    assert macs == _graph_macs(spikify(build_model(arch, classes, 1, (64, 64)), 2), (1, 64, 64))
    assert total == sum(macs.values())
    if arch.startswith("fcos"):
        # the FPN's top-down path: nearest 4x4 -> 8x8 and 8x8 -> 16x16 of 32 channels
        assert macs["backbone.fpn.interpolate"] == 32 * 8 * 8 + 32 * 16 * 16
        # a head conv shared by the three levels (16x16, 8x8, 4x4) counts every use
        assert macs["head.classification_head.tower.convs.0"] == 32 * 9 * 32 * (256 + 64 + 16)
    else:  # the segmenter's bilinear upsampling to the image is the host's: not counted
        assert not any("interpolate" in key for key in macs)
