"""Command line: list | run | plot | report | claims | serve | calibrate | overhead | recommend | compare.

Bad input → one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from harness import procs, store
from harness.launch import LaunchError
from harness.matrix import PRESETS, SCENARIOS, ConfigError, make_config
from targets import TARGETS

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: children stopped, finished rows kept."""


def _on_signal(signum, frame):
    # The first Ctrl-C / SIGTERM wins: further ones must not cut the clean-up short.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    procs.interrupt_or_defer(Terminated() if signum == signal.SIGTERM else KeyboardInterrupt())


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def _csv_list(kind):
    def parse(text: str):
        items = [x.strip() for x in text.split(",") if x.strip()]
        if kind is int:
            try:
                return [int(x) for x in items]
            except ValueError:
                raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
        return items
    return parse


def build_parser() -> Parser:
    p = Parser(prog="bench.py", description="FastAPI concurrency benchmark harness")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    sub.add_parser("list", help="targets and scenarios")

    run = sub.add_parser("run", help="run a sweep")
    run.add_argument("--preset", help=f"one of {', '.join(PRESETS)} (default: default)")
    run.add_argument("--targets", type=_csv_list(str), help="comma-separated target names")
    run.add_argument("--scenarios", type=_csv_list(str), help="comma-separated: io,cpu,mixed")
    run.add_argument("--workers", type=_csv_list(int), help="uvicorn worker counts, e.g. 1,2,4")
    run.add_argument("--users", type=_csv_list(int), help="concurrent closed-loop users, e.g. 32 or 16,64")
    run.add_argument("--duration", type=float, help="measured seconds per cell")
    run.add_argument("--warmup", type=float, help="seconds excluded before the window")
    run.add_argument("--io-ms", type=int, help="upstream wait per call (IO_MS)")
    run.add_argument("--cpu-ms", type=int, help="CPU per request (CPU_MS)")
    run.add_argument("--fanout", type=int, help="upstream calls per /io request (FANOUT)")
    run.add_argument("--pool-size", type=int, help="POOL_SIZE for every target (default: each target's own)")
    run.add_argument("--cpu-kind", choices=None, help="python (holds the GIL) or native (releases it)")
    run.add_argument("--http-connections", type=int, help="HTTP client connection pool per worker")
    run.add_argument("--http-client", help="async targets' client: httpx (default) or aiohttp")
    run.add_argument("--loop", help="uvloop or asyncio")
    run.add_argument("--repeat", type=int, help="repetitions of every cell")
    run.add_argument("--no-probe", action="store_true", help="switch off the in-worker probe")
    run.add_argument("--fixed-window", action="store_true",
                     help="never stretch a slow cell's warm-up/duration (see README)")
    run.add_argument("--launch", help="uvicorn (--workers W, one shared socket; default) or reuseport "
                     "(W single-worker uvicorns on SO_REUSEPORT sockets: even connection spread)")
    run.add_argument("--pin", action="store_true",
                     help="put the target and the load generator on disjoint cores (needs ≥ 2 cores)")
    run.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    run.add_argument("--resume", type=Path, metavar="DIR", help="re-run only the cells missing from DIR")
    run.add_argument("--no-plot", action="store_true", help="skip drawing charts at the end")

    plot = sub.add_parser("plot", help="re-draw charts from DIR/results.csv")
    plot.add_argument("dir", type=Path)

    rep = sub.add_parser("report", help="write DIR/report.html (and claims.csv) from the run folder alone")
    rep.add_argument("dir", type=Path)

    cl = sub.add_parser("claims", help="run the cells the article's claims need; print the verdict table")
    cl.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")

    serve = sub.add_parser("serve", help="start upstream + one target for manual poking")
    serve.add_argument("target")
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--loop", default="uvloop")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--allow-non-loopback", action="store_true",
                       help="permit --host other than 127.0.0.1 (exposes the target to the network)")

    over = sub.add_parser("overhead", help="what the in-worker probe costs (/health rps, probe on vs off)")
    over.add_argument("--repeat", type=int, default=3, help="pairs of (on, off) cells")
    over.add_argument("--users", type=int, default=16)
    over.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")

    cal = sub.add_parser("calibrate", help="can I trust this machine? cells with exact ceilings")
    cal.add_argument("--out", type=Path, help="run folder (default results/<run-id>)")
    cal.add_argument("--duration", type=float, default=6.0, help="measured seconds per cell")

    rec = sub.add_parser("recommend", help="cheapest configuration meeting a p99 SLO (from DIR only)")
    rec.add_argument("dir", type=Path)
    rec.add_argument("--slo-p99", type=float, default=None, metavar="MS",
                     help="p99 bound in ms (default 1000)")
    rec.add_argument("--max-fail-ratio", type=float, default=None, metavar="R",
                     help="largest acceptable failure ratio (default 0.01)")

    cmp = sub.add_parser("compare", help="run B against run A, cell by cell (from the folders only)")
    cmp.add_argument("a", type=Path)
    cmp.add_argument("b", type=Path)
    cmp.add_argument("--out", type=Path, help="where compare.csv and compare.png go (default B/compare-vs-A)")
    return p


def cmd_list() -> int:
    print("targets:")
    for name, (_, summary) in TARGETS.items():
        print(f"  {name:<16} {summary}")
    print("scenarios:")
    for name, summary in SCENARIOS.items():
        print(f"  {name:<16} {summary}")
    print("presets:", ", ".join(PRESETS))
    return 0


def _config_from_args(args, preset: str):
    return make_config(preset, **vars(_config_overrides(args)))


def cmd_run(args) -> int:
    if args.resume:
        store.prepare_run_dir(args.resume, resume=True)
        meta = store.read_meta(args.resume / "meta.json")
        preset = meta.get("preset", "default")
        if args.preset and args.preset != preset:
            raise ConfigError(f"--resume: the run used preset {preset!r}, not {args.preset!r}")
        saved = make_config(preset, **meta["knobs"])
        overrides = vars(_config_overrides(args))
        make_config(preset, **overrides)  # typed flags are validated like any others
        typed = {k: v for k, v in overrides.items() if v is not None}
        differ = {k: (getattr(saved, k), v) for k, v in typed.items() if getattr(saved, k) != v}
        if differ:
            raise ConfigError("--resume: knobs differ from the run's: " + ", ".join(
                f"{k} was {old!r}, now {new!r}" for k, (old, new) in differ.items()))
        cfg, run_dir = saved, args.resume
    else:
        preset = args.preset or "default"
        cfg = _config_from_args(args, preset)
        run_dir = args.out or store.ROOT / "results" / store.new_run_id(preset)
        store.prepare_run_dir(run_dir, resume=False)
    from harness import report  # heavy imports only once the input is known to be good
    from harness.sweep import run_sweep

    code = run_sweep(cfg, run_dir, preset=preset, resume=bool(args.resume))
    report.finish(run_dir, plot_charts=not args.no_plot)
    return code


def _config_overrides(args) -> argparse.Namespace:
    """Only the knobs the user typed (for comparing against a run being resumed)."""
    return argparse.Namespace(
        targets=args.targets, scenarios=args.scenarios, workers=args.workers, users=args.users,
        duration=args.duration, warmup=args.warmup, io_ms=args.io_ms, cpu_ms=args.cpu_ms,
        fanout=args.fanout, pool_size=args.pool_size, cpu_kind=args.cpu_kind,
        http_connections=args.http_connections, http_client=args.http_client, loop=args.loop,
        repeat=args.repeat, probe=False if args.no_probe else None,
        adapt_window=False if args.fixed_window else None, pin=True if args.pin else None,
        launch=args.launch)


def cmd_plot(args) -> int:
    from harness import report

    if not (args.dir / "results.csv").is_file():
        raise ConfigError(f"{args.dir}/results.csv not found")
    report.finish(args.dir)
    return 0


def cmd_report(args) -> int:
    from harness import claims, html_report

    if not (args.dir / "results.csv").is_file():
        raise ConfigError(f"{args.dir}/results.csv not found")
    path = html_report.write(args.dir)
    print(claims.format_table(claims.decide_run(args.dir)))
    print(f"report: {path}")
    return 0


def cmd_claims(args) -> int:
    from harness import claims_preset

    run_dir = args.out or claims_preset.new_run_dir()
    store.prepare_run_dir(run_dir, resume=False)
    return claims_preset.run_claims(run_dir)


def cmd_read_runs(args) -> int:
    """recommend and compare: they read run folders only; unusable folders are bad input (exit 2)."""
    from harness import aggregate, compare, recommend

    try:
        if args.command == "compare":
            compare.run(args.a, args.b, out=args.out, warn=lambda m: print(m, file=sys.stderr))
        else:
            recommend.run(args.dir, recommend.DEFAULT_SLO_P99_MS if args.slo_p99 is None else args.slo_p99,
                          recommend.DEFAULT_MAX_FAIL_RATIO if args.max_fail_ratio is None
                          else args.max_fail_ratio)
    except (compare.CompareError, recommend.RecommendError, aggregate.ResultsFormatError) as exc:
        raise ConfigError(str(exc)) from None
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        if args.command == "list":
            return cmd_list()
        if args.command == "run":
            return cmd_run(args)
        if args.command == "plot":
            return cmd_plot(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "claims":
            return cmd_claims(args)
        if args.command == "serve":
            from harness.serve import serve

            return serve(args)
        if args.command == "overhead":
            from harness.overhead import measure_overhead

            return measure_overhead(args.out, repeat=args.repeat, users=args.users)
        if args.command == "calibrate":
            from harness.calibrate import calibrate

            return calibrate(args.out, duration=args.duration)
        if args.command in ("recommend", "compare"):
            return cmd_read_runs(args)
    except (ConfigError, store.RunFolderError) as exc:
        print(f"bench.py: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except LaunchError as exc:
        print(f"bench.py: error: {exc}", file=sys.stderr)
        return 1
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
    return 0
