"""Medians, ratios against runserver and waitress, the targets check, the markdown table."""

from __future__ import annotations

from typing import Any

from bench import transfer
from bench.scenarios import DB_LABEL, HTTP_SCENARIOS, median_of
from bench.servers import SERVERS

POOL_WORKERS = 16  # what bench/servers.py passes to --workers for the pool
SLOW_IDEAL = 320.0  # 16 workers x (1000 ms / 50 ms): the most (c) can do
LOG_COST_LIMIT = 0.05  # the request log may cost the pool at most 5 % of its requests/s
# (server with the request log on, the same server with it off)
LOG_PAIRS = (("pool", "pool-nolog"), ("runserver", "runserver-nolog"))


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 3) if value is not None and base else None


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """Median per server and scenario, ratios, and the target checks."""
    http: dict[str, dict[str, dict[str, Any]]] = {}
    for key, by_server in results["http"].items():
        medians = {n: median_of(runs, "requests_per_s") for n, runs in by_server.items()}
        http[key] = {
            n: {
                "requests_per_s": medians[n],
                "vs_runserver": _ratio(medians[n], medians.get("runserver")),
                "vs_waitress": _ratio(medians[n], medians.get("waitress")),
                # wrk counts a "read" error whenever the server closes a connection it
                # wanted to reuse (runserver does after each response): not a failure.
                "errors": sum(
                    c for r in by_server[n] for kind, c in r["errors"].items() if kind != "read"
                ),
                "closed_by_server": sum(r["errors"].get("read", 0) for r in by_server[n]),
            }
            for n in by_server
        }
    db: dict[str, dict[str, Any]] = {}
    rs_time = median_of(results["db"].get("runserver", []), "elapsed_s")
    for name, runs in results["db"].items():
        elapsed = median_of(runs, "elapsed_s")
        db[name] = {
            "elapsed_s": elapsed,
            "sessions_opened": median_of(runs, "sessions_opened"),
            "left_open": median_of(runs, "left_open"),
            "time_vs_runserver": _ratio(elapsed, rs_time),
            "errors": sum(r["errors"] for r in runs),
        }
    moved = transfer.summarise(results.get("transfer", {}))
    return {
        "http": http,
        "db": db,
        "transfer": moved,
        "log_cost": _log_cost(http),
        "targets": _targets(http, db, moved),
    }


def _log_cost(http: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per server with a log-off twin and scenario: 1 - (log on / log off) requests/s."""
    cost: dict[str, dict[str, float]] = {}
    for on, off in LOG_PAIRS:
        for key, by_server in http.items():
            with_log = by_server.get(on, {}).get("requests_per_s")
            without = by_server.get(off, {}).get("requests_per_s")
            if with_log is not None and without:
                cost.setdefault(on, {})[key] = round(1 - with_log / without, 3)
    return cost


def _target(name: str, ok: bool | None, detail: str) -> dict[str, Any]:
    return {"target": name, "ok": ok, "detail": detail}


def _targets(
    http: dict[str, Any], db: dict[str, Any], moved: dict[str, Any]
) -> list[dict[str, Any]]:
    out = []
    for key, server, base, need in (
        ("a", "pool", "waitress", 2.0),
        ("b", "pool", "waitress", 1.5),
        ("a", "pool", "runserver", 2.0),
        ("a", "pool2", "waitress", 2.0),
    ):
        ratio = http.get(key, {}).get(server, {}).get(f"vs_{base}")
        detail = "not measured" if ratio is None else f"{ratio:.2f}x"
        if ratio is not None and ratio < need:
            detail += f" ({(need - ratio) / need:.0%} short)"
        ok = None if ratio is None else ratio >= need
        out.append(_target(f"({key}) {server} >= {need:g}x {base}", ok, detail))
    for key in ("a", "b"):
        cost = _log_cost(http).get("pool", {}).get(key)
        detail = "not measured" if cost is None else f"{cost:.1%} fewer requests/s than log off"
        ok = None if cost is None else cost <= LOG_COST_LIMIT
        out.append(_target(f"({key}) pool's request log costs <= 5%", ok, detail))
    rps = http.get("c", {}).get("pool", {}).get("requests_per_s")
    need = 0.95 * SLOW_IDEAL
    detail = "not measured" if rps is None else f"{rps:,.0f} req/s ({rps / SLOW_IDEAL:.0%} of 320)"
    if rps is not None and rps < need:
        detail += f", {need - rps:,.0f} req/s short"
    ok = None if rps is None else rps >= need
    out.append(_target("(c) pool >= 95% of 320 req/s", ok, detail))
    pool_d = db.get("pool", {})
    opened = pool_d.get("sessions_opened")
    out.append(
        _target(
            f"(d) pool sessions opened <= {POOL_WORKERS}",
            None if opened is None else opened <= POOL_WORKERS,
            "not measured" if opened is None else f"{opened:g} opened",
        )
    )
    ratio = pool_d.get("time_vs_runserver")
    out.append(
        _target(
            "(d) pool DB end-to-end time >= 25% below runserver",
            None if ratio is None else ratio <= 0.75,
            "not measured" if ratio is None else f"{(ratio - 1):+.0%} time vs runserver",
        )
    )
    for key, base in (("e", "waitress"), ("f", "runserver")):
        ratio = moved.get(key, {}).get("pool", {}).get(f"vs_{base}")
        out.append(
            _target(
                f"({key}) pool time <= {base}'s",
                None if ratio is None else ratio <= 1.0,
                "not measured" if ratio is None else f"{ratio:.2f}x {base}'s time",
            )
        )
    return out


def _cell(entry: dict[str, Any]) -> str:
    rps = entry["requests_per_s"]
    if rps is None:
        return "-"
    ratios = [
        f"{entry[k]:.2f}x" if entry[k] is not None else "-" for k in ("vs_runserver", "vs_waitress")
    ]
    errors = f", {entry['errors']} errors" if entry["errors"] else ""
    return f"{rps:,.0f} ({' / '.join(ratios)}){errors}"


def markdown(results: dict[str, Any], summary: dict[str, Any]) -> str:
    """The report: settings line, throughput table, DB table, targets."""
    s = results["settings"]
    names = list(s["servers"])
    lines = [
        f"Median of {s['repeat']} x {s['duration_s']} s runs (wrk --threads {s['wrk_threads']}),"
        f" Python {s['python']}, {s['machine']}; total {results.get('elapsed_s', 0):g} s;"
        f" load average {s.get('load_at_start', '?')} at start,"
        f" {s.get('load_at_end', '?')} at end.",
        "",
    ]
    keys = [k for k in HTTP_SCENARIOS if k in summary["http"]]
    if keys:
        lines.append("Requests/s (ratio vs runserver / vs waitress):")
        lines.append("")
        head = " | ".join(f"({k}) {HTTP_SCENARIOS[k].label}" for k in keys)
        lines += [f"| server | {head} |", "| --- |" + " ---: |" * len(keys)]
        for n in names:
            cells = " | ".join(_cell(summary["http"][k][n]) for k in keys)
            lines.append(f"| {SERVERS[n].label} | {cells} |")
        lines.append("")
    for server, by_key in summary.get("log_cost", {}).items():
        costs = ", ".join(f"({k}) {v:+.1%}" for k, v in by_key.items())
        lines += [f"Cost of the request log for {SERVERS[server].label}: {costs}", ""]
    if summary["db"]:
        lines.append(f"(d) {DB_LABEL}, {s['db_requests']} requests:")
        lines.append("")
        lines += [
            "| server | sessions opened | left open | end-to-end | time vs runserver |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for n in names:
            d = summary["db"][n]
            ratio = d["time_vs_runserver"]
            errors = f" ({d['errors']} errors)" if d["errors"] else ""
            lines.append(
                f"| {SERVERS[n].label} | {_num(d['sessions_opened'])} | {_num(d['left_open'])} | "
                f"{_num(d['elapsed_s'], '{:.3f} s')}{errors} | "
                f"{'-' if ratio is None else f'{ratio - 1:+.0%}'} |"
            )
        lines.append("")
    lines += transfer.markdown(summary.get("transfer", {}), {n: SERVERS[n].label for n in names})
    if results.get("failures"):
        lines.append("Failures (excluded from the medians):")
        lines.append("")
        lines += [f"- {f.splitlines()[0]}" for f in results["failures"]]
        lines.append("")
    lines.append("Targets:")
    lines.append("")
    for t in summary["targets"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a "}[t["ok"]]
        lines.append(f"- [{mark}] {t['target']}: {t['detail']}")
    return "\n".join(lines)


def _num(value: float | None, fmt: str = "{:g}") -> str:
    return "-" if value is None else fmt.format(value)
