"""Terminal lines of the detection and segmentation jobs: training's closing line, ``sakd eval``
and the on-chip figures of ``sakd simulate`` on a detector or segmenter."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from sakd.render.console import plain
from sakd.render.evaluate import render_firing_rates

TITLES = {"map": "mAP@[.5:.95]", "map_50": "mAP@.5", "map_75": "mAP@.75", "mar_100": "mAR@100",
          "miou": "mIoU", "pixel_acc": "pixel accuracy"}


def render_training(kind: str, result: Any, out_dir: Any, console: Console) -> None:
    """The closing line of a training job of any task (``FitResult``)."""
    best = result.best
    metric = best.get("select_metric") if best else None
    if metric is None:
        from sakd.render.evaluate import render_fit

        render_fit(kind, result, out_dir, console)
        return
    title = TITLES.get(metric, metric)
    parts = [f"epoch {best['epoch'] + 1}"]
    if "val" in best:
        parts.append(f"val {title} {best['val'][metric]:.4f}")
    parts.append(f"test {title} {best['test'][metric]:.4f}")
    console.print(f"{kind}: best {', '.join(parts)}; checkpoints in {plain(out_dir)}")


def figures_line(figures: dict[str, Any]) -> str:
    """``mAP@[.5:.95] 0.7012, mAP@.5 0.9633, ...`` of the figures present."""
    return ", ".join(f"{TITLES[k]} {figures[k]:.4f}" for k in TITLES if figures.get(k) is not None)


def render_dense_eval(result: Any, console: Console) -> None:
    """``sakd eval`` on a detector or segmenter (``sakd.app.evaluate.EvalResult``)."""
    console.print(f"{result.arch} ({result.kind}) on {result.data}/{result.split}, {result.task}: "
                  f"{figures_line(result.metrics)} over {result.samples} images")
    render_firing_rates(result.firing_rates, console)


def render_dense_chip(dense: dict[str, Any], console: Console) -> None:
    """The on-chip and float figures of a dense network (``SimulateReport.dense``)."""
    console.print(f"{dense['task']} on chip ({dense['samples']} images): "
                  f"{figures_line(dense['on_chip'])}")
    if dense.get("float_snn"):
        console.print(f"  float SNN, same images: {figures_line(dense['float_snn'])}")
    console.print(f"  host: {dense['host']}")
