"""The paper's recipes (configs/cifar*_resnet1[89].yaml, configs/imagenet_*.yaml): each file holds
the hyperparameters of shared/spec/sakd.md §1-§3, and each runs: two training steps on synthetic
data written in the real on-disk format (torchvision's CIFAR pickles, an ImageFolder PNG tree),
with the recipe's own architecture, T, optimizer and loss, overriding only the data location,
the batch size, the number of epochs and the workers."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sakd.cli import app
from sakd.config import load_config
from sakd.models import build_model
from sakd.train.checkpoint import load_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CIFAR = {  # config -> (data set, architecture, adapter kernel, number of feature taps)
    "cifar10_resnet18": ("cifar10", "resnet18_cifar", 3, 4),
    "cifar100_resnet18": ("cifar100", "resnet18_cifar", 3, 4),
    "cifar10_resnet19": ("cifar10", "resnet19", 1, 3),
    "cifar100_resnet19": ("cifar100", "resnet19", 1, 3),
}
IMAGENET = {  # config -> (student, teacher)
    "imagenet_resnet34": ("resnet34", "resnet34"),
    "imagenet_sew_resnet18": ("sew_resnet18", "resnet18"),
    "imagenet_sew_resnet34": ("sew_resnet34", "resnet34"),
    "imagenet_sew_resnet50": ("sew_resnet50", "resnet50"),
    "imagenet_sew_resnet152": ("sew_resnet152", "resnet152"),
}
# the smallest run of a recipe: two steps of batch 2 on 5 (CIFAR) or 4 (ImageNet) images
# SEW tests read the ImageFolder tree at this size (SEW-152 at 224x224: ~12 s a CPU step)
SEW_SIZE = 32
FAST = ["data.batch_size=2", "data.eval_batch_size=4", "data.workers=0",
        "teacher.train.epochs=1", "student.train.epochs=1"]

runner = CliRunner()


def recipe(name: str) -> Path:
    return CONFIGS / f"{name}.yaml"


def cli(*args: str) -> None:
    result = runner.invoke(app, [*args, "--device", "cpu", "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def sets(overrides: list[str]) -> list[str]:
    return [arg for o in overrides for arg in ("--set", o)]


def check_run(run: Path, kind: str) -> dict:
    """The run wrote its checkpoints and config, and its one epoch a finite loss; returns that
    epoch's metrics."""
    for name in ("last.pt", "best.pt", "config.yaml", "summary.json"):
        assert (run / name).is_file(), name
    (record,) = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for v in record["train"].values()), record["train"]
    assert load_checkpoint(run / "last.pt", kind=kind)["epoch"] == 0
    return record


# ---------------------------------------------------------------------------------------------
# the files hold the paper's hyperparameters


@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_recipe_holds_the_papers_hyperparameters(name):
    data, arch, kernel, _ = CIFAR[name]
    c = load_config(recipe(name))
    assert (c.name, c.seed, c.model.arch, c.teacher.arch) == (name, 1000, arch, arch)
    assert (c.data.name, c.data.batch_size, c.data.augment) == (data, 128, True)
    assert c.student.time_steps == 4 and c.student.init == "teacher"
    for train in (c.teacher.train, c.student.train):  # the teacher's recipe is the student's
        assert (train.optimizer, train.lr, train.momentum, train.nesterov, train.weight_decay) == \
            ("sgd", 0.1, 0.9, True, 5e-4)
        assert (train.scheduler, train.epochs, train.warmup_epochs) == ("cosine", 200, 0)
    d = c.distill
    assert (d.kd, d.feature_weight, d.feature_schedule, d.adapter_kernel) == \
        ("features", 100.0, "constant", kernel)
    assert d.taps is None  # the architecture's stage outputs


@pytest.mark.parametrize("name", sorted(IMAGENET))
def test_imagenet_recipe_holds_the_papers_hyperparameters(name):
    arch, teacher = IMAGENET[name]
    c = load_config(recipe(name))
    assert (c.name, c.seed, c.model.arch, c.teacher.arch) == (name, 1000, arch, teacher)
    assert (c.data.name, c.data.batch_size, c.data.augment) == ("imagenet", 64, True)
    assert c.student.time_steps == 4 and c.student.init == "teacher"
    t = c.student.train
    assert (t.optimizer, t.lr, t.weight_decay, t.scheduler, t.epochs, t.warmup_epochs) == \
        ("adamw", 1e-3, 5e-3, "cosine", 120, 0)
    d = c.distill
    assert (d.kd, d.logit_weight, d.temperature) == ("both", 10.0, 1.0)
    assert (d.feature_weight, d.feature_schedule, d.feature_epochs, d.feature_floor) == \
        (10.0, "step", 10, 0.01)
    assert d.adapter_kernel == 1 and d.taps is None
    header = recipe(name).read_text()
    assert (f"torchrun --nproc_per_node 8 -m sakd.cli distill -c configs/{name}.yaml "
            f"--teacher-weights {teacher}.pth -o runs/{name}") in header
    assert "Paper's number to expect:" in header


def test_every_recipe_is_tested():
    files = {p.stem for p in CONFIGS.glob("cifar*_resnet1[89].yaml")} | \
            {p.stem for p in CONFIGS.glob("imagenet_*.yaml")}
    assert files == set(CIFAR) | set(IMAGENET)


# ---------------------------------------------------------------------------------------------
# two training steps of each recipe on synthetic data in the real format


@pytest.fixture
def no_md5(monkeypatch):
    """torchvision checks the md5 of the real CIFAR files; a fake in the same format passes
    when the files exist."""
    import os

    from torchvision.datasets import cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def write_fake_cifar100(root: Path, n_train: int = 5, n_test: int = 4) -> None:
    """cifar-100-python/ as torchvision expects it: pickled ``train`` and ``test`` dicts with
    ``data`` uint8 [N, 3072] and ``fine_labels``, and ``meta`` with ``fine_label_names``."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {"data": rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8),
                 "fine_labels": [int(v) for v in rng.integers(0, 100, size=n)],
                 "coarse_labels": [int(v) for v in rng.integers(0, 20, size=n)],
                 "filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "meta").write_bytes(pickle.dumps(
        {"fine_label_names": [f"class{i}" for i in range(100)],
         "coarse_label_names": [f"super{i}" for i in range(20)]}, protocol=2))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_recipe_trains(name, tmp_path, writers, no_md5):
    """The documented commands, `sakd teacher` then `sakd distill --teacher`, on 5 training
    images (two steps of batch 2) in torchvision's pickle format."""
    data, arch, kernel, n_taps = CIFAR[name]
    if data == "cifar10":
        writers.cifar10(tmp_path / "data", per_batch=1, n_test=4)  # data_batch_1..5: 5 images
    else:
        write_fake_cifar100(tmp_path / "data", n_train=5, n_test=4)
    overrides = sets([*FAST, f"data.root={tmp_path / 'data'}"])
    cli("teacher", "-c", str(recipe(name)), *overrides, "-o", str(tmp_path / "teacher"))
    check_run(tmp_path / "teacher", "teacher")
    cli("distill", "-c", str(recipe(name)), *overrides, "--teacher",
        str(tmp_path / "teacher" / "last.pt"), "-o", str(tmp_path / "sakd"))
    record = check_run(tmp_path / "sakd", "student")
    assert set(record["train"]) == {"loss", "ce", "kd_features", "acc"}
    assert record["feature_weight"] == 100.0 and record["lr"] == 0.1
    student = load_checkpoint(tmp_path / "sakd" / "last.pt", kind="student")
    assert (student["arch"], student["time_steps"]) == (arch, 4)
    assert student["data"]["num_classes"] == (10 if data == "cifar10" else 100)
    adapters = [k for k in student["trainable"] if k.startswith("adapters.") and k.endswith("0.weight")]
    assert len(adapters) == n_taps
    assert all(student["trainable"][k].shape[-1] == kernel for k in adapters)


def write_teacher_weights(path: Path, arch: str, num_classes: int, image_size: int) -> Path:
    """A freshly built ANN saved as a torchvision-format state dict (what --teacher-weights takes).
    Its BatchNorm statistics are those of a batch of noise: with the initial ones (mean 0,
    variance 1), or ones estimated from too few values (layer4 is 1x1 at 32x32), the frozen
    teacher's activations grow through the residual stages (to ~1e10 in ResNet-152), which a
    trained teacher's do not."""
    ann = build_model(arch, num_classes, 3, (image_size, image_size))
    for module in ann.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # running statistics = the batch's
    n = 16 if image_size <= 64 else 2
    noise = torch.randn(n, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ann.train()(noise)
    torch.save(ann.state_dict(), path)
    return path


@pytest.mark.slow
def test_imagenet_spiking_resnet34_trains_at_224(tmp_path, writers):
    """The header's command (without torchrun) on an ImageFolder PNG tree: 32x32 images that
    RandomResizedCrop brings to the recipe's 224x224, two steps of batch 1."""
    writers.imagenet(tmp_path / "data", classes=("n01440764", "n01443537"), per_class=1,
                     size=(32, 32))
    weights = write_teacher_weights(tmp_path / "resnet34.pth", "resnet34", 2, 224)
    overrides = sets([*FAST, f"data.root={tmp_path / 'data'}", "data.batch_size=1",
                     "data.eval_batch_size=2"])
    cli("distill", "-c", str(recipe("imagenet_resnet34")), "--teacher-weights", str(weights),
        *overrides, "-o", str(tmp_path / "run"))
    record = check_run(tmp_path / "run", "student")
    assert set(record["train"]) == {"loss", "ce", "kd_logits", "kd_features", "acc"}
    assert record["feature_weight"] == 10.0 and record["lr"] == 1e-3
    student = load_checkpoint(tmp_path / "run" / "last.pt", kind="student")
    assert student["data"]["image_size"] == [224, 224] and student["time_steps"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(n for n in IMAGENET if "sew" in n))
def test_imagenet_sew_recipe_trains(name, tmp_path, writers):
    """SEW-ResNet-18/34/50/152 with the recipe's loss and optimizer on an ImageFolder tree, two
    steps of batch 2. At 224x224 SEW-152 takes ~12 s a step on a CPU, so the tree is read by the
    real loader at SEW_SIZE x SEW_SIZE (the config has no image-size key; the loader does)."""
    from sakd.data.torchvision_sets import load_imagenet_splits
    from sakd.train.distributed import DistEnv
    from sakd.train.jobs import distill_student

    arch, teacher = IMAGENET[name]
    writers.imagenet(tmp_path / "data", classes=("n01440764", "n01443537"), per_class=2,
                     size=(32, 32))
    splits = load_imagenet_splits(str(tmp_path / "data"), augment=True, val_fraction=0.0,
                                  image_size=SEW_SIZE)
    weights = write_teacher_weights(tmp_path / f"{teacher}.pth", teacher, 2, SEW_SIZE)
    assert len(splits.train) == 4  # two steps of batch 2
    config = load_config(recipe(name), [*FAST, f"data.root={tmp_path / 'data'}",
                                        f"teacher.weights={weights}"])
    result = distill_student(config, tmp_path / "run", DistEnv(), progress=False, splits=splits)
    record = check_run(tmp_path / "run", "student")
    assert result.history[0]["train"] == record["train"]
    assert set(record["train"]) == {"loss", "ce", "kd_logits", "kd_features", "acc"}
    assert record["feature_weight"] == 10.0
    student = load_checkpoint(tmp_path / "run" / "last.pt", kind="student")
    assert (student["arch"], student["teacher"]["arch"]) == (arch, teacher)
