"""Detectors and segmenters on the chip: what the export records about them, their data on the
simulator, and their on-chip mAP / mIoU beside the float SNN's.

The chip runs the network up to its readouts: a detector's head convs (class logits, box
regression, centerness; one readout population per output and pyramid level), a segmenter's
classifier (one readout at the output stride). The host then does what torchvision does after
the head, in float: for a detector the readouts (each readout's v over the T steps, read as
``v / (64 · scale · T)``) are laid out as torchvision's FCOS head outputs, the box ReLU applied,
the boxes decoded from the points, thresholded, top-k and class-wise NMS
(``FCOSDetector.postprocess``); for a segmenter the readout is upsampled bilinearly to the image
and the argmax taken. Both are stated in every report (``HOST_WORK``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sakd.app.common import JobError, Samples, check_split, take_split

DENSE_TASKS = ("detection", "segmentation")
HOST_WORK = {
    "detection": ("on the host, in float: readouts laid out as torchvision's FCOS head outputs, "
                  "box ReLU, box decoding from the points, score threshold, top-k, class-wise "
                  "NMS (torchvision's FCOS postprocess)"),
    "segmentation": ("on the host, in float: the readout (output stride) upsampled bilinearly "
                     "to the image, argmax per pixel"),
}


def task_of(network: Any) -> str:
    """The task a network file records (``classification`` when it records none)."""
    return str(network.metadata.get("task") or "classification")


def export_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """What a dense network's export records beyond a classifier's: the task, what the host
    does after the readouts, and the run's config and model arguments (to rebuild the data
    split and the host decoding)."""
    task = record.get("task", "classification")
    return {"task": task, "host": HOST_WORK[task],
            "dense": {"config": record["config"], "model_args": record.get("model_args", {})}}


def _dense_config(network: Any, data_root: str | None) -> Any:
    from sakd.config import config_from_dict

    meta = network.metadata.get("dense")
    if not isinstance(meta, dict) or "config" not in meta:
        raise JobError(f"the network file records task {task_of(network)!r} but not the run's "
                       f"config; re-export it with this version of sakd")
    config = config_from_dict(meta["config"])
    data = dataclasses.replace(config.data, augment=False,
                               root=data_root if data_root is not None else config.data.root)
    return dataclasses.replace(config, data=data)


def load_dense_samples(network: Any, split: str, limit: int | None,
                       data_root: str | None = None) -> Samples:
    """The first ``limit`` images (None: all) of a split of the data set a dense network was
    trained on (rebuilt from the config it records): ``x`` ``[N, C, H, W]``, ``y`` the targets
    (detection: a list of target dicts; segmentation: class maps ``[N, H, W]``)."""
    import torch

    from sakd.train.dense import dense_data

    check_split(split)
    config = _dense_config(network, data_root)
    splits = dense_data(config)
    dataset, n, notes = take_split(splits, split, limit, f"'{config.data.name}' for this run",
                                   "images")
    items = [dataset[i] for i in range(n)]
    x = torch.stack([image for image, _ in items])
    targets = [t for _, t in items]
    y = targets if config.task == "detection" else torch.stack(targets)
    return Samples(x, y, splits.info, split, len(dataset), notes)


@dataclass
class DenseFigures:
    """On-chip and float-SNN figures of a dense network on the same images (mAP in [0, 1] or
    mIoU and pixel accuracy). ``float_snn`` is empty when the checkpoint is not at hand."""

    task: str
    samples: int
    on_chip: dict[str, float]
    float_snn: dict[str, float] = field(default_factory=dict)
    host: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def host_model(network: Any) -> Any:
    """The architecture the network came from, for the host's decoding (no weights needed:
    points, box coding and postprocess are fixed by the architecture)."""
    from sakd.models import build_model

    arch = network.metadata.get("arch_name")
    args = (network.metadata.get("dense") or {}).get("model_args")
    if not arch or not isinstance(args, dict):
        raise JobError("the network file does not record its architecture; re-export it")
    return build_model(arch, **args).eval()


def chip_outputs(model: Any, x: Any) -> dict[str, Any]:
    """One step of the part of ``model`` the chip runs, by readout name: a detector's
    ``forward_chip`` (its per-level maps), else ``forward_static`` as the one readout
    ``"readout"`` (a segmenter's map at the output stride, a classifier's logits)."""
    if hasattr(model, "forward_chip"):
        return dict(model.forward_chip(x))
    return {"readout": model.forward_static(x)}


def check_readouts(network: Any, model: Any) -> None:
    """A JobError unless ``model`` (built from the architecture the file records) has the
    network's readouts: the same names and shapes."""
    import torch

    was_training = model.training
    try:
        with torch.no_grad():
            outputs = chip_outputs(model.eval(), torch.zeros((1, *network.input.shape)))
    finally:
        model.train(was_training)
    want = {name: tuple(int(s) for s in value.shape[1:]) for name, value in outputs.items()}
    have = {p.name: tuple(p.shape) for p in network.readouts}
    if want != have:
        raise JobError(f"the network file's metadata describes readouts {want} but the network's "
                       f"readouts are {have}: the metadata does not describe this network "
                       f"(damaged or edited file); re-export it")


def class_readouts(network: Any) -> dict[str, float | None]:
    """The readouts whose channels are class scores, each with the logit that a location's best
    class must pass to count as a prediction: None (every location) for a classifier's and a
    segmenter's readout; for a detector's ``cls_logits.<level>`` the logit of its score
    threshold (torchvision FCOS's ``score_thresh``; a point below it on both sides is
    background, where every class logit is low and the largest is a near tie). A detector's box
    and centerness readouts are not class scores."""
    import math

    if task_of(network) != "detection":
        return {p.name: None for p in network.readouts}
    from sakd.models.detection import READOUTS

    threshold = float(host_model(network).score_thresh)
    logit = math.log(threshold / (1.0 - threshold))
    return {p.name: logit for p in network.readouts if p.name.rsplit(".", 1)[0] == READOUTS[0]}


def chip_readouts(network: Any, result: Any) -> dict[str, Any]:
    """The simulation's readouts as float means over T (``v / (64 · scale · T)``), torch tensors
    ``[B, *shape]`` by readout name."""
    import torch

    from sakd.hardware.simulator.runner import readout_to_float

    return {p.name: torch.from_numpy(readout_to_float(network, result.readouts[p.name],
                                                      result.time_steps, readout=p.name)).float()
            for p in network.readouts}


def score(task: str, model: Any, readouts: Any, samples: Samples) -> dict[str, float]:
    """mAP (detection: ``readouts`` are the per-level maps by name) or mIoU (segmentation: the
    readout at the output stride) of host-decoded predictions against the samples' targets."""
    import torch
    import torch.nn.functional as F

    from sakd.train.evaluate_dense import detection_metrics, segmentation_metrics

    with torch.no_grad():
        if task == "detection":
            from sakd.models.detection import assemble_readouts

            detections = model.postprocess(assemble_readouts(readouts))
            metrics = detection_metrics(detections, samples.y).to_dict()
        else:
            (logits,) = readouts.values() if isinstance(readouts, dict) else (readouts,)
            logits = F.interpolate(logits, size=samples.x.shape[-2:], mode="bilinear",
                                   align_corners=False)
            metrics = segmentation_metrics(logits.argmax(1), samples.y, model.num_classes).to_dict()
    for key in ("n", "map_per_class", "iou_per_class", "firing_rates"):
        metrics.pop(key, None)
    return {k: float(v) for k, v in metrics.items()}


def float_readouts(snn: Any, x: Any, batch: int = 64) -> dict[str, Any]:
    """The float SNN's readouts on the images ``x`` ``[N, C, H, W]``: each readout's mean over
    T of its per-step values (``chip_outputs``), by readout name, torch tensors ``[N, *shape]``."""
    import torch

    steps = max(int(snn.time_steps), 1)
    parts: list[Any] = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            chunk = x[start:start + batch]
            folded = chunk.unsqueeze(0).expand(steps, *chunk.shape).reshape(
                steps * len(chunk), *chunk.shape[1:])
            out = chip_outputs(snn, folded)
            parts.append({k: v.reshape(steps, len(chunk), *v.shape[1:]).mean(0)
                          for k, v in out.items()})
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def float_snn_readouts(checkpoint: str | None, samples: Samples, batch: int = 64
                       ) -> tuple[Any, str | None]:
    """The float SNN's readouts on the samples (per-level maps for a detector, the readout at
    the output stride for a segmenter), from the checkpoint the file names; (None, why) when it
    is not at hand."""
    from sakd.train.jobs import load_network

    if not checkpoint:
        return None, "no float SNN to compare with (the file names no checkpoint)"
    if not Path(checkpoint).exists():
        return None, f"the checkpoint named in the file ({checkpoint}) is not here: no float figures"
    snn, _ = load_network(checkpoint)
    return float_readouts(snn.eval(), samples.x, batch), None


def dense_figures(network: Any, samples: Samples, result: Any) -> DenseFigures:
    """On-chip figures from the simulation ``result`` of ``samples``, and the float SNN's on
    the same images."""
    task = task_of(network)
    model = host_model(network)
    chip = chip_readouts(network, result)
    notes = []
    figures = DenseFigures(task, len(samples), score(task, model, chip, samples), host=HOST_WORK[task])
    float_out, why = float_snn_readouts(network.metadata.get("checkpoint"), samples)
    if float_out is None:
        notes.append(why)
    else:
        figures.float_snn = score(task, model, float_out, samples)
        agree = {name: float(np.abs(chip[name].numpy() - float_out[name].numpy()).max())
                 for name in chip if name in float_out}
        worst = max(agree, key=agree.get) if agree else None
        if worst is not None:
            notes.append(f"largest |on-chip - float| readout difference: {agree[worst]:.4g} "
                         f"({worst})")
    figures.notes = notes
    return figures


def dense_report(network: Any, run: Any, data: str) -> Any:
    """The ``SimulateReport`` of a dense network's simulation ``run`` (``run_split``): on-chip
    mAP or mIoU (host-decoded readouts) beside the float SNN's on the same images, exact counts
    and throughput; its ``on_chip_accuracy`` is None (a dense task has no top-1 accuracy)."""
    from sakd.app.simulate import SimulateReport, Throughput, run_description

    figures = dense_figures(network, run.samples, run.result)
    synops = sum(float(p.synops.sum()) for p in run.result.counts.projections.values())
    n = len(run.samples)
    report = SimulateReport(
        network=network.metadata.get("arch_name") or network.metadata.get("arch"),
        network_digest=network.digest(), samples=n, time_steps=run.time_steps,
        latency=network.latency, on_chip_accuracy=None,
        throughput=Throughput(run.seconds, n / run.seconds, synops / run.seconds,
                              run.result.backend),
        float_agreement=None, layers=run.result.counts.mean_per_sample(),
        notes=[*run.samples.notes, *figures.notes],
        source=f"data set {data!r}, split {run.samples.split!r}",
        assumptions=[f"{figures.task}: {figures.host}"], run=run_description(run.result))
    report.dense = figures.to_dict()
    return report


def simulate_dense_split(network: Any, data: str, options: Any, record: tuple[str, ...],
                         progress: Any = None) -> tuple[Any, Any]:
    """``sakd simulate`` of a detector or segmenter on a split of its data set
    (``dense_report``), and the ``SimulationResult``."""
    from sakd.app.simulate import run_split

    recorded = network.metadata.get("dataset")
    if data != recorded:
        raise JobError(f"--data {data!r}: a {task_of(network)} network is simulated on the data "
                       f"set it was trained on ({recorded!r}), rebuilt from its config")
    run = run_split(network, data, split=options.split, limit=options.limit, batch=options.batch,
                    device=options.device, data_root=options.data_root,
                    time_steps=options.time_steps, record=record, progress=progress)
    return dense_report(network, run, data), run.result
