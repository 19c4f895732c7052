#!/usr/bin/env python3
"""Rerank over stored document states: cold, warm and uncached, per state dtype and store.

For each store (redis: a redis-server of its own on a free port; memory) and
each state dtype (float32, float16, int8) it starts the real server on the
random 0.1B shape (--demo-shape 0.1b) storing states in that dtype, uploads
--docs document states (one POST /v1/states), and times reranks of one query
over all of them ({"state_id"} documents), one request at a time:

  cold      the first rerank: the decoded-state cache is empty, so every state
            is fetched (one MGET from Redis) and decoded;
  warm      --requests more: the cache holds every state (one metadata read);
  no cache  a second server with --state-cache-bytes 0 over the same states:
            every rerank fetches and decodes them all.

One markdown row per (store, dtype, mode): pairs/s (documents per second of
rerank latency), p50/p99 latency, state bytes read from the store per request
(the delta of rwkv_emb_state_fetch_bytes_sum on /metrics) and cache hits per
request. The CPU model and `uptime` are printed above the table: timings on a
busy machine say little. Each of the 12 servers spends seconds generating the
random model before it answers; that time is in no row.

  python3 bench/state_rerank_bench.py                       # ~9 min on 2 idle cores
  python3 bench/state_rerank_bench.py --quick               # ~1 min smoke run (int8 only)
  python3 bench/state_rerank_bench.py --device cuda --stores memory

Standard library only (and redis-server for the redis store). Not a test.
"""
import argparse
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from server_bench import HOST, ServerProcess, free_port, percentile, post_json, read_metrics  # noqa: E402

DTYPES = ["float32", "float16", "int8"]
STORES = ["redis", "memory"]
QUERY = "which document?"


class Redis:
    """A private redis-server without persistence, in a temporary folder."""

    def __init__(self):
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server not found (apt-get install redis-server, or scripts/setup.sh); "
                     "or pass --stores memory")
        self.port = free_port()
        self.url = f"redis://{HOST}:{self.port}/0"
        self.dir = tempfile.TemporaryDirectory(prefix="rwkv-emb-state-bench-redis-")
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                                      "--appendonly", "no", "--dir", self.dir.name,
                                      "--logfile", f"{self.dir.name}/redis.log"])
        deadline = time.time() + 10
        while self.command(b"PING", retry_until=deadline) != b"+PONG":
            time.sleep(0.05)

    def command(self, name, retry_until=0.0):
        """Sends an inline command; its first reply line, or None while it is not up yet."""
        try:
            with socket.create_connection((HOST, self.port), timeout=5) as s:
                s.sendall(name + b"\r\n")
                return s.recv(64).split(b"\r\n")[0]
        except OSError:
            if time.time() > retry_until:
                raise
            return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def server_args(opts, store, dtype, redis, cache):
    args = ["--demo-shape", "0.1b", "--device", opts.device, "--state-store", store, "--state-dtype", dtype]
    if store == "redis":
        args += ["--redis-url", redis.url]
    if not cache:
        args += ["--state-cache-bytes", "0"]
    return args


def upload(port, docs):
    t0 = time.perf_counter()
    body = {"documents": [{"text": f"document {i} " * 40, "id": f"d{i}"} for i in range(docs)]}
    stored = post_json(port, "/v1/states", body, timeout=1800)["data"]
    assert len(stored) == docs, stored
    return time.perf_counter() - t0


def reranks(port, docs, count):
    """Latencies of `count` reranks of all the states, and what /metrics counted meanwhile."""
    body = {"query": QUERY, "documents": [{"state_id": f"d{i}"} for i in range(docs)]}
    before = read_metrics(port)
    latencies = []
    for _ in range(count):
        t0 = time.perf_counter()
        results = post_json(port, "/v1/rerank", body, timeout=1800)["results"]
        latencies.append(time.perf_counter() - t0)
        assert sorted(r["index"] for r in results) == list(range(docs)), results
    after = read_metrics(port)

    def delta(name):
        return (after.get(name, 0.0) - before.get(name, 0.0)) / count

    return {"latencies": latencies, "fetch_bytes": delta("rwkv_emb_state_fetch_bytes_sum"),
            "hits": delta("rwkv_emb_state_cache_hits_total")}


def measure(binary, opts, store, dtype, redis, log):
    """Rows of one store and dtype: cold and warm with the cache, then without it."""
    rows = []
    for cache in (True, False):
        if redis:
            assert redis.command(b"FLUSHALL") == b"+OK"
        server = ServerProcess(binary, server_args(opts, store, dtype, redis, cache), "rwkv-emb-state-bench-")
        try:
            seconds = upload(server.port, opts.docs)
            log(f"{store} {dtype} cache={'on' if cache else 'off'}: {opts.docs} states uploaded in {seconds:.1f} s")
            runs = [("cold", 1), ("warm", opts.requests)] if cache else [("no cache", opts.requests)]
            for mode, count in runs:
                rows.append({"store": store, "dtype": dtype, "mode": mode, **reranks(server.port, opts.docs, count)})
        finally:
            status = server.stop()
            if status != 0:
                sys.exit(f"the server exited with {status}; log {server.log.name}")
    return rows


def print_table(rows, docs):
    print("| store | state dtype | mode | requests | pairs/s | p50 ms | p99 ms | bytes fetched / request "
          "| cache hits / request |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        lat = r["latencies"]
        print(f"| {r['store']} | {r['dtype']} | {r['mode']} | {len(lat)} | {docs * len(lat) / sum(lat):.1f} "
              f"| {percentile(lat, 50) * 1000:.0f} | {percentile(lat, 99) * 1000:.0f} | {r['fetch_bytes']:,.0f} "
              f"| {r['hits']:.0f} |")


def command_output(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout
    except OSError:  # not installed
        return ""


def machine():
    """The CPU model (lscpu) and `uptime`."""
    model = next((line.split(":", 1)[1].strip() for line in command_output("lscpu").splitlines()
                  if line.startswith("Model name")), "?")
    return model, command_output("uptime").strip() or "uptime: ?"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("binary", nargs="?", default="build/rwkv-emb-server", help="default build/rwkv-emb-server")
    p.add_argument("--device", default="cpu", help="server --device (cpu, cuda[:N])")
    p.add_argument("--stores", type=lambda s: s.split(","), default=STORES, help="default redis,memory")
    p.add_argument("--dtypes", type=lambda s: s.split(","), help="default float32,float16,int8 (--quick: int8)")
    p.add_argument("--docs", type=int, help="documents (states) per rerank (default 100; --quick: 10)")
    p.add_argument("--requests", type=int, help="warm and uncached reranks timed (default 14; --quick: 2)")
    p.add_argument("--quick", action="store_true", help="smoke run of every store and mode, one dtype")
    opts = p.parse_args()
    for name, full, quick in (("dtypes", DTYPES, ["int8"]), ("docs", 100, 10), ("requests", 14, 2)):
        if getattr(opts, name) is None:
            setattr(opts, name, quick if opts.quick else full)
    for name, values, known in (("store", opts.stores, STORES), ("dtype", opts.dtypes, DTYPES)):
        if not values or set(values) - set(known):
            p.error(f"--{name}s: a comma-separated list of {', '.join(known)}")

    model, uptime = machine()
    print(f"CPU: {model}; {uptime}\ndevice {opts.device}, {opts.docs} documents per rerank, "
          f"{opts.requests} warm and uncached requests\n", flush=True)
    redis = Redis() if "redis" in opts.stores else None
    rows = []
    try:
        for store in opts.stores:
            for dtype in opts.dtypes:
                rows += measure(opts.binary, opts, store, dtype, redis if store == "redis" else None,
                                lambda m: print(m, flush=True))
    finally:
        if redis:
            redis.stop()
    print(f"\nafter the run: {machine()[1]}\n")
    print_table(rows, opts.docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
