"""Starts the real rwkv-emb-server binary on a free loopback port for the tests.

The binary comes from $RWKV_EMB_SERVER (set by CTest) or build/rwkv-emb-server;
fixtures from $RWKV_FIXTURES_DIR or ../shared/fixtures.
"""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(os.environ.get("RWKV_FIXTURES_DIR", ROOT.parent / "shared" / "fixtures"))
BINARY = pathlib.Path(os.environ.get("RWKV_EMB_SERVER", ROOT / "build" / "rwkv-emb-server"))


# The first line of a report from a sanitizer build of the server
# (scripts/sanitize.sh): ASan, LeakSanitizer, UBSan or TSan.
SANITIZER_REPORT = re.compile(
    r"^.*(==\d+==ERROR: \w+Sanitizer|WARNING: ThreadSanitizer|: runtime error: ).*$", re.MULTILINE)
# The sanitizers BINARY is built with ("address,undefined"), set by scripts/sanitize.sh; "" otherwise.
SANITIZER = os.environ.get("RWKV_EMB_SANITIZER", "")


def skip_under_sanitizers(reason):
    """Marks a test that makes no sense against a sanitizer build of the server (`reason` says why)."""
    return pytest.mark.skipif(bool(SANITIZER), reason=f"server built with {SANITIZER}: {reason}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One server process; `url` is its base address. `prefix`: a command that
    runs the server (it must exec it, so that proc.pid is the server's)."""

    def __init__(self, *args, env=None, prefix=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(f"/tmp/rwkv-emb-server-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [*prefix, str(BINARY), "serve", "--port", str(self.port), *args],
            stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server did not become healthy:\n" + self.output())

    def output(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def post(self, path, body, **kw):
        return requests.post(self.url + path, json=body, timeout=60, **kw)

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=60, **kw)

    def terminate(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.log.closed:  # the first call checks the output
            output = self.output()
            self.log.close()
            report = SANITIZER_REPORT.search(output)
            assert report is None, f"sanitizer report from the server: {report[0]}\n{output[-20000:]}"
        return self.proc.returncode


def fail_to_start(*args, env=None):
    """Runs `serve` with these flags, expecting it to refuse to start; returns its output."""
    proc = subprocess.run([str(BINARY), "serve", "--port", str(free_port()), *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})
    assert proc.returncode != 0
    return proc.stdout + proc.stderr


def require_fixtures():
    if not (FIXTURES / "expected.json").exists():
        pytest.skip(f"\n\n*** FIXTURES MISSING: {FIXTURES} not found; numeric checks SKIPPED ***\n")


@pytest.fixture(scope="session")
def expected():
    require_fixtures()
    return json.loads((FIXTURES / "expected.json").read_text())


@pytest.fixture(scope="session")
def fixture_server():
    """The fixture model with the rr_idx reranker, served as 'rwkv-fixture' (alias 'alias-name')."""
    require_fixtures()
    server = Server("--model", str(FIXTURES / "embedding.pth"),
                    "--reranker", str(FIXTURES / "reranker_idx.pth"),
                    "--served-model-name", "rwkv-fixture,alias-name")
    yield server
    assert server.terminate() == 0, server.output()


@pytest.fixture(scope="session")
def seed_server():
    """The fixture model served as the seed embedded texts: text + one EOS, no instructions
    (--eos-protocol single, every --instruction-* empty). That is what expected.json's
    reference numbers are for, so client tests compare with them here; the input
    protocol itself is tested in test_protocol.py."""
    require_fixtures()
    no_instructions = [arg for t in ("search-document", "search-query", "sts", "classification",
                                     "clustering") for arg in (f"--instruction-{t}", "")]
    server = Server("--model", str(FIXTURES / "embedding.pth"),
                    "--reranker", str(FIXTURES / "reranker_idx.pth"),
                    "--served-model-name", "rwkv-fixture,alias-name",
                    "--eos-protocol", "single", *no_instructions)
    yield server
    assert server.terminate() == 0, server.output()


@pytest.fixture()
def make_server():
    """Starts servers with custom flags; stops them after the test."""
    servers = []

    def start(*args, env=None, prefix=()):
        servers.append(Server(*args, env=env, prefix=prefix))
        return servers[-1]

    yield start
    reports = []
    for s in servers:
        try:
            s.terminate()
        except AssertionError as e:  # a sanitizer report: stop the other servers first
            reports.append(str(e))
    assert not reports, "\n".join(reports)
