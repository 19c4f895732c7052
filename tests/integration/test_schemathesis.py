"""schemathesis against the real server's /openapi.json (api/openapi.yaml),
and regression tests for what it found.

Every operation gets the coverage phase (boundary and invalid values, missing
key, undeclared methods), a bounded fuzzing phase and stateful sequences over
/v1/states, with a fixed seed so that CI runs the same cases each time. The
server has an API key: schemathesis sends it, and checks that requests without
it are refused. Every check runs but positive_data_acceptance, which demands
that schema-valid requests succeed: the server also refuses what no schema
says (a model name it does not serve, a state blob that is not one, token ids
without EOS or in the vocabulary's gap 65530..65534).
"""
import socket
import subprocess
import sys

import pytest
import requests

from conftest import FIXTURES, Server

API_KEY = "sk-schemathesis"
EXAMPLES_PER_OPERATION = 10
SEED = 1


@pytest.fixture(scope="module")
def keyed_server(expected):
    server = Server("--model", str(FIXTURES / "embedding.pth"), "--reranker", str(FIXTURES / "reranker_idx.pth"),
                    "--served-model-name", "rwkv-fixture", "--state-store", "memory", "--api-key", API_KEY)
    yield server
    assert server.terminate() == 0, server.output()


def test_every_response_matches_the_document(keyed_server, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", keyed_server.url + "/openapi.json",
         "--header", f"Authorization: Bearer {API_KEY}",
         "--checks", "all", "--exclude-checks", "positive_data_acceptance",
         "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED),
         "--workers", "1", "--request-timeout", "60", "--generation-database", "none",
         "--continue-on-failure", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)  # it keeps a cache in .schemathesis/
    assert run.returncode == 0, run.stdout[-30000:] + run.stderr[-5000:]
    assert " passed" in run.stdout and "generated" in run.stdout, run.stdout[-3000:]


# ---- What it found: requests that no route handler takes ----
# A method the path does not serve is 405 with Allow, in the path's error shape;
# the API key is checked before anything else; a request body httplib does not
# read must never be parsed as the next request on a keep-alive connection.

def raw_exchange(server, data, read_seconds=5):
    """Sends `data` on one connection and returns all the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(data)
        s.settimeout(read_seconds)
        received = b""
        try:
            while chunk := s.recv(65536):
                received += chunk
        except TimeoutError:
            received += b"<still open>"
    return received.decode("latin-1")


def request_bytes(method, path, body=b"", headers=()):
    head = [f"{method} {path} HTTP/1.1", "Host: localhost", *headers]
    if body:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@pytest.mark.parametrize("method,path,allow,shape", [
    ("GET", "/v1/embeddings", "POST", "openai"),
    ("DELETE", "/v1/rerank", "POST", "cohere"),
    ("PATCH", "/v2/embed", "POST", "cohere"),
    ("POST", "/health", "GET, HEAD", "openai"),
    ("TRACE", "/version", "GET, HEAD", "openai"),
    ("QUERY", "/v1/states/x", "GET, HEAD, PUT, DELETE", "openai"),  # a method httplib cannot parse
])
def test_a_method_the_path_does_not_serve_is_405_with_allow(keyed_server, method, path, allow, shape):
    r = requests.request(method, keyed_server.url + path, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == allow
    body = r.json()
    message = body["error"]["message"] if shape == "openai" else body["message"]
    assert method in message and allow in message


def test_the_key_is_checked_before_the_method_and_the_body(keyed_server):
    assert requests.get(keyed_server.url + "/v2/rerank", timeout=60).status_code == 401
    # A multipart body without a boundary is one httplib cannot read: the key comes first.
    r = requests.post(keyed_server.url + "/v2/embed", data=b"{}", headers={"Content-Type": "multipart/form-data"},
                      timeout=60)
    assert r.status_code == 401 and r.json() == {"message": "invalid or missing API key"}
    assert requests.head(keyed_server.url + "/health", timeout=60).status_code == 200


def test_an_unreadable_request_is_400_in_the_paths_shape(keyed_server):
    r = requests.post(keyed_server.url + "/v2/embed", data=b"{}", timeout=60,
                      headers={"Content-Type": "multipart/form-data", "Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 400 and set(r.json()) == {"message"}, r.text
    assert r.headers["Connection"] == "close"


@pytest.mark.parametrize("first", [
    request_bytes("GET", "/version", b'{"tokens": []}'),  # httplib never reads a GET body
    request_bytes("POST", "/v1/rerank", b'GET /version HTTP/1.1\r\n\r\n'),  # refused (401) before its body is read
])
def test_an_unread_body_is_never_read_as_the_next_request(keyed_server, first):
    answers = raw_exchange(keyed_server, first + request_bytes("GET", "/health"))
    # One answer, then the server closes: the body was not taken for a request, nor was the second one served.
    assert answers.count("HTTP/1.1 ") == 1, answers
    assert "Connection: close" in answers and not answers.endswith("<still open>")
