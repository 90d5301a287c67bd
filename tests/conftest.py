"""Shared fixtures: tiny data sets (digits subsets, fake files in the real on-disk formats), the
overrides of a fast run, and tiny trained teacher and student checkpoints (once per session)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from sakd.config import load_config
from sakd.data import DataSplits, load_splits

# The tests' networks are tiny: with more than one intra-op thread torch spends more time
# coordinating threads than computing (measured ~2x slower on 2 cores). Subprocesses that must
# reproduce this process's numbers bit for bit must be given the same count.
torch.set_num_threads(1)


# the overrides of a fast run: a tiny ConvNet, T = 2, one or two epochs on a digits subset
TINY_OVERRIDES = [
    "name=tiny",
    "seed=3",
    "model.arch=test_convnet",
    "data.batch_size=16",
    "data.eval_batch_size=64",
    "data.val_fraction=0.1",
    "teacher.train.epochs=2",
    "teacher.train.lr=0.01",
    "student.time_steps=2",
    "student.train.epochs=2",
    "student.train.lr=0.003",
    "distill.kd=both",
    "distill.temperature=2.0",
]


def make_tiny_splits(n_train: int = 96, n_val: int = 32, n_test: int = 64) -> DataSplits:
    """The first samples of each digits split (deterministic): a few batches per epoch."""
    full = load_splits("digits", val_fraction=0.1)
    return DataSplits(full.info, Subset(full.train, range(n_train)),
                      Subset(full.test, range(n_test)), Subset(full.val, range(n_val)))


@pytest.fixture(scope="session")
def digits_splits() -> DataSplits:
    return load_splits("digits", augment=False, val_fraction=0.1)


@pytest.fixture(scope="session")
def tiny_splits() -> DataSplits:
    return make_tiny_splits()


@pytest.fixture
def tiny_overrides() -> list[str]:
    """``--set`` overrides of a fast run (test modules cannot import conftest by name: another
    conftest.py under tests/ may shadow it)."""
    return list(TINY_OVERRIDES)


@pytest.fixture(scope="session")
def trained_teacher(tmp_path_factory, tiny_splits) -> Path:
    """A tiny teacher checkpoint (test_convnet, 2 epochs on the digits subset)."""
    from sakd.train.distributed import DistEnv
    from sakd.train.jobs import train_teacher

    out = tmp_path_factory.mktemp("teacher") / "run"
    train_teacher(load_config(None, TINY_OVERRIDES), out, DistEnv(), progress=False,
                  splits=tiny_splits)
    return out / "last.pt"


@pytest.fixture(scope="session")
def trained_student(tmp_path_factory, tiny_splits, trained_teacher) -> Path:
    """A tiny SAKD student checkpoint distilled from ``trained_teacher`` (1 epoch)."""
    from sakd.train.distributed import DistEnv
    from sakd.train.jobs import distill_student

    out = tmp_path_factory.mktemp("student") / "run"
    config = load_config(None, TINY_OVERRIDES + [f"teacher.checkpoint={trained_teacher}",
                                                 "student.train.epochs=1"])
    distill_student(config, out, DistEnv(), progress=False, splits=tiny_splits)
    return out / "last.pt"


# ---------------------------------------------------------------------------------------------
# files in the real on-disk formats


def write_idx(path: Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write ``array`` (uint8) as an IDX file (gzip-compressed when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    data = header + array.tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def fake_fashion_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_fake_fashion_mnist(root: Path, n_train: int = 40, n_test: int = 20,
                             gz: bool = True) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {}
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = fake_fashion_arrays(n, seed)
        write_idx(root / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        arrays[prefix] = (images, labels)
    return arrays


def write_fake_cifar10(root: Path, per_batch: int = 10, n_test: int = 20) -> dict:
    """cifar-10-batches-py/ as torchvision expects it: pickled dicts with ``data`` uint8
    [N, 3072] (channel-major rows) and ``labels``, plus ``batches.meta`` with ``label_names``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    batches = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, size=n)]
        labels[:10] = list(range(10)) if n >= 10 else labels[:10]  # every class present
        entry = {"batch_label": name.encode(), "labels": labels, "data": data,
                 "filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        batches[name] = entry
    label_names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {"label_names": label_names, "num_cases_per_batch": per_batch, "num_vis": 3072},
        protocol=2))
    return batches


def write_fake_imagenet(root: Path, classes=("n01440764", "n01443537", "n01484850"),
                        per_class: int = 4, size: tuple[int, int] = (20, 24)) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", 2)):
        for cls in classes:
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{cls}_{i}.png")


@pytest.fixture
def writers() -> SimpleNamespace:
    """Writers of small data files in the real on-disk formats."""
    return SimpleNamespace(idx=write_idx, fashion_mnist=write_fake_fashion_mnist,
                           cifar10=write_fake_cifar10, imagenet=write_fake_imagenet)


#: ``make test`` runs two pytest-xdist workers with ``--dist loadgroup``: each test module is one
#: group (its module fixtures are built once), and these modules share one group because they
#: share the session fixture that builds the lava-dl exporter files in the Lava environment
SHARED_GROUPS = {
    "tests/lava/test_netx_reference.py": "lava-dl-exporter-files",
    "tests/lava/test_netx_files_vs_lava.py": "lava-dl-exporter-files",
}
#: the longest groups start first, so that neither worker is left alone with one at the end
LONGEST_GROUPS = ("tests/test_notebooks.py", "lava-dl-exporter-files",
                  "tests/lava/test_random_ir_vs_lava.py", "tests/lava/test_exported_networks.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    groups = {}
    for item in items:
        module = Path(item.path).relative_to(config.rootpath).as_posix()
        groups[item.nodeid] = SHARED_GROUPS.get(module, module)
        item.add_marker(pytest.mark.xdist_group(groups[item.nodeid]))
    if config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None):
        items.sort(key=lambda item: groups[item.nodeid] not in LONGEST_GROUPS)  # stable
