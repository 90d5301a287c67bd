"""Training tasks: ``forward(x, y)`` returns the total loss, its named parts and the logits.

``ClassificationTask`` trains an ANN teacher (cross-entropy). ``DistillationTask`` is SAKD's
level 2: CE + c*tau^2*KL(teacher || student) + w_f * sum_k MSE(adapter_k(rate_k), F_k).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sakd.distill.losses import feature_kd, logits_kd
from sakd.distill.schedule import FeatureWeight
from sakd.distill.taps import DistillError, FeatureTaps
from sakd.models.base import Network

KD_MODES = ("both", "logits", "features", "none")


@dataclass
class TaskOutput:
    loss: torch.Tensor  # the total, the one to differentiate
    parts: dict[str, torch.Tensor]  # named, weighted terms that sum to ``loss``
    logits: torch.Tensor  # the network's output, for accuracy


class ClassificationTask(nn.Module):
    """Cross-entropy on the logits of ``model`` (an ANN teacher, or any Network)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> TaskOutput:
        logits = self.model(x)
        ce = F.cross_entropy(logits.float(), y)
        return TaskOutput(ce, {"ce": ce}, logits)

    def set_position(self, epoch: int, batch_index: int) -> None:
        """Nothing depends on the position in training."""


def adapter(channels: int, kernel_size: int, ndim: int) -> nn.Sequential:
    """Phi_k: conv (kernel 1 or 3, same padding, no bias) + BN, no activation; Linear+BN for
    vector taps."""
    if ndim == 4:
        return nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(channels),
        )
    if ndim == 2:
        return nn.Sequential(nn.Linear(channels, channels, bias=False), nn.BatchNorm1d(channels))
    raise ValueError(f"a feature tap must be [B, C, H, W] or [B, C], got {ndim} dimensions")


class SAKDStudent(nn.Module):
    """The SNN plus its stage adapters: the module that the optimizer and DDP see.

    ``forward(x)`` returns the logits (mean over T) and ``{tap: adapter(rate)}``. The adapters are
    trained with the student and dropped afterwards (only ``snn`` is exported).
    """

    def __init__(self, snn: Network, taps: list[str], adapter_kernel: int,
                 feature_shapes: dict[str, torch.Size]) -> None:
        super().__init__()
        self.snn = snn
        self.tap_names = list(taps)
        self.adapters = nn.ModuleDict({
            _key(name): adapter(feature_shapes[name][1], adapter_kernel, len(feature_shapes[name]))
            for name in taps
        })
        self._taps = FeatureTaps(snn, taps) if taps else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.snn(x)
        if self._taps is None:
            return logits, {}
        rates = self._taps.pop()
        return logits, {name: self.adapters[_key(name)](rates[name]) for name in self.tap_names}


def _key(name: str) -> str:
    return name.replace(".", "__")  # ModuleDict keys cannot contain dots


class DistillationTask(nn.Module):
    """SAKD level 2. The teacher is frozen in eval mode, runs under ``no_grad`` and is never
    wrapped in DDP; ``kd='none'`` gives the from-scratch baseline with the same code path."""

    def __init__(self, student: nn.Module, teacher: Network | None, kd: str,
                 logit_weight: float, temperature: float, feature_weight: FeatureWeight,
                 taps: list[str]) -> None:
        super().__init__()
        if kd not in KD_MODES:
            raise ValueError(f"unknown kd mode '{kd}'; choose one of {KD_MODES}")
        if kd != "none" and teacher is None:
            raise ValueError(f"kd='{kd}' needs a teacher")
        self.student = student
        self.kd = kd
        self.logit_weight = logit_weight
        self.temperature = temperature
        self.feature_weight = feature_weight
        self.uses_logits = kd in ("both", "logits")
        self.uses_features = kd in ("both", "features")
        self.current_feature_weight = feature_weight(0, 0)
        # kept out of the module tree: no gradients, not in the student's state dict, not DDP
        self.__dict__["teacher"] = teacher
        if teacher is not None:
            teacher.eval().requires_grad_(False)
        self._teacher_taps = FeatureTaps(teacher, taps) if self.uses_features else None

    def set_position(self, epoch: int, batch_index: int) -> None:
        self.current_feature_weight = self.feature_weight(epoch, batch_index)

    def train(self, mode: bool = True) -> DistillationTask:
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # frozen BN statistics, always
        return self

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> TaskOutput:
        logits, features = self.student(x)
        parts = {"ce": F.cross_entropy(logits.float(), y)}
        if self.kd != "none":
            with torch.no_grad():
                teacher_logits = self.teacher(x)
                teacher_features = self._teacher_taps.pop() if self._teacher_taps else {}
            if self.uses_logits:
                parts["kd_logits"] = self.logit_weight * logits_kd(logits, teacher_logits,
                                                                   self.temperature)
            if self.uses_features:
                parts["kd_features"] = self.current_feature_weight * feature_kd(features, teacher_features)
        return TaskOutput(sum(parts.values()), parts, logits)


def feature_shapes(network: Network, taps: list[str], example: torch.Tensor) -> dict[str, torch.Size]:
    """Shapes ``[B, ...]`` of the taps of ``network`` on ``example`` (time removed)."""
    probe = FeatureTaps(network, taps)
    try:
        was_training = network.training
        network.eval()
        with torch.no_grad():
            network(example)
        network.train(was_training)
        return {name: t.shape for name, t in probe.pop().items()}
    finally:
        probe.remove()


def check_taps_match(student: Network, teacher: Network, taps: list[str],
                     example: torch.Tensor) -> dict[str, torch.Size]:
    """The student's and the teacher's taps must have equal shapes; returns them."""
    s_shapes = feature_shapes(student, taps, example)
    t_shapes = feature_shapes(teacher, taps, example)
    for name in taps:
        if s_shapes[name] != t_shapes[name]:
            raise DistillError(f"feature tap '{name}': student shape {tuple(s_shapes[name])} but "
                             f"teacher shape {tuple(t_shapes[name])}; the architectures differ")
    return s_shapes
