"""ANN MAC counts (sakd.models.macs) against hand arithmetic."""

from __future__ import annotations

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
