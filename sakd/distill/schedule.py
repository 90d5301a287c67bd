"""The weight w_f of the feature loss over training (sakd.md §1.4, §5.1)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FeatureWeight:
    """``constant``: w_f = beta always.
    ``step``: beta for the first ``epochs`` epochs (0-based epoch < epochs), then ``floor``
    (the evident intent of the authors' ``--fea_epochs``).
    ``step-batch``: the authors' code read literally: beta while the 0-based batch index within
    each epoch is <= ``epochs``, then ``floor`` (so beta applies to the first epochs+1 batches of
    every epoch)."""

    kind: str = "constant"
    beta: float = 1.0
    epochs: int = 10
    floor: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in ("constant", "step", "step-batch"):
            raise ValueError(f"unknown feature schedule '{self.kind}' (constant, step, step-batch)")

    def __call__(self, epoch: int, batch_index: int) -> float:
        if self.kind == "constant":
            return self.beta
        if self.kind == "step":
            return self.beta if epoch < self.epochs else self.floor
        return self.beta if batch_index <= self.epochs else self.floor
