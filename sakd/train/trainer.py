"""The training loop: seeded, resumable, DDP-aware, with AMP on CUDA, a progress bar, JSON-lines
and TensorBoard metrics, and atomic per-epoch checkpoints (``last.pt`` and ``best.pt``).

Exact resume: every epoch reseeds all random generators from (seed, epoch, rank) and the data
order from (seed, epoch), so a run stopped after epoch k and resumed computes exactly what an
uninterrupted run computes.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from sakd.config import OptimConfig
from sakd.data.common import DataSplits
from sakd.errors import SakdError
from sakd.io import append_jsonl, atomic_write_json, read_jsonl
from sakd.models.base import Network
from sakd.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from sakd.train.dense import METRIC_TITLE, move_targets
from sakd.train.distributed import DistEnv, all_reduce_sum, barrier
from sakd.train.evaluate import autocast_context, evaluate

# keys of the resolved config that may differ between a run and its resumption
RESUME_TOLERATED = ("data.workers", "data.eval_batch_size", "data.root")


class TrainingError(SakdError):
    """Training cannot go on (a non-finite loss, a run directory in the way, ...)."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(params, cfg: OptimConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer '{cfg.optimizer}'")


def lr_factor(epoch: int, cfg: OptimConfig) -> float:
    """Per-epoch multiplier of the base lr: linear warm-up, then cosine to 0 (or constant)."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / cfg.warmup_epochs
    if cfg.scheduler == "constant":
        return 1.0
    span = max(cfg.epochs - cfg.warmup_epochs, 1)
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@dataclass
class FitResult:
    run_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)  # the metrics record of the best epoch


class Trainer:
    """Runs ``task`` over the training split for ``optim.epochs`` epochs.

    - ``task(x, y)`` returns a TaskOutput; ``task.set_position(epoch, batch)`` is called first.
    - ``trainable`` holds every trained parameter (the network, plus adapters); its state is
      what ``--resume`` restores.
    - ``network`` is the Network that is evaluated and whose weights are deployed.
    - ``describe()`` returns the static part of the checkpoint (kind, arch, config, ...).
    - ``on_start()`` runs on the main process once the run directory is accepted (after the
      overwrite and resume checks), e.g. to write the resolved config next to the outputs.
    - ``evaluator(network, dataset, env, batch_size=, amp=, workers=, firing_rates=)`` gives a
      split's figures (default: ``sakd.train.evaluate.evaluate``, top-1 accuracy); ``metric``
      is the key of those figures that picks the best epoch (``acc`` %, or ``map``/``miou`` in
      [0, 1], logged as ``select_acc`` in %). With a ``metric`` other than ``acc`` there is no
      training accuracy (dense tasks) and no selection loss.
    """

    def __init__(self, *, task: nn.Module, trainable: nn.Module, network: Network,
                 splits: DataSplits, batch_size: int, eval_batch_size: int, workers: int,
                 optim: OptimConfig, env: DistEnv, run_dir: str | Path, seed: int,
                 describe: Callable[[], dict[str, Any]], progress: bool = True,
                 on_epoch_end: Callable[[int], None] | None = None,
                 on_start: Callable[[], None] | None = None,
                 evaluator: Callable[..., dict[str, Any]] | None = None,
                 metric: str = "acc") -> None:
        self.task, self.trainable, self.network = task, trainable, network
        self.evaluator = evaluator or evaluate
        self.metric = metric
        self.splits, self.optim, self.env = splits, optim, env
        self.batch_size, self.eval_batch_size, self.workers = batch_size, eval_batch_size, workers
        self.run_dir, self.seed, self.describe = Path(run_dir), seed, describe
        self.progress = progress and env.is_main
        self.on_epoch_end = on_epoch_end
        self.on_start = on_start
        self.optimizer = build_optimizer(trainable.parameters(), optim)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda e: lr_factor(e, optim))
        self.amp = optim.amp
        use_scaler = env.device.type == "cuda" and self._amp_dtype() == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.start_epoch = 0
        self.best_acc = -1.0
        self.best_loss = float("inf")  # tie-break: equal selection accuracy, lower selection loss
        self.history: list[dict[str, Any]] = []
        if len(splits.train) < batch_size * env.world_size:
            raise TrainingError(f"the training split has {len(splits.train)} samples, fewer than one "
                                f"global batch ({batch_size} x {env.world_size}); lower data.batch_size")

    # paths ------------------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.run_dir / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.run_dir / "best.pt"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.jsonl"

    def _amp_dtype(self):
        if self.env.device.type != "cuda" or self.amp == "off":
            return None
        if self.amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return {"bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]

    # resume -----------------------------------------------------------------------------------
    def prepare(self, resume: bool) -> None:
        """Restore ``last.pt`` when resuming; refuse to overwrite an existing run otherwise."""
        if not resume:
            if self.last_path.exists():
                raise TrainingError(f"{self.run_dir} already holds a training run (last.pt); pass "
                                    "--resume to continue it or choose another output folder")
            return
        if not self.last_path.exists():
            raise TrainingError(f"--resume: no checkpoint to resume in {self.run_dir} (last.pt missing)")
        record = load_checkpoint(self.last_path)
        self._check_resumable(record)
        self.trainable.load_state_dict(record["trainable"])
        self.optimizer.load_state_dict(record["optimizer"])
        self.scheduler.load_state_dict(record["scheduler"])
        if record.get("scaler"):
            self.scaler.load_state_dict(record["scaler"])
        self.start_epoch = int(record["epoch"]) + 1
        self.best_acc = float(record["best_acc"])
        self.best_loss = float(record.get("best_loss", float("inf")))
        if self.metrics_path.exists():  # drop lines of epochs after the checkpoint
            self.history = [r for r in read_jsonl(self.metrics_path) if r["epoch"] < self.start_epoch]

    def _check_resumable(self, record: dict[str, Any]) -> None:
        now = _flatten(self.describe()["config"])
        then = _flatten(record.get("config", {}))
        changed = sorted(k for k in set(now) | set(then)
                         if now.get(k) != then.get(k) and k not in RESUME_TOLERATED)
        if changed:
            key = changed[0]
            raise CheckpointError(f"cannot resume {self.last_path}: config key '{key}' was "
                                  f"{then.get(key)!r} and is now {now.get(key)!r}; resume with the "
                                  "run's own config.yaml")

    # the loop ---------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> FitResult:
        self.prepare(resume)
        if self.env.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if resume:  # rewrite the metrics log without lines past the checkpoint
                self.metrics_path.unlink(missing_ok=True)
                for record in self.history:
                    append_jsonl(self.metrics_path, record)
            if self.on_start is not None:
                self.on_start()
        writer = self._tensorboard()
        try:
            for epoch in range(self.start_epoch, self.optim.epochs):
                record = self._run_epoch(epoch)
                self.history.append(record)
                if self.env.is_main:
                    append_jsonl(self.metrics_path, record)
                    self._write_tensorboard(writer, record)
                    self._save(epoch, record)
                barrier(self.env)
                if self.on_epoch_end is not None:
                    self.on_epoch_end(epoch)
        finally:
            if writer is not None:
                writer.close()
        best = max(self.history, key=lambda r: (r["select_acc"], -r.get("select_loss", 0.0)), default={})
        if self.env.is_main and self.history:
            atomic_write_json(self.run_dir / "summary.json",
                              {"best": best, "final": self.history[-1], "epochs": len(self.history)})
        return FitResult(self.run_dir, self.history, best)

    def _train_loader(self, epoch: int) -> DataLoader:
        sampler = DistributedSampler(self.splits.train, num_replicas=self.env.world_size,
                                     rank=self.env.rank, shuffle=True, seed=self.seed, drop_last=True)
        sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return DataLoader(self.splits.train, batch_size=self.batch_size, sampler=sampler,
                          num_workers=self.workers, drop_last=True, generator=generator,
                          collate_fn=getattr(self.splits, "collate_fn", None),
                          pin_memory=self.env.device.type == "cuda",
                          persistent_workers=False)

    def _run_epoch(self, epoch: int) -> dict[str, Any]:
        seed_everything(self.seed * 1_000_003 + epoch * 1_009 + self.env.rank)
        loader = self._train_loader(epoch)
        self.task.train()
        sums: dict[str, float] = {}
        correct = seen = 0.0
        started = time.perf_counter()
        bar = _ProgressBar(f"epoch {epoch + 1}/{self.optim.epochs}", len(loader), self.progress)
        with bar:
            for batch_index, (x, y) in enumerate(loader):
                x = x.to(self.env.device, non_blocking=True)
                y = move_targets(y, self.env.device)
                self.task.set_position(epoch, batch_index)
                with autocast_context(self.env.device, self.amp):
                    out = self.task(x, y)
                if not torch.isfinite(out.loss):
                    raise TrainingError(f"the loss became {float(out.loss.detach())} at epoch "
                                        f"{epoch + 1}, batch {batch_index}; lower the learning rate")
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(out.loss).backward()
                if self.optim.grad_clip:
                    self.scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(self.trainable.parameters(), self.optim.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                n = len(y)
                sums["loss"] = sums.get("loss", 0.0) + float(out.loss.detach()) * n
                for name, value in out.parts.items():
                    sums[name] = sums.get(name, 0.0) + float(value.detach()) * n
                if self.metric == "acc":
                    correct += float((out.logits.detach().argmax(1) == y).sum())
                seen += n
                elapsed = time.perf_counter() - started
                bar.advance({k: v / seen for k, v in sums.items()},
                            seen * self.env.world_size / max(elapsed, 1e-9))
        train_time = time.perf_counter() - started
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        names = sorted(sums)
        totals = all_reduce_sum([sums[k] for k in names] + [correct, seen], self.env)
        total_seen = totals[-1]
        train = {k: totals[i] / total_seen for i, k in enumerate(names)}
        if self.metric == "acc":
            train["acc"] = 100.0 * totals[-2] / total_seen
        record: dict[str, Any] = {"epoch": epoch, "lr": lr, "train": train,
                                  "train_time_s": train_time,
                                  "samples_per_s": total_seen / max(train_time, 1e-9)}
        if "kd_features" in train:
            record["feature_weight"] = self.task.current_feature_weight
        eval_kwargs = dict(batch_size=self.eval_batch_size, amp=self.amp, workers=self.workers)
        if self.splits.val is not None:
            record["val"] = self.evaluator(self.network, self.splits.val, self.env, **eval_kwargs)
        record["test"] = self.evaluator(self.network, self.splits.test, self.env,
                                        firing_rates=self.network.is_spiking, **eval_kwargs)
        selection = record["val"] if "val" in record else record["test"]
        if self.metric == "acc":
            record["select_acc"], record["select_loss"] = selection["acc"], selection["loss"]
        else:  # a dense task's figure in [0, 1], logged in %; it has no loss to break ties
            record["select_metric"] = self.metric
            record["select_acc"], record["select_loss"] = 100.0 * selection[self.metric], 0.0
        if self.env.is_main:
            _print_epoch(record, self.optim.epochs, self.metric)
        return record

    def _save(self, epoch: int, record: dict[str, Any]) -> None:
        # best = highest selection accuracy; a tie (common on small validation splits) goes to
        # the lower selection loss
        improved = (record["select_acc"], -record["select_loss"]) > (self.best_acc, -self.best_loss)
        if improved:
            self.best_acc, self.best_loss = record["select_acc"], record["select_loss"]
        payload = {
            **self.describe(),
            "state_dict": self.network.state_dict(),
            "trainable": self.trainable.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "epoch": epoch,
            "best_acc": self.best_acc,
            "best_loss": self.best_loss,
            "metrics": _plain(record),
        }
        save_checkpoint(self.last_path, payload)
        if improved:
            save_checkpoint(self.best_path, payload)

    def _tensorboard(self):
        if not self.env.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    @staticmethod
    def _write_tensorboard(writer, record: dict[str, Any]) -> None:
        step = record["epoch"]
        for split in ("train", "val", "test"):
            for key, value in record.get(split, {}).items():
                if isinstance(value, (int, float)):
                    writer.add_scalar(f"{split}/{key}", value, step)
        for name, rate in record["test"].get("firing_rates", {}).items():
            writer.add_scalar(f"firing_rate/{name}", rate, step)
        writer.add_scalar("lr", record["lr"], step)
        writer.flush()


def _plain(value: Any) -> Any:
    """JSON-like copy of a metrics record (built-in types only, for weights_only loading)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _print_epoch(record: dict[str, Any], epochs: int, metric: str = "acc") -> None:
    from rich.console import Console

    train = record["train"]
    parts = "  ".join(f"{k} {v:.4f}" for k, v in train.items() if k not in ("acc", "loss"))
    if metric == "acc":
        val = f"  val {record['val']['acc']:.2f}%" if "val" in record else ""
        figures = f"train {train['acc']:.2f}%{val}  test {record['test']['acc']:.2f}%"
    else:
        title = METRIC_TITLE.get(metric, metric)
        val = f"val {title} {record['val'][metric]:.4f}  " if "val" in record else ""
        figures = f"{val}test {title} {record['test'][metric]:.4f}"
    Console(stderr=True).print(
        f"epoch {record['epoch'] + 1}/{epochs}: loss {train['loss']:.4f} ({parts})  {figures}  "
        f"[{record['samples_per_s']:.0f} samples/s]", highlight=False, soft_wrap=True)


class _ProgressBar:
    """A rich progress bar over the batches of one epoch, showing loss parts and throughput."""

    def __init__(self, title: str, total: int, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                                  TextColumn("{task.fields[info]}"), transient=True)
        self._task = self._progress.add_task(title, total=total, info="")

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._progress.stop()

    def advance(self, means: dict[str, float], samples_per_s: float) -> None:
        if self.enabled:
            info = " ".join(f"{k} {v:.3f}" for k, v in means.items()) + f" | {samples_per_s:.0f}/s"
            self._progress.update(self._task, advance=1, info=info)
