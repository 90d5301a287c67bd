"""Accuracy, loss and per-neuron-layer firing rates of a Network on a data set."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from sakd.models.base import Network
from sakd.models.neurons import MultiStepLIF
from sakd.train.distributed import DistEnv, ShardSampler, all_reduce_sum


def autocast_context(device: torch.device, amp: str):
    """bf16 autocast on CUDA where supported (fp16 otherwise); nothing on the CPU or if off."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    if amp == "auto":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast("cuda", dtype=dtype)


def eval_loader(dataset: Dataset, batch_size: int, env: DistEnv, workers: int = 0) -> DataLoader:
    sampler = ShardSampler(len(dataset), env.rank, env.world_size)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=env.device.type == "cuda")


class FiringRateMeter:
    """Mean spikes per neuron per time step, for every MultiStepLIF of a network."""

    def __init__(self, network: Network) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}
        neurons = [(n, m) for n, m in network.named_modules() if isinstance(m, MultiStepLIF)]
        self.names = [name for name, _ in neurons]  # module order
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in neurons]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.sums[name] = self.sums.get(name, 0.0) + float(output.detach().float().sum())
            self.counts[name] = self.counts.get(name, 0.0) + output.numel()

        return hook

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


@torch.no_grad()
def evaluate(network: Network, dataset: Dataset, env: DistEnv, batch_size: int = 256,
             amp: str = "auto", firing_rates: bool = False, workers: int = 0) -> dict:
    """Top-1 accuracy (%), mean cross-entropy and, for an SNN on request, firing rates.

    Sharded over processes without padding; the sums are all-reduced, so every rank returns
    the same figures.
    """
    was_training = network.training
    network.eval()
    meter = FiringRateMeter(network) if firing_rates and network.is_spiking else None
    correct = loss_sum = seen = 0.0
    try:
        for x, y in eval_loader(dataset, batch_size, env, workers):
            x, y = x.to(env.device, non_blocking=True), y.to(env.device, non_blocking=True)
            with autocast_context(env.device, amp):
                logits = network(x)
            loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
            correct += float((logits.argmax(1) == y).sum())
            seen += len(y)
    finally:
        network.train(was_training)
        if meter is not None:
            meter.remove()
    correct, loss_sum, seen = all_reduce_sum([correct, loss_sum, seen], env)
    result = {"acc": 100.0 * correct / max(seen, 1), "loss": loss_sum / max(seen, 1), "n": int(seen)}
    if meter is not None:
        names = meter.names
        totals = all_reduce_sum([meter.sums.get(n, 0.0) for n in names]
                                + [meter.counts.get(n, 0.0) for n in names], env)
        result["firing_rates"] = {n: totals[i] / max(totals[len(names) + i], 1.0)
                                  for i, n in enumerate(names)}
    return result
