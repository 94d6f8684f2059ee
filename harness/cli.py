"""Command line: list | run | audit | plot | report | claims | serve | calibrate | overhead | recommend |
answer | compare | load-worker.

Bad input → one line on stderr, exit 2.

Why one module over 300 lines: the parser of every subcommand (with `run`'s help groups) and the one
place that turns signals and errors into exit codes; each command's work lives in its own module.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

from harness.data import knobs, prog, store
from harness.data.matrix import ALL, PRESETS, ConfigError, make_plan
from harness.data.scenarios import SCENARIOS
from harness.run.launch import LaunchError
from harness.system import procs
from targets import TARGETS

EXIT_BAD_INPUT = 2
X_KNOBS = [k.col for k in knobs.SWEEP_KNOBS if k.type is int]  # what `plot --x` accepts
EXIT_DISK = 74  # sysexits' EX_IOERR: the run folder could not be written (full, read-only, denied)
EXIT_HANGUP = 129
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: children stopped, finished rows kept."""


class HungUp(KeyboardInterrupt):
    """SIGHUP (the terminal or SSH session closed), handled like SIGTERM."""


def _on_signal(signum, frame):
    # The first Ctrl-C / SIGTERM / SIGHUP wins: further ones must not cut the clean-up short.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    exc = {signal.SIGTERM: Terminated, signal.SIGHUP: HungUp}.get(signum, KeyboardInterrupt)
    procs.interrupt_or_defer(exc())


def _tell(message: str) -> None:
    """One line on stderr, even when the terminal is gone (after SIGHUP a write gets EIO): then
    both streams go to /dev/null so the exit code is not spoilt by a failing flush at exit."""
    try:
        print(message, file=sys.stderr, flush=True)
        sys.stdout.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _csv_list(kind):
    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        if kind in (int, float):
            try:
                return [kind(x) for x in items]
            except ValueError:
                noun = "integers" if kind is int else "numbers"
                raise argparse.ArgumentTypeError(f"expected comma-separated {noun}, got {text!r}") from None
        return items
    return parse


def _per_target_list(kind):
    """`5,10,20` (every target with a pool) or `thread-pool=5,10,20` (one target)."""
    values = _csv_list(kind)

    def parse(text: str):
        name, sep, rest = text.rpartition("=")
        return (name.strip() if sep else ALL, values(rest))
    return parse


def _help(knob: knobs.Knob) -> str:
    if knob.switch is not None:
        return knob.help
    default = knob.default
    if isinstance(default, list):
        default = ",".join(map(str, default))
    shown = "" if default is None else f" (default: {default})"
    return knob.help + (" — comma list" if knob.sweep else "") + shown


def _group_defaults(names: tuple[str, ...]) -> str:
    """The group's defaults, as `bench.py run` with no flags (the default preset) uses them."""
    shown = []
    for knob in (knobs.KNOBS[n] for n in names):
        if knob.switch is not None or knob.default is None:
            continue
        value = ",".join(map(str, knob.default)) if isinstance(knob.default, list) else knob.default
        shown.append(f"{knob.flag} {value}")
    text = "defaults: " + (", ".join(shown) if shown else "none (each is off unless given)")
    return textwrap.fill(text, width=96, subsequent_indent="  ")


def add_knob_flag(parser: argparse._ActionsContainer, knob: knobs.Knob | str) -> None:
    """One knob's flag, as the table says; a name the table does not hold adds nothing (audit)."""
    found = knobs.KNOBS.get(knob) if isinstance(knob, str) else knob
    if found is not None and found.flag is not None:
        _add_knob_flag(parser, found)


def _add_knob_flag(parser: argparse._ActionsContainer, knob: knobs.Knob) -> None:
    assert knob.flag is not None, knob.name
    if knob.switch is not None:
        parser.add_argument(knob.flag, dest=knob.name, action="store_const", const=knob.switch,
                            default=None, help=_help(knob))
    elif knob.per_target:
        parser.add_argument(knob.flag, dest=knob.name, action="append", type=_per_target_list(knob.type),
                            metavar="[TARGET=]LIST", help=_help(knob))
    elif knob.sweep:
        parser.add_argument(knob.flag, dest=knob.name, type=_csv_list(knob.type), metavar="LIST",
                            help=_help(knob))
    else:
        parser.add_argument(knob.flag, dest=knob.name, type=knob.type, help=_help(knob))


def knob_groups(parser: argparse.ArgumentParser) -> dict[str, argparse._ArgumentGroup]:
    """The help groups of `knobs.HELP_GROUPS`, each described by its defaults, in their order."""
    return {title: parser.add_argument_group(title, _group_defaults(names))
            for title, names in knobs.HELP_GROUPS.items()}


def add_knob_flags(groups: dict[str, argparse._ArgumentGroup]) -> None:
    """Every knob of the table that has a flag, as the table says (dest = the knob's name), in its group."""
    for title, names in knobs.HELP_GROUPS.items():
        for knob in (knobs.KNOBS[n] for n in names):
            if knob.flag is not None:
                _add_knob_flag(groups[title], knob)


class _RunHelp(argparse.RawDescriptionHelpFormatter):
    """The examples and group defaults as written (not re-wrapped), flags in a wider column."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30, width=100)


RUN_USAGE = "{prog} run [--preset NAME] [--targets LIST] [--scenarios LIST] [--workers LIST] [options]"
RUN_DESCRIPTION = """\
Run a sweep: one fresh server per cell (target × scenario × every swept knob), load from Locust,
one row per cell in DIR/results.csv, charts and report.html at the end. Every LIST flag takes a
comma list and sweeps it.

start here:
  {prog} run --preset smoke                    every target, 1 worker, under 90 s: does it work?
  {prog} run                                   the default sweep (what `make bench` runs)
  {prog} run --targets fake-async,correct-async --scenarios io --workers 1,2
  {prog} run --app myapp.main:app --path /items/1 --workers 1,2     your own app
  {prog} run --resume results/<run-id>         finish an interrupted run
then: {prog} report DIR, {prog} recommend DIR, {prog} compare A B (docs/tuning.md)."""


def _add_run(sub) -> None:
    run = sub.add_parser("run", help="run a sweep", usage=RUN_USAGE.format(prog=prog.name()),
                         description=RUN_DESCRIPTION.format(prog=prog.name()),
                         formatter_class=_RunHelp)
    run.set_defaults(func=cmd_run)
    groups = knob_groups(run)
    groups["what to run"].add_argument("--preset", help=f"one of {', '.join(PRESETS)}: a preset sets "
                                       "other defaults than these (default: default)")
    add_knob_flags(groups)
    measure = groups["measurement"]
    measure.add_argument("--profile", action="store_true",
                         help="sample one worker of every cell with py-spy: a flame graph in its raw folder, "
                         "the top functions in bound_detail")
    measure.add_argument("--profile-cells", metavar="GLOB",
                         help="profile only the cells whose raw folder name matches, "
                         "e.g. 'correct-async_io_*'")
    out = run.add_argument_group("output", "defaults: a new folder results/<run-id>, charts drawn")
    out.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    out.add_argument("--resume", type=Path, metavar="DIR", help="re-run only the cells missing from DIR")
    out.add_argument("--no-plot", action="store_true", help="skip drawing charts at the end")
    measure.add_argument("--hinge-repeats", action=argparse.BooleanOptionalAction, default=None,
                         help="after the sweep, re-measure only the cells the answer hinges on, to 5 repeats "
                         "within make bench's budget (default: on for the default preset with no knob "
                         "changed, off otherwise)")
    _add_health_slo(out)


def _add_health_slo(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--slo-health-p99", type=float, default=None, metavar="MS",
                        help="the neighbours' SLO: a configuration whose /health p99 (its max when too few "
                        "probes) exceeds MS does not meet it (default 50; 0 turns it off)")


def _add_folder_commands(sub) -> None:
    """The commands that read a finished run folder and start nothing."""
    plot = sub.add_parser("plot", help="re-draw charts from DIR/results.csv")
    plot.set_defaults(func=cmd_plot)
    plot.add_argument("dir", type=Path)
    plot.add_argument("--x", help=f"the x axis: one of {', '.join(X_KNOBS)} (default: the numeric knob "
                      "with the most values in the run)")

    rep = sub.add_parser("report", help="write DIR/report.html (and claims.csv) from the run folder alone")
    rep.set_defaults(func=cmd_report)
    rep.add_argument("dir", type=Path)

    rec = sub.add_parser("recommend", help="cheapest configuration meeting a p99 SLO (from DIR only)")
    rec.set_defaults(func=cmd_read_runs)
    rec.add_argument("dir", type=Path)
    rec.add_argument("--slo-p99", type=float, default=None, metavar="MS",
                     help="p99 bound in ms (default 1000)")
    rec.add_argument("--max-fail-ratio", type=float, default=None, metavar="R",
                     help="largest acceptable failure ratio (default 0.01)")
    _add_health_slo(rec)

    ans = sub.add_parser("answer", help="per workload: the winning pattern and its sizes under a p99 SLO "
                         "(from DIR only)")
    ans.set_defaults(func=cmd_read_runs)
    ans.add_argument("dir", type=Path)
    ans.add_argument("--slo-p99", type=float, default=None, metavar="MS",
                     help="p99 bound in ms (default 1000)")
    ans.add_argument("--max-fail-ratio", type=float, default=None, metavar="R",
                     help="largest acceptable failure ratio (default 0.01)")
    _add_health_slo(ans)

    cmp = sub.add_parser("compare", help="run B against run A, cell by cell (from the folders only)")
    cmp.set_defaults(func=cmd_read_runs)
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    cmp.add_argument("--out", type=Path, help="where compare.csv and compare.png go (default B/compare-vs-A)")


def _add_machine_commands(sub) -> None:
    """The commands that start servers for something else than a sweep."""
    cl = sub.add_parser("claims", help="run the cells the article's claims need; print the verdict table")
    cl.set_defaults(func=cmd_claims, stop_leftovers=True)
    cl.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    cl.add_argument("--only", metavar="IDS", help="run only these claims' cells, comma list (e.g. 12,9b); "
                    "the others read 'not measured' in the report")

    serve = sub.add_parser("serve", help="start upstream + one target for manual poking")
    serve.set_defaults(func=cmd_serve)
    serve.add_argument("target")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--loop", default="uvloop")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--allow-non-loopback", action="store_true",
                       help="permit --host other than 127.0.0.1 (exposes the target to the network)")

    over = sub.add_parser("overhead", help="what the in-worker probe costs (/health rps, probe on vs off)")
    over.set_defaults(func=cmd_overhead, stop_leftovers=True)
    over.add_argument("--repeat", type=int, default=3, help="pairs of (on, off) cells")
    over.add_argument("--users", type=int, default=16)
    over.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    over.add_argument("--recorder", action="store_true",
                      help="measure the exact per-request recorder's cost to Locust instead of the probe's")

    cal = sub.add_parser("calibrate", help="can I trust this machine? cells with exact ceilings")
    cal.set_defaults(func=cmd_calibrate, stop_leftovers=True)
    cal.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    cal.add_argument("--duration", type=float, default=6.0, help="measured seconds per cell")

    lw = sub.add_parser("load-worker", help="a load process on this machine that joins every cell of a run "
                        "started elsewhere with --remote-load-workers K --master-bind HOST:PORT")
    lw.set_defaults(func=cmd_load_worker)
    lw.add_argument("--master", required=True, metavar="HOST:PORT", help="the run's --master-bind address")
    lw.add_argument("--wait", type=float, default=300.0, metavar="S",
                    help="give up when no run has answered there for S seconds (default 300)")
    lw.add_argument("--locustfile", type=Path, metavar="FILE",
                    help="this machine's copy of the run's --locustfile (checked against the master's)")
    lw.add_argument("--log-dir", type=Path, metavar="DIR", help="where each cell's Locust log goes "
                    "(default: a new temporary folder)")


class _Version(argparse.Action):
    """--version, worked out only when asked: git_commit() runs git, and bad input launches nothing."""

    def __call__(self, parser, namespace, values, option_string=None):
        # the same two facts every run's meta.json records (versions.harness, git_commit)
        print(f"{parser.prog} {store.harness_version()} (commit {store.git_commit()})")
        parser.exit(0)


def build_parser() -> Parser:
    p = Parser(prog=prog.name(), description="FastAPI concurrency benchmark harness")
    p.add_argument("--version", action=_Version, nargs=0, help="the version and commit meta.json records")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("list", help="targets and scenarios").set_defaults(func=lambda args: cmd_list())
    _add_run(sub)
    _add_folder_commands(sub)
    _add_machine_commands(sub)
    from harness import audit_cmd

    audit_cmd.add_parser(sub, add_knob_flag)
    sub.choices["audit"].set_defaults(func=cmd_audit)
    return p


def cmd_list() -> int:
    print("targets:")
    for name, target in TARGETS.items():
        print(f"  {name:<16} {target.description}")
    print("scenarios:")
    for name, scenario in SCENARIOS.items():
        print(f"  {name:<16} {scenario.description}")
    print("presets:", ", ".join(PRESETS))
    return 0


def _saved_plan(meta: dict) -> list:
    """The run's own knobs, part by part (meta.json's `parts` for a preset in parts)."""
    parts = meta.get("parts")
    if not isinstance(parts, list) or not parts:
        parts = [meta["knobs"]]
    return [make_plan("default", **part)[0] for part in parts]


def cmd_run(args) -> int:
    overrides = vars(_config_overrides(args))
    if args.resume:
        store.prepare_run_dir(args.resume, resume=True)
        meta = store.read_meta(args.resume / "meta.json")
        preset = meta.get("preset", "default")
        if args.preset and args.preset != preset:
            raise ConfigError(f"--resume: the run used preset {preset!r}, not {args.preset!r}")
        plan = _saved_plan(meta)
        typed = make_plan(preset, **overrides)  # typed flags are validated like any others
        differ = {k: (getattr(saved, k), getattr(new, k)) for saved, new in zip(plan, typed, strict=False)
                  for k, v in overrides.items() if v is not None and getattr(saved, k) != getattr(new, k)}
        if differ:
            raise ConfigError("--resume: knobs differ from the run's: " + ", ".join(
                f"{k} was {old!r}, now {new!r}" for k, (old, new) in differ.items()))
        run_dir = args.resume
        _preflight(plan)
    else:
        preset = args.preset or "default"
        plan = make_plan(preset, **overrides)
        _preflight(plan)
        run_dir = args.out or store.results_dir() / store.new_run_id(preset)
        store.prepare_run_dir(run_dir, resume=False)
    from harness import hinge
    from harness.present import report  # heavy imports only once the input is known to be good
    from harness.run.sweep import run_sweep

    profile = args.profile_cells or ("*" if args.profile else None)
    health = health_slo(args)
    _stop_leftovers()
    try:
        t0 = time.monotonic()
        code = run_sweep(plan, run_dir, preset=preset, resume=bool(args.resume), profile=profile)
        if hinge.wanted(args.hinge_repeats, preset, plan):
            code = max(code, hinge.repeat(plan, run_dir, time.monotonic() - t0, health))
    except store.DiskError as exc:
        procs.stop_all()
        _tell(exc.line(run_dir))
        return EXIT_DISK
    try:
        report.finish(run_dir, plot_charts=not args.no_plot, slo_health_ms=health)
    except OSError as exc:
        if not store.is_disk_error(exc):
            raise
        _tell(f"{prog.name()}: disk error: writing the charts in {run_dir} failed: {exc.strerror}; every "
              f"cell is safely in results.csv. Free space, then {prog.name()} plot {run_dir}")
        return EXIT_DISK
    return code


def _preflight(plan) -> None:
    """Refuse (ConfigError) a sweep whose largest cell cannot fit this machine; warn if it crowds it."""
    from harness.data.matrix import plan_cells
    from harness.run import app_python
    from harness.system import preflight

    for part in plan if isinstance(plan, list) else [plan]:
        app_python.check_config(part)  # --python runs and has its servers, before anything is launched
    cells = plan_cells(plan if isinstance(plan, list) else [plan])
    warning = preflight.check(preflight.sweep_needs(cells), preflight.Machine.here())
    if warning:
        print(f"{prog.name()}: {warning}", file=sys.stderr)


def _stop_leftovers() -> None:
    from harness.system import leftovers

    note = leftovers.stop()
    if note:
        print(note, flush=True)


def _config_overrides(args) -> argparse.Namespace:
    """Only the knobs the user typed (None for the others), by the table's names."""
    out = {}
    for knob in knobs.CONFIG_KNOBS:
        if knob.flag is None:
            continue
        value = getattr(args, knob.name)
        if knob.per_target and value is not None:
            value = _pool_sizes(knob, value)
        out[knob.name] = value
    return argparse.Namespace(**out)


def _pool_sizes(knob: knobs.Knob, given: list[tuple[str, list]]) -> dict[str, list]:
    out: dict[str, list] = {}
    for name, values in given:
        if name in out:
            shown = "a plain list" if name == ALL else name
            raise ConfigError(f"{knob.flag}: {shown} given twice")
        out[name] = values
    return out


def cmd_plot(args) -> int:
    from harness.present import report

    if args.x is not None and args.x not in X_KNOBS:
        raise ConfigError(f"--x {args.x!r} cannot be an x axis{knobs.closest(args.x, X_KNOBS)}; "
                          f"choose from {', '.join(X_KNOBS)}")
    if not (args.dir / "results.csv").is_file():
        raise ConfigError(f"{args.dir}/results.csv not found")
    report.finish(args.dir, x=args.x)
    return 0


def cmd_report(args) -> int:
    from harness.answer import claims
    from harness.present import html_report

    if not (args.dir / "results.csv").is_file():
        raise ConfigError(f"{args.dir}/results.csv not found")
    path = html_report.write(args.dir)
    print(claims.format_table(claims.decide_run(args.dir)))
    print(f"report: {path}")
    return 0


def cmd_audit(args) -> int:
    from harness import audit_cmd

    _stop_leftovers()
    return audit_cmd.run_audit(args, audit_cmd.audit_overrides(args))


def cmd_claims(args) -> int:
    from harness import claims_preset

    only = claims_preset.parse_only(args.only)  # an unknown id: ConfigError, before any folder is made
    run_dir = args.out or claims_preset.new_run_dir()
    store.prepare_run_dir(run_dir, resume=False)
    return claims_preset.run_claims(run_dir, only)


def health_slo(args) -> float:
    """--slo-health-p99, else its default; a negative bound is bad input (exit 2) before any run."""
    from harness.answer import recommend

    value = recommend.DEFAULT_SLO_HEALTH_P99_MS if args.slo_health_p99 is None else args.slo_health_p99
    if not value >= 0:
        raise ConfigError(f"--slo-health-p99 must be ≥ 0 ms (0 turns it off), got {value:g}")
    return float(value)


def cmd_read_runs(args) -> int:
    """recommend, answer and compare: they read run folders only; unusable folders are bad input (exit 2)."""
    from harness.answer import aggregate, compare, recommend

    try:
        if args.command == "compare":
            compare.run(args.a, args.b, out=args.out, warn=lambda m: print(m, file=sys.stderr))
        else:
            from harness.answer import answer

            rule = answer.run if args.command == "answer" else recommend.run
            rule(args.dir, recommend.DEFAULT_SLO_P99_MS if args.slo_p99 is None else args.slo_p99,
                 recommend.DEFAULT_MAX_FAIL_RATIO if args.max_fail_ratio is None else args.max_fail_ratio,
                 slo_health_ms=health_slo(args))
    except (compare.CompareError, recommend.RecommendError, aggregate.ResultsFormatError) as exc:
        raise ConfigError(str(exc)) from None
    return 0


def cmd_load_worker(args) -> int:
    """Bad input (exit 2) before anything starts; then join cells until the run is over."""
    from harness.data.address import AddressError, parse_address
    from harness.run import load_worker

    try:
        parse_address(args.master, "--master")
    except AddressError as exc:
        raise ConfigError(str(exc)) from None
    if not 0 < args.wait <= 86_400:
        raise ConfigError(f"--wait {args.wait:g}: must be between 0 and 86400 seconds")
    if args.locustfile is not None and not args.locustfile.is_file():
        raise ConfigError(f"--locustfile {str(args.locustfile)!r} is not a file")
    try:
        return load_worker.run(args.master, args.wait, locustfile=args.locustfile, log_dir=args.log_dir)
    except load_worker.WorkerError as exc:
        procs.stop_all()
        _tell(f"{prog.name()} load-worker: error: {exc}")
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        procs.stop_all()
        _tell("\nload-worker stopped: its Locust worker is down")
        return (EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_HANGUP if isinstance(exc, HungUp)
                else EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    prog.remember()  # the name every message and child process uses from here on
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:  # under nohup, a hang-up must not stop us
        signal.signal(signal.SIGHUP, _on_signal)
    with procs.reaper_guard():  # from the first child on, nothing outlives even a killed harness
        return _dispatch(args)


def cmd_serve(args) -> int:
    from harness.run.serve import serve

    return serve(args)


def cmd_overhead(args) -> int:
    if args.recorder:
        from harness.recorder_cost import measure_recorder

        return measure_recorder(args.out, repeat=args.repeat, users=args.users)
    from harness.overhead import measure_overhead

    return measure_overhead(args.out, repeat=args.repeat, users=args.users)


def cmd_calibrate(args) -> int:
    from harness.calibrate import calibrate

    return calibrate(args.out, duration=args.duration)


def _dispatch(args) -> int:
    try:
        if getattr(args, "stop_leftovers", False):
            _stop_leftovers()
        return args.func(args)
    except (ConfigError, store.RunFolderError) as exc:
        print(f"{prog.name()}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except LaunchError as exc:
        print(f"{prog.name()}: error: {exc}", file=sys.stderr)
        return 1
    except store.DiskError as exc:  # calibrate / overhead (run reports its own)
        procs.stop_all()
        _tell(f"{prog.name()}: disk error: {exc}. Free space, then run the command again")
        return EXIT_DISK
    except HungUp:
        procs.stop_all()
        _tell("\nhung up: children stopped; finished cells are in results.csv "
              "(complete the run with --resume DIR)")
        return EXIT_HANGUP
    except Terminated:
        procs.stop_all()
        print("\nterminated: children stopped; finished cells are in results.csv", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        procs.stop_all()
        if args.command == "serve":  # Ctrl-C is how serve is meant to end
            print("\nstopped: target and upstream are down", file=sys.stderr)
            return 0
        print("\ninterrupted: children stopped; finished cells are in results.csv "
              "(complete the run with --resume DIR)", file=sys.stderr)
        return EXIT_INTERRUPTED
