#!/usr/bin/env python3
"""Summarize one criterion run of the mavg benchmarks as markdown tables and SVG charts.

Reads the median of every benchmark from criterion's output,
``target/criterion/<group>/<function>/<value>/<baseline>/estimates.json`` (with the names
from ``benchmark.json`` beside it), and prints to stdout:

* the headline table (the target ratios),
* one table per single-thread group (median ns per operation, implementation x window),
* the thread-scaling tables (total Mops/s, implementation x thread count),

and, with ``--svg-dir``, writes ``push_threads.svg`` and ``mixed_threads.svg`` (total throughput
vs threads) there. All ratios come from the same baseline directory, that is from one run.

Usage (from the crate root, after ``cargo bench``)::

    python3 benches/summarize.py                      # the latest run ("new")
    python3 benches/summarize.py --baseline before    # a run saved with --save-baseline before
    python3 benches/summarize.py --svg-dir notes/img  # also write the charts there

Needs matplotlib (``pip install matplotlib``) for the charts; the tables need only the
standard library. Given ``--svg-dir`` without matplotlib, the script stops at once and says so.
"""

import argparse
import json
import os
import sys
from collections import defaultdict

WINDOWS = ["16", "1024", "1000000"]
THREADS = ["1", "2", "4", "8"]
# Row order of the single-thread tables: the crate first, then the peers.
IMPLS = [
    "RingAverage",
    "MutexAverage",
    "ShardedAverage",
    "SingleSumSMA",
    "SumTreeSMA",
    "movavg",
    "ta",
    "yata",
    "Mutex<VecDeque>",
]
# Peers whose running sum drifts (candidates for target (a)).
DRIFTING = ["SingleSumSMA", "ta", "yata"]
# Rows of the thread tables; per_thread (no shared write) is the ceiling and the parallelism check.
SHARED = ["MutexAverage", "ShardedAverage", "fetch_add", "per_thread"]


# 95% confidence interval of each median, filled by `load`: {key: (low, high)} in ns.
CI = {}


def load(root, baseline):
    """{(group_id, function_id, value_str): median ns per iteration}; fills CI."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if os.path.basename(dirpath) != baseline or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            meta = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        key = (meta["group_id"], meta["function_id"], meta.get("value_str"))
        out[key] = est["median"]["point_estimate"]
        ci = est["median"]["confidence_interval"]
        CI[key] = (ci["lower_bound"], ci["upper_bound"])
    return out


def ns_ci(group, impl, value):
    """' [low–high]' for a time, or ''."""
    ci = CI.get((group, impl, value))
    return "" if ci is None else f" [{fmt_ns(ci[0])}–{fmt_ns(ci[1])}]"


def mops_ci(group, impl, threads):
    """' [low–high]' Mops/s for a thread benchmark (a time's interval, inverted), or ''."""
    ci = CI.get((group, impl, threads))
    if ci is None:
        return ""
    t = int(threads)
    return f" [{t / ci[1] * 1e3:.0f}–{t / ci[0] * 1e3:.0f}]"


def fmt_ns(ns):
    if ns is None:
        return "–"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    if ns >= 100:
        return f"{ns:.0f} ns"
    if ns >= 10:
        return f"{ns:.1f} ns"
    return f"{ns:.2f} ns"


def mops(data, group, impl, threads):
    """Total throughput in Mops/s: each iteration is `threads` operations (one per thread)."""
    ns = data.get((group, impl, threads))
    return None if ns is None else int(threads) / ns * 1e3


def ratio(a, b):
    return None if a is None or b is None else a / b


def fmt_ratio(r):
    return "–" if r is None else f"{r:.2f}x"


def single_tables(data):
    lines = []
    for op in ["add", "add_read", "read"]:
        for ty in ["f64", "i64"]:
            group = f"{op}/{ty}"
            rows = [i for i in IMPLS if any((group, i, w) in data for w in WINDOWS)]
            if not rows:
                continue
            lines.append(f"#### `{group}` (median time per operation)\n")
            lines.append("| implementation | N = 16 | N = 1024 | N = 1,000,000 |")
            lines.append("| --- | ---: | ---: | ---: |")
            for impl in rows:
                cells = [fmt_ns(data.get((group, impl, w))) for w in WINDOWS]
                lines.append(f"| {impl} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def thread_tables(data):
    lines = []
    for group in ["push/threads", "mixed/threads"]:
        lines.append(f"#### `{group}` (total Mops/s, all threads together; median)\n")
        lines.append("| implementation | 1 thread | 2 threads | 4 threads | 8 threads |")
        lines.append("| --- | ---: | ---: | ---: | ---: |")
        for impl in SHARED:
            cells = []
            for t in THREADS:
                m = mops(data, group, impl, t)
                cells.append("–" if m is None else f"{m:.1f}")
            lines.append(f"| {impl} | " + " | ".join(cells) + " |")
        for label, other in [("Mutex", "MutexAverage"), ("fetch_add", "fetch_add")]:
            cells = [
                fmt_ratio(ratio(mops(data, group, "ShardedAverage", t), mops(data, group, other, t)))
                for t in THREADS
            ]
            lines.append(f"| *Sharded / {label}* | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def compact(data):
    """The short table meant for the README: a few operations, the crate against two peers."""
    cols = ["RingAverage", "MutexAverage", "ShardedAverage", "yata", "SumTreeSMA"]
    rows = [
        ("add, f64, N = 1024", "add/f64", "1024"),
        ("add, f64, N = 1,000,000", "add/f64", "1000000"),
        ("add + read, f64, N = 1024", "add_read/f64", "1024"),
        ("read, f64, N = 1024", "read/f64", "1024"),
        ("read, f64, N = 1,000,000", "read/f64", "1000000"),
        ("add, i64, N = 1024", "add/i64", "1024"),
        ("add + read, i64, N = 1024", "add_read/i64", "1024"),
    ]
    lines = [
        "| one thread, median time per operation | " + " | ".join(cols) + " |",
        "| --- | " + " | ".join("---:" for _ in cols) + " |",
    ]
    for label, group, w in rows:
        cells = [fmt_ns(data.get((group, c, w))) for c in cols]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    cells = []
    for c in cols:
        m = mops(data, "push/threads", c, "2")
        cells.append("–" if m is None else f"{m:.0f} Mops/s")
    lines.append("| **2 threads adding, f64, N = 1024 (total)** | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def headline(data):
    g = data.get
    lines = ["| target | measured (medians [95% CI of the median], one run) | ratio | goal | met? |",
             "| --- | --- | ---: | --- | --- |"]

    # (a) single-thread add+read, f64, N = 1024: RingAverage vs the fastest drifting peer.
    ring = g(("add_read/f64", "RingAverage", "1024"))
    peers = {p: g(("add_read/f64", p, "1024")) for p in DRIFTING}
    peers = {p: v for p, v in peers.items() if v is not None}
    if ring is not None and peers:
        best = min(peers, key=peers.get)
        r = ring / peers[best]
        lines.append(
            f"| (a) add+read f64, N = 1024, one thread | RingAverage {fmt_ns(ring)}"
            f"{ns_ci('add_read/f64', 'RingAverage', '1024')}, fastest drifting peer ({best}) "
            f"{fmt_ns(peers[best])}{ns_ci('add_read/f64', best, '1024')} | {r:.2f}x the peer's time "
            f"| report (exact vs drifting) | – |"
        )

    # (b) two threads adding.
    sh = mops(data, "push/threads", "ShardedAverage", "2")
    mu = mops(data, "push/threads", "MutexAverage", "2")
    fa = mops(data, "push/threads", "fetch_add", "2")
    if None not in (sh, mu, fa):
        r1, r2 = sh / mu, sh / fa
        lines.append(
            f"| (b) 2 threads adding: ShardedAverage vs MutexAverage | "
            f"{sh:.1f}{mops_ci('push/threads', 'ShardedAverage', '2')} vs "
            f"{mu:.1f}{mops_ci('push/threads', 'MutexAverage', '2')} Mops/s "
            f"| {r1:.2f}x | >= 5x | {'yes' if r1 >= 5 else 'no'} |"
        )
        lines.append(
            f"| (b) 2 threads adding: ShardedAverage vs bare fetch_add | "
            f"{sh:.1f}{mops_ci('push/threads', 'ShardedAverage', '2')} vs "
            f"{fa:.1f}{mops_ci('push/threads', 'fetch_add', '2')} Mops/s "
            f"| {r2:.2f}x | >= 0.5x | {'yes' if r2 >= 0.5 else 'no'} |"
        )

    def time_ratio(label, slow, fast, bound):
        """The row `label` comparing the medians of the benchmarks `slow` and `fast`
        ((group, function, value) keys): their ratio and whether it is at most `bound`."""
        s, f = g(slow), g(fast)
        if None not in (s, f):
            r = s / f
            lines.append(
                f"| {label} | "
                f"{fmt_ns(s)}{ns_ci(*slow)} vs "
                f"{fmt_ns(f)}{ns_ci(*fast)} | {r:.2f}x | <= {bound}x "
                f"| {'yes' if r <= bound else 'no'} |"
            )

    # (c) one thread: ShardedAverage add vs RingAverage add (f64, N = 1024).
    for ty in ["f64", "i64"]:
        time_ratio(
            f"(c) one thread, add {ty}, N = 1024: ShardedAverage vs RingAverage",
            (f"add/{ty}", "ShardedAverage", "1024"),
            (f"add/{ty}", "RingAverage", "1024"),
            8,
        )

    # (d) ShardedAverage read at N = 1e6 vs N = 1024.
    for ty in ["f64", "i64"]:
        time_ratio(
            f"(d) ShardedAverage read {ty}: N = 1,000,000 vs N = 1024",
            (f"read/{ty}", "ShardedAverage", "1000000"),
            (f"read/{ty}", "ShardedAverage", "1024"),
            2,
        )
    # (d) as it would be met between adds: every read follows an add, so the searched range moves.
    big = g(("add_read/f64", "ShardedAverage", "1000000"))
    small = g(("add_read/f64", "ShardedAverage", "1024"))
    if None not in (big, small):
        lines.append(
            f"| (d') same, each read right after an add (add_read f64) | {fmt_ns(big)}"
            f"{ns_ci('add_read/f64', 'ShardedAverage', '1000000')} vs {fmt_ns(small)}"
            f"{ns_ci('add_read/f64', 'ShardedAverage', '1024')} | {big / small:.2f}x | <= 2x "
            f"| {'yes' if big / small <= 2 else 'no'} |"
        )
    lines.append("")
    return lines


def import_pyplot():
    """matplotlib's pyplot, drawing to files only; exits with a message if it is missing."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("the charts (--svg-dir) need matplotlib: pip install matplotlib")
    matplotlib.use("Agg")
    # Text stays text, and ids and metadata are fixed, so an unchanged chart is an unchanged file.
    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "mavg"})
    import matplotlib.pyplot as plt

    return plt


# How each row of the thread tables is drawn: color, line style and legend label.
STYLES = {
    "MutexAverage": ("#d62728", "-", "MutexAverage"),
    "ShardedAverage": ("#1f77b4", "-", "ShardedAverage"),
    "fetch_add": (
        "#7f7f7f",
        (0, (6, 4)),
        "one shared AtomicU64::fetch_add (floor of a global order)",
    ),
    "per_thread": ("#2ca02c", (0, (2, 3)), "per-thread counters, nothing shared (ceiling)"),
}


def svg_chart(plt, data, group, title, path):
    """A line chart of total throughput vs thread count on a log scale; False if no data."""
    from matplotlib import ticker

    series = {i: [mops(data, group, i, t) for t in THREADS] for i in SHARED}
    if all(v is None for s in series.values() for v in s):
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for impl, vals in series.items():
        color, dash, label = STYLES[impl]
        points = [(i, v) for i, v in enumerate(vals) if v is not None]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.plot(xs, ys, color=color, linestyle=dash, linewidth=2.5, marker="o", label=label)
        # Mutex and fetch_add labels below their points, the others above, so that close
        # values stay legible.
        below = impl in ("MutexAverage", "fetch_add")
        for x, y in points:
            ax.annotate(
                f"{y:.0f}",
                (x, y),
                xytext=(6, -14 if below else 6),
                textcoords="offset points",
                color=color,
                fontsize=8,
            )
    # Logarithmic y axis (the rows differ by an order of magnitude), gridlines at 1, 2, 5 x 10^k.
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.set_xticks(range(len(THREADS)), THREADS)
    # Room for the value labels at the ends of the lines.
    ax.margins(x=0.08, y=0.1)
    ax.grid(True, color="#ddd")
    ax.set_title(title)
    ax.set_xlabel("threads (2 cores: 4 and 8 are oversubscribed)")
    ax.set_ylabel("total Mops/s (median, log scale)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False, fontsize=9)
    fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return True


def memory_chart(plt, path_json, path_svg):
    """Resident MB against threads alive at once (log scale), from `cargo bench --bench scale`."""
    import json

    from matplotlib import ticker

    with open(path_json) as f:
        chart = json.load(f)
    threads = chart["threads"]
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    for series in chart["series"]:
        ax.plot(range(len(threads)), series["mb"], linewidth=2.5, marker="o", label=series["name"])
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xticks(range(len(threads)), threads)
    ax.grid(True, color="#ddd")
    ax.set_title("Resident memory against threads, window 100,000 f64")
    ax.set_xlabel("threads alive at once")
    ax.set_ylabel("MB resident (log scale)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False, fontsize=9)
    fig.savefig(path_svg, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--criterion-dir", default="target/criterion")
    ap.add_argument("--baseline", default="new", help="criterion baseline directory name")
    ap.add_argument("--svg-dir", default=None, help="write the scaling charts here")
    ap.add_argument(
        "--memory-json",
        default="target/memory_threads.json",
        help="with --svg-dir, also draw memory_threads.svg from this file if it exists",
    )
    args = ap.parse_args()
    # Before any output, so that a missing matplotlib does not cut the report in half.
    plt = import_pyplot() if args.svg_dir else None

    data = load(args.criterion_dir, args.baseline)
    if not data:
        sys.exit(f"no estimates under {args.criterion_dir}/**/{args.baseline}/")

    print("### Headline\n")
    print("\n".join(compact(data)))
    print("### Targets\n")
    print("\n".join(headline(data)))
    print("### Single thread\n")
    print("\n".join(single_tables(data)))
    print("### Threads\n")
    print("\n".join(thread_tables(data)))

    if args.svg_dir:
        os.makedirs(args.svg_dir, exist_ok=True)
        for group, name, title in [
            ("push/threads", "push_threads.svg", "Adds from several threads, window 1024 f64"),
            ("mixed/threads", "mixed_threads.svg", "Adds with 1% reads, window 1024 f64"),
        ]:
            if svg_chart(plt, data, group, title, os.path.join(args.svg_dir, name)):
                print(f"<!-- wrote {os.path.join(args.svg_dir, name)} -->")
        if os.path.exists(args.memory_json):
            path = os.path.join(args.svg_dir, "memory_threads.svg")
            memory_chart(plt, args.memory_json, path)
            print(f"<!-- wrote {path} -->")


if __name__ == "__main__":
    main()
