"""The ``sakd`` command line: parse options, call a job (``sakd.app``), render its result
(``sakd.render``). Every ``SakdError`` (bad input the user can fix) becomes one line ``error:
...`` and exit status 2; any other exception is a bug in sakd and shows its traceback."""

from __future__ import annotations

import functools
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from sakd import __version__
from sakd.config import DEFAULT_ENERGY_PROFILES, ExportConfig

EXPORT_DEFAULTS = ExportConfig()

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SAKD: distill ANN teachers into SNNs and deploy them to Loihi-class chips.")

EXIT_ERROR, EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 70, 130, 143
BUG_REPORT = ("this is a bug in sakd, not in your input: please report it with the traceback "
              "above and the command you ran")


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sakd {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False) -> None:
    """SAKD: distill ANN teachers into SNNs and deploy them to Loihi-class chips."""


def _guard(interrupted: str = "interrupted; outputs are written atomically, nothing is half-written"):
    """Run a command: a user error exits 2 with its message, Ctrl-C exits 130 with
    ``interrupted``, anything else is a bug (traceback and exit 70)."""

    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            from sakd.errors import SakdError, Terminated

            def on_sigterm(signum: int, frame: Any) -> None:
                raise Terminated(f"signal {signum}")

            previous = signal.signal(signal.SIGTERM, on_sigterm) if _main_thread() else None
            try:
                return fn(*args, **kwargs)
            except SakdError as exc:
                typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
                raise typer.Exit(code=EXIT_ERROR) from None
            except KeyboardInterrupt:
                typer.secho(interrupted, err=True)
                raise typer.Exit(code=EXIT_INTERRUPTED) from None
            except Terminated:
                typer.secho(f"terminated; {interrupted.removeprefix('interrupted; ')}", err=True)
                raise typer.Exit(code=EXIT_TERMINATED) from None
            except (typer.Exit, typer.Abort, SystemExit):
                raise
            except Exception:
                traceback.print_exc()
                typer.secho(BUG_REPORT, fg=typer.colors.RED, err=True)
                raise typer.Exit(code=EXIT_BUG) from None
            finally:
                if previous is not None:
                    signal.signal(signal.SIGTERM, previous)

        return run

    return wrap


TRAINING_INTERRUPTED = "interrupted; the last completed epoch's checkpoint is intact (continue with --resume)"


def _out(stderr: bool = False):
    from sakd.render.console import console

    return console(stderr=stderr)


def _say(message: str) -> None:
    _out(stderr=True).print(f"[dim]· {message}[/]")


# ---------------------------------------------------------------------------------------------
# options shared by several commands
# ---------------------------------------------------------------------------------------------

ConfigOpt = Annotated[Path | None, typer.Option("-c", "--config", help="experiment YAML (configs/*.yaml)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config key: --set student.train.lr=0.01 (repeatable)")]
RunOpt = Annotated[Path, typer.Option("-o", "--out", help="run folder (checkpoints, metrics, the resolved config)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue the run in --out from its last.pt")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="show progress bars")]
NetArg = Annotated[Path, typer.Argument(help="an IR file (network.h5), an export folder, or a NIR/netx file")]
DataOpt = Annotated[str | None, typer.Option("--data", help="data set (default: the one recorded in the network file)")]
SplitOpt = Annotated[str, typer.Option("--split", help="test, val or train")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="the first N samples only (N >= 1)")]
BatchOpt = Annotated[int | None, typer.Option("--batch", help="samples per simulator chunk (memory bound)")]
SimDeviceOpt = Annotated[str, typer.Option("--device", help="cpu (numpy) or cuda (torch)")]
DataRootOpt = Annotated[str | None, typer.Option("--data-root", help="data set folder, if not the default")]
StepsOpt = Annotated[int | None, typer.Option("--time-steps", help="T: steps per sample (files from other frameworks do not record it)")]


def _config(config: Path | None, overrides: list[str] | None, extra: list[str] = ()):
    from sakd.config import load_config

    return load_config(config, list(overrides or []) + list(extra))


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


@app.command()
@_guard(TRAINING_INTERRUPTED)
def teacher(config: ConfigOpt = None, set_: SetOpt = None, out: RunOpt = Path("runs/teacher"),
            resume: ResumeOpt = False, device: DeviceOpt = "auto", progress: ProgressOpt = True):
    """Train the ANN teacher (CE) of an experiment."""
    from sakd.app.train import TrainOptions, train_teacher_job
    from sakd.render.dense import render_training

    result = train_teacher_job(TrainOptions(_config(config, set_), out, resume, device, progress))
    render_training("teacher", result, out, _out())


@app.command()
@_guard(TRAINING_INTERRUPTED)
def distill(config: ConfigOpt = None, set_: SetOpt = None, out: RunOpt = Path("runs/student"),
            teacher_ckpt: Annotated[Path | None, typer.Option("--teacher", help="a `sakd teacher` checkpoint")] = None,
            teacher_weights: Annotated[Path | None, typer.Option("--teacher-weights", help="a torchvision-format state-dict file")] = None,
            kd: Annotated[str | None, typer.Option("--kd", help="both, logits, features or none (from-scratch baseline)")] = None,
            qat: Annotated[bool, typer.Option("--qat", help="quantization-aware training: train with the export's integer weights (straight-through gradients)")] = False,
            init_from: Annotated[Path | None, typer.Option("--from", help="start from this student checkpoint (fine-tuning, e.g. with --qat)")] = None,
            resume: ResumeOpt = False, device: DeviceOpt = "auto", progress: ProgressOpt = True):
    """Train the SNN student: level-1 weight transfer, then SAKD (level 2)."""
    from sakd.app.train import TrainOptions, distill_job
    from sakd.render.dense import render_training

    extra = []
    if teacher_ckpt is not None:
        extra.append(f"teacher.checkpoint={teacher_ckpt}")
    if teacher_weights is not None:
        extra.append(f"teacher.weights={teacher_weights}")
    if kd is not None:
        extra.append(f"distill.kd={kd}")
    if qat:
        extra.append("student.qat=true")
    if init_from is not None:
        extra.append(f"student.init_checkpoint={init_from}")
    result = distill_job(TrainOptions(_config(config, set_, extra), out, resume, device, progress))
    render_training("student", result, out, _out())


@app.command("eval")
@_guard()
def eval_(checkpoint: Annotated[Path, typer.Argument(help="a teacher or student checkpoint file")],
          split: SplitOpt = "test", data_root: DataRootOpt = None,
          batch_size: Annotated[int, typer.Option("--batch-size", help="samples per batch")] = 256,
          device: DeviceOpt = "auto",
          json_out: Annotated[Path | None, typer.Option("--json", help="also write the figures to this file")] = None):
    """Accuracy of a checkpoint and, for an SNN, each LIF layer's firing rate (a QAT checkpoint:
    float and integer forward, labelled)."""
    from sakd.app.evaluate import EvalOptions, evaluate_job
    from sakd.render.dense import render_dense_eval
    from sakd.render.evaluate import render_eval

    result = evaluate_job(EvalOptions(checkpoint, split, data_root, batch_size, device, json_out))
    (render_eval if result.task == "classification" else render_dense_eval)(result, _out())


@app.command()
@_guard(TRAINING_INTERRUPTED)
def pipeline(config: ConfigOpt = None, set_: SetOpt = None, out: Annotated[Path, typer.Option("-o", "--out", help="run folder (teacher/, student/, export/, summary.json)")] = Path("runs/pipeline"),
             resume: ResumeOpt = False, device: DeviceOpt = "auto", progress: ProgressOpt = True):
    """The main job: teacher, SAKD student, export, on-chip simulation, energy.

    Ends with one summary table (ANN, float SNN and on-chip accuracy; operations and energy)."""
    from rich.progress import Progress

    from sakd.app.pipeline import PipelineOptions, run_pipeline
    from sakd.render.energy import plot_energy, render_energy
    from sakd.render.export import render_export
    from sakd.render.pipeline import render_summary
    from sakd.render.simulate import render_simulate

    err = _out(stderr=True)

    def stage(i: int, n: int, title: str) -> None:
        err.rule(f"[bold]{i}/{n} {title}")

    with Progress(transient=True, console=err, disable=not progress) as bar:
        task = bar.add_task("simulating the test split", total=None, visible=False)

        def simulated(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=True)

        result = run_pipeline(PipelineOptions(_config(config, set_), out, resume, device, progress),
                              stage=stage, export_progress=_say, simulate_progress=simulated)
    if result.reports:
        plot_energy(result.reports["energy"], result.chart_path)
        console = _out()
        render_export(result.reports["export"], console)
        render_simulate(result.reports["simulate"], console)
        render_energy(result.reports["energy"], console, notes=False)
        render_summary(result, console)


# ---------------------------------------------------------------------------------------------
# deployment
# ---------------------------------------------------------------------------------------------


@app.command()
@_guard()
def export(checkpoint: Annotated[Path | None, typer.Argument(help="a student checkpoint (`sakd distill`); or give --model")] = None,
           out: Annotated[Path, typer.Option("-o", "--out", help="export folder: replaced whole by the new export (a new, empty or earlier export folder)")] = Path("runs/export"),
           formats: Annotated[str, typer.Option("--formats", help="comma-separated format names (`sakd formats`), or auto = every format that can express the network")] = "auto",
           target: Annotated[str, typer.Option("--target", help="target chip spec")] = EXPORT_DEFAULTS.target,
           input_bits: Annotated[int, typer.Option("--input-bits", help="signed bit width of the graded input (2..24)")] = EXPORT_DEFAULTS.input_bits,
           calibrate: Annotated[int, typer.Option("--calibrate", help="simulate N test samples (-1: all) and compare with the float SNN")] = 0,
           data_root: DataRootOpt = None,
           model: Annotated[str | None, typer.Option("--model", help="your own SNN: package.module:factory or file.py:factory (your code, imported and called; docs/own-model.md)")] = None,
           weights: Annotated[Path | None, typer.Option("--weights", help="with --model: its state dict (torch.save(model.state_dict(), path))")] = None,
           model_arg: Annotated[list[str] | None, typer.Option("--model-arg", help="with --model: a factory keyword argument KEY=VALUE (YAML value; repeatable)")] = None,
           input_shape: Annotated[str | None, typer.Option("--input-shape", help="with --model: the input's shape C,H,W or N")] = None,
           time_steps: Annotated[int | None, typer.Option("--time-steps", help="with --model: T, the steps per sample")] = None,
           input_range: Annotated[str | None, typer.Option("--input-range", help="with --model: LO,HI of the values the model receives")] = None,
           normalize: Annotated[str | None, typer.Option("--normalize", help="with --model: MEAN,STD of [0, 1] pixels (per channel M1:M2:M3,S1:S2:S3)")] = None,
           data: Annotated[str | None, typer.Option("--data", help="with --model: its data set (default shape, normalization, classes; test samples)")] = None,
           classes: Annotated[str | None, typer.Option("--classes", help="with --model: class names NAME,NAME,... or their number")] = None):
    """Fold, quantize and lower an SNN; write the IR and every format that can express it.

    A sakd checkpoint (CHECKPOINT), or your own spikingjelly model (--model, --weights).
    Prints the per-population quantization table and writes export_report.json."""
    from sakd.app.export import ExportOptions, export_checkpoint
    from sakd.app.own_model import export_model_file, own_model_request
    from sakd.render.export import render_export
    from sakd.render.own_model import render_own_export

    wanted = None if formats.strip() == "auto" else tuple(f.strip() for f in formats.split(","))
    cal = None if calibrate == -1 else calibrate
    own = own_model_request(checkpoint, model=model, weights=weights, model_args=model_arg,
                            input_shape=input_shape, time_steps=time_steps,
                            input_range=input_range, normalize=normalize, data=data,
                            classes=classes, out_dir=out, formats=wanted, target=target,
                            input_bits=input_bits, calibrate=cal, data_root=data_root)
    if own is not None:
        render_own_export(export_model_file(*own, progress=_say), _out())
        return
    result = export_checkpoint(ExportOptions(checkpoint, out, wanted, target, input_bits, cal,
                                             data_root), progress=_say)
    render_export(result.report, _out())


@app.command()
@_guard()
def inspect(path: Annotated[Path, typer.Argument(help="an IR (network.h5), NIR, netx or ONNX file")]):
    """Summarize a network file: layers, shapes, parameter counts, integer ranges.

    Exit status 0: the file maps onto the IR; 1: readable but not representable (the reason is
    printed); 2: missing, damaged or invalid."""
    from sakd.app.inspect import inspect_job
    from sakd.render.inspect import render_inspection

    summary, status = inspect_job(path)
    render_inspection(summary, _out())
    if status:
        raise typer.Exit(code=status)


@app.command()
@_guard()
def simulate(net: NetArg, data: DataOpt = None, split: SplitOpt = "test", limit: LimitOpt = None,
             batch: BatchOpt = None, device: SimDeviceOpt = "cpu", data_root: DataRootOpt = None,
             time_steps: StepsOpt = None,
             out: Annotated[Path | None, typer.Option("-o", "--out", help="report file (default: simulate_report.json next to the network)")] = None,
             inputs: Annotated[Path | None, typer.Option("--inputs", help="your own inputs, a .npy: (batch, *input_shape) held for every step, or (batch, steps, *input_shape); integers, or floats with --input-scale")] = None,
             labels: Annotated[Path | None, typer.Option("--labels", help="with --inputs: a .npy of one integer class per sample, for an accuracy")] = None,
             input_scale: Annotated[float | None, typer.Option("--input-scale", help="x_int = round(x * scale) for --inputs (NIR files: the graded input's scale)")] = None,
             record: Annotated[str | None, typer.Option("--record", help="'all' or POP,POP: populations whose states and messages go to --traces")] = None,
             traces: Annotated[Path | None, typer.Option("--traces", help=".npz of <population>/<state or s> arrays, (batch, steps, *shape), C,H,W")] = None,
             input_mode: Annotated[str | None, typer.Option("--input-mode", help="netx: data enters an input layer's neuron through 'a_in' (default) or its 'bias'")] = None,
             reset_interval: Annotated[int | None, typer.Option("--reset-interval", help="netx: reset every LIF layer every N steps (layer k at offset + 1 + k); default: never")] = None,
             reset_offset: Annotated[int, typer.Option("--reset-offset", help="netx: the reset's phase offset")] = 0,
             spike_exp: Annotated[int | None, typer.Option("--spike-exp", help="netx: fraction bits of sigma-delta messages (default 6)")] = None,
             input_message_bits: Annotated[int | None, typer.Option("--input-message-bits", help="netx: bits of a graded input (0: spikes; default: the file's, else 0)")] = None,
             input_shape: Annotated[str | None, typer.Option("--input-shape", help="netx: C,H,W of a file whose first layer is a conv without an input layer")] = None,
             dt: Annotated[float | None, typer.Option("--dt", help="NIR: seconds per step (default: from the file: IF nodes' r = 1/dt)")] = None,
             firing: Annotated[str | None, typer.Option("--firing", help="NIR: '>' (NIR's and Lava's rule, default) or '>=' (spikingjelly, sinabs)")] = None,
             input_encoding: Annotated[str | None, typer.Option("--input-encoding", help="NIR: 'spikes' (default) or 'graded'")] = None,
             input_bits: Annotated[int | None, typer.Option("--input-bits", help="NIR: bits of a graded input (default 8)")] = None):
    """Run a network on the bit-accurate simulator.

    On a data set (--data) or your own arrays (--inputs X.npy). Reports on-chip accuracy,
    agreement with the float SNN, throughput and every assumption made; writes
    simulate_report.json (and --traces)."""
    from rich.progress import Progress

    from sakd.app.common import parse_shape
    from sakd.app.simulate import SimulateOptions, report_path, simulate_job
    from sakd.render.simulate import render_simulate

    given = {"input_mode": input_mode, "spike_exp": spike_exp,
             "input_message_bits": input_message_bits,
             "input_shape": parse_shape(input_shape, "--input-shape") if input_shape else None,
             "dt": dt, "firing": firing, "input_encoding": input_encoding,
             "input_bits": input_bits}
    read = {key: value for key, value in given.items() if value is not None}
    options = SimulateOptions(net, data, split, limit, batch, device, data_root, out, time_steps,
                              inputs=inputs, labels=labels, input_scale=input_scale,
                              record=record, traces=traces, read=read,
                              reset_interval=reset_interval, reset_offset=reset_offset)
    with Progress(transient=True, console=_out(stderr=True)) as bar:
        task = bar.add_task("simulating", total=None)
        report = simulate_job(options, progress=lambda done, total: bar.update(
            task, completed=done, total=total))
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun: rank 0 reports (and writes)
        render_simulate(report, _out())
        if report.dense:
            from sakd.render.dense import render_dense_chip

            render_dense_chip(report.dense, _out())
        _out().print(f"report: {report_path(options)}")


@app.command()
@_guard()
def energy(net: NetArg, data: DataOpt = None, split: SplitOpt = "test", limit: LimitOpt = None,
           batch: BatchOpt = None, device: SimDeviceOpt = "cpu",
           profile: Annotated[str, typer.Option("--profile", help="comma-separated profile names or YAML files (loihi, cmos45-fp32, cmos45-int8, spinnaker2)")] = ",".join(DEFAULT_ENERGY_PROFILES),
           data_root: DataRootOpt = None, time_steps: StepsOpt = None,
           out: Annotated[Path | None, typer.Option("-o", "--out", help="output folder (default: next to the network)")] = None):
    """Spikes, SynOps and energy per inference against the ANN teacher.

    Writes energy_report.json and energy.png (per layer)."""
    from rich.progress import Progress

    from sakd.app.energy import EnergyOptions, energy_job, parse_profiles
    from sakd.render.energy import plot_energy, render_energy

    options = EnergyOptions(net, parse_profiles(profile), data, split, limit, batch, device,
                            data_root, out, time_steps)
    with Progress(transient=True, console=_out(stderr=True)) as bar:
        task = bar.add_task("simulating", total=None)
        result = energy_job(options, progress=lambda done, total: bar.update(
            task, completed=done, total=total))
    plot_energy(result.report, result.chart_path)
    console = _out()
    render_energy(result.report, console)
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"report: {result.report_path}, chart: {result.chart_path}")


@app.command("map")
@_guard()
def map_(net: NetArg,
         target: Annotated[str | None, typer.Option("--target", help="chip: loihi2, loihi or a chip JSON file (default: the network's target)")] = None,
         system: Annotated[str | None, typer.Option("--system", help="loihi2-chip, kapoho-point, hala-point, ..., a system JSON file, or auto (the smallest that holds the network); default: one chip")] = None,
         data: DataOpt = None, split: SplitOpt = "test",
         limit: Annotated[int | None, typer.Option("--limit", help="samples simulated for the spike counts (default 32; 0: none, traffic weighted by synapse counts, no time or energy; -1: all)")] = None,
         batch: BatchOpt = None, device: SimDeviceOpt = "cpu", data_root: DataRootOpt = None,
         time_steps: StepsOpt = None,
         out: Annotated[Path | None, typer.Option("-o", "--out", help="report file (default: map_report.json next to the network; the picture beside it, .png)")] = None):
    """Map a network onto a chip or system: cores, chips, time, energy in all.

    Prints the fit, hops, time, latency, throughput, energy and SNN/ANN ratios; writes map_report.json and a picture of the placement."""
    from rich.progress import Progress

    from sakd.app.map import MapOptions, map_job
    from sakd.render.map import plot_mapping, render_map

    chosen = {} if limit is None else {"limit": None if limit == -1 else limit}
    options = MapOptions(net, target, system, out, data, split, batch=batch, device=device,
                         data_root=data_root, time_steps=time_steps, **chosen)
    with Progress(transient=True, console=_out(stderr=True)) as bar:
        task = bar.add_task("simulating", total=None)
        result = map_job(options, progress=lambda done, total: bar.update(
            task, completed=done, total=total), say=_say)
    plot_mapping(result.estimate.mapping, result.picture_path, result.report.network["name"])
    console = _out()
    render_map(result, console)
    console.print(f"report: {result.report_path}, picture: {result.picture_path}")


@app.command()
@_guard("interrupted; no report was written (re-run verify)")
def verify(export_dir: Annotated[Path, typer.Argument(help="an export folder (network.h5, and the other formats)")],
           lava: Annotated[bool, typer.Option("--lava", help="against Lava's fixed-point simulation (IR, and netx if written)")] = False,
           onnx: Annotated[bool, typer.Option("--onnx", help="onnxruntime against the torch float SNN and ANN")] = False,
           nir: Annotated[bool, typer.Option("--nir", help="network.nir through independent NIR readers (spikingjelly, nirtorch) against the simulator and the float SNN")] = False,
           float_snn: Annotated[bool, typer.Option("--float", help="the float SNN of the checkpoint against the simulator, per readout (reported, no pass rule)")] = False,
           samples: Annotated[int, typer.Option("--samples", help="test samples to run (N >= 1)")] = 16,
           data_root: DataRootOpt = None,
           out: Annotated[Path | None, typer.Option("-o", "--out", help="report file (default: verify_report.json in the folder)")] = None):
    """Prove an export against Lava, onnxruntime and independent NIR readers.

    The same samples go through sakd's simulator and each reference; each has its pass rule
    (docs/verification.md). Exit status 1 on any mismatch, with the first divergence. --float
    reports how the float SNN and the chip agree per readout (a detector's or segmenter's too)."""
    from sakd.app.verify import VerifyOptions, verify_job
    from sakd.render.verify import render_verify

    report = verify_job(VerifyOptions(export_dir, lava=lava, onnx=onnx, nir=nir, samples=samples,
                                      data_root=data_root, out=out, float_snn=float_snn),
                        progress=_say)
    render_verify(report, _out())
    if not report.ok:
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------------------
# catalogs
# ---------------------------------------------------------------------------------------------


@app.command("formats")
@_guard()
def formats_(markdown: Annotated[bool, typer.Option("--markdown", help="print docs/support.md (the support matrix as Markdown)")] = False):
    """The file formats, what each can express, and the neuron models."""
    from sakd.app.catalog import format_rows, neuron_model_rows
    from sakd.render.catalog import render_formats, support_markdown

    if markdown:
        sys.stdout.write(support_markdown(format_rows(), neuron_model_rows()))
        return
    render_formats(format_rows(), neuron_model_rows(), _out())


@app.command()
@_guard()
def models(all_: Annotated[bool, typer.Option("--all", help="also list the tiny test architectures")] = False):
    """List the registered architectures."""
    from sakd.app.catalog import model_rows
    from sakd.render.catalog import render_models

    render_models(model_rows(include_tiny=all_), _out())


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # `python -m sakd.cli ...` (e.g. under torchrun)
    main()
