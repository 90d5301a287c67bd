"""``sakd eval`` and the training jobs' closing lines on the terminal."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from sakd.app.evaluate import EvalResult
from sakd.render.console import plain


def render_firing_rates(rates: dict[str, float], console: Console) -> None:
    """The firing rate of each LIF layer (spikes / neuron / step), when there are any."""
    if rates:
        table = Table(title="firing rate per LIF layer (spikes / neuron / step)",
                      title_justify="left", box=None, pad_edge=False)
        table.add_column("layer", overflow="fold")
        table.add_column("rate", justify="right")
        for name, rate in rates.items():
            table.add_row(plain(name), f"{rate:.4f}")
        console.print(table)


def render_eval(result: EvalResult, console: Console) -> None:
    console.print(f"{result.arch} ({result.kind}) on {result.data}/{result.split}: accuracy "
                  f"{result.accuracy:.2f} % over {result.samples} samples, loss {result.loss:.4f}"
                  + (" (float forward)" if result.qat else ""))
    if result.qat and result.integer_accuracy is not None:
        console.print(f"  QAT checkpoint: with the chip's integer weights, bias and input "
                      f"(what the chip computes): accuracy {result.integer_accuracy:.2f} %, loss "
                      f"{result.integer_loss:.4f}")
    render_firing_rates(result.firing_rates, console)


def render_fit(kind: str, result: Any, out_dir: Any, console: Console) -> None:
    """The closing line of a training job (``FitResult``)."""
    best = result.best
    if not best:
        return
    parts = [f"epoch {best['epoch'] + 1}"]
    if "val" in best:
        parts.append(f"val {best['val']['acc']:.2f} %")
    parts.append(f"test {best['test']['acc']:.2f} %")
    console.print(f"{kind}: best {', '.join(parts)}; checkpoints in {plain(out_dir)}")
