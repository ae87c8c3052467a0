"""Rewrite bench/RESULTS.md and bench/RESULTS.png from a run of bench/run.py (default: the newest).

Usage: python bench/report.py [bench/results/<run>.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
ORIGINAL_CHARGES_PER_S = 110.0

DESCRIPTIONS = {
    "pgbench_spread": "pgbench: one charge's SQL, 50 merchants",
    "pgbench_hot": "pgbench: one charge's SQL, one merchant",
    "charge_spread": "POST /wallet/charge, 50 merchants",
    "charge_hot": "POST /wallet/charge, one merchant",
    "charges_bulk": "POST /wallet/charges, batches of 100, 50 merchants (req/s = batches/s)",
    "deposit": "POST /wallet/deposit",
    "info": "GET /wallet/info/<wallet>",
    "hold_capture": "POST /wallet/hold, then its /capture (half each)",
    "refund": "POST /wallet/refund, 0.01 of a charge",
    "charge_spread_webhooks": "POST /wallet/charge, 50 merchants, each with a webhook endpoint the worker delivers to",
}


def describe(name: str) -> str:
    if name.startswith("history_"):
        return f"GET /wallet/history, first page, {int(name.removeprefix('history_')):,} operations"
    return DESCRIPTIONS.get(name, name)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not a or not b else a / b


def targets(scenarios: dict, cores: int = 0, audit: dict | None = None) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, verdict, met) rows of the issue's targets, then informative rows."""
    get = scenarios.get
    rows = []
    spread, hot = get("charge_spread"), get("charge_hot")
    pg_spread = get("pgbench_spread")
    value = ratio(spread and spread["rps"], pg_spread and pg_spread["rps"])
    rows.append(("charges spread ≥ 0.30 × pgbench spread", value, 0.30))
    value = ratio(spread and spread["rps"], ORIGINAL_CHARGES_PER_S)
    rows.append(("charges spread ≥ 5 × the original (110/s)", value, 5.0))
    bulk = get("charges_bulk")
    if bulk:
        value = ratio(bulk["charges_per_s"], pg_spread and pg_spread["rps"])
        rows.append(("bulk charges per s ≥ 3 × pgbench spread (single charges)", value, 3.0))
    value = ratio(hot and hot["rps"], spread and spread["rps"])
    rows.append(("charges hot ≥ 0.9 × charges spread", value, 0.9))
    histories = sorted(
        (int(name.removeprefix("history_")), s) for name, s in scenarios.items() if name[:8] == "history_"
    )
    if len(histories) >= 2:
        (small, first), (large, last) = histories[0], histories[-1]
        value = ratio(last["p99_ms"], first["p99_ms"])
        rows.append((f"history p99 at {large:,} ≤ 1.2 × p99 at {small:,}", value, -1.2))
    if len(histories) >= 2:
        cost = [s["cpu_ms_per_request"]["server"] + s["cpu_ms_per_request"]["database"] for _, s in histories]
        rows.append(
            (f"(CPU per history page at {large:,} ÷ at {small:,}, server + database)", cost[-1] / cost[0], None)
        )
    hold_capture, refund = get("hold_capture"), get("refund")
    if hold_capture:
        # Each pair is a hold and its capture: two requests, two transactions.
        value = ratio(hold_capture["rps"] / 2, spread and spread["rps"])
        rows.append(("(hold + capture pairs per s ÷ charges spread per s)", value, None))
    if refund:
        rows.append(("(refunds per s ÷ charges spread per s)", ratio(refund["rps"], spread and spread["rps"]), None))
    webhooks = get("charge_spread_webhooks")
    if webhooks:
        # Events are written with every charge either way; this is what delivering them costs the charges.
        value = ratio(webhooks["rps"], spread and spread["rps"])
        rows.append(("charges with subscribed endpoints ≥ 0.9 × without", value, 0.9))
        rows.append(
            ("(webhook deliveries per s, one worker, to a local receiver)", webhooks["webhook_deliveries_per_s"], None)
        )
    if spread and pg_spread and cores:
        value = ratio(ceiling(spread, cores), ceiling(pg_spread, cores))
        rows.append(("(charges spread ÷ pgbench spread, by CPU ceilings)", value, None))
    out = []
    for label, value, bound in rows:
        if bound is None:
            out.append((label, "–" if value is None else f"{value:.2f}", "information", None))
            continue
        if value is None:
            out.append((label, "not run", "–", None))
            continue
        met = value <= -bound if bound < 0 else value >= bound
        out.append((label, f"{value:.2f}", "met" if met else f"missed by {abs(value - abs(bound)):.2f}", met))
    non2xx = sum(s.get("non2xx", 0) + sum(s.get("socket_errors", {}).values()) for s in scenarios.values())
    failed = sum(s.get("failed", 0) for s in scenarios.values())
    out.append(("zero non-2xx (and socket errors)", str(non2xx), "met" if non2xx == 0 else "missed", non2xx == 0))
    conserved = all(s["money"]["conserved"] for s in scenarios.values())
    out.append(
        (
            "money conserved after every scenario",
            "yes" if conserved else "NO",
            "met" if conserved else "missed",
            conserved,
        )
    )
    if audit is not None:
        passed = audit["passed"]
        out.append(
            (
                "manage.py audit_ledger at the end",
                "passed" if passed else "FAILED",
                "met" if passed else "missed",
                passed,
            )
        )
    if failed:
        out.append(("pgbench failed transactions", str(failed), "–", None))
    return out


def chart(run: dict, path: Path) -> None:
    names = list(run["scenarios"])
    rps = [run["scenarios"][name]["rps"] for name in names]
    p99 = [run["scenarios"][name].get("p99_ms") for name in names]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), layout="constrained")
    colors = ["#999999" if name.startswith("pgbench") else "#3366aa" for name in names]
    left.barh(names, rps, color=colors)
    left.invert_yaxis()
    left.set_xlabel("requests (pgbench: transactions) per second")
    left.set_title("Throughput (grey: pgbench, the database's limit)")
    for y, value in enumerate(rps):
        left.annotate(f"{value:,.0f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    http = [(name, value) for name, value in zip(names, p99, strict=True) if value is not None]
    right.barh([name for name, _ in http], [value for _, value in http], color="#cc6633")
    right.invert_yaxis()
    right.set_xlabel("p99 latency, ms")
    right.set_title("p99 latency (wrk)")
    for y, (_, value) in enumerate(http):
        right.annotate(f"{value:,.1f}", (value, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
    settings = run["settings"]
    figure.suptitle(
        f"make bench {run['started_at'][:16]}Z, commit {run['commit'][:8]}, {settings['duration_s']} s per scenario, "
        f"{run['machine']['cores']} cores",
        fontsize=10,
    )
    figure.savefig(path, dpi=90)
    plt.close(figure)


def ceiling(scenario: dict, cores: int) -> float | None:
    """req/s if the machine ran only this scenario and CPU were the only limit: cores ÷ the CPU one
    request cost the server, the database and the load generator. Robust to other load on the
    machine (it uses CPU time, not wall time); meaningless where locks, not CPU, are the limit."""
    per = scenario["cpu_ms_per_request"]
    spent = per["server"] + per["database"] + per["database_background"] + per["load_generator"]
    return cores * 1000 / spent if spent else None


def cpu_cell(scenario: dict) -> str:
    per = scenario["cpu_ms_per_request"]
    return (
        f"{per['server']:.2f} / {per['database'] + per['database_background']:.2f} / "
        f"{per['load_generator']:.2f} / {per['other']:.2f}"
    )


def replica_lines(replica: dict | None) -> list[str]:
    """The replica_reads scenario: each read served by a primary alone, then with one streaming replica."""
    if not replica:
        return []
    lines = [
        "",
        "## Reads with a streaming replica (`replica_reads`)",
        "",
        "A throwaway primary"
        + (f" (PostgreSQL {replica['postgresql']})" if "postgresql" in replica else "")
        + " and a replica made from it with `pg_basebackup -R` (the shared PostgreSQL takes no "
        "replication connections), the service served by `make run` on the primary alone, then again with "
        "`WALLET_SERVICE_READ_REPLICA_URLS`; the same wrk scenarios. CPU per request from /proc: each cluster's "
        "postmaster and children, the server's process tree. On two shared cores the replica competes with the "
        "primary for the same CPU: what counts is the primary's CPU per request it takes over.",
        "",
        "| read | served by | req/s | p50 ms | p99 ms | non-2xx | CPU ms per request: primary / replica / server "
        "| primary CPU moved off |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    modes = replica["modes"]
    alone = modes.get("primary only", {})
    for mode, scenarios in modes.items():
        for name, s in scenarios.items():
            cpu = s["cpu_ms_per_request"]
            moved = ""
            if mode != "primary only" and name in alone and alone[name]["cpu_ms_per_request"]["primary"]:
                before = alone[name]["cpu_ms_per_request"]["primary"]
                moved = f"{before - cpu['primary']:.3f} ms ({(before - cpu['primary']) / before:.0%})"
            errors = s["non2xx"] + sum(s["socket_errors"].values())
            lines.append(
                f"| {describe(name)} | {mode} | {s['rps']:,.1f} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {errors} "
                f"| {cpu['primary']:.3f} / {cpu['replica']:.3f} / {cpu['server']:.3f} | {moved} |"
            )
    return lines


def markdown(run: dict, previous: list[dict]) -> str:
    settings, machine, scenarios = run["settings"], run["machine"], run["scenarios"]
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py, then bench/report.py); raw data of every run in `bench/results/`.",
        "How to run it and what each scenario does: `bench/README.md`; what the numbers mean: `docs/PERFORMANCE.md`.",
        "",
        f"- date: {run['started_at']}",
        f"- commit: `{run['commit'][:12]}` {run['commit_subject']}"
        + (" (with uncommitted changes)" if run["dirty"] else ""),
        f"- machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"Linux {machine['kernel']}, "
        f"PostgreSQL {machine['postgresql']}, Python {machine['python']}; load average at start "
        f"{' / '.join(str(v) for v in machine['load_average_at_start'])}",
        f"- settings: {settings['duration_s']} s per scenario after {settings['warmup_s']} s of warm-up; wrk "
        f"{settings['wrk_threads']} threads, {settings['wrk_connections']} connections; pgbench "
        f"{settings['pgbench_clients']} clients; {settings['gunicorn_workers']} "
        f"{settings.get('server', 'gunicorn')} workers "
        f"(WALLET_SERVICE_WORKERS: {settings['workers_env']}"
        + (f"; GUNICORN_CMD_ARGS: `{settings['gunicorn_cmd_args']}`" if settings.get("gunicorn_cmd_args") else "")
        + f"); {settings['merchants']} merchants, "
        f"{settings['charged_wallets']} charged wallets",
    ]
    if settings["short"]:
        lines += [
            "",
            f"**A short run ({settings['duration_s']} s per scenario), for development: not the reference run.**",
        ]
    if machine["load_average_at_start"][0] > 0.5:
        lines += [
            "",
            f"**The machine was not quiet (load average {machine['load_average_at_start'][0]} at start; the `other` "
            "CPU column is what processes outside the benchmark used): compare ratios to pgbench of the same run, "
            "not absolute numbers.**",
        ]
    lines += [
        "",
        "![throughput and p99 per scenario](RESULTS.png)",
        "",
        "| scenario | req/s | × pgbench | p50 ms | p99 ms | non-2xx "
        "| CPU ms per request: server / database / wrk / other | CPU ceiling req/s | money |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|",
    ]
    pg = {"charge_spread": "pgbench_spread", "charge_hot": "pgbench_hot"}
    for name, s in scenarios.items():
        limit = scenarios.get(pg.get(name, ""), {}).get("rps")
        times = f"{s['rps'] / limit:.2f}" if limit else ""
        if "p99_ms" in s:
            latency = f"{s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['non2xx'] + sum(s['socket_errors'].values())}"
        else:
            latency = f"(mean {s['mean_ms']:.1f}) | | {s['failed']} failed"
        money = "conserved" if s["money"]["conserved"] else "**NOT CONSERVED**"
        top = ceiling(s, machine["cores"])
        top_cell = f"{top:,.0f}" if top else ""
        lines.append(
            f"| {describe(name)} | {s['rps']:,.1f} | {times} | {latency} | {cpu_cell(s)} | {top_cell} | {money} |"
        )
    lines += [
        "",
        "CPU is measured from /proc: the server is `make run`'s process tree (its main process and workers), the "
        "database is the backends connected to the benchmark database plus PostgreSQL's background writers, wrk "
        "(or pgbench) is the load generator, other is everything else the machine ran meanwhile. The CPU "
        "ceiling is the machine's cores divided by the CPU one request cost the server, the database and the "
        "load generator: the rate a quiet machine would reach if CPU were the only limit (not so for the "
        "hot-merchant rows, where one row lock is). On a busy machine it is steadier than req/s.",
    ]
    lines += replica_lines(run.get("replica_reads"))
    lines += [
        "",
        "## Targets (issue 5)",
        "",
        "| target | measured | verdict |",
        "|---|---:|---|",
    ]
    lines += [
        f"| {label} | {value} | {verdict} |"
        for label, value, verdict, _ in targets(scenarios, machine["cores"], run.get("audit_ledger"))
    ]
    if previous:
        lines += [
            "",
            "## Earlier runs",
            "",
            "| date | commit | s per scenario | charges spread req/s (× pgbench) | hot / spread "
            "| history p99 ms, smallest → largest |",
            "|---|---|---:|---|---:|---|",
        ]
        for old in previous:
            sc = old["scenarios"]
            spread, hot, pg_spread = sc.get("charge_spread"), sc.get("charge_hot"), sc.get("pgbench_spread")
            cell = f"{spread['rps']:,.0f}" if spread else "–"
            if spread and pg_spread:
                cell += f" ({spread['rps'] / pg_spread['rps']:.2f})"
            hot_ratio = f"{hot['rps'] / spread['rps']:.2f}" if hot and spread else "–"
            hist = [f"{s['p99_ms']:.0f}" for n, s in sorted(sc.items(), key=lambda i: i[0]) if n.startswith("history_")]
            lines.append(
                f"| {old['started_at'][:16]} | `{old['commit'][:8]}` | {old['settings']['duration_s']} | {cell} "
                f"| {hot_ratio} | {' → '.join(hist) or '–'} |"
            )
    # The instruction counts per request (bench/instructions.py) are kept by hand in bench/INSTRUCTIONS.md, one row
    # per change, and carried into every rewrite of RESULTS.md.
    instructions = BENCH / "INSTRUCTIONS.md"
    if instructions.exists():
        lines += ["", instructions.read_text().strip()]
    return "\n".join(lines) + "\n"


def main() -> None:
    runs = sorted(RESULTS.glob("*.json"))
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else (runs[-1] if runs else None)
    if path is None:
        sys.exit("no run in bench/results/; run `make bench` first")
    run = json.loads(path.read_text())
    previous = [json.loads(p.read_text()) for p in reversed(runs) if p.resolve() != path.resolve()][:20]
    chart(run, BENCH / "RESULTS.png")
    (BENCH / "RESULTS.md").write_text(markdown(run, previous))
    print(f"\n{'scenario':<58} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  money")
    for name, s in run["scenarios"].items():
        errors = s.get("non2xx", s.get("failed", 0)) + sum(s.get("socket_errors", {}).values())
        p50, p99 = s.get("p50_ms", ""), s.get("p99_ms", "")
        money = "conserved" if s["money"]["conserved"] else "NOT CONSERVED"
        print(f"{describe(name):<58} {s['rps']:>9,.1f} {p50:>8} {p99:>8} {errors:>8}  {money}")
    for line in replica_lines(run.get("replica_reads"))[1:]:
        print(line)
    print("\ntargets (issue 5):")
    for label, value, verdict, _ in targets(run["scenarios"], run["machine"]["cores"], run.get("audit_ledger")):
        print(f"  {label:<50} {value:>8}  {verdict}")
    print("\nbench/RESULTS.md and bench/RESULTS.png rewritten.")


if __name__ == "__main__":
    main()
