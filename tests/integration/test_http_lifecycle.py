"""The server under concurrency, overload, disconnects, shutdown and configuration."""
import concurrent.futures
import json
import random
import re
import signal
import socket
import threading
import time

import pytest
import requests

from conftest import fail_to_start

WORDS = "state recurrent token embedding rerank query document model batch chunk".split()


def text_of(n_words, seed):
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(n_words))


def embed(server, texts):
    r = server.post("/v1/embeddings", {"input": texts})
    assert r.status_code == 200, r.text
    return [d["embedding"] for d in r.json()["data"]]


def queue_depth(server):
    m = re.search(r"^rwkv_emb_queue_requests (\S+)$", server.get("/metrics").text, re.M)
    return float(m.group(1))


def test_concurrent_clients_get_single_request_results(make_server):
    server = make_server("--max-batch-seqs", "6", "--chunk-tokens", "32", "--max-batch-tokens", "128")
    texts = [text_of(1 + (i * 37) % 400, i) for i in range(40)]
    alone = [embed(server, [t])[0] for t in texts]
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        together = list(pool.map(lambda t: embed(server, [t])[0], texts))
        batched = list(pool.map(lambda i: embed(server, texts[i:i + 4]), range(0, 40, 4)))
    assert together == alone  # bit for bit: the same JSON numbers
    assert [e for chunk in batched for e in chunk] == alone


def test_full_queue_answers_429_with_retry_after(make_server):
    server = make_server("--max-queued-requests", "1", "--max-batch-seqs", "1", "--chunk-tokens", "16",
                         "--max-input-tokens", "1000000")
    long_text = text_of(20000, 1)
    results = {}

    def slow():  # nothing arrives until it is done: allow a loaded machine minutes
        results["slow"] = requests.post(server.url + "/v1/embeddings", json={"input": long_text}, timeout=600)

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.time() + 30
    while queue_depth(server) < 1 and time.time() < deadline:
        time.sleep(0.02)
    r = server.post("/v1/embeddings", {"input": "short"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "1", r.text
    assert r.json()["error"]["type"] == "rate_limit_error"
    r = server.post("/v1/rerank", {"query": "q", "documents": ["d"]})
    assert r.status_code == 429 and "message" in r.json()
    t.join()
    assert results["slow"].status_code == 200  # accepted work is not lost


def test_client_disconnect_cancels_its_work(make_server):
    server = make_server("--max-batch-seqs", "1", "--chunk-tokens", "16", "--max-input-tokens", "1000000")
    body = json.dumps({"input": text_of(100000, 2)}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.time() + 30
    while queue_depth(server) < 1 and time.time() < deadline:
        time.sleep(0.02)
    assert queue_depth(server) == 1
    sock.close()
    t0 = time.time()
    while queue_depth(server) > 0 and time.time() - t0 < 10:
        time.sleep(0.05)
    assert queue_depth(server) == 0, "the abandoned request kept running"
    assert time.time() - t0 < 5
    assert server.post("/v1/embeddings", {"input": "next"}).status_code == 200


def test_a_slow_request_gets_an_ordinary_200_with_content_length(make_server):
    """Nothing is sent while the engine computes (no heartbeat by default), so
    a request that takes far more than 100 ms still gets a plain answer."""
    # Thousands of 4-token steps: about a second on the demo model, with fast kernels too.
    server = make_server("--max-batch-seqs", "1", "--chunk-tokens", "4", "--max-input-tokens", "1000000")
    text = text_of(30000, 4)
    for path, body in [("/v1/embeddings", {"input": text}), ("/v1/rerank", {"query": "q", "documents": [text]})]:
        t0 = time.monotonic()
        r = server.post(path, body)
        assert time.monotonic() - t0 > 0.2, "the request should have taken well over 100 ms"
        assert r.status_code == 200, r.text[:300]
        assert "Transfer-Encoding" not in r.headers and "Content-Length" in r.headers
        assert r.text.startswith("{")


def test_sigterm_finishes_in_flight_requests_then_exits_0(make_server):
    server = make_server("--max-batch-seqs", "1", "--chunk-tokens", "64", "--max-input-tokens", "1000000")
    results = {}

    def request():
        results["r"] = server.post("/v1/embeddings", {"input": text_of(10000, 3)})

    t = threading.Thread(target=request)
    t.start()
    deadline = time.time() + 30
    while queue_depth(server) < 1 and time.time() < deadline:
        time.sleep(0.02)
    server.proc.send_signal(signal.SIGTERM)
    t.join(120)
    assert results["r"].status_code == 200 and len(results["r"].json()["data"]) == 1
    assert server.proc.wait(30) == 0
    try:
        requests.get(server.url + "/health", timeout=2)
        raise AssertionError("still accepting connections after SIGTERM")
    except requests.ConnectionError:
        pass


def test_options_from_environment_and_config_file(make_server, tmp_path):
    server = make_server(env={"RWKV_EMB_SERVED_MODEL_NAME": "from-env"})
    assert server.get("/v1/models").json()["data"][0]["id"] == "from-env"
    cfg = tmp_path / "server.toml"
    cfg.write_text('served-model-name = "from-file"\nmax-input-tokens = 5\n')
    server = make_server("--config", str(cfg))
    assert server.get("/v1/models").json()["data"][0]["id"] == "from-file"
    assert server.post("/v1/embeddings", {"input": "a b c d e f g h"}).status_code == 400
    # Flags win over the environment.
    server = make_server("--served-model-name", "from-flag", env={"RWKV_EMB_SERVED_MODEL_NAME": "from-env"})
    assert server.get("/v1/models").json()["data"][0]["id"] == "from-flag"


def test_half_precision_is_refused_on_the_cpu():
    out = fail_to_start("--device", "cpu", "--dtype", "float16")
    assert "--dtype float16 needs --device cuda" in out, out
    out = fail_to_start("--dtype", "float64")
    assert "float64" in out, out


@pytest.mark.parametrize("args, message", [
    (["--http-threads", "0"], "--http-threads: Value 0 not in range"),
    (["--read-timeout", "-1"], "--read-timeout: Value -1 not in range"),
    (["--max-inputs", "0"], "--max-inputs: Value 0 not in range"),
    (["--threads", "-2"], "--threads: Value -2 not in range"),
    (["--state-dtype", "int4"], "--state-dtype: 'int4' is not one of float32, float16, bfloat16, int8"),
    (["--state-dtype", "2"], "'2' is not one of"),  # the enum's number is no name
    (["--log-format", "xml"], "--log-format: 'xml' is not one of text, json"),
    (["--device", "cuda:x"], "--device: 'cuda:x': expected cpu, cuda or cuda:N"),
])
def test_bad_option_values_are_start_up_errors(args, message):
    out = fail_to_start(*args)
    assert message in out, out


def test_option_names_from_the_config_file_are_checked_alike(tmp_path):
    cfg = tmp_path / "server.toml"
    cfg.write_text('state-store = "tape"\n')
    out = fail_to_start("--config", str(cfg))
    assert "'tape' is not one of memory, disk, redis" in out, out


def test_half_open_connections_do_not_starve_clients(make_server):
    server = make_server("--http-threads", "64", "--read-timeout", "2")
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
    try:
        for s in idle[:25]:
            s.sendall(b"POST /v1/embeddings HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # never finished
        t0 = time.time()
        assert server.post("/v1/embeddings", {"input": "still served"}).status_code == 200
        assert time.time() - t0 < 5
    finally:
        for s in idle:
            s.close()
