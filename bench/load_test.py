#!/usr/bin/env python3
"""Load and soak test of rwkv-emb-server: mixed traffic at and above capacity.

Starts the real binary on a free 127.0.0.1 port (the fixture model of
../shared/fixtures by default; --demo-shape small|0.1b for a random model)
with a small request queue (--queue, the server's --max-queued-requests), so
that overload shows as 429 at once, and a disk state store in a temporary
folder. Then:

 1. capacity (also the warm-up): --queue closed-loop clients, never more
    requests than the queue holds, send the mix for --capacity-seconds; the
    answered requests per second are the capacity C;
 2. one open-loop phase per --rates multiple of C (default 0.5,1,2): requests
    arrive as a Poisson process at that rate for --phase-seconds, whatever the
    answers, each sent by one of --workers threads on its own keep-alive
    connection.

The mix (weights in MIX): short embeddings (1-4 texts of 8-64 tokens), long
embeddings (one text of 256-2048 tokens), online rerank (a query and 4-8
documents of 32-256 tokens), state creation (POST /v1/states), state upload
(PUT of a blob), state download, rerank of 2-4 cached states and a text, and
deletes that keep the store under --max-states.

Checks (exit status 1 when one fails):
 - every answer is the expected success with a well-formed body, or 429 on a
   route that queues work; no 5xx, no other status, nothing lost (connection
   error or timeout);
 - 429 only when the queue was full: for each 429, the requests this client
   had sent to queueing routes and not yet seen answered must have numbered
   --queue or more at some moment between its sending and its answer (the
   server counts a request for less time than the client does); the peak of
   rwkv_emb_queue_requests polled from /metrics is printed too;
 - RSS of the server, sampled every second: its growth from the end of the
   warm-up to the end (--max-rss-growth-mib bounds it, when given);
 - with --state-cache-bytes B (the server's decoded-state cache budget; make
   it smaller than --max-states states so that the bound is exercised), the
   rwkv_emb_state_cache_bytes gauge polled from /metrics never exceeds B; the
   cache's evictions, hits and misses are printed.
Printed: per phase and request kind, answers by status, p50/p99 latency and
throughput. --json writes it all.

  python3 bench/load_test.py build/rwkv-emb-server                          # ~2.5 min
  python3 bench/load_test.py build/rwkv-emb-server --phase-seconds 120      # soak, ~7 min

Standard library only; text generation and /metrics parsing come from server_bench.py.
"""
import argparse
import bisect
import concurrent.futures
import http.client
import json
import os
import pathlib
import random
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from server_bench import HOST, ServerProcess, get, make_texts, percentile, post_json, read_metrics  # noqa: E402

FIXTURES = pathlib.Path(os.environ.get("RWKV_FIXTURES_DIR",
                                       pathlib.Path(__file__).resolve().parents[2] / "shared" / "fixtures"))

# Request kinds: relative weight, and whether the route queues work on the
# engine (and may answer 429).
MIX = {
    "embed_short": (30, True),
    "embed_long": (8, True),
    "rerank_online": (20, True),
    "state_create": (8, True),
    "state_upload": (4, False),
    "state_download": (5, False),
    "rerank_states": (20, True),
}


class Server(ServerProcess):
    """The server with a disk state store in `state_dir`."""

    def __init__(self, binary, server_args, state_dir):
        super().__init__(binary, ["--state-dir", str(state_dir), *server_args], "rwkv-emb-load-")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


class StatePool:
    """The states stored now, and which requests use them, so that a delete
    never removes a state a rerank in flight refers to."""

    def __init__(self):
        self.lock = threading.Lock()
        self.refs = {}  # id -> requests using it
        self.pending = 0  # creations and uploads in flight
        self.count = 0

    def new_id(self):
        with self.lock:
            self.count += 1
            self.pending += 1
            return f"load-{self.count}"

    def add(self, state_id):
        with self.lock:
            self.refs[state_id] = 0

    def settle(self, state_id, stored):
        with self.lock:
            self.pending -= 1
            if stored:
                self.refs[state_id] = 0

    def size(self):
        with self.lock:
            return len(self.refs) + self.pending

    def borrow(self, rnd, k):
        with self.lock:
            if len(self.refs) < k:
                return None
            ids = rnd.sample(sorted(self.refs), k)
            for i in ids:
                self.refs[i] += 1
            return ids

    def give_back(self, ids):
        with self.lock:
            for i in ids:
                self.refs[i] -= 1

    def take_unused(self, rnd):
        with self.lock:
            free = sorted(i for i, n in self.refs.items() if n == 0)
            if not free:
                return None
            state_id = rnd.choice(free)
            del self.refs[state_id]
            return state_id


class Traffic:
    """Builds, sends and checks one request of a kind; records every answer."""

    def __init__(self, port, texts, blob, dims, max_states, seed):
        self.port, self.texts, self.blob, self.dims, self.max_states = port, texts, blob, dims, max_states
        self.pool = StatePool()
        self.records = []  # dicts; list.append is atomic
        self.local = threading.local()
        self.seed = seed
        self.seeds = iter(range(seed * 1_000_003, 1 << 62))
        self.seed_lock = threading.Lock()

    def rnd(self):
        if not hasattr(self.local, "rnd"):
            with self.seed_lock:
                self.local.rnd = random.Random(next(self.seeds))
        return self.local.rnd

    def pick_kind(self):
        rnd = self.rnd()
        kind = rnd.choices(list(MIX), weights=[w for w, _ in MIX.values()])[0]
        if kind in ("state_create", "state_upload") and self.pool.size() >= self.max_states:
            return "state_delete"
        return kind

    def request(self, method, path, body, content_type="application/json"):
        """(status, body bytes); reconnects once when a kept-alive connection was closed."""
        for attempt in (0, 1):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = http.client.HTTPConnection(HOST, self.port, timeout=300)
            try:
                conn.request(method, path, body, {"Content-Type": content_type} if body is not None else {})
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self.local.conn = None
                if attempt:
                    raise
            except Exception:
                conn.close()
                self.local.conn = None
                raise

    def send(self, kind, phase, intended=None):
        rnd = self.rnd()
        texts = self.texts
        borrowed = None
        state_id = None
        if kind == "embed_short":
            n = rnd.randint(1, 4)
            call = ("POST", "/v1/embeddings", {"input": rnd.sample(texts["short"], n)})
            expect = (200, lambda r: len(r["data"]) == n and all(len(d["embedding"]) == self.dims for d in r["data"]))
        elif kind == "embed_long":
            call = ("POST", "/v1/embeddings", {"input": rnd.choice(texts["long"])})
            expect = (200, lambda r: len(r["data"]) == 1 and len(r["data"][0]["embedding"]) == self.dims)
        elif kind == "rerank_online":
            n = rnd.randint(4, 8)
            call = ("POST", "/v1/rerank", {"query": rnd.choice(texts["short"]), "documents": rnd.sample(texts["doc"], n)})
            expect = (200, lambda r: sorted(x["index"] for x in r["results"]) == list(range(n)))
        elif kind == "rerank_states":
            borrowed = self.pool.borrow(rnd, rnd.randint(2, 4))
            if borrowed is None:
                return self.send("state_create", phase, intended)
            docs = [{"state_id": i} for i in borrowed] + [rnd.choice(texts["doc"])]
            call = ("POST", "/v1/rerank", {"query": rnd.choice(texts["short"]), "documents": docs})
            expect = (200, lambda r: sorted(x["index"] for x in r["results"]) == list(range(len(docs))))
        elif kind == "state_create":
            state_id = self.pool.new_id()
            call = ("POST", "/v1/states", {"documents": [{"text": rnd.choice(texts["doc"]), "id": state_id}]})
            expect = (200, lambda r: [d["id"] for d in r["data"]] == [state_id])
        elif kind == "state_upload":
            state_id = self.pool.new_id()
            call = ("PUT", f"/v1/states/{state_id}", self.blob)
            expect = (201, lambda r: r["id"] == state_id and r["bytes"] == len(self.blob))
        elif kind == "state_download":
            borrowed = self.pool.borrow(rnd, 1)
            if borrowed is None:
                return self.send("state_upload", phase, intended)
            call = ("GET", f"/v1/states/{borrowed[0]}/content", None)
            expect = (200, None)
        elif kind == "state_delete":
            state_id = self.pool.take_unused(rnd)
            if state_id is None:
                return self.send("embed_short", phase, intended)
            call = ("DELETE", f"/v1/states/{state_id}", None)
            expect = (200, lambda r: r["deleted"] is True)
        else:
            raise ValueError(kind)

        method, path, body = call
        payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        record = {"kind": kind, "phase": phase, "queueing": MIX.get(kind, (0, False))[1],
                  "intended": intended, "sent": time.perf_counter()}
        try:
            status, data = self.request(method, path, payload,
                                        "application/octet-stream" if kind == "state_upload" else "application/json")
            record["done"] = time.perf_counter()
            record["status"] = status
            want_status, check = expect
            if status == want_status:
                if kind == "state_download":  # a blob of this model's shape and dtype
                    ok = len(data) == len(self.blob) and data[:8] == self.blob[:8]
                else:
                    ok = check(json.loads(data))
                record["outcome"] = "ok" if ok else "bad body"
            elif status == 429 and record["queueing"]:
                record["outcome"] = "429"
            else:
                record["outcome"] = f"HTTP {status}"
            if record["outcome"] not in ("ok", "429"):
                record["detail"] = repr(data[:200])
        except Exception as e:  # noqa: BLE001 - a lost request, counted and reported
            record["done"] = time.perf_counter()
            record["status"] = None
            record["outcome"] = "lost"
            record["detail"] = repr(e)
        if state_id is not None and kind in ("state_create", "state_upload"):
            self.pool.settle(state_id, record["outcome"] == "ok")
        if borrowed is not None:
            self.pool.give_back(borrowed)
        self.records.append(record)
        return record


class Sampler(threading.Thread):
    """RSS every second; the server's queue depth and decoded-state cache bytes every 0.2 s."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.server = server
        self.rss = []  # (time, KiB)
        self.queue_peak = 0.0
        self.cache_bytes_peak = 0.0
        self.stopping = threading.Event()

    def run(self):
        next_rss = 0.0
        while not self.stopping.is_set():
            now = time.perf_counter()
            try:
                metrics = read_metrics(self.server.port)
                self.queue_peak = max(self.queue_peak, metrics.get("rwkv_emb_queue_requests", 0))
                self.cache_bytes_peak = max(self.cache_bytes_peak, metrics.get("rwkv_emb_state_cache_bytes", 0))
            except OSError:
                pass
            if now >= next_rss:
                self.rss.append((now, self.server.rss_kib()))
                next_rss = now + 1.0
            self.stopping.wait(0.2)


def closed_loop(traffic, clients, seconds, phase):
    end = time.perf_counter() + seconds

    def client():
        while time.perf_counter() < end:
            traffic.send(traffic.pick_kind(), phase)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def open_loop(traffic, pool, rate, seconds, phase, seed):
    """Poisson arrivals at `rate` per second; returns the largest delay between an
    arrival and its sending (all workers busy)."""
    rnd = random.Random(seed)
    start = time.perf_counter()
    arrival, futures = start, []
    while True:
        arrival += rnd.expovariate(rate)
        if arrival >= start + seconds:
            break
        time.sleep(max(0.0, arrival - time.perf_counter()))
        futures.append(pool.submit(traffic.send, traffic.pick_kind(), phase, arrival))
    concurrent.futures.wait(futures)
    return max((f.result()["sent"] - f.result()["intended"] for f in futures), default=0.0)


def unjustified_429s(records, queue):
    """429s for which fewer than `queue` other queueing requests were
    outstanding (sent, not yet answered) at every moment of their own flight."""
    events = sorted([(r["sent"], 1) for r in records if r["queueing"]] +
                    [(r["done"], -1) for r in records if r["queueing"]])
    times, levels, level = [], [], 0
    for t, d in events:
        level += d
        times.append(t)
        levels.append(level)
    bad = []
    for r in records:
        if r["outcome"] != "429":
            continue
        lo = bisect.bisect_left(times, r["sent"])
        hi = bisect.bisect_right(times, r["done"])
        peak = max(levels[max(0, lo - 1):hi])  # including the level in force when it was sent
        if peak - 1 < queue:  # minus the request itself
            bad.append((r, peak - 1))
    return bad


def summarize(records, phase, seconds):
    rows = []
    for kind in [*MIX, "state_delete"]:
        rs = [r for r in records if r["phase"] == phase and r["kind"] == kind]
        if not rs:
            continue
        ok = [r["done"] - r["sent"] for r in rs if r["outcome"] == "ok"]
        rows.append({"phase": phase, "kind": kind, "sent": len(rs), "ok": len(ok),
                     "429": sum(r["outcome"] == "429" for r in rs),
                     "5xx": sum(1 for r in rs if (r["status"] or 0) >= 500),
                     "other": sum(1 for r in rs if r["outcome"] not in ("ok", "429", "lost")),
                     "lost": sum(r["outcome"] == "lost" for r in rs),
                     "p50_ms": percentile(ok, 50) * 1000, "p99_ms": percentile(ok, 99) * 1000,
                     "ok_per_s": len(ok) / seconds})
    return rows


def print_rows(rows, out=sys.stdout):
    head = ["phase", "kind", "sent", "ok", "429", "5xx", "other", "lost", "p50 ms", "p99 ms", "ok/s"]
    lines = [head] + [[r["phase"], r["kind"], str(r["sent"]), str(r["ok"]), str(r["429"]), str(r["5xx"]),
                       str(r["other"]), str(r["lost"]), f"{r['p50_ms']:.0f}", f"{r['p99_ms']:.0f}",
                       f"{r['ok_per_s']:.1f}"] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    for n, line in enumerate(lines):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(line, widths)) + " |", file=out)
        if n == 0:
            print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|", file=out)


def server_args_of(opts):
    if opts.demo_shape:
        model = ["--demo-shape", opts.demo_shape]
    else:
        model = ["--model", str(FIXTURES / "embedding.pth"), "--reranker", str(FIXTURES / "reranker_idx.pth")]
    cache = [] if opts.state_cache_bytes is None else ["--state-cache-bytes", str(opts.state_cache_bytes)]
    return [*model, "--max-queued-requests", str(opts.queue), *cache, *opts.server_arg]


def run(binary, opts, log=print):
    """Runs the whole test; returns the summary (see --json)."""
    with tempfile.TemporaryDirectory(prefix="rwkv-emb-load-states-") as state_dir:
        server = Server(binary, server_args_of(opts), state_dir)
        try:
            summary = measure(server, opts, log)
        finally:
            status = server.stop()
            log(f"server exit status {status}; log {server.log.name}")
        summary.update(server_exit_status=status, server_log=server.log.name)
        return summary


def measure(server, opts, log):
    texts = {name: [t for t in make_texts(server.port, count, lo, hi, opts.seed + i)[0] if t.strip()]
             for i, (name, count, lo, hi) in enumerate([("short", 200, 8, 64), ("long", 40, 256, 2048),
                                                        ("doc", 200, 32, 256)])}
    dims = json.loads(get(server.port, "/v1/models")[1])["data"][0]["meta"]["dimensions"]
    post_json(server.port, "/v1/states", {"documents": [{"text": texts["doc"][0], "id": "load-0"}]})
    blob = get(server.port, "/v1/states/load-0/content")[1]  # what the uploads send
    traffic = Traffic(server.port, texts, blob, dims, opts.max_states, opts.seed)
    traffic.pool.add("load-0")
    sampler = Sampler(server)
    sampler.start()
    phases = []

    log(f"capacity: {opts.queue} closed-loop clients for {opts.capacity_seconds:g} s (also the warm-up)")
    t0 = time.perf_counter()
    closed_loop(traffic, opts.queue, opts.capacity_seconds, "capacity")
    seconds = time.perf_counter() - t0
    answered = sum(1 for r in traffic.records if r["outcome"] == "ok")
    capacity = answered / seconds
    phases.append({"phase": "capacity", "seconds": seconds, "offered_per_s": None, "client_delay_max_s": 0.0})
    warm_t, warm_rss = time.perf_counter(), server.rss_kib()
    log(f"capacity {capacity:.1f} requests/s; RSS after warm-up {warm_rss / 1024:.1f} MiB")

    with concurrent.futures.ThreadPoolExecutor(opts.workers) as pool:
        for i, rate in enumerate(opts.rates):
            name = f"{rate:g}x"
            log(f"open loop at {rate:g}x = {rate * capacity:.1f} requests/s for {opts.phase_seconds:g} s")
            t0 = time.perf_counter()
            delay = open_loop(traffic, pool, rate * capacity, opts.phase_seconds, name, opts.seed + 100 + i)
            phases.append({"phase": name, "seconds": time.perf_counter() - t0, "offered_per_s": rate * capacity,
                           "client_delay_max_s": delay})
    sampler.stopping.set()
    sampler.join()
    end_rss = server.rss_kib()
    metrics = read_metrics(server.port)

    rows = []
    for p in phases:
        rows += summarize(traffic.records, p["phase"], p["seconds"])
    bad_429 = unjustified_429s(traffic.records, opts.queue)
    failures = [r for r in traffic.records if r["outcome"] not in ("ok", "429")]
    rss_after_warmup = [kib for t, kib in sampler.rss if t >= warm_t]
    summary = {
        "capacity_per_s": capacity, "phases": phases, "rows": rows,
        "requests": len(traffic.records), "ok": sum(r["outcome"] == "ok" for r in traffic.records),
        "429": sum(r["outcome"] == "429" for r in traffic.records),
        "5xx": sum(1 for r in traffic.records if (r["status"] or 0) >= 500),
        "lost": sum(r["outcome"] == "lost" for r in traffic.records),
        "failures": [{k: r.get(k) for k in ("phase", "kind", "status", "outcome", "detail")} for r in failures[:10]],
        "failure_count": len(failures),
        "unjustified_429": len(bad_429), "queue": opts.queue, "queue_peak_seen": sampler.queue_peak,
        "queue_at_end": metrics.get("rwkv_emb_queue_requests"),
        "rss_mib": {"after_warmup": warm_rss / 1024, "max": max(rss_after_warmup, default=warm_rss) / 1024,
                    "end": end_rss / 1024, "growth": (end_rss - warm_rss) / 1024},
        "rss_samples_mib": [round(k / 1024, 1) for _, k in sampler.rss],
        "states_stored_at_end": metrics.get("rwkv_emb_states_stored"),
        "state_cache": {"budget_bytes": opts.state_cache_bytes, "peak_bytes_seen": sampler.cache_bytes_peak,
                        **{k: metrics.get(f"rwkv_emb_state_cache_{k}_total") for k in ("hits", "misses", "evictions")}},
    }
    return summary


def report(summary, out=sys.stdout):
    print(f"\ncapacity {summary['capacity_per_s']:.1f} requests/s; "
          + "; ".join(f"{p['phase']}: {p['offered_per_s']:.1f}/s offered, client delay max "
                      f"{p['client_delay_max_s'] * 1000:.0f} ms" for p in summary["phases"][1:]), file=out)
    print_rows(summary["rows"], out)
    rss = summary["rss_mib"]
    print(f"\n{summary['requests']} requests: {summary['ok']} ok, {summary['429']} 429, {summary['5xx']} 5xx, "
          f"{summary['lost']} lost, {summary['failure_count']} failed in all; "
          f"429 without a full queue: {summary['unjustified_429']} (queue {summary['queue']}, peak seen on "
          f"/metrics {summary['queue_peak_seen']:.0f}, at the end {summary['queue_at_end']:.0f})", file=out)
    print(f"RSS: {rss['after_warmup']:.1f} MiB after warm-up, max {rss['max']:.1f}, end {rss['end']:.1f}, "
          f"growth {rss['growth']:+.1f} MiB; states stored at the end: {summary['states_stored_at_end']:.0f}", file=out)
    cache = summary["state_cache"]
    budget = "server default" if cache["budget_bytes"] is None else f"{cache['budget_bytes']:,}"
    print(f"decoded-state cache: budget {budget} bytes, peak seen on /metrics {cache['peak_bytes_seen']:,.0f}; "
          f"{cache['hits']:.0f} hits, {cache['misses']:.0f} misses, {cache['evictions']:.0f} evictions", file=out)
    for f in summary["failures"]:
        print(f"  failed: {f}", file=out)


def check(summary, max_rss_growth_mib=None):
    """What went wrong, as messages; empty when the test passed."""
    problems = []
    if summary["5xx"] or summary["failure_count"] or summary["lost"]:
        problems.append(f"{summary['failure_count']} failed requests ({summary['5xx']} 5xx, {summary['lost']} lost)")
    if summary["unjustified_429"]:
        problems.append(f"{summary['unjustified_429']} 429s while the queue was not full")
    if summary["queue_at_end"]:
        problems.append(f"{summary['queue_at_end']:.0f} requests still queued at the end")
    if summary["server_exit_status"] != 0:
        problems.append(f"the server exited with {summary['server_exit_status']} after SIGTERM")
    if max_rss_growth_mib is not None and summary["rss_mib"]["growth"] > max_rss_growth_mib:
        problems.append(f"RSS grew {summary['rss_mib']['growth']:.1f} MiB after warm-up (bound {max_rss_growth_mib})")
    cache = summary["state_cache"]
    if cache["budget_bytes"] is not None and cache["peak_bytes_seen"] > cache["budget_bytes"]:
        problems.append(f"the decoded-state cache held {cache['peak_bytes_seen']:.0f} bytes "
                        f"(budget {cache['budget_bytes']})")
    return problems


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("binary", help="path to rwkv-emb-server")
    p.add_argument("--demo-shape", choices=["small", "0.1b"], help="serve a random model instead of the fixture one")
    p.add_argument("--queue", type=int, default=16, help="server --max-queued-requests (default 16)")
    p.add_argument("--capacity-seconds", type=float, default=30, help="closed-loop capacity phase (default 30)")
    p.add_argument("--phase-seconds", type=float, default=40, help="each open-loop phase (default 40)")
    p.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=[0.5, 1, 2],
                   help="open-loop rates as multiples of the capacity (default 0.5,1,2)")
    p.add_argument("--workers", type=int, default=64, help="client threads of the open loop (default 64)")
    p.add_argument("--max-states", type=int, default=64, help="states kept stored at most (default 64)")
    p.add_argument("--max-rss-growth-mib", type=float, help="fail when RSS grows more after the warm-up")
    p.add_argument("--state-cache-bytes", type=int,
                   help="server --state-cache-bytes; fail when its cache gauge ever exceeds it (default: the server's)")
    p.add_argument("--server-arg", action="append", default=[], help="extra server flag, repeatable")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    return p.parse_args(argv)


def main():
    opts = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stops the server
    print(f"rwkv-emb-server load test: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          "the client runs on the same machine", flush=True)
    summary = run(opts.binary, opts, log=lambda m: print(m, flush=True))
    report(summary)
    if opts.json:
        pathlib.Path(opts.json).write_text(json.dumps(summary, indent=1))
    problems = check(summary, opts.max_rss_growth_mib)
    for p in problems:
        print(f"FAILED: {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
