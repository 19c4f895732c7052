"""Faults the server must survive, each against the real binary: slow and
stalled clients, clients that go away, SIGTERM under load, a full or
read-only state volume, corrupted state files, and a bad model at start.
docs/reliability.md ("Faults") lists what each test tried and what it found."""
import json
import pathlib
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import FIXTURES, SANITIZER, fail_to_start
from test_http_lifecycle import queue_depth, text_of


def trickle(port, prefix, slow_part, interval, outcome):
    """Sends `prefix` at once, then `slow_part` one byte every `interval` s;
    records when (time.monotonic()) the server answered or closed the
    connection, and what it sent."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(prefix)
        s.settimeout(interval)
        for i in range(len(slow_part)):
            try:
                s.sendall(slow_part[i:i + 1])
                reply = s.recv(65536)  # anything, or b"" for a close, ends the trickle
            except socket.timeout:
                continue
            except OSError as e:  # reset by the server
                reply = repr(e).encode()
            outcome.update(closed_at=time.monotonic(), sent=i + 1)
            try:
                while chunk := s.recv(65536):  # the rest of an answer, until the close
                    reply += chunk
            except OSError:
                pass
            outcome["reply"] = reply
            return
        outcome.update(closed_at=None, sent=len(slow_part))


def test_slow_loris_connections_are_cut_at_the_read_timeout_while_others_are_served(make_server):
    """50 connections trickle a request one byte every 0.2 s: every single read
    is quick, so only a deadline for the whole request ends them. They hold 50
    of the 64 worker threads until then; other clients are served meanwhile."""
    server = make_server("--http-threads", "64", "--read-timeout", "3")
    line = b"POST /v1/embeddings HTTP/1.1\r\n"
    headers = b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n"
    body = b'{"input": "' + b"a" * 380 + b'"}        '
    kinds = {  # what is sent at once, what is trickled
        "request line": (b"", line + headers + body),
        "headers": (line, headers + body),
        "body": (line + headers, body),
    }
    outcomes = [(kind, {}) for kind in kinds for _ in range(17)][:50]
    opened = time.monotonic()
    threads = [threading.Thread(target=trickle, args=(server.port, *kinds[kind], 0.2, out))
               for kind, out in outcomes]
    for t in threads:
        t.start()
    time.sleep(0.5)
    latencies = []
    for i in range(10):  # while every slow connection is still open
        t0 = time.monotonic()
        r = server.post("/v1/embeddings", {"input": f"served meanwhile {i}"})
        latencies.append(time.monotonic() - t0)
        assert r.status_code == 200, r.text
    served_by = time.monotonic()
    for t in threads:
        t.join(60)
    closed = [o["closed_at"] - opened for _, o in outcomes if o["closed_at"]]
    print(f"\n50 slow connections: 10 other requests took {min(latencies) * 1000:.0f}-"
          f"{max(latencies) * 1000:.0f} ms meanwhile; the slow ones were closed after "
          f"{min(closed):.1f}-{max(closed):.1f} s")
    for kind, out in outcomes:
        # Cut long before the whole request was trickled (at 0.2 s a byte that takes > 80 s).
        assert out["closed_at"] is not None and out["sent"] < len(kinds[kind][1]) // 2, (kind, out)
        # The other requests were answered while this connection was still open.
        assert served_by < out["closed_at"], (kind, out)
        if kind != "request line":  # a request had begun: the client is told why
            assert out["reply"].startswith(b"HTTP/1.1 408 "), (kind, out)
            assert b"read timeout" in out["reply"]



def test_slow_connections_beyond_the_worker_threads_are_cut_in_one_wave(make_server):
    """40 trickling connections for 8 workers: those that waited for a worker
    count their read timeout from their accept, so they are all cut around the
    same moment (not in five waves of one timeout each), and a client queued
    behind them is served then."""
    timeout = 2
    server = make_server("--http-threads", "8", "--read-timeout", str(timeout))
    request = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n" + b'{"input": "queued"}'
    outcomes = [{} for _ in range(40)]
    threads = [threading.Thread(target=trickle, args=(server.port, b"", request, 0.2, out)) for out in outcomes]
    for t in threads:
        t.start()
    time.sleep(0.5)
    r = server.post("/v1/embeddings", {"input": "behind the slow ones"})
    answered = time.monotonic()
    for t in threads:
        t.join(60)
    closed = sorted(o["closed_at"] for o in outcomes)
    print(f"\n40 slow connections, 8 workers, read timeout {timeout} s: all closed within "
          f"{closed[-1] - closed[0]:.1f} s of each other; the queued client answered "
          f"{answered - closed[0]:+.1f} s after the first close")
    assert r.status_code == 200, r.text
    assert closed[-1] - closed[0] < timeout and answered < closed[0] + timeout

def test_more_connections_than_select_can_watch_get_503_not_500(make_server):
    """The system httplib watches sockets with select(), which cannot take
    descriptors numbered FD_SETSIZE (1024) or more, and answered such
    connections 500; the server answers them 503 with Retry-After."""
    connections = 1100
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < connections + 200:
        pytest.skip(f"\n\n*** open file limit {hard} < {connections + 200}: FD_SETSIZE test SKIPPED ***\n")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, connections + 200), hard))
    try:
        server = make_server()  # inherits the limit
        socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(connections)]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    deadline = time.monotonic() + 30  # until the server has accepted them all (numbers up to ~1100)
    while len(list(pathlib.Path(f"/proc/{server.proc.pid}/fd").iterdir())) < connections:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    replies = []
    for s in socks:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    for s in socks:
        s.settimeout(60)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
        s.close()
        replies.append(reply)
    statuses = [int(r.split(b" ", 2)[1]) for r in replies]
    refused = [r for r, status in zip(replies, statuses) if status == 503]
    assert set(statuses) == {200, 503} and len(refused) >= connections - 1024 + 1, sorted(set(statuses))
    head, _, body = refused[0].partition(b"\r\n\r\n")
    assert b"Retry-After: 1" in head and "too many open connections" in json.loads(body)["error"]["message"]
    # Served normally again. (Linux reserves the number of the next accepted
    # socket when accept() starts waiting: the first connection after the flood
    # may still get a high one, and a 503.)
    r = server.get("/health")
    if r.status_code == 503:
        time.sleep(int(r.headers["Retry-After"]))
        r = server.get("/health")
    assert r.status_code == 200, r.text

# ---- A full or read-only state volume ----
#
# CI runs as root, for whom chmod blocks nothing, and a loop device needs
# privileges and an image file. Instead the server runs as root of its own user
# and mount namespaces (`unshare -Urm`, no privilege needed outside), where it
# gets a real tmpfs of a few pages (a real ENOSPC) or a bind mount of its state
# folder that the test remounts read-only (a real EROFS) while it serves.
# /proc/PID/root shows the test that namespace's files. RLIMIT_FSIZE would give
# EFBIG and a signal instead, an LD_PRELOAD shim only a simulation.

def namespaced(setup):
    """Command prefix: the server starts in new user and mount namespaces after
    the shell commands `setup` (mounts)."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "-Urm", "true"], capture_output=True).returncode != 0:
        pytest.skip("\n\n*** `unshare -Urm` NOT AVAILABLE (util-linux, user namespaces); "
                    "full and read-only state volume tests SKIPPED ***\n")
    return ["unshare", "-Urm", "sh", "-c", setup + ' && exec "$@"', "sh"]


def in_namespace(server, path):
    """`path` as the server sees it, readable from here."""
    return pathlib.Path(f"/proc/{server.proc.pid}/root{path}")


def fixture_model(state_dir):
    return ("--model", str(FIXTURES / "embedding.pth"), "--reranker", str(FIXTURES / "reranker_idx.pth"),
            "--state-dir", str(state_dir))


def create_state(server, state_id, text):
    return server.post("/v1/states", {"documents": [{"text": text, "id": state_id}]})


def upload(server, state_id, blob):
    return requests.put(f"{server.url}/v1/states/{state_id}", data=blob, timeout=60,
                        headers={"Content-Type": "application/octet-stream"})


def delete(server, state_id):
    return requests.delete(f"{server.url}/v1/states/{state_id}", timeout=60)


def stored(server):
    """{id: blob} of every state listed."""
    ids = [m["id"] for m in server.get("/v1/states").json()["data"]]
    return {i: server.get(f"/v1/states/{i}/content").content for i in ids}


def rerank_states(server, ids):
    r = server.post("/v1/rerank", {"query": "What is a state?", "documents": [{"state_id": i} for i in ids]})
    assert r.status_code == 200, r.text
    return {x["index"]: x["relevance_score"] for x in r.json()["results"]}


def state_files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_full_state_volume_is_507_and_nothing_is_lost(make_server, tmp_path, expected):
    state_dir = tmp_path / "states"
    state_dir.mkdir()
    # A fixture state's file takes 25 pages of 4 KiB: room for 3 and a half.
    server = make_server(*fixture_model(state_dir),
                         prefix=namespaced(f"mount -t tmpfs -o size=360k tmpfs {shlex.quote(str(state_dir))}"))
    folder = in_namespace(server, state_dir / "_")
    for i in range(3):
        assert create_state(server, f"s{i}", text_of(20, i)).status_code == 200
    before = stored(server)
    scores = rerank_states(server, list(before))

    full = [create_state(server, "s3", "one state too many"), upload(server, "s4", before["s0"])]
    for r in full:
        assert r.status_code == 507, r.text
        message = r.json()["error"]["message"]
        assert "full" in message and "No space left on device" in message and str(state_dir) not in message
    assert "No space left on device" in server.output() and str(state_dir) in server.output()
    # Nothing half-written is left or listed; every earlier state reads and scores as before.
    assert state_files(folder) == ["s0.state", "s1.state", "s2.state"]
    assert stored(server) == before
    assert rerank_states(server, list(before)) == scores
    # Space freed through the API: storing works again, without a restart.
    assert delete(server, "s2").status_code == 200
    assert upload(server, "s4", before["s0"]).status_code == 201
    assert state_files(folder) == ["s0.state", "s1.state", "s4.state"]
    r = server.get("/health")
    assert r.status_code == 200, (r.text, len(list(pathlib.Path(f"/proc/{server.proc.pid}/fd").iterdir())))


def test_read_only_state_volume_is_503_and_recovers_when_writable(make_server, tmp_path, expected):
    state_dir = tmp_path / "states"
    state_dir.mkdir()
    quoted = shlex.quote(str(state_dir))
    server = make_server(*fixture_model(state_dir), prefix=namespaced(f"mount --bind {quoted} {quoted}"))
    for i in range(2):
        assert create_state(server, f"s{i}", text_of(20, i)).status_code == 200
    before = stored(server)
    scores = rerank_states(server, list(before))
    files = {p.name: p.read_bytes() for p in (state_dir / "_").iterdir()}

    def remount(mode):
        subprocess.run(["nsenter", "-t", str(server.proc.pid), "-U", "-m", "--preserve-credentials",
                        "mount", "-o", f"remount,bind,{mode}", str(state_dir)], check=True)

    remount("ro")
    refused = [create_state(server, "s2", "new"), upload(server, "s3", before["s0"]), delete(server, "s0")]
    for r in refused:
        # The operator must act (a client cannot free anything): 503, retry later.
        assert r.status_code == 503 and r.headers["Retry-After"], r.text
        assert "state store is unavailable" in r.json()["error"]["message"]
        assert str(state_dir) not in r.text
    assert "Read-only file system" in server.output()
    assert stored(server) == before
    assert rerank_states(server, list(before)) == scores
    assert {p.name: p.read_bytes() for p in (state_dir / "_").iterdir()} == files  # no temp file, no change

    remount("rw")
    assert upload(server, "s3", before["s0"]).status_code == 201
    assert delete(server, "s0").status_code == 200
    assert sorted(stored(server)) == ["s1", "s3"]


# ---- Clients that go away, and SIGTERM under load ----

def abandoned_request(port, path, body):
    """Sends a request on a raw socket and returns the socket, to be closed unread."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


def wait_for_queue(server, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate(queue_depth(server)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return queue_depth(server)


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_repeated_disconnects_cancel_the_work_and_free_everything(make_server):
    """Each round abandons a long embedding, rerank and state request; the one
    engine slot (--max-batch-seqs 1) must be free again after every round."""
    server = make_server("--max-batch-seqs", "1", "--chunk-tokens", "16", "--max-input-tokens", "1000000",
                         "--state-store", "memory")
    long_text = text_of(100000, 2)  # minutes of work at 16 tokens a step
    bodies = {"/v1/embeddings": {"input": long_text}, "/v1/rerank": {"query": "q", "documents": [long_text]},
              "/v1/states": {"documents": [long_text]}}
    rss, rounds = [], 10
    for _ in range(rounds):
        socks = [abandoned_request(server.port, path, body) for path, body in bodies.items()]
        assert wait_for_queue(server, lambda n: n == len(bodies)) == len(bodies)
        for s in socks:
            s.close()
        assert wait_for_queue(server, lambda n: n == 0) == 0, "abandoned work kept running"
        assert server.post("/v1/embeddings", {"input": "next"}).status_code == 200  # the slot is free
        rss.append(rss_kib(server.proc.pid))
    assert server.get("/v1/states").json()["data"] == []  # abandoned states were never stored
    metrics = server.get("/metrics").text
    assert len(re.findall(r'^rwkv_emb_http_requests_total\{.*status="499"\} ', metrics, re.M)) == len(bodies)
    growth = rss[-1] - rss[1]
    print(f"\nRSS after each of {rounds} rounds of 3 abandoned requests (MiB): "
          f"{' '.join(f'{r / 1024:.1f}' for r in rss)}; growth after the first two: {growth / 1024:.1f} MiB")
    # A leaked request would hold at least its 800 KB body: 8 rounds of 3, 19 MiB. Under ASan,
    # whose quarantine holds freed memory, LeakSanitizer checks for leaks at exit instead.
    assert growth < 8 * 1024 or SANITIZER, rss


def test_sigterm_under_load_finishes_accepted_work_and_keeps_accepted_states(make_server, tmp_path):
    state_dir = tmp_path / "states"
    args = ("--max-batch-seqs", "2", "--chunk-tokens", "16", "--max-input-tokens", "1000000",
            "--state-dir", str(state_dir))
    server = make_server(*args)
    # Accepted before the signal: computed (200) and uploaded (201).
    assert create_state(server, "early", "a state stored before the signal").status_code == 200
    assert upload(server, "uploaded", server.get("/v1/states/early/content").content).status_code == 201
    before = stored(server)
    # In flight when the signal comes, and long enough to still be computing when the late
    # requests below arrive (with 3,000 words each the drain once ended between two of them, and
    # the server had stopped listening).
    texts = [text_of(12000, 10 + i) for i in range(6)]
    jobs = [("/v1/embeddings", {"input": t}) for t in texts[:4]]
    jobs += [("/v1/states", {"documents": [{"text": t, "id": f"in-flight-{i}"}]}) for i, t in enumerate(texts[4:])]
    results = [None] * len(jobs)

    def send(i):
        results[i] = server.post(*jobs[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    assert wait_for_queue(server, lambda n: n == len(jobs)) == len(jobs)
    server.proc.send_signal(signal.SIGTERM)
    # New work is refused while the accepted work finishes.
    late = [server.post("/v1/embeddings", {"input": "late"}), create_state(server, "late", "late"),
            upload(server, "late", before["early"]), server.get("/health")]
    for t in threads:
        t.join(120)
    assert server.proc.wait(60) == 0
    for r in late:
        assert r.status_code == 503 and r.headers["Retry-After"], r.text
    for (path, _), r in zip(jobs, results):
        assert r.status_code == 200, (path, r.text)
    assert [len(r.json()["data"]) for r in results] == [1] * len(jobs)
    made = {f"in-flight-{i}": r.json()["data"][0]["tokens"] for i, r in enumerate(results[4:])}

    # Every state accepted before or during the drain is on disk after a restart, byte for byte.
    again = make_server(*args)
    after = stored(again)
    assert sorted(after) == sorted([*before, *made])
    assert all(after[i] == before[i] for i in before)
    assert {i: again.get(f"/v1/states/{i}").json()["tokens"] for i in made} == made


# ---- A bad model file at start ----

@pytest.mark.parametrize("flag,case,words", [
    ("--model", "missing", "No such file or directory"),
    ("--model", "a folder", "not a regular file"),
    ("--model", "empty", "empty"),
    ("--model", "text", "exceeds the file size"),  # neither a zip nor a safetensors header
    ("--model", "truncated", "zip"),
    ("--model", "the reranker", "looks like a reranker checkpoint"),
    ("--reranker", "the model", "missing tensor 'reranker."),
    ("--reranker", "missing", "No such file or directory"),
])
def test_a_bad_model_file_stops_the_start_with_a_message_naming_it(tmp_path, expected, flag, case, words):
    files = {"--model": FIXTURES / "embedding.pth", "--reranker": FIXTURES / "reranker_idx.pth"}
    bad = {"the reranker": files["--reranker"], "the model": files["--model"]}.get(case, tmp_path / "bad.pth")
    if case == "a folder":
        bad.mkdir()
    elif case == "empty":
        bad.write_bytes(b"")
    elif case == "text":
        bad.write_text("this is not a checkpoint\n")
    elif case == "truncated":
        bad.write_bytes(files["--model"].read_bytes()[:100000])
    files[flag] = bad
    out = fail_to_start(*(arg for item in files.items() for arg in map(str, item)))  # exits, does not hang
    assert f"{bad}: " in out and words in out, out
