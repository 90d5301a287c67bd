"""The SAKD loss terms (sakd.md §1), as pure functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def logits_kd(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
              temperature: float) -> torch.Tensor:
    """tau^2 * KL(softmax(z_A / tau) || softmax(z_S / tau)), averaged over the batch.

    Equals the authors' ``F.kl_div(log_softmax(z_S/tau), softmax(z_A/tau), 'batchmean') * tau^2``.
    """
    log_p_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.float() / temperature, dim=1)
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    return kl * temperature**2


def feature_kd(student_features: dict[str, torch.Tensor],
               teacher_features: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over taps of the mean squared error (mean over B*C*H*W); teacher features detached."""
    if student_features.keys() != teacher_features.keys():
        raise ValueError(f"feature taps differ: student {sorted(student_features)}, "
                         f"teacher {sorted(teacher_features)}")
    terms = [F.mse_loss(student_features[k].float(), teacher_features[k].detach().float())
             for k in student_features]
    return torch.stack(terms).sum()
