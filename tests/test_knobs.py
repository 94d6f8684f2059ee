"""The knob table is the one source: flags, Config validation, Cells, the target environment and
the resume key all follow it. Pure unit tests: nothing is launched."""

from __future__ import annotations

import csv
import itertools
import math

import pytest

from harness import cli
from harness.data import knobs, store
from harness.data.matrix import ConfigError, applies, build_cells, make_config
from harness.run import launch
from harness.run.cell import base_row, failed_row
from targets import TARGETS

ONE = dict(targets=["thread-pool"], scenarios=["io"], workers=[1], users=[8])


def two_values(knob: knobs.Knob) -> list:
    """Two valid, distinct values of a sweepable knob, taken from the table."""
    if knob.type is str:
        return knob.allowed()[:2]
    lo, hi = knob.bounds or (1, 2)
    return [int(lo) if lo >= 1 else 1, int(min(hi, max(lo, 1) * 2 + 1))]


def parse(*args: str):
    parser = cli.build_parser()
    return cli._config_overrides(parser.parse_args(["run", *args]))


# ----------------------------------------------------------------------------- the table itself


def test_table_is_consistent():
    names = [k.name for k in knobs.TABLE]
    assert len(names) == len(set(names))
    flags = [k.flag for k in knobs.TABLE if k.flag]
    assert len(flags) == len(set(flags))
    envs = [k.env for k in knobs.TABLE if k.env]
    assert len(envs) == len(set(envs))
    for k in knobs.TABLE:
        assert k.scope in ("axis", "cell", "run", "harness"), k.name
        assert k.help, k.name
        assert (k.scope == "harness") == (k.flag is None), k.name  # the user sets all but the harness's
        if k.sweep:
            assert k.scope in ("axis", "cell"), k.name
        if k.scope == "cell" and k.sweep:
            assert k.token, f"{k.name} names raw folders when swept: it needs a token"


def test_issue_list_of_sweepable_knobs():
    swept = {k.name for k in knobs.SWEEP_KNOBS}
    assert swept == {"workers", "users", "pool_size", "http_connections", "io_ms", "cpu_ms", "fanout",
                     "loop", "http_client", "cpu_kind", "launch", "rate", "arrivals", "load_processes",
                     "db_queries", "db_ms", "db_pool", "db_driver",  # the db scenario's knobs
                     "thread_tokens",  # the diagnosis
                     "server"}  # the ASGI server


def test_db_knobs_multiply_only_db_cells():
    from harness.data.matrix import build_cells, make_config

    cfg = make_config("default", targets=["correct-async", "fake-async"], scenarios=["io", "db"], workers=[1],
                      db_pool=[2, 5], db_driver=["asyncpg", "sqlalchemy"])
    cells = build_cells(cfg, cores=2)
    io = [c for c in cells if c.scenario == "io"]
    db = [c for c in cells if c.scenario == "db"]
    assert len(io) == 2 and len(db) == 2 * 2 * 2
    assert all(c.db_pool is None and c.db_driver is None and "DB_POOL" not in c.env() for c in io)
    assert sorted({(c.db_pool, c.db_driver) for c in db}) == [(2, "asyncpg"), (2, "sqlalchemy"),
                                                             (5, "asyncpg"), (5, "sqlalchemy")]
    one = next(c for c in db
               if c.target == "correct-async" and c.db_pool == 5 and c.db_driver == "sqlalchemy")
    assert one.cell_id == "correct-async_db_w1_u32_dbp5_drv-sqlalchemy_r1"
    assert one.env()["DB_POOL"] == "5" and one.env()["DB_DRIVER"] == "sqlalchemy"
    assert one.ceiling_rps == 5 / 0.04  # min(U, W·B) / (Q·D)
    assert len({c.key for c in cells}) == len(cells)
    # unset DB_POOL: the driver's default (SQLAlchemy's 5 + 10) in the ceiling, nothing in the env
    [sa] = build_cells(make_config("default", targets=["correct-async"], scenarios=["db"], workers=[1],
                                   users=[40], db_driver=["sqlalchemy"]), cores=2)
    assert sa.db_pool is None and "DB_POOL" not in sa.env() and sa.ceiling_rps == 15 / 0.04


def test_param_columns_come_from_the_table():
    from harness.data import schema

    assert schema.PARAM_COLUMNS == knobs.PARAM_COLUMNS
    assert knobs.PARAM_COLUMNS[:2] == ["target", "scenario"] and knobs.PARAM_COLUMNS[-1] == "repeat"


# ----------------------------------------------------------------------------- flags → Config


@pytest.mark.parametrize("knob", knobs.SWEEP_KNOBS, ids=lambda k: k.name)
def test_every_sweepable_knob_takes_a_comma_list(knob):
    a, b = two_values(knob)
    scenario = knob.scenarios[0] if knob.scenarios else "io"  # a db knob multiplies db cells only
    # --thread-tokens is --pool-size on thread-pool: sweep it where it applies (fake-async's def routes)
    target = "thread-pool" if applies(knob.name, "thread-pool") else "fake-async"
    # the knob's flag last: it overrides the single worker count for the workers knob itself
    over = parse("--targets", target, "--scenarios", scenario, "--workers", "1", knob.flag, f"{a},{b}")
    cfg = make_config("default", **vars(over))
    cells = build_cells(cfg, cores=2)
    values = sorted({c.knobs[knob.name] for c in cells}, key=str)
    assert values == sorted([a, b], key=str)
    others = [k for k in knobs.SWEEP_KNOBS if k is not knob]
    assert len(cells) == 2 * math.prod(len(cfg.pool_sizes(target)) if k.per_target
                                       else len(getattr(cfg, k.name)) for k in others)
    assert cfg.swept() == (knob.name,)
    assert len({c.cell_id for c in cells}) == len(cells) == len({c.key for c in cells})
    token = f"_{knob.token}"
    assert all(token in c.cell_id for c in cells)


@pytest.mark.parametrize("knob", [k for k in knobs.CONFIG_KNOBS if k.bounds], ids=lambda k: k.name)
def test_bounds_come_from_the_table(knob):
    lo, hi = knob.bounds
    too_big = hi + 1 if knob.type is int else hi * 2
    value = [too_big] if knob.sweep else too_big
    with pytest.raises(ConfigError, match=knob.flag):
        make_config("default", **{knob.name: value})
    ok = [int(hi)] if knob.sweep and knob.type is int else hi
    needs = {"remote_load_workers": {"master_bind": "127.0.0.1:5600"}}.get(knob.name, {})  # a pair of flags
    make_config("default", **{knob.name: ok}, **needs)


@pytest.mark.parametrize("knob", [k for k in knobs.CONFIG_KNOBS if k.choices and k.scope == "cell"],
                         ids=lambda k: k.name)
def test_choices_come_from_the_table(knob):
    with pytest.raises(ConfigError, match="did you mean"):
        make_config("default", **{knob.name: [knob.allowed()[0] + "x"]})


def test_defaults_come_from_the_table():
    cfg = make_config("default")
    for k in knobs.CONFIG_KNOBS:
        if k.default is not None and not k.per_target:
            assert getattr(cfg, k.name) == k.default, k.name
    assert cfg.pool_size == {}
    assert cfg.targets == [n for n, t in TARGETS.items() if t.core]


def test_switches_follow_the_table():
    over = parse("--no-probe", "--fixed-window", "--pin")
    assert (over.probe, over.adapt_window, over.pin) == (False, False, True)
    over = parse()
    assert (over.probe, over.adapt_window, over.pin) == (None, None, None)


# ----------------------------------------------------------------------------- pool sizes


def test_pool_sizes_per_target_and_plain_list():
    over = parse("--targets", "thread-pool,process-pool,mixed,correct-async", "--scenarios", "cpu",
                 "--workers", "1", "--pool-size", "thread-pool=5,10,20", "--pool-size", "process-pool=1,2",
                 "--pool-size", "3,6")
    cfg = make_config("default", **vars(over))
    cells = build_cells(cfg, cores=2)
    by_target = {t: [c.pool_size for c in cells if c.target == t] for t in cfg.targets}
    assert by_target == {"thread-pool": [5, 10, 20], "process-pool": [1, 2], "mixed": [3, 6],
                         "correct-async": [None]}  # a target without a pool is not multiplied
    assert cfg.swept() == ("pool_size",)
    assert [c.cell_id for c in cells if c.target == "thread-pool"] == [
        "thread-pool_cpu_w1_u32_p5_r1", "thread-pool_cpu_w1_u32_p10_r1", "thread-pool_cpu_w1_u32_p20_r1"]
    assert [c.cell_id for c in cells if c.target == "correct-async"] == ["correct-async_cpu_w1_u32_r1"]


def test_pool_size_default_is_each_targets_own():
    cells = build_cells(make_config("default", targets=["thread-pool", "mixed", "fake-async"],
                                    scenarios=["io"], workers=[1]), cores=2)
    assert [(c.target, c.pool_size) for c in cells] == [("thread-pool", 40), ("mixed", 4),
                                                        ("fake-async", None)]


@pytest.mark.parametrize("spec, needle", [
    ("fake-async=2,4", "no pool"),
    ("thread-poll=2", "did you mean 'thread-pool'"),
    ("process-pool=2", "not among the targets"),
    ("thread-pool=0", "--pool-size 0"),
])
def test_bad_pool_sizes(spec, needle):
    over = parse("--targets", "thread-pool,fake-async", "--pool-size", spec)
    with pytest.raises(ConfigError, match=needle):
        make_config("default", **vars(over))


def test_same_pool_target_twice_is_refused():
    with pytest.raises(ConfigError, match="given twice"):
        parse("--pool-size", "thread-pool=1", "--pool-size", "thread-pool=2")


# ----------------------------------------------------------------------------- cells


def test_cells_are_the_product_with_unique_identity():
    cfg = make_config("default", targets=["thread-pool", "correct-async"], scenarios=["io", "cpu"],
                      workers=[1, 2], users=[8, 16], pool_size=[4, 8], loop=["uvloop", "asyncio"],
                      http_client=["httpx", "aiohttp"], repeat=2)
    cells = build_cells(cfg, cores=2)
    # thread-pool: 2 scen × 2 W × 2 U × 2 P × 2 loop × 2 client; correct-async without the pools
    assert len(cells) == 2 * (2 * 2 * 2 * 2 * 2 * 2 + 2 * 2 * 2 * 2 * 2)
    assert len({c.cell_id for c in cells}) == len(cells)
    assert len({c.key for c in cells}) == len(cells)
    assert set(cfg.swept()) == {"workers", "users", "pool_size", "loop", "http_client"}


def test_cell_key_of_a_written_row_matches_the_cell(tmp_path):
    """The resume key is computed alike from a Cell and from its row read back as text."""
    cfg = make_config("default", targets=["thread-pool", "correct-async"], scenarios=["io"], workers=[1],
                      pool_size=[2, 4], io_ms=[10, 20])
    cells = build_cells(cfg, cores=2)
    results = tmp_path / "results.csv"
    for cell in cells:
        raw = tmp_path / "raw" / cell.cell_id
        raw.mkdir(parents=True)
        store.append_row(results, failed_row(base_row(cell, raw, tmp_path), "crafted"))
    assert store.done_keys(results) == {c.key for c in cells}
    with open(results, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["raw_dir"] for r in rows] == [f"raw/{c.cell_id}" for c in cells]
    assert rows[0]["pool_size"] == "2" and rows[-1]["pool_size"] == ""


def test_cell_env_and_launch_filter_follow_the_table(monkeypatch):
    [cell] = build_cells(make_config("default", **ONE, io_ms=[7], probe=False), cores=2)
    env = cell.env()
    for k in knobs.CELL_KNOBS:
        if k.env and (not k.scenarios or cell.scenario in k.scenarios) and k.default is not None:
            assert k.env in env, k.env
    assert env["IO_MS"] == "7" and env["PROBE"] == "0" and env["POOL_SIZE"] == "40"
    for var in knobs.TARGET_ENV_VARS:
        monkeypatch.setenv(var, "from-the-shell")
    monkeypatch.setenv("UVICORN_PORT", "1")
    base = launch.target_base_env()
    assert not set(knobs.TARGET_ENV_VARS) & set(base) and "UVICORN_PORT" not in base


def test_env_knobs_round_trip_through_settings_parsing():
    """What a Cell writes into the environment, a worker reads back as the same value."""
    [cell] = build_cells(make_config("default", **ONE, cpu_kind=["native"], http_connections=[7]), cores=2)
    env = cell.env()
    for k in knobs.CELL_KNOBS:
        if k.env and not k.scenarios:
            assert k.from_env(env) == cell.knobs[k.name], k.name
    [db_cell] = build_cells(make_config("default", targets=["correct-async"], scenarios=["db"], workers=[1],
                                        db_pool=[3], db_driver=["psycopg"], db_ms=[5]), cores=2)
    for k in knobs.CELL_KNOBS:
        if k.env:
            assert k.from_env(db_cell.env()) == db_cell.knobs[k.name], k.name


def test_old_meta_knobs_still_make_a_config():
    """meta.json of a run made before the knobs took lists (scalars, pool_size null)."""
    old = dict(targets=["fake-async"], scenarios=["io"], workers=[1], users=[4], duration=2.0, warmup=0.5,
               io_ms=50, cpu_ms=20, fanout=3, pool_size=None, cpu_kind="python", http_connections=100,
               http_client="httpx", loop="uvloop", repeat=1, probe=True, adapt_window=True, pin=False,
               launch="uvicorn")
    cfg = make_config("default", **old)
    assert cfg.io_ms == [50] and cfg.pool_size == {}
    assert make_config("default", **cfg.knobs()) == cfg


def test_product_order_groups_a_target():
    cfg = make_config("default", targets=["fake-async", "correct-async"], scenarios=["io"], workers=[1, 2])
    order = [c.target for c in build_cells(cfg, cores=2)]
    assert order == [k for k, _ in itertools.groupby(order) for _ in range(2)]


# ----------------------------------------------------------------------------- the tune preset


def test_tune_preset_asks_the_articles_pool_questions():
    from harness.data.matrix import cores_available, make_plan, plan_cells
    from harness.run.sweep import estimate_s

    plan = make_plan("tune")
    cells = plan_cells(plan, cores=2)
    by = {}
    for c in cells:
        by.setdefault((c.target, c.scenario), []).append(c)
    assert set(by) == {("thread-pool", "io"), ("process-pool", "cpu"), ("mixed", "cpu"),
                       ("correct-async", "io"), ("correct-async", "db")}
    users = by["thread-pool", "io"][0].users
    pools = [c.pool_size for c in by["thread-pool", "io"]]
    assert min(pools) < users < max(pools) and users in pools  # around the user count
    k = cores_available()
    for target in ("process-pool", "mixed"):
        sizes = [c.pool_size for c in by[target, "cpu"]]
        assert sizes[0] == 1 and k in sizes and max(sizes) >= 2 * k
    assert len({c.http_connections for c in by["correct-async", "io"]}) >= 4
    db_pools = [c.db_pool for c in by["correct-async", "db"]]
    assert min(db_pools) < users and max(db_pools) == users  # from pool-starved up to one per user
    assert all(c.workers == 1 for c in cells)
    assert len({c.cell_id for c in cells}) == len(cells)
    # the planned time (windows + the per-cell start/stop guess) leaves room in 10 minutes
    assert estimate_s(cells) < 8 * 60


def test_tune_overrides_apply_to_every_part_and_one_part_presets_refuse_plans():
    from harness.data.matrix import make_plan

    plan = make_plan("tune", duration=3.0, repeat=2)
    assert all(cfg.duration == 3.0 and cfg.repeat == 2 for cfg in plan)
    with pytest.raises(ConfigError, match="parts"):
        make_config("tune")


def test_resume_rebuilds_a_plan_from_meta_parts():
    from harness.cli import _saved_plan
    from harness.data.matrix import make_plan

    plan = make_plan("tune")
    meta = {"knobs": plan[0].knobs(), "parts": [cfg.knobs() for cfg in plan]}
    assert _saved_plan(meta) == plan
    assert _saved_plan({"knobs": plan[0].knobs()}) == plan[:1]


def test_every_flagged_knob_has_exactly_one_help_group():
    grouped = [name for names in knobs.HELP_GROUPS.values() for name in names]
    assert len(grouped) == len(set(grouped)), "a knob in two help groups"
    flagged = {k.name for k in knobs.CONFIG_KNOBS if k.flag is not None}
    assert set(grouped) == flagged


def test_run_help_shows_groups_in_order_and_starts_with_examples():
    from harness.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["run"].format_help()
    head = text.splitlines()[:30]
    assert any("bench.py run --preset smoke" in line for line in head)
    places = [text.index(f"\n{title}:\n") for title in [*knobs.HELP_GROUPS, "output"]]
    assert places == sorted(places)
    for knob in knobs.CONFIG_KNOBS:
        if knob.flag:
            assert knob.flag in text


def test_thread_tokens_leave_thread_pool_cells_alone():
    # thread-pool sizes the same limiter with --pool-size (its ceiling uses it): --thread-tokens would
    # contradict it, so its cells neither multiply nor set THREAD_TOKENS
    over = parse("--targets", "thread-pool,fake-async", "--scenarios", "io", "--workers", "1",
                 "--thread-tokens", "40,80")
    cells = build_cells(make_config("default", **vars(over)), cores=2)
    tp = [c for c in cells if c.target == "thread-pool"]
    fa = [c for c in cells if c.target == "fake-async"]
    assert tp and all(c.knobs["thread_tokens"] is None and "THREAD_TOKENS" not in c.env() for c in tp)
    assert sorted(c.knobs["thread_tokens"] for c in fa) == [40, 80]
    assert sorted(c.env()["THREAD_TOKENS"] for c in fa) == ["40", "80"]
