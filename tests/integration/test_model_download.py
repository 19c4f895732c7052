"""`--model tiny` against a local stand-in for HuggingFace: the endpoint answers
/{repo}/resolve/main/{file} with a redirect to a "CDN" on another port (the
SHA-256 in X-Linked-Etag, as HuggingFace sends it for LFS files), the CDN
redirects once more (relative Location), then sends the file. The stand-in
serves the fixture checkpoints under the names of the tiny release."""
import hashlib
import http.server
import os
import pathlib
import pty
import select
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse

import numpy as np
import pytest

from conftest import BINARY, FIXTURES, fail_to_start, free_port, require_fixtures

REPO = "howard-hou/EmbeddingRWKV"
TINY = {"rwkv0b1-emb-curriculum.pth": "embedding.pth", "rwkv0b1-reranker.pth": "reranker_idx.pth"}
# A signed CDN query as HuggingFace's look: the CDN checks the decoded values.
SIGNED_QUERY = ("response-content-disposition=inline%3B+filename%3D%22m.pth%22%3B"
                "&X-Amz-Credential=cas%2F20250101%2Fus-east-1&Signature=Ab-c~d_e")


def signed(path):
    query = urllib.parse.urlsplit(path).query
    return urllib.parse.parse_qs(query) == urllib.parse.parse_qs(SIGNED_QUERY)


class HubStub:
    """The endpoint and its CDN: two loopback HTTP servers and the requests they saw."""

    def __init__(self, published_sha256=None, tls_context=None, stall=False):
        require_fixtures()
        self.files = {name: (FIXTURES / fixture).read_bytes() for name, fixture in TINY.items()}
        # name -> the X-Linked-Etag to send; None: the true SHA-256, "": no header.
        self.published = published_sha256 or {}
        self.requests = []  # (server, path, Authorization header)
        self.stall = stall  # the CDN sends 1 MB, then nothing until close()
        self.closing = threading.Event()
        self.endpoint = self._start("endpoint", tls_context)
        self.cdn = self._start("cdn", None)
        scheme = "https" if tls_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self.endpoint.server_port}"

    def _start(self, role, tls_context):
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                stub.requests.append((role, self.path, self.headers.get("Authorization")))
                getattr(self, "answer_" + role)()

            def answer_endpoint(self):
                name = self.path.removeprefix(f"/{REPO}/resolve/main/")
                if name not in stub.files:
                    return self.send(404, b"Entry not found")
                sha = hashlib.sha256(stub.files[name]).hexdigest()
                published = stub.published.get(name, sha)
                cdn = f"http://127.0.0.1:{stub.cdn.server_port}/first/{name}?{SIGNED_QUERY}"
                headers = {"Location": cdn, "X-Linked-Size": str(len(stub.files[name])),
                           "ETag": '"0123456789abcdef0123456789abcdef01234567"'}  # a git blob id
                if published:
                    headers["X-Linked-Etag"] = f'"{published}"'
                self.send(302, b"Found. Redirecting", headers)

            def answer_cdn(self):
                if self.path.startswith("/first/"):
                    return self.send(307, b"", {"Location": self.path.replace("/first/", "/blobs/", 1)})
                name = self.path.removeprefix("/blobs/").split("?")[0]
                if name not in stub.files or not signed(self.path):
                    return self.send(403, b"bad signature")
                if stub.stall:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(stub.files[name])))
                    self.end_headers()
                    self.wfile.write(stub.files[name][:1 << 20])
                    self.wfile.flush()
                    stub.closing.wait(60)
                    return
                self.send(200, stub.files[name], {"ETag": '"d41d8cd98f00b204e9800998ecf8427e"'})

            def send(self, status, body, headers=None):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls_context:
            server.socket = tls_context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def close(self):
        self.closing.set()
        for s in (self.endpoint, self.cdn):
            s.shutdown()
            s.server_close()


@pytest.fixture()
def hub():
    stubs = []

    def start(**kw):
        stubs.append(HubStub(**kw))
        return stubs[-1]

    yield start
    for s in stubs:
        s.close()


def serve_args(stub, cache):
    # The fixture's numbers are of text + one EOS: the single protocol (the download is tested here).
    return ("--model", "tiny", "--hf-endpoint", stub.url, "--model-cache-dir", str(cache),
            "--eos-protocol", "single")


def cached_files(cache):
    return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())


def hello_embedding(server):
    r = server.post("/v1/embeddings", {"input": "Hello world!", "normalize": False})
    assert r.status_code == 200, r.text
    return r.json()["data"][0]["embedding"]


def assert_serves_fixture(server, expected):
    want = next(c for c in expected["embeddings"] if c["name"] == "hello")["retr"]
    assert np.max(np.abs(np.asarray(hello_embedding(server)) - want)) <= 1e-4
    ro = expected["rerank_online"]
    r = server.post("/v1/rerank", {"query": ro["query"], "documents": ro["documents"],
                                   "return_documents": False})
    assert r.status_code == 200, r.text
    logits = ro["scores"]["rr_idx"]["logits"]
    for res in r.json()["results"]:
        assert abs(res["relevance_score"] - 1 / (1 + np.exp(-logits[res["index"]]))) <= 1e-4


def test_tiny_is_downloaded_verified_cached_and_served(hub, make_server, expected, tmp_path):
    stub = hub()
    cache = tmp_path / "cache"
    server = make_server(*serve_args(stub, cache), env={"HF_TOKEN": "hf_secret"})
    assert_serves_fixture(server, expected)
    assert cached_files(cache) == sorted(f"{REPO}/{name}" for name in TINY)
    for name, fixture in TINY.items():
        assert (cache / REPO / name).read_bytes() == (FIXTURES / fixture).read_bytes()
    log = server.output()
    for name in TINY:
        assert f"{name}: SHA-256 {hashlib.sha256(stub.files[name]).hexdigest()} verified" in log
        assert f"loading {cache / REPO / name}" in log
    # Each file: the endpoint (with the token), then the CDN twice (never the token).
    assert len(stub.requests) == 3 * len(TINY)
    for role, path, auth in stub.requests:
        assert auth == ("Bearer hf_secret" if role == "endpoint" else None), (role, path)
    assert sum(signed(path) for role, path, _ in stub.requests if role == "cdn") == 4

    # A second start takes the cached files and asks the endpoint nothing.
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    seen = len(stub.requests)
    again = make_server(*serve_args(stub, cache))
    assert len(stub.requests) == seen
    assert "cached at" in again.output()
    assert_serves_fixture(again, expected)


@pytest.mark.parametrize("published, message", [
    ("0" * 64, "checksum mismatch"),
    ("", "published no SHA-256"),
])
def test_unverifiable_download_fails_and_caches_nothing(hub, tmp_path, published, message):
    stub = hub(published_sha256={"rwkv0b1-emb-curriculum.pth": published})
    cache = tmp_path / "cache"
    out = fail_to_start(*serve_args(stub, cache))
    assert message in out and "rwkv0b1-emb-curriculum.pth" in out, out
    assert cached_files(cache) == []


def test_unknown_file_and_unreachable_endpoint_are_clear_errors(hub, tmp_path):
    stub = hub()
    out = fail_to_start("--model", "base", "--hf-endpoint", stub.url, "--model-cache-dir", str(tmp_path))
    assert "HTTP 404" in out and "rwkv0b4-emb-curriculum.pth" in out, out
    out = fail_to_start("--model", "tiny", "--hf-endpoint", f"http://127.0.0.1:{free_port()}",
                        "--model-cache-dir", str(tmp_path))
    assert "Connection" in out, out
    out = fail_to_start("--model", "tiny", "--hf-endpoint", "ftp://example", "--model-cache-dir", str(tmp_path))
    assert "not an http:// or https:// URL" in out, out
    assert cached_files(tmp_path) == []


def test_https_endpoint_is_verified_against_the_system_trust_store(hub, make_server, expected, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    stub = hub(tls_context=tls)
    # Not trusted: refused before anything is downloaded.
    out = fail_to_start(*serve_args(stub, tmp_path / "untrusted"))
    assert "SSLServerVerification" in out, out
    assert cached_files(tmp_path / "untrusted") == []
    # Trusted through OpenSSL's SSL_CERT_FILE: served.
    server = make_server(*serve_args(stub, tmp_path / "cache"), env={"SSL_CERT_FILE": str(cert)})
    assert_serves_fixture(server, expected)


def test_sigterm_ends_a_download_at_once_and_its_file_is_removed_later(hub, make_server, expected, tmp_path):
    stub = hub(stall=True)
    proc = subprocess.Popen([str(BINARY), "serve", "--port", str(free_port()), *serve_args(stub, tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    part_dir = tmp_path / REPO
    deadline = time.time() + 30
    while not [p for p in part_dir.glob(".*.part-*") if p.stat().st_size > 0] and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM
    [part] = part_dir.glob(".*.part-*")
    assert cached_files(part_dir) == [part.name]
    # Ten minutes unwritten: abandoned, removed by the next download.
    os.utime(part, (time.time() - 3600, time.time() - 3600))
    stub.stall = False
    make_server(*serve_args(stub, tmp_path))
    assert cached_files(tmp_path) == sorted(f"{REPO}/{name}" for name in TINY)


def test_progress_bar_on_a_terminal(hub, tmp_path):
    stub = hub()
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([str(BINARY), "serve", "--port", str(free_port()),
                             *serve_args(stub, tmp_path)], stdout=subprocess.DEVNULL, stderr=terminal)
    os.close(terminal)
    seen, deadline = b"", time.time() + 60
    try:
        while b"rwkv0b1-reranker.pth [" not in seen or b"\n" not in seen.split(b"rwkv0b1-reranker.pth [")[-1]:
            assert time.time() < deadline and proc.poll() is None, seen
            if select.select([controller], [], [], 0.5)[0]:
                seen += os.read(controller, 4096)
    finally:
        proc.terminate()
        proc.wait(30)
        os.close(controller)
    # The bar is redrawn after a carriage return; the terminal shows its last state.
    bar = seen.decode().replace("\r\n", "\n").split("\r")[-1]
    assert bar.startswith("rwkv0b1-reranker.pth [" + "#" * 30 + "] 100%"), seen
