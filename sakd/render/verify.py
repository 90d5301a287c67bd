"""The verification report on the terminal."""

from __future__ import annotations

from rich.console import Console

from sakd.app.verify import VerifyReport
from sakd.render.console import plain


def render_verify(report: VerifyReport, console: Console) -> None:
    for comparison in report.lava or []:
        console.print(f"[bold]{plain(comparison.reference)}[/]: {comparison.samples} samples")
        for check in comparison.populations:
            status = "[green]bit-exact[/]" if check.identical else "[red]MISMATCH[/]"
            console.print(f"  {plain(check.population)}: {status} ({', '.join(check.compared)}; "
                          f"{check.steps} steps)")
            if check.first_divergence:
                d = check.first_divergence
                console.print(f"    first at step {d.step}, sample {d.sample}, neuron {d.neuron}: "
                              f"{d.quantity} sakd={d.sakd} reference={d.reference}")
    for check in report.onnx or []:
        status = "[green]ok[/]" if check.ok else "[red]MISMATCH[/]"
        console.print(f"[bold]onnxruntime vs torch ({check.model})[/]: {status}; max |logit diff| "
                      f"{check.max_abs_diff:.2e}, predictions agree "
                      f"{100 * check.prediction_agreement:.2f} %")
        if check.samples_over_atol:
            console.print(f"  {check.samples_over_atol} of {check.samples} samples differ by more "
                          f"than {check.atol:g}: {check.threshold_flips} spike flip(s) at a "
                          f"threshold (|H - θ| ≤ {check.flip_margin:g}), {check.unexplained} "
                          f"unexplained")
    nir = report.nir
    if nir is not None:
        for name, entry in nir.readers.items():
            if not entry.loaded:
                console.print(f"[bold]NIR reader {plain(name)}[/]: [red]cannot read the file[/] "
                              f"({plain(entry.error)})")
                continue
            rule = "" if entry.spike_rule == ">" else " (reported only)"
            vs_float = entry.agreement_vs_float_snn
            console.print(f"[bold]NIR reader {plain(name)}[/] (v {entry.spike_rule} θ){rule}: "
                          f"predictions agree {100 * entry.agreement_vs_simulator:.2f} % with the "
                          f"simulator" + (f", {100 * vs_float:.2f} % with the float SNN"
                                          if vs_float is not None else ""))
        if nir.simulator_vs_float_snn is not None:
            console.print(f"  simulator vs float SNN: {100 * nir.simulator_vs_float_snn:.2f} % "
                          "(the quantization's share; the NIR file is the integer network)")
        if not nir.ok:
            console.print(f"[red]NIR: agreement with the simulator below "
                          f"{100 * nir.threshold:.0f} %, or no reader could load the file[/]")
    check = report.float_snn
    if check is not None:
        console.print(f"[bold]float SNN vs simulator[/] ({check.samples} samples, T = "
                      f"{check.time_steps}; reported, no pass rule: the quantization's share)")
        for row in check.readouts:
            if row.argmax_compared is None:
                agree = ""
            elif row.argmax_agreement is None:
                agree = "no point passes the score threshold, "
            else:
                agree = (f"class agrees {100 * row.argmax_agreement:.2f} % of "
                         f"{row.argmax_compared}, ")
            corr = "" if row.correlation is None else f", r = {row.correlation:.3f}"
            console.print(f"  {plain(row.readout)}: {agree}max |diff| {row.max_abs_diff:.3g} "
                          f"(|float| <= {row.float_max_abs:.3g}){corr}")
    console.print("[green]verified[/]" if report.ok else "[red]verification failed[/]")
