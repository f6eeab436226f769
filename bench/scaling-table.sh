#!/usr/bin/env bash
# Prints the per-watch cost of every scale run in bench/results/ as a Markdown table: the cost of
# a poolwatch deployment should grow linearly with the number of watches, so the per-watch
# columns should stay flat.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/results"
python3 - scale-*.json <<'PY'
import json, sys
runs = sorted(
    (json.load(open(path)) for path in sys.argv[1:]),
    key=lambda r: (r.get("pool_details", False), r["watches"], r.get("upstream_rate", 20)),
)
print("| watches | pool details | budget (/s, burst) | all Ready (s) | rate-limit floor (s) | calls/watch/interval | status writes/watch | peak RSS (MiB) | RSS per added watch (KiB) | CPU (% of a core) | CPU per 1000 watches (%) |")
print("|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in runs:
    # Memory per watch as the slope from the largest run with fewer watches: the fixed cost of the
    # process (runtime, clients, TLS) does not belong to any watch. Runs of the same size (other
    # budgets) share that base.
    # Runs with pool details are compared with runs with pool details.
    smaller = [p for p in runs if p["watches"] < r["watches"]
               and p.get("pool_details", False) == r.get("pool_details", False)]
    if smaller:
        base = smaller[-1]
        added = (r["steady_rss_mib"] - base["steady_rss_mib"]) * 1024 / (r["watches"] - base["watches"])
        slope = f"{added:.1f}"
    else:
        slope = "-"
    details = f"{r['pools_per_workspace']} pools" if r.get("pool_details") else "-"
    print(f"| {r['watches']} | {details} | {r.get('upstream_rate', 20)}, {r.get('upstream_burst', 40)} | {r['all_ready_seconds']} | {r['rate_limit_floor_seconds']} | {r['calls_per_watch_per_interval']} | "
          f"{r['status_writes_per_watch']} | {r['peak_rss_mib']} | {slope} | "
          f"{r['steady_cpu_percent_of_one_core']} | {r['cpu_percent_per_1000_watches']} |")
if runs:
    print(f"\n{runs[0]['cores']} cores, {runs[0]['interval_seconds']} s interval, one access key, distinct workspaces.")
PY
