#!/usr/bin/env python3
"""Measure assumption A10 of notes/analytics-backend.md: rollup bytes as a share of raw bytes.

Generates one synthetic UTC day of events for samples of merchants drawn from the note's Zipf
population (A16: s = 1.1, 2 M merchants, 10 B events/day), creates the raw table, the rollups
and the sessions table with the DDL found in the note's ```sql blocks, inserts the day in
10-second-like batches, merges (OPTIMIZE ... FINAL) and reports compressed bytes per table from
system.parts. Deterministic: fixed seed, no wall-clock input.

Run from the repository root:
    python3 -m venv /tmp/a10 && /tmp/a10/bin/pip install chdb==4.4.0 numpy
    nice /tmp/a10/bin/python notes/analytics/measure_a10.py
"""
import os
import re
import sys
import tempfile
import time

import numpy as np
import chdb
from chdb import session

SEED = 20261121
DAY0 = 1_795_219_200  # 2026-11-21 00:00:00 UTC, seconds
TOTAL = 10e9          # events per day (A1, upper case)
N_MERCH = 2_000_000   # A8
S = 1.1               # A16

# Bands of merchant ranks and the systematic sample drawn from each.
BANDS = [("ranks 1,000-9,999", 1_000, 10_000, 6),
         ("ranks 10,000-99,999", 10_000, 100_000, 40),
         ("ranks 100,000-2,000,000", 100_000, 2_000_001, 1_000)]

HERE = os.path.dirname(os.path.abspath(__file__))
NOTE = os.environ.get("A10_NOTE", os.path.join(HERE, os.pardir, "analytics-backend.md"))

SOURCES = ["direct", "google", "instagram", "facebook", "whatsapp", "email", "youtube",
           "bing"] + [f"ref:site{i}.in" for i in range(40)]
SOURCE_P = np.array([35, 30, 10, 7, 6, 3, 2, 1] + [6 / 40] * 40, float)
COUNTRIES = ["IN", "US", "AE", "GB", "SG", "SA", "NP", "BD", "CA", "AU", "DE", "MY"]
COUNTRY_P = np.array([88, 3, 2, 1.5, 1, 1, 0.8, 0.7, 0.6, 0.5, 0.5, 0.4])
DEVICES = [("mobile", "Chrome", "Android"), ("mobile", "Safari", "iOS"),
           ("mobile", "Samsung Internet", "Android"), ("desktop", "Chrome", "Windows"),
           ("desktop", "Edge", "Windows"), ("desktop", "Safari", "macOS"),
           ("desktop", "Firefox", "Linux"), ("tablet", "Safari", "iOS")]
DEVICE_P = np.array([50, 15, 7, 14, 4, 4, 2, 4], float)
EVENTS = ["page_view", "product_view", "add_to_cart", "search", "checkout_start", "purchase",
          "video_play"]
EVENT_P = np.array([65, 20, 6, 5, 2, 1, 1], float)
TZ = np.array([330, 345, 240, 480, 0])
TZ_P = np.array([85, 3, 5, 4, 3], float)
CATEGORIES = ["shoes", "sarees", "kurtas", "phones", "covers", "watches", "bags", "toys",
              "books", "beauty", "home", "snacks"]
WORDS = ["red", "cotton", "silk", "men", "women", "kids", "sale", "new", "black", "gold",
         "wireless", "combo", "gift", "festive", "summer", "pack"]
# Local-time hour weights of traffic (low at night, peaks at noon and in the evening).
HOUR_W = np.array([2, 1, .6, .4, .4, .6, 1.2, 2.5, 4, 5, 5.5, 6, 6.5, 6, 5.5, 5.5, 5.5, 6, 7,
                   8, 8.5, 8, 6, 4])


def norm(p):
    return p / p.sum()


def zipf_events(ranks, h):
    return np.maximum(1, np.round(TOTAL * ranks.astype(float) ** -S / h)).astype(np.int64)


def gen_merchant(rng, mid, n_events):
    """Rows of one merchant's day, as tab-separated lines sorted by receive time."""
    tz = int(rng.choice(TZ, p=norm(TZ_P)))
    n_sessions = max(1, int(round(n_events / 6)))
    n_users = max(1, int(round(n_sessions / 1.3)))
    # events per session: 1 + geometric, mean about 6; trim to n_events
    per = 1 + rng.geometric(1 / 5, n_sessions)
    per = per[np.cumsum(per) <= n_events] if per.sum() > n_events else per
    if per.sum() < n_events:
        per = np.append(per, n_events - per.sum())
    n_sessions = len(per)
    pages = max(20, min(20_000, n_events // 20))
    paths = ["/"] + [f"/collections/{CATEGORIES[i % 12]}" for i in range(12)] + \
            [f"/products/{WORDS[i % 16]}-{CATEGORIES[(i // 16) % 12]}-{i}" for i in range(pages)]
    page_w = norm(np.arange(1, len(paths) + 1, dtype=float) ** -1.2)
    users = rng.integers(0, n_users, n_sessions)
    user_hash = (np.uint64(mid) * np.uint64(0x9E3779B97F4A7C15 % 2**32)
                 + users.astype(np.uint64) * np.uint64(0xBF58476D1CE4E5B9))
    # user-level attributes
    u_country = rng.choice(len(COUNTRIES), n_users, p=norm(COUNTRY_P))
    u_device = rng.choice(len(DEVICES), n_users, p=norm(DEVICE_P))
    s_source = rng.choice(len(SOURCES), n_sessions, p=norm(SOURCE_P))
    s_campaign = rng.random(n_sessions) < 0.3
    # session start: local hour by HOUR_W, converted to UTC within the UTC day
    hour = rng.choice(24, n_sessions, p=norm(HOUR_W))
    start = ((hour * 3600 + rng.integers(0, 3600, n_sessions)) - tz * 60) % 86_400
    start_ms = DAY0 * 1000 + start * 1000 + rng.integers(0, 1000, n_sessions)
    sid = rng.integers(1, 2**63, n_sessions, dtype=np.int64)
    lines = []
    is_bot_sess = rng.random(n_sessions) < 0.02
    order_no = 0
    for s in range(n_sessions):
        k = int(per[s])
        gaps = rng.exponential(30_000, k).astype(np.int64)
        gaps[0] = 0
        t = np.minimum(start_ms[s] + np.cumsum(gaps), (DAY0 + 86_399) * 1000)
        names = rng.choice(len(EVENTS), k, p=norm(EVENT_P))
        names[0] = 0
        pg = rng.choice(len(paths), k, p=page_w)
        delay = rng.integers(80, 2_500, k)
        late = rng.random(k) < 0.01
        delay[late] += rng.integers(3_600_000, 3 * 86_400_000, late.sum())
        u = users[s]
        dev, br, os_ = DEVICES[u_device[u]]
        country = COUNTRIES[u_country[u]]
        src = SOURCES[s_source[s]]
        camp = f"{WORDS[s % 16]}_{CATEGORIES[s % 12]}" if s_campaign[s] and src != "direct" else ""
        for j in range(k):
            name = EVENTS[names[j]]
            path = paths[pg[j]]
            props = {}
            rev = 0
            if name == "product_view":
                path = paths[13 + pg[j] % pages]
                props = {"product_id": f"sku-{pg[j]}", "category": CATEGORIES[pg[j] % 12],
                         "price": str(100 * (1 + pg[j] % 50))}
            elif name == "add_to_cart":
                props = {"product_id": f"sku-{pg[j]}", "quantity": str(1 + pg[j] % 3)}
            elif name == "search":
                props = {"query": f"{WORDS[pg[j] % 16]} {CATEGORIES[pg[j] % 12]}"}
            elif name == "purchase":
                order_no += 1
                rev = int(rng.lognormal(np.log(120_000), 0.8))
                props = {"order_id": f"ORD-{mid}-{order_no}", "items": str(1 + pg[j] % 4),
                         "payment": ["upi", "card", "cod", "netbanking"][pg[j] % 4]}
            elif name == "video_play":
                props = {"video": f"v{pg[j] % 30}"}
            if camp:
                props["utm_campaign"] = camp
            ts = int(t[j])
            r = rng.integers(0, 2**62)
            eid = (ts << 80) | (0x7 << 76) | (int(r) & ((1 << 76) - 1))
            h = f"{eid:032x}"
            uuid = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
            pm = "{" + ",".join(f"'{a}':'{b}'" for a, b in props.items()) + "}"
            lines.append((ts + int(delay[j]),
                          f"{mid}\t{ts}\t{ts + int(delay[j])}\t{tz}\t{uuid}\t{name}\t"
                          f"{int(user_hash[s])}\t{int(sid[s])}\t{path}\t{src}\t{country}\t"
                          f"{dev}\t{br}\t{os_}\t{rev}\t{pm}\t{int(is_bot_sess[s])}\t1"))
    return lines


def note_ddl():
    text = open(NOTE, encoding="utf-8").read()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    stmts = []
    for b in blocks:
        b = re.sub(r"--[^\n]*", "", b)
        stmts += [x.strip() for x in b.split(";") if x.strip()]
    return stmts


TABLES = ["events", "rollup_15m", "rollup_day", "sessions"]


def main():
    t_start = time.time()
    rng = np.random.default_rng(SEED)
    h = float(np.sum(np.arange(1, N_MERCH + 1, dtype=float) ** -S))
    # share of all events in each band (and in the head, ranks 1-999)
    k = np.arange(1, N_MERCH + 1, dtype=float) ** -S / h
    head_share = k[:999].sum()
    stmts = note_ddl()
    print(f"chdb {chdb.__version__}, ClickHouse {chdb.query('SELECT version()', 'TSV').data().strip()}")
    print(f"DDL statements from the note: {len(stmts)}; seed {SEED}")
    print(f"Zipf s={S}, {N_MERCH:,} merchants, {TOTAL:.0e} events/day; "
          f"ranks 1-999 carry {head_share:.1%} of events")
    tmp = tempfile.mkdtemp(prefix="a10_")
    sess = session.Session(tmp)
    q = lambda sql, fmt="TSV": sess.query(sql, fmt).data()
    print("settings:", q("SELECT arrayStringConcat(groupArray(name || '=' || value), ', ') FROM "
                         "system.settings WHERE name IN ('deduplicate_blocks_in_dependent_materialized_views', "
                         "'insert_deduplicate')").strip())
    print("merge tree settings:", q("SELECT arrayStringConcat(groupArray(name || '=' || value), ', ') "
                                    "FROM system.merge_tree_settings WHERE name IN "
                                    "('replicated_deduplication_window', 'replicated_deduplication_window_seconds', "
                                    "'index_granularity')").strip())
    results = []
    for bi, (label, lo, hi, n) in enumerate(BANDS):
        share = k[lo - 1:min(hi, N_MERCH + 1) - 1].sum()
        ranks = (lo + (np.arange(n) + 0.5) * (min(hi, N_MERCH + 1) - lo) / n).astype(np.int64)
        ev = zipf_events(ranks, h)
        db = f"band{bi}"
        q(f"CREATE DATABASE {db}")
        for st in stmts:
            q(st.replace("CREATE TABLE ", f"CREATE TABLE {db}.")
                .replace("CREATE MATERIALIZED VIEW ", f"CREATE MATERIALIZED VIEW {db}.")
                .replace(" TO ", f" TO {db}.").replace("FROM events", f"FROM {db}.events"))
        t0 = time.time()
        rows = []
        for i, (r, e) in enumerate(zip(ranks, ev)):
            rows += gen_merchant(rng, int(r), int(e))
        rows.sort(key=lambda x: x[0])
        tgen = time.time() - t0
        n_rows = len(rows)
        batches = 50
        paths = []
        for b in range(batches):
            a, z = b * n_rows // batches, (b + 1) * n_rows // batches
            paths.append(os.path.join(tmp, f"{db}_{b}.tsv"))
            with open(paths[-1], "w") as f:
                f.write("\n".join(x[1] for x in rows[a:z]) + "\n")
        cols = ("merchant_id UInt32, t Int64, r Int64, tz_offset_min Int16, event_id UUID, "
                "event_name String, user_hash UInt64, session_id UInt64, path String, source String, "
                "country String, device String, browser String, os String, revenue_paise Int64, "
                "props Map(String, String), is_bot UInt8, version UInt16")
        t0 = time.time()
        for path in paths:
            q(f"INSERT INTO {db}.events SELECT merchant_id, fromUnixTimestamp64Milli(t, 'UTC'), "
              f"fromUnixTimestamp64Milli(r, 'UTC'), tz_offset_min, event_id, event_name, user_hash, "
              f"session_id, path, source, country, device, browser, os, revenue_paise, props, is_bot, "
              f"version FROM file('{path}', TSV, '{cols}') "
              f"SETTINGS max_threads = 1, max_insert_threads = 1, async_insert = 0")
        tins = time.time() - t0
        t0 = time.time()
        for t in TABLES:
            q(f"OPTIMIZE TABLE {db}.{t} FINAL SETTINGS max_threads = 1")
        topt = time.time() - t0
        sizes = {}
        for t in TABLES:
            line = q(f"SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
                     f"FROM system.parts WHERE active AND database = '{db}' AND table = '{t}'").split()
            sizes[t] = tuple(int(x) for x in line)
        bots = int(q(f"SELECT countIf(is_bot = 1) FROM {db}.events").strip())
        results.append((label, share, n, int(ev.sum()), sizes, bots))
        print(f"\n{label}: {n} merchants sampled, {ev.min():,}-{ev.max():,} events/day each, "
              f"{ev.sum():,} events ({bots:,} from bot sessions); band carries {share:.1%} of all events")
        print(f"  generated in {tgen:.1f} s; inserted in {batches} batches in {tins:.1f} s "
              f"({n_rows / tins / 1000:.0f} k rows/s with the views, one insert thread); "
              f"merged in {topt:.1f} s")
        raw = sizes["events"][1]
        print(f"  {'table':<11} {'rows':>10} {'compressed B':>13} {'B/event':>8} {'% of raw':>9}")
        for t in TABLES:
            r_, c_, u_ = sizes[t]
            print(f"  {t:<11} {r_:>10,} {c_:>13,} {c_ / n_rows:>8.1f} {100 * c_ / raw:>8.2f}%")
        for path in paths:
            os.remove(path)
    # Population estimate: each band weighted by its share of events; the head (ranks 1-999)
    # takes the per-event figures of the largest sampled band.
    print("\nPopulation estimate (bytes per event weighted by each band's share of events; ranks "
          "1-999 given the figures of ranks 1,000-9,999):")
    w = [r[1] for r in results]
    w[0] += head_share
    per_event = {t: sum(wi * r[4][t][1] / r[3] for wi, r in zip(w, results)) for t in TABLES}
    for t in TABLES:
        print(f"  {t:<11} {per_event[t]:6.1f} B/event  {100 * per_event[t] / per_event['events']:6.2f}% of raw")
    print(f"\ntotal run time {time.time() - t_start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
