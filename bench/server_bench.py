#!/usr/bin/env python3
"""Loopback load generator for rwkv-emb-server.

Starts the real binary on a free 127.0.0.1 port once per model shape (the
random models of `serve --demo-shape small|0.1b`), drives POST /v1/embeddings
from N closed-loop clients (one thread and one keep-alive connection each) for a
fixed time per concurrency, and prints one row per (shape, concurrency). Each
measuring window runs from the end of one engine step to the end of a later
one (found by polling /metrics), so it holds whole steps only:

  s                the window's length
  reqs, steps      requests completed and engine steps run in the window
  req/s, tok/s     requests completed in the measuring window and their
                   usage.prompt_tokens, per second (client side)
  eng tok/s        tokens the engine ran in the window (rwkv_emb_tokens_processed_total)
  p50/p99          latency of the requests completed in the window (client side)
  tok/step         mean tokens per engine step (batch size in tokens)
  outside          1 - (engine step time / wall time), from the
                   rwkv_emb_step_duration_seconds histogram read before and
                   after the window: the share of wall time the engine loop was
                   not running a step (HTTP, JSON, tokenization, waiting for work)
  http cpu         share of the server's CPU time spent in its HTTP worker
                   threads (request parsing, tokenization, JSON responses,
                   access log); the rest is the engine (scheduler thread and
                   its OpenMP team)
  srv/cli/oth      CPU cores used by the server, by this load generator and by
                   every other process on the machine during the window

The load generator runs on the same machine and competes with the server for
the same cores; the cli and oth columns say how much. Requests, text lengths,
point lengths and server flags per shape are in PROFILES below (the 0.1B shape
gets shorter requests, longer points and --max-batch-tokens 1024).

  python3 bench/server_bench.py build/rwkv-emb-server            # ~4 min on 2 cores
  python3 bench/server_bench.py build/rwkv-emb-server --quick    # smoke test, ~1 min

Standard library only.
"""
import argparse
import http.client
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# What each shape is measured with, unless the command line says otherwise.
# On 2 cores the 0.1B shape runs at most ~300 tokens/s (forward_bench on an
# idle VM; 50-120 on a shared one), the small one ~50x more, so the 0.1B points
# are longer, its requests shorter, and its steps capped at 1024 tokens
# (already enough rows for sgemm to reach its speed; with the default 4096 a
# step can outlast a point).
PROFILES = {
    "small": {"concurrency": [1, 4, 16, 64], "quick_concurrency": [1, 8], "inputs": 4, "tokens": (64, 512),
              "times": (2.0, 10.0), "quick_times": (0.5, 2.0), "server_args": []},
    "0.1b": {"concurrency": [1, 4, 16], "quick_concurrency": [1, 4], "inputs": 2, "tokens": (64, 256),
             "times": (3.0, 30.0), "quick_times": (1.0, 5.0), "server_args": ["--max-batch-tokens", "1024"]},
}


# ---------------------------------------------------------------------------
# Texts: English-like prose from a fixed vocabulary and seed, so every run sends
# the same bytes. Each text is assembled from whole sentences up to a target
# length in tokens drawn uniformly from [--min-tokens, --max-tokens].

WORDS = """
the a an of to in for on with by from at as into over under between about after
before during without through against among within model models server request
requests client clients text texts token tokens embedding embeddings vector
vectors query queries document documents search index retrieval ranking score
scores result results batch batches sequence sequences state states layer layers
memory cache time latency throughput network system systems data dataset training
evaluation language languages sentence sentences word words meaning context user
users service services engine engines response responses error errors library
libraries file files page pages question questions answer answers report reports
city river mountain garden kitchen window morning evening winter summer market
company customer product products price prices order orders delivery weather
history science music story stories family school teacher student students book
books paper papers method methods experiment experiments value values number
is are was were be been has have had can could will would should may might must
uses use used makes make made shows show shown finds find found gives give given
runs run keeps keep kept takes take taken reads read writes write written sends
send sent returns return returned computes compute computed stores store stored
compares compare compared improves improve improved reduces reduce reduced
fast slow small large long short new old good better best simple complex early
late recent common rare useful similar different important open public private
local remote careful quick quiet bright dark warm cold heavy light clear exact
very often rarely usually quickly slowly carefully together again also only
still already almost nearly every each many few several most some other same
and or but because while although when where which that this these those
""".split()


def make_sentence(rnd):
    n = rnd.randint(6, 22)
    words = [rnd.choice(WORDS) for _ in range(n)]
    if rnd.random() < 0.3:
        words.insert(rnd.randrange(len(words)), str(rnd.randint(2, 2024)))
    if rnd.random() < 0.4:
        words[rnd.randrange(1, len(words))] += ","
    words[0] = words[0].capitalize()
    return " ".join(words) + rnd.choice(".....?!")


def post_json(port, path, body, timeout=120):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"POST {path}: {resp.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        conn.close()


def make_texts(port, count, min_tokens, max_tokens, seed):
    """`count` texts with token lengths drawn from [min_tokens, max_tokens]
    (EOS included; whole sentences, so a few tokens short at worst), measured
    with the server's own POST /tokenize."""
    rnd = random.Random(seed)
    sentences = [(" " if i else "") + make_sentence(rnd) for i in range(2000)]
    lengths = [len(t) for t in post_json(port, "/tokenize", {"input": sentences, "add_eos": False})["tokens"]]
    texts = []
    for _ in range(count):
        target = rnd.randint(min_tokens, max_tokens) - 1  # EOS
        parts, n, misses = [], 0, 0
        while misses < 50:  # fill up with sentences that still fit
            i = rnd.randrange(1, len(sentences))
            if n + lengths[i] > target:
                misses += 1
                continue
            parts.append(sentences[i] if parts else sentences[i].lstrip())
            n += lengths[i]
        texts.append("".join(parts))
    tokens = [len(t) for t in post_json(port, "/tokenize", {"input": texts})["tokens"]]
    return texts, tokens


# ---------------------------------------------------------------------------
# Server process and what we read from it.


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def get(port, path, timeout=10):
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def read_metrics(port):
    """Prometheus text -> {'name{labels}': value}."""
    _, body = get(port, "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def thread_cpu(pid):
    """{tid: CPU seconds} of every thread of `pid` (schedstat: nanoseconds;
    stat's tick counts are too coarse for threads that run for microseconds)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                out[int(tid)] = int(f.read().split()[0]) / 1e9
            continue
        except (FileNotFoundError, ProcessLookupError):
            continue
        except OSError:
            pass
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return out


def machine_busy():
    """CPU seconds all processes have used since boot (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return (sum(v[:8]) - idle) / CLK_TCK


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class ServerProcess:
    """`serve` with `args` on a free loopback port, its log in a temporary file
    named after `log_prefix`; returns once /health answers (at most 180 s)."""

    def __init__(self, binary, args, log_prefix):
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", prefix=log_prefix, suffix=".log", delete=False)
        cmd = [binary, "serve", "--host", HOST, "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log: {self.log.name}")
            try:
                if get(self.port, "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"server not healthy after 180 s; log: {self.log.name}")
            time.sleep(0.1)

    def stop(self):
        """SIGTERM, then SIGKILL after 60 s; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Server(ServerProcess):
    def __init__(self, binary, shape, args, extra_args):
        super().__init__(binary, ["--demo-shape", shape, "--http-threads", str(args.http_threads),
                                  "--threads", str(args.threads), *extra_args], f"rwkv-emb-bench-{shape}-")
        # httplib creates its worker pool when it starts listening, after every
        # other thread that exists by then, so those are the newest thread ids
        # now. Threads created later (the OpenMP team of the scheduler thread,
        # at its first step) belong to the engine.
        self.scrapes, self.scrape_cpu = 0, 0.0
        tids = sorted(thread_cpu(self.proc.pid))
        self.http_tids = set(tids[-args.http_threads:]) if len(tids) > args.http_threads else set()

    def metrics(self):
        self.scrapes += 1
        return read_metrics(self.port)

    def calibrate_scrape(self, n=50):
        """Server CPU one GET /metrics costs, measured on the idle server: the
        windows subtract it for the scrapes that find their edges."""
        _, h0 = self.cpu()
        for _ in range(n):
            read_metrics(self.port)
        _, h1 = self.cpu()
        self.scrape_cpu = (h1 - h0) / n

    def cpu(self):
        per = thread_cpu(self.proc.pid)
        http = sum(v for t, v in per.items() if t in self.http_tids)
        return sum(per.values()), http


# ---------------------------------------------------------------------------
# Load.


class Load:
    """`concurrency` client threads, each sending requests back to back on its
    own keep-alive connection until stopped."""

    def __init__(self, port, texts, concurrency, inputs, model, encoding, seed):
        self.port, self.texts, self.inputs, self.model, self.encoding = port, texts, inputs, model, encoding
        self.stopping = threading.Event()
        self.done = []  # (start, end, prompt_tokens); list.append is atomic
        self.errors = []
        self.conns = [None] * concurrency
        self.threads = [threading.Thread(target=self.client, args=(i, seed * 7919 + i), daemon=True)
                        for i in range(concurrency)]
        for t in self.threads:
            t.start()

    def client(self, i, seed):
        rnd = random.Random(seed)
        conn = None
        while not self.stopping.is_set():
            if conn is None:
                conn = self.conns[i] = http.client.HTTPConnection(HOST, self.port, timeout=600)
            body = {"model": self.model, "input": rnd.sample(self.texts, self.inputs)}
            if self.encoding != "float":
                body["encoding_format"] = self.encoding
            payload = json.dumps(body).encode()
            start = time.perf_counter()
            try:
                conn.request("POST", "/v1/embeddings", payload, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                end = time.perf_counter()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}: {data[:200]!r}")
                reply = json.loads(data)  # a real client decodes the whole answer
                if len(reply["data"]) != self.inputs:
                    raise RuntimeError(f"{len(reply['data'])} embeddings for {self.inputs} inputs")
                self.done.append((start, end, reply["usage"]["prompt_tokens"]))
            except Exception as e:  # noqa: BLE001 - counted and reported
                if not self.stopping.is_set():
                    self.errors.append(f"{repr(e)} after {time.perf_counter() - start:.3f} s")
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def stop(self, grace):
        """Stops sending; waits up to `grace` s for requests in flight, then
        drops their connections (the server cancels what they asked for)."""
        self.stopping.set()
        deadline = time.time() + grace
        for t in self.threads:
            t.join(max(0.0, deadline - time.time()))
        deadline = time.time() + 60
        while any(t.is_alive() for t in self.threads) and time.time() < deadline:
            for conn in self.conns:  # again until all are gone: a client may be reconnecting
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            for t in self.threads:
                t.join(0.05)


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def wait_idle(port, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if read_metrics(port).get("rwkv_emb_queue_requests", 0) == 0:
            return True
        time.sleep(0.2)
    return False


def snapshot(server, max_wait):
    """Metrics and CPU counters taken right after an engine step ends (polling
    /metrics until the step count moves, at most `max_wait` s), so that a
    window between two snapshots holds only whole steps and the step time in
    it can be compared with its wall time."""
    deadline = time.perf_counter() + max_wait
    m = server.metrics()
    first = m.get("rwkv_emb_step_duration_seconds_count", 0)
    # Poll at ~2% of a step (10-100 ms): edges within 2% of a step, few scrapes.
    mean_step = m.get("rwkv_emb_step_duration_seconds_sum", 0) / first if first else 0.5
    interval = min(0.1, max(0.01, mean_step / 50))
    while True:
        m = server.metrics()
        t = time.perf_counter()
        moved = m.get("rwkv_emb_step_duration_seconds_count", 0) != first
        if moved or t > deadline:
            return {"t": t, "metrics": m, "server": server.cpu(), "client": self_cpu(), "busy": machine_busy(),
                    "aligned": moved, "scrapes": server.scrapes}
        time.sleep(interval)


def run_point(server, texts, shape, concurrency, inputs, warmup, duration, args):
    if not wait_idle(server.port, 300):
        print(f"warning: server still busy before {shape} c={concurrency}", file=sys.stderr)
    load = Load(server.port, texts, concurrency, inputs, "rwkv-emb-demo", args.encoding, args.seed)
    time.sleep(warmup)
    a = snapshot(server, args.max_step_wait)
    time.sleep(max(0.0, a["t"] + duration - time.perf_counter()))
    b = snapshot(server, args.max_step_wait)
    load.stop(grace=1.0)
    t0, t1 = a["t"], b["t"]
    wall = t1 - t0

    def delta(key):
        return b["metrics"].get(key, 0.0) - a["metrics"].get(key, 0.0)

    done = [d for d in load.done if t0 <= d[1] < t1]
    steps = delta("rwkv_emb_step_duration_seconds_count")
    step_time = delta("rwkv_emb_step_duration_seconds_sum")
    (s0, h0), (s1, h1) = a["server"], b["server"]
    scrape = (b["scrapes"] - a["scrapes"]) * server.scrape_cpu  # our own /metrics polling, not the load's
    s1, h1 = s1 - scrape, h1 - scrape
    srv, cli, busy = (s1 - s0) / wall, (b["client"] - a["client"]) / wall, (b["busy"] - a["busy"]) / wall
    return {
        "shape": shape,
        "concurrency": concurrency,
        "inputs": inputs,
        "seconds": wall,
        "aligned": a["aligned"] and b["aligned"],
        "requests": len(done),
        "errors": len(load.errors),
        "first_error": load.errors[0] if load.errors else None,
        "req_per_s": len(done) / wall,
        "tok_per_s": sum(d[2] for d in done) / wall,
        "engine_tok_per_s": delta("rwkv_emb_tokens_processed_total") / wall,
        "p50_s": percentile([d[1] - d[0] for d in done], 50),
        "p99_s": percentile([d[1] - d[0] for d in done], 99),
        "server_mean_latency_s": (delta('rwkv_emb_http_request_duration_seconds_sum{route="/v1/embeddings"}')
                                  / max(1.0, delta('rwkv_emb_http_request_duration_seconds_count{route="/v1/embeddings"}'))),
        "client_mean_latency_s": sum(d[1] - d[0] for d in done) / len(done) if done else float("nan"),
        "steps": int(steps),
        "tokens_per_step": delta("rwkv_emb_step_tokens_sum") / steps if steps else 0.0,
        "seqs_per_step": delta("rwkv_emb_step_sequences_sum") / steps if steps else 0.0,
        "outside_engine": 1.0 - step_time / wall,
        "http_cpu_share": (h1 - h0) / (s1 - s0) if s1 > s0 else float("nan"),
        "server_cores": srv,
        "client_cores": cli,
        "other_cores": max(0.0, busy - srv - cli),
    }


def fmt_s(x):
    return "-" if x != x else (f"{x * 1000:.0f}ms" if x < 10 else f"{x:.1f}s")


def print_table(rows, out=sys.stdout):
    head = ["shape", "conc", "s", "reqs", "steps", "req/s", "tok/s", "eng tok/s", "p50", "p99", "tok/step",
            "outside", "http cpu", "srv/cli/oth cores"]
    lines = [head]
    for r in rows:
        lines.append([
            r["shape"], str(r["concurrency"]), f"{r['seconds']:.1f}" + ("" if r["aligned"] else "*"),
            str(r["requests"]), str(r["steps"]), f"{r['req_per_s']:.2f}",
            f"{r['tok_per_s']:.0f}", f"{r['engine_tok_per_s']:.0f}", fmt_s(r["p50_s"]), fmt_s(r["p99_s"]),
            f"{r['tokens_per_step']:.0f}", f"{100 * r['outside_engine']:.1f}%",
            f"{100 * r['http_cpu_share']:.1f}%",
            f"{r['server_cores']:.2f}/{r['client_cores']:.2f}/{r['other_cores']:.2f}",
        ])
    widths = [max(len(l[i]) for l in lines) for i in range(len(head))]
    for n, l in enumerate(lines):
        print("| " + " | ".join(c.rjust(w) for c, w in zip(l, widths)) + " |", file=out)
        if n == 0:
            print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|", file=out)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("binary", help="path to rwkv-emb-server")
    p.add_argument("--quick", action="store_true", help="short points and two concurrencies (smoke test)")
    p.add_argument("--shapes", default="small,0.1b", help="comma-separated --demo-shape values")
    p.add_argument("--concurrency", help="comma-separated client counts (default: small 1,4,16,64; 0.1b 1,4,16)")
    p.add_argument("--duration", type=float, help="measured seconds per point (default: small 10, 0.1b 30)")
    p.add_argument("--warmup", type=float, help="seconds of load before measuring each point")
    p.add_argument("--inputs", type=int, help="texts per request (default: small 4, 0.1b 2)")
    p.add_argument("--min-tokens", type=int, help="shortest text in tokens (default 64)")
    p.add_argument("--max-tokens", type=int, help="longest text in tokens (default: small 512, 0.1b 256)")
    p.add_argument("--encoding", choices=["float", "base64"], default="float", help="encoding_format asked for")
    p.add_argument("--threads", type=int, default=0, help="server --threads (0: all cores)")
    p.add_argument("--http-threads", type=int, default=128, help="server --http-threads")
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra server flag, repeatable (e.g. --server-arg=--max-batch-tokens=8192)")
    p.add_argument("--max-step-wait", type=float, default=120,
                   help="longest wait for an engine step to end at each edge of a window")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    args = p.parse_args()
    # A SIGTERM still runs the `finally` that stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    shapes = [s for s in args.shapes.split(",") if s]
    for shape in shapes:
        if shape not in PROFILES:
            p.error(f"unknown shape {shape!r} (known: {', '.join(PROFILES)})")
    rows = []
    started = time.time()
    print(f"rwkv-emb-server loopback benchmark: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}; the load generator runs on the same machine", flush=True)
    for shape in shapes:
        prof = PROFILES[shape]
        concurrency = ([int(c) for c in args.concurrency.split(",")] if args.concurrency
                       else prof["quick_concurrency" if args.quick else "concurrency"])
        warmup, duration = prof["quick_times" if args.quick else "times"]
        warmup = warmup if args.warmup is None else args.warmup
        duration = duration if args.duration is None else args.duration
        inputs = args.inputs or prof["inputs"]
        min_tokens = args.min_tokens or prof["tokens"][0]
        max_tokens = args.max_tokens or prof["tokens"][1]
        # The profile's server flags, unless --server-arg sets the same flag.
        given = {a.split("=")[0] for a in args.server_arg if a.startswith("--")}
        extra = [a for i, a in enumerate(prof["server_args"])
                 if not (a.startswith("--") and a in given) and not (i > 0 and prof["server_args"][i - 1] in given)]
        extra += args.server_arg
        server = Server(args.binary, shape, args, extra)
        try:
            texts, tokens = make_texts(server.port, 256, min_tokens, max_tokens, args.seed)
            server.calibrate_scrape()
            print(f"[{shape}] server flags {' '.join(extra) or '(defaults)'}; {len(texts)} texts of "
                  f"{min(tokens)}-{max(tokens)} tokens (mean {sum(tokens) / len(tokens):.0f}), {inputs} per "
                  f"request, {warmup:g}+{duration:g} s per point; one /metrics scrape costs "
                  f"{server.scrape_cpu * 1e3:.2f} ms of server CPU; server log {server.log.name}", flush=True)
            for c in concurrency:
                row = run_point(server, texts, shape, c, inputs, warmup, duration, args)
                rows.append(row)
                print(f"  c={c:<3} {row['requests']} requests, {row['steps']} steps in {row['seconds']:.1f} s, "
                      f"{row['req_per_s']:.2f} req/s, {row['tok_per_s']:.0f} tok/s, engine "
                      f"{row['engine_tok_per_s']:.0f} tok/s, outside engine {100 * row['outside_engine']:.1f}%, "
                      f"http cpu {100 * row['http_cpu_share']:.1f}%, mean latency server {fmt_s(row['server_mean_latency_s'])} "
                      f"client {fmt_s(row['client_mean_latency_s'])}, errors {row['errors']}"
                      + (f" (first: {row['first_error']})" if row["errors"] else ""), flush=True)
        finally:
            server.stop()
    print(f"\nfinished in {time.time() - started:.0f} s, load average now {os.getloadavg()[0]:.2f}\n")
    print_table(rows)
    print("\ns: measured window, from the end of one engine step to the end of another (*: no step ended "
          "in time, edge not aligned);\nreq/s, tok/s, p50, p99: requests completed in the window "
          "(tok: usage.prompt_tokens); eng tok/s: rwkv_emb_tokens_processed_total;\n"
          "outside: 1 - engine step time / wall time; http cpu: server CPU in HTTP worker threads "
          "(parsing, tokenization, JSON, log);\ncores: server / this load generator / all other processes "
          "(the load generator shares the machine with the server).")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
