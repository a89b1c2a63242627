"""``gpuconv-bench``: the benchmark command line (also ``python -m gpuconv.bench``).

Subcommands: conv, pool, bn, im2col, elementwise, model, memory, ddp, list; ``gpuconv-bench SUBCOMMAND -h``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Any

import numpy as np

import gpuconv
from gpuconv.backend import backend_class, emulated, unavailable_reason

from . import conv as conv_bench
from .capabilities import has_module
from .environment import header as make_header
from .environment import load_note
from .errors import BenchError
from .limits import input_too_large, unwritable
from .report import RENDERERS, make_report
from .runner import Settings, run_cases
from .timing import copy_function, interleaved, timed_call
from .suites import SUITE_CHOICES, parse_shape, suite_layers
from .torch_child import TorchChild

DEFAULT_BATCH = {"conv": 8, "pool": 32, "bn": 32, "im2col": 8, "elementwise": 32, "model": 8, "memory": 8, "list": 8, "warmup": 2,
                 "ddp": 16}
MODELS = ("lenet5", "alexnet", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50")
TOLERANCE = {"float32": 1e-3, "float64": 1e-9}
TF32_TOLERANCE = 1e-2
#: The longest --pause: a sleep before every timed call, so anything longer is a typo.
MAX_PAUSE_SECONDS = 60.0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def _rank_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive ints such as 1,2, got {text!r}")
    return counts


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}") from None
    if not 0 <= value <= MAX_PAUSE_SECONDS:  # NaN fails both comparisons
        raise argparse.ArgumentTypeError(f"expected seconds from 0 to {MAX_PAUSE_SECONDS:g}, got {text!r}")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("common options")
    group.add_argument("--backend", choices=("auto", "numpy", "cupy", "emulated"), default="auto",
                       help="auto: cupy when a GPU is usable, else numpy (default)")
    group.add_argument("--device", type=_non_negative, help="GPU number (cupy backend only)")
    group.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    group.add_argument("--batch", type=_positive,
                       help="batch size (default: conv/im2col/model/memory 8, pool/bn/elementwise 32)")
    group.add_argument("--repeats", type=_positive, default=5, help="timed runs (median and best reported)")
    group.add_argument("--warmup", type=_non_negative, default=1, help="untimed runs first")
    group.add_argument("--pause", type=_seconds,
                       help="seconds of sleep before each timed call on the CPU, so that BLAS/OpenMP threads "
                            "spinning after the previous call do not slow the next (default 0.3 when PyTorch "
                            "is compared on the CPU, else 0)")
    group.add_argument("--tf32", action="store_true", help="allow TF32 tensor cores (gpuconv.flags.allow_tf32)")
    group.add_argument("--no-torch", action="store_true", help="do not compare with PyTorch")
    group.add_argument("--torch-threads", type=_non_negative, default=0,
                       help="PyTorch CPU threads (0: default; model: as many as NumPy's BLAS)")
    group.add_argument("--check-images", type=_positive, default=2,
                       help="images of the batch checked against the numpy path before timing (default 2)")
    group.add_argument("--format", choices=tuple(RENDERERS), default="md", help="output format (default md)")
    group.add_argument("--output", type=Path, help="write the report to this file instead of stdout")
    group.add_argument("--quiet", action="store_true",
                       help="no progress bar on stderr (it is shown only when stderr is a terminal)")
    group.add_argument("--plot", type=Path, metavar="FILE.png",
                       help="also draw the results (needs matplotlib: pip install gpuconv[plot])")
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``gpuconv-bench`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="gpuconv-bench", description="Benchmarks of gpuconv's kernels and models, checked for correctness "
                                          "first, against PyTorch when it is installed.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    common = [_common_options()]

    def subcommand(name: str, text: str) -> argparse.ArgumentParser:
        # help= is %-formatted by argparse, description= is printed as it is.
        return sub.add_parser(name, parents=common, help=text, description=text.replace("%%", "%"))

    conv = subcommand("conv", "conv2d: every algorithm per direction, auto, tuned, PyTorch")
    conv.add_argument("--suite", choices=SUITE_CHOICES, help="layers of a network (default resnet18 "
                                                             "when no --shape is given)")
    conv.add_argument("--shape", type=parse_shape, action="append", metavar="N,C,H,W,K,R,S[,stride,pad,dil,groups]",
                      help="one convolution (repeatable); N overrides --batch")
    conv.add_argument("--shrink", type=_positive, default=1,
                      help="divide the suite layers' planes by this (a quick run, e.g. on the emulator)")
    conv.add_argument("--algos", help="comma-separated algorithms (and 'auto'); default: every applicable one and "
                                      "auto (numpy backend: auto only, its algorithms share one NumPy code path)")
    for name, text in (("pool", "max/avg/adaptive pooling and GeM: GB/s, %% of a copy"),
                       ("bn", "batch norm training/eval forward and backward: GB/s, %% of a copy"),
                       ("im2col", "im2col and col2im: GB/s, %% of a copy"),
                       ("elementwise", "ReLU, bias add and optimizer steps: GB/s, %% of a copy")):
        family = subcommand(name, text)
        family.add_argument("--shrink", type=_positive, default=1,
                            help="divide channels and planes by this (a quick run, e.g. on the emulator)")
    model = subcommand("model", "a zoo model's training step and inference")
    model.add_argument("--model", choices=MODELS, default="resnet18")
    model.add_argument("--image-size", type=_positive, default=224)
    model.add_argument("--num-classes", type=_positive, default=1000)
    model.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                       help="wall: elapsed time (default); cpu: this process's CPU time, little disturbed by "
                            "other work on a shared machine, meaningful with one thread (OPENBLAS_NUM_THREADS=1 "
                            "--torch-threads 1); numpy backend only")
    model.add_argument("--in-channels", type=_positive, help="input channels (default: the model's, LeNet-5 1, "
                                                             "the others 3)")
    memory = subcommand("memory", "the memory estimator against measured peaks")
    memory.add_argument("--model", choices=MODELS, action="append", help="repeatable (default resnet18)")
    memory.add_argument("--image-size", type=_positive, default=224)
    memory.add_argument("--num-classes", type=_positive, default=1000)
    ddp = subcommand("ddp", "data-parallel training of a small ResNet on 1, 2, ... MPI ranks: images/s, all-reduce "
                            "time per step (--batch is per rank, --repeats the timed steps)")
    ddp.add_argument("--ranks", type=_rank_counts, default=[1, 2], help="comma-separated rank counts (default 1,2)")
    ddp.add_argument("--image-size", type=_positive, default=32)
    subcommand("list", "suites, layers, algorithms and backends on this machine")
    subcommand("warmup", "load or compile every kernel for the backend and run each layer type once (gpuconv.warmup)")
    return parser


def _check_combinations(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    named = None if args.backend == "auto" else backend_class(args.backend).capabilities
    if args.device is not None and named is not None and not named.gpu:
        parser.error(f"--device applies to --backend cupy only, got --backend {args.backend}")
    if getattr(args, "clock", "wall") == "cpu" and named is not None and named.kernels:
        parser.error(f"--clock cpu applies to --backend numpy only, got --backend {args.backend}")
    if args.command == "conv" and args.algos is not None:
        known = conv_bench.algorithms() + ["auto"]
        wanted = [a.strip() for a in args.algos.split(",") if a.strip()]
        unknown = [a for a in wanted if a not in known]
        if unknown or not wanted:
            parser.error(f"--algos: expected a comma-separated subset of {','.join(known)}, got {args.algos!r}")
        args.algos = wanted
    if args.plot is not None and args.command in ("list", "warmup"):
        parser.error(f"--plot: {args.command} has nothing to plot")
    for option in ("output", "plot"):
        problem = unwritable(getattr(args, option))
        if problem:
            parser.error(f"--{option}: {problem}")
    if args.command in ("model", "memory"):
        problem = input_too_large(args.batch or DEFAULT_BATCH[args.command], args.image_size, np.dtype(args.dtype))
        if problem:
            parser.error(f"--image-size {args.image_size}: {problem}")
    if args.command == "conv" and args.suite and args.shape:
        parser.error("give --suite or --shape, not both")
    if args.command == "conv" and args.shape and args.shrink != 1:
        parser.error("--shrink applies to --suite layers, not to --shape")


def _backend(args: argparse.Namespace) -> Any:
    name = args.backend
    if name == "auto":
        name = "cupy" if unavailable_reason("cupy") is None else "numpy"
    reason = unavailable_reason(name)
    if reason is not None:
        raise BenchError(f"backend {name!r} is unavailable: {reason}")
    return gpuconv.use(name, args.device if backend_class(name).capabilities.gpu else None)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The options as plain JSON values (the header's ``settings``)."""
    out = {}
    for key, value in vars(args).items():
        if key in ("command", "format", "output", "plot", "quiet"):
            continue
        if isinstance(value, list):
            value = [getattr(v, "spec", v) for v in value]
        elif isinstance(value, Path):
            value = str(value)
        out[key] = value
    return out


def _torch_child(args: argparse.Namespace, be: Any, notes: list[str]) -> TorchChild | None:
    if args.no_torch or not be.capabilities.timed:
        return None
    device = f"cuda:{args.device or 0}" if be.capabilities.gpu else "cpu"
    child = TorchChild(device, args.torch_threads, args.tf32)
    if child.available:
        notes.append(f"PyTorch {child.version} on {device} ({child.threads} CPU threads), timed in a child process")
    else:
        notes.append(child.reason)
    return child


def _runner_settings(args: argparse.Namespace, be: Any, torch: Any, header: dict) -> Settings:
    """The runner's settings (``torch``: a TorchChild, a model.TorchReference or None); the pause
    it resolved goes into the header's settings."""
    on_cpu_with_torch = not be.capabilities.gpu and torch is not None and getattr(torch, "available", True)
    pause = args.pause if args.pause is not None else (0.3 if on_cpu_with_torch else 0.0)
    header["settings"]["pause"] = pause
    tolerance = TF32_TOLERANCE if args.tf32 else TOLERANCE[args.dtype]
    header["settings"]["tolerance"] = tolerance  # what a checked error is held to (the plot draws it)
    return Settings(args.warmup, args.repeats, pause, args.check_images, tolerance, timing=be.capabilities.timed,
                    quiet=args.quiet)


def _copy_gbps(be: Any) -> float:
    """GB/s (read + written) of a 256 MiB device-to-device copy: the roofline's bandwidth for unknown GPUs."""
    source = be.zeros((64 * 2**20,), np.float32)
    copy, timed = copy_function(be, source), timed_call(be)
    (stats,) = interleaved([lambda: timed(copy)], 1, 5)
    return 2 * source.nbytes / stats.median / 1e9


def _run_conv(args, be, header, summary) -> list[dict[str, Any]]:
    notes = header["notes"]
    shapes = args.shape or suite_layers(args.suite or "resnet18", args.batch, args.shrink)
    if be.capabilities.gpu:
        header["copy_gbps"] = _copy_gbps(be)
    if args.algos is not None:
        algos = args.algos
    elif not be.capabilities.kernels:
        algos = ["auto"]
        notes.append("numpy backend: only algo=auto (the numpy backend's measured choice) is timed, against "
                     "PyTorch CPU; name others with --algos")
    else:
        algos = conv_bench.algorithms() + ["auto"]
    with_tuned = be.capabilities.gpu
    cases = [conv_bench.conv_case(s, algos, np.dtype(args.dtype), with_tuned) for s in shapes]
    with contextlib.ExitStack() as stack:
        torch = _torch_child(args, be, notes)
        if torch is not None:
            stack.callback(torch.close)
        rows = run_cases(cases, be, _runner_settings(args, be, torch, header), torch, notes)
    if with_tuned:
        conv_bench.fill_tuned_algos(rows, {s.name: s for s in shapes}, np.dtype(args.dtype))
    summary += conv_bench.summary(rows)
    return rows


def _run_memory_bound(args, be, header, summary) -> list[dict[str, Any]]:
    from . import memory_bound

    notes = header["notes"]
    build = {"pool": memory_bound.pool_cases, "bn": memory_bound.bn_cases, "im2col": memory_bound.im2col_cases,
             "elementwise": memory_bound.elementwise_cases}
    cases = build[args.command](args.batch, np.dtype(args.dtype), args.shrink)
    with contextlib.ExitStack() as stack:
        torch = _torch_child(args, be, notes)
        if torch is not None:
            stack.callback(torch.close)
        return run_cases(cases, be, _runner_settings(args, be, torch, header), torch, notes)


def _run_model(args, be, header, summary) -> list[dict[str, Any]]:
    from . import model

    notes = header["notes"]
    torch = None
    if not args.no_torch and be.capabilities.timed:
        torch = model.TorchReference.load(be, args.device, args.torch_threads, notes)
    return model.run(args, be, _runner_settings(args, be, torch, header), torch, notes)


def _run_memory(args, be, header, summary) -> list[dict[str, Any]]:
    from . import memory

    return memory.run(args, be, header["notes"])


def _run_ddp(args, be, header, summary) -> list[dict[str, Any]]:
    from . import ddp

    return ddp.run(args, be, header["notes"])


def _run_list(args, be, header, summary) -> list[dict[str, Any]]:
    from . import listing

    return listing.rows(be)


def _run_warmup(args, be, header, summary) -> list[dict[str, Any]]:
    report = gpuconv.warmup((args.dtype,), verbose=False)
    summary.append(str(report))
    return [{"case": "load kernel files", "kind": "warmup", "status": "ok", "seconds": report.load_seconds,
             "detail": ", ".join(report.kernel_files) or "none: the numpy backend runs no kernel files"},
            {"case": "first training and inference steps", "kind": "warmup", "status": "ok",
             "seconds": report.step_seconds, "detail": "each standard layer type, loss and optimizer, once"}]


# The subcommands whose kernels the emulated backend profiles (gpuconv.backend.emulated.profile).
PROFILED_COMMANDS = ("conv", "pool", "bn", "im2col", "elementwise", "model")

COMMANDS = {"conv": _run_conv, "pool": _run_memory_bound, "bn": _run_memory_bound, "im2col": _run_memory_bound,
            "elementwise": _run_memory_bound,
            "model": _run_model, "memory": _run_memory, "ddp": _run_ddp, "list": _run_list, "warmup": _run_warmup}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the parsed command; returns the report (see schema.py). Raises BenchError."""
    if args.plot is not None and not has_module("matplotlib"):
        raise BenchError("--plot needs matplotlib: pip install 'gpuconv[plot]'")
    be = _backend(args)
    header = make_header(be, args.command, _settings(args))
    notes: list[str] = header["notes"]
    if args.backend == "auto" and not be.capabilities.gpu:
        notes.append(f"--backend auto chose numpy: cupy is unavailable ({unavailable_reason('cupy')})")
    if not be.capabilities.timed and args.command not in ("list", "warmup", "ddp"):
        notes.append("emulated: correctness only (the CUDA kernels run on the CPU emulator; times would be "
                     "meaningless and are not taken)")
    summary: list[str] = []
    flags = gpuconv.flags(allow_tf32=True) if args.tf32 else contextlib.nullcontext()
    profiled = not be.capabilities.timed and args.command in PROFILED_COMMANDS  # the emulator's access profile
    with flags, (emulated.profile() if profiled else contextlib.nullcontext()) as accesses:
        try:
            rows = COMMANDS[args.command](args, be, header, summary)
        except (MemoryError, gpuconv.OutOfMemoryError) as error:  # numpy's _ArrayMemoryError is a MemoryError
            raise BenchError(f"{args.command}: does not fit in memory with these settings (use a smaller --batch, "
                             f"--image-size or --shape): {error}") from None
    if profiled and len(accesses):
        summary += ["", "Memory-access profile of the kernels these cases ran on the emulator (32-byte sectors per "
                        "warp request against the ideal, shared-memory bank conflicts): a GPU-free proxy of "
                        "coalescing, not of speed.", "", *accesses.to_markdown().splitlines()]
    if args.command != "list" and (note := load_note("at the end")):
        notes.append(note)
    # The same one-line problem (e.g. an algorithm that does not apply) is noted once per case, not per direction.
    notes[:] = list(dict.fromkeys(notes))
    return make_report(header, rows, summary)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``gpuconv-bench``; returns the exit status (1 when a check FAILED or on an error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_combinations(parser, args)
    if args.batch is None:
        args.batch = DEFAULT_BATCH[args.command]
    try:
        report = run(args)
    except BenchError as error:
        print(f"gpuconv-bench: {error}", file=sys.stderr)
        return 1
    text = RENDERERS[args.format](report)
    if args.output is not None:
        try:
            args.output.write_text(text)
        except OSError as error:
            print(f"gpuconv-bench: cannot write --output {args.output}: {error.strerror}", file=sys.stderr)
            return 1
        print(f"gpuconv-bench: wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    if args.plot is not None:
        from .plot import plot

        try:
            plot(report, args.plot)
        except OSError as error:
            print(f"gpuconv-bench: cannot write --plot {args.plot}: {error.strerror or error}", file=sys.stderr)
            return 1
        print(f"gpuconv-bench: wrote {args.plot}", file=sys.stderr)
    failed = [r for r in report["rows"] if r["status"] in ("FAILED", "error")]
    return 1 if failed else 0
