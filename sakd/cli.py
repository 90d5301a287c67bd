"""The ``sakd`` command line: train, distill, evaluate and run the whole pipeline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="SAKD: distill ANN teachers into SNNs and deploy them to Loihi-class chips.")

ConfigOpt = Annotated[Path | None, typer.Option("-c", "--config", help="experiment YAML (configs/*.yaml)")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override a config key: --set student.train.lr=0.01 (repeatable)")]
OutOpt = Annotated[Path, typer.Option("-o", "--out", help="run directory (checkpoints, metrics, resolved config)")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue the run in --out from its last.pt")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="show progress bars")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _guard(fn):
    """Run a command; a user error (bad config, data, checkpoint, ...) exits 2 with its message.
    Ctrl-C exits 130; outputs are written atomically, so nothing is left half-written."""
    from functools import wraps

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from sakd.errors import SakdError

        try:
            return fn(*args, **kwargs)
        except SakdError as exc:
            _fail(str(exc))
        except (ValueError, FileNotFoundError) as exc:
            # the errors of sakd.hardware / sakd.export (IR, network files, simulator inputs,
            # energy profiles, NIR/netx/ONNX) are ValueErrors that name the node or file
            if type(exc).__module__.startswith("sakd.") or isinstance(exc, FileNotFoundError):
                _fail(str(exc))
            raise
        except KeyboardInterrupt:
            typer.secho("interrupted; the last completed checkpoint is intact (use --resume)",
                        err=True)
            raise typer.Exit(code=130) from None

    return wrapper


def _config(config: Path | None, overrides: list[str] | None, extra: list[str] = ()):
    from sakd.config import load_config

    return load_config(config, list(overrides or []) + list(extra))


def _env(device: str):
    from sakd.errors import SakdError
    from sakd.train.distributed import init_distributed

    try:
        return init_distributed(device)
    except ValueError as exc:
        raise SakdError(str(exc)) from exc


@app.command()
@_guard
def teacher(config: ConfigOpt = None, set_: SetOpt = None, out: OutOpt = Path("runs/teacher"),
            resume: ResumeOpt = False, device: DeviceOpt = "auto", progress: ProgressOpt = True):
    """Train the ANN teacher (CE) of an experiment."""
    from sakd.train.jobs import train_teacher

    cfg = _config(config, set_)
    result = train_teacher(cfg, out, _env(device), resume=resume, progress=progress)
    if result.best:
        typer.echo(f"teacher: best {_acc(result.best)}; checkpoints in {out}")


@app.command()
@_guard
def distill(config: ConfigOpt = None, set_: SetOpt = None, out: OutOpt = Path("runs/student"),
            teacher_ckpt: Annotated[Path | None, typer.Option("--teacher", help="a `sakd teacher` checkpoint")] = None,
            teacher_weights: Annotated[Path | None, typer.Option("--teacher-weights", help="a torchvision-format state-dict file")] = None,
            kd: Annotated[str | None, typer.Option("--kd", help="both, logits, features or none (from-scratch baseline)")] = None,
            qat: Annotated[bool, typer.Option("--qat", help="quantization-aware training: train with the export's integer weights (straight-through gradients)")] = False,
            init_from: Annotated[Path | None, typer.Option("--from", help="start from this student checkpoint (fine-tuning, e.g. with --qat)")] = None,
            resume: ResumeOpt = False, device: DeviceOpt = "auto", progress: ProgressOpt = True):
    """Train the SNN student: level-1 weight transfer, then SAKD (level 2)."""
    from sakd.train.jobs import distill_student

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
    cfg = _config(config, set_, extra)
    result = distill_student(cfg, out, _env(device), resume=resume, progress=progress)
    if result.best:
        typer.echo(f"student: best {_acc(result.best)}; checkpoints in {out}")


@app.command("eval")
@_guard
def eval_(checkpoint: Annotated[Path, typer.Argument(help="a teacher or student checkpoint")],
          split: Annotated[str, typer.Option(help="test, val or train")] = "test",
          data_root: Annotated[str | None, typer.Option(help="data set folder, if not the default")] = None,
          batch_size: int = 256, device: DeviceOpt = "auto",
          json_out: Annotated[Path | None, typer.Option("--json", help="also write the figures here")] = None):
    """Accuracy of a checkpoint and, for an SNN, each LIF layer's firing rate."""
    from rich.console import Console
    from rich.table import Table

    from sakd.data import load_splits
    from sakd.io import atomic_write_json
    from sakd.train.evaluate import evaluate
    from sakd.train.jobs import load_network

    env = _env(device)
    network, record = load_network(checkpoint)
    data_cfg = record["config"]["data"]
    splits = load_splits(data_cfg["name"], data_root or data_cfg["root"], augment=False,
                         val_fraction=data_cfg["val_fraction"])
    dataset = {"test": splits.test, "val": splits.val, "train": splits.train}.get(split)
    if dataset is None:
        _fail(f"split '{split}' does not exist for this run (test, train, or val if val_fraction > 0)")
    result = evaluate(network.to(env.device), dataset, env, batch_size=batch_size,
                      firing_rates=network.is_spiking)
    kind = f"SNN T={network.time_steps}" if network.is_spiking else "ANN"
    if env.is_main:
        console = Console()
        console.print(f"{record['arch']} ({kind}) on {data_cfg['name']}/{split}: "
                      f"accuracy {result['acc']:.2f} % over {result['n']} samples, loss {result['loss']:.4f}")
        if result.get("firing_rates"):
            table = Table(title="firing rate per LIF layer (spikes / neuron / step)")
            table.add_column("layer")
            table.add_column("rate", justify="right")
            for name, rate in result["firing_rates"].items():
                table.add_row(name, f"{rate:.4f}")
            console.print(table)
        if json_out:
            atomic_write_json(json_out, {"checkpoint": str(checkpoint), "split": split, **result})


@app.command()
@_guard
def pipeline(config: ConfigOpt = None, set_: SetOpt = None, out: OutOpt = Path("runs/pipeline"),
             resume: ResumeOpt = False, device: DeviceOpt = "auto", progress: ProgressOpt = True):
    """The main job: teacher, SAKD student, export, on-chip simulation, energy.

    Ends with one summary table (ANN, float SNN and on-chip accuracy; operations and energy)."""
    from sakd.pipeline import run_pipeline

    cfg = _config(config, set_)
    run_pipeline(cfg, out, _env(device), resume=resume, progress=progress)


FormatsOpt = Annotated[str, typer.Option("--formats", help="comma-separated: ir, nir, netx, onnx; or auto = every format the network can be expressed in (netx: sequential networks only)")]


@app.command()
@_guard
def export(checkpoint: Annotated[Path, typer.Argument(help="a student checkpoint (`sakd distill`)")],
           out: OutOpt = Path("runs/export"), formats: FormatsOpt = "auto",
           target: Annotated[str, typer.Option(help="target chip spec")] = "loihi2",
           input_bits: Annotated[int, typer.Option(help="signed bit width of the graded input")] = 8,
           calibrate: Annotated[int, typer.Option(help="simulate N test samples (-1: all) and compare with the float SNN")] = 0,
           data_root: Annotated[str | None, typer.Option(help="data set folder, if not the default")] = None):
    """Fold, quantize and lower an SNN; write IR, NIR, netx and ONNX files.

    Prints the per-population quantization table and writes export_report.json."""
    from rich.console import Console

    from sakd.deploy import export_checkpoint
    from sakd.report import print_export_report

    result = export_checkpoint(checkpoint, out, formats=formats if formats == "auto" else formats.split(","),
                               target=target, input_bits=input_bits, calibrate=calibrate,
                               data_root=data_root)
    print_export_report(result.report, Console())


@app.command()
@_guard
def inspect(path: Annotated[Path, typer.Argument(help="an IR (network.h5), NIR or netx file")]):
    """Summarize a network file: layers, shapes, parameter counts, integer ranges."""
    from rich.console import Console

    from sakd.export.inspect import format_inspection, inspect_file

    Console().print(format_inspection(inspect_file(path)))


NetArg = Annotated[Path, typer.Argument(help="an IR file (network.h5), an export folder, or a NIR/netx file")]
DataOpt = Annotated[str | None, typer.Option("--data", help="data set (default: the one recorded in the network file)")]
SplitOpt = Annotated[str, typer.Option("--split", help="test, val or train")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="first N samples only")]
BatchOpt = Annotated[int | None, typer.Option("--batch", help="samples per simulator chunk (memory bound)")]
SimDeviceOpt = Annotated[str, typer.Option("--device", help="cpu (numpy) or cuda (torch)")]


def _simulate_cli(net: Path, data: str | None, split: str, limit: int | None,
                  batch: int | None, device: str, data_root: str | None, record_all: bool):
    from rich.progress import Progress

    from sakd.deploy import DeployError, read_any_network, simulate_dataset

    network = read_any_network(net)
    data = data or network.metadata.get("dataset")
    if not data:
        raise DeployError("the network file does not name its data set; pass --data")
    record = [p.name for p in network.populations if not p.is_readout] if record_all else ()
    with Progress(transient=True) as bar:
        task = bar.add_task("simulating", total=None)
        run = simulate_dataset(network, data, split=split, limit=limit, batch=batch, device=device,
                               data_root=data_root, record=record,
                               progress=lambda done, total: bar.update(task, completed=done, total=total))
    return network, run


@app.command()
@_guard
def simulate(net: NetArg, data: DataOpt = None, split: SplitOpt = "test", limit: LimitOpt = None,
             batch: BatchOpt = None, device: SimDeviceOpt = "cpu",
             data_root: Annotated[str | None, typer.Option(help="data set folder, if not the default")] = None,
             out: Annotated[Path | None, typer.Option("-o", "--out", help="report path (default: simulate_report.json next to the network)")] = None):
    """Run a network on the bit-accurate simulator.

    Reports on-chip accuracy, agreement with the float SNN and throughput; writes
    simulate_report.json."""
    from rich.console import Console

    from sakd.deploy import float_agreement, resolve_network_path, simulate_report
    from sakd.report import print_simulate_report

    network, run = _simulate_cli(net, data, split, limit, batch, device, data_root, record_all=True)
    agreement = float_agreement(network, run)
    path = out or resolve_network_path(net).parent / "simulate_report.json"
    report = simulate_report(network, run, agreement, path)
    print_simulate_report(report, Console())
    typer.echo(f"report: {path}")


@app.command()
@_guard
def energy(net: NetArg, data: DataOpt = None, split: SplitOpt = "test", limit: LimitOpt = None,
           batch: BatchOpt = None, device: SimDeviceOpt = "cpu",
           profile: Annotated[str, typer.Option("--profile", help="comma-separated profile names or YAML files (loihi, cmos45-fp32, cmos45-int8, spinnaker2)")] = "loihi,cmos45-fp32",
           data_root: Annotated[str | None, typer.Option(help="data set folder, if not the default")] = None,
           out: Annotated[Path | None, typer.Option("-o", "--out", help="output folder (default: next to the network)")] = None):
    """Spikes, SynOps and energy per inference against the ANN teacher.

    Writes energy_report.json and energy.png (per layer)."""
    from rich.console import Console

    from sakd.deploy import ann_macs_for, resolve_network_path
    from sakd.energy_report import (
        build_energy_report,
        plot_energy,
        print_energy_table,
        write_energy_report,
    )

    network, run = _simulate_cli(net, data, split, limit, batch, device, data_root, record_all=False)
    report = build_energy_report(run["result"].counts, ann_macs_for(network),
                                 [p.strip() for p in profile.split(",") if p.strip()],
                                 network_name=str(network.metadata.get("arch_name") or "network"),
                                 time_steps=run["time_steps"])
    folder = out or resolve_network_path(net).parent
    write_energy_report(report, Path(folder) / "energy_report.json")
    plot_energy(report, Path(folder) / "energy.png")
    print_energy_table(report, Console())
    typer.echo(f"report: {Path(folder) / 'energy_report.json'}, chart: {Path(folder) / 'energy.png'}")


@app.command()
@_guard
def verify(export_dir: Annotated[Path, typer.Argument(help="an export folder (network.h5, and the other formats)")],
           lava: Annotated[bool, typer.Option("--lava", help="against Lava's fixed-point simulation (IR, and netx if written)")] = False,
           onnx: Annotated[bool, typer.Option("--onnx", help="onnxruntime against the torch float SNN and ANN")] = False,
           nir: Annotated[bool, typer.Option("--nir", help="network.nir through independent NIR readers (spikingjelly, nirtorch) against the simulator and the float SNN")] = False,
           samples: Annotated[int, typer.Option("--samples", help="test samples to run")] = 16,
           data_root: Annotated[str | None, typer.Option(help="data set folder, if not the default")] = None,
           out: Annotated[Path | None, typer.Option("-o", "--out", help="report path (default: verify_report.json in the folder)")] = None):
    """Prove an export against Lava, onnxruntime and independent NIR readers.

    The same samples go through sakd's simulator and each reference. Exit status 1 on any
    mismatch, with the first divergence (population, step, neuron, both values), or (--nir) when
    an independent NIR reader agrees with the simulator on fewer than 99 % of the samples."""
    from rich.console import Console

    from sakd.io import atomic_write_json
    from sakd.verify import verify_lava, verify_nir, verify_onnx

    if not (lava or onnx or nir):
        _fail("choose at least one reference: --lava, --onnx and/or --nir")
    console = Console()
    report: dict = {"export_dir": str(export_dir), "samples": samples}
    ok = True
    if lava:
        comparisons = verify_lava(export_dir, samples, data_root)
        report["lava"] = [c.to_dict() for c in comparisons]
        for comparison in comparisons:
            ok &= comparison.identical
            console.print(f"[bold]{comparison.reference}[/]: {comparison.samples} samples")
            for check in comparison.populations:
                status = "[green]bit-exact[/]" if check.identical else "[red]MISMATCH[/]"
                line = f"  {check.population:<28} {status} ({', '.join(check.compared)}; {check.steps} steps)"
                if check.first_divergence:
                    d = check.first_divergence
                    line += (f" first at step {d.step}, sample {d.sample}, neuron {d.neuron}: "
                             f"{d.quantity} sakd={d.sakd} reference={d.reference}")
                console.print(line)
    if onnx:
        checks = verify_onnx(export_dir, samples, data_root)
        report["onnx"] = checks
        for name, check in checks.items():
            good = check["max_abs_diff"] <= 1e-4 or check["samples_over_atol"] == 0
            ok &= bool(good)
            console.print(f"[bold]onnxruntime vs torch ({name})[/]: max |logit diff| "
                          f"{check['max_abs_diff']:.2e}, predictions agree "
                          f"{100 * check['prediction_agreement']:.2f} %")
    if nir:
        from rich.markup import escape

        check = verify_nir(export_dir, samples, data_root)
        report["nir"] = check
        ok &= check["ok"]
        for name, entry in check["readers"].items():
            if not entry["loaded"]:
                console.print(f"[bold]NIR reader {name}[/]: [red]cannot read the file[/] "
                              f"({escape(entry['error'])})")
                continue
            rule = "" if entry["spike_rule"] == ">" else " (reported only)"
            vs_float = entry["agreement_vs_float_snn"]
            console.print(f"[bold]NIR reader {name}[/] (v {entry['spike_rule']} theta){rule}: "
                          f"predictions agree {100 * entry['agreement_vs_simulator']:.2f} % with "
                          f"the simulator"
                          + (f", {100 * vs_float:.2f} % with the float SNN"
                             if vs_float is not None else ""))
        if check["simulator_vs_float_snn"] is not None:
            console.print(f"  simulator vs float SNN: {100 * check['simulator_vs_float_snn']:.2f} % "
                          "(the quantization's share; the NIR file is the integer network)")
        if not check["ok"]:
            console.print(f"[red]NIR: agreement with the simulator below "
                          f"{100 * check['threshold']:.0f} %, or no reader could load the file[/]")
    report["identical"] = ok
    atomic_write_json(out or export_dir / "verify_report.json", report)
    if not ok:
        console.print("[red]verification failed[/]")
        raise typer.Exit(code=1)
    console.print("[green]verified[/]")


@app.command()
def models():
    """List the registered architectures."""
    from rich.console import Console
    from rich.table import Table

    from sakd.models import ARCHITECTURES

    table = Table(title="architectures (sakd.models)")
    for column in ("name", "family", "teacher", "description"):
        table.add_column(column)
    for spec in ARCHITECTURES.values():
        table.add_row(spec.name, spec.family, spec.teacher, spec.description)
    Console().print(table)


def _acc(record: dict) -> str:
    parts = [f"epoch {record['epoch'] + 1}"]
    if "val" in record:
        parts.append(f"val {record['val']['acc']:.2f} %")
    parts.append(f"test {record['test']['acc']:.2f} %")
    return ", ".join(parts)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # `python -m sakd.cli ...` (e.g. under torchrun)
    main()
