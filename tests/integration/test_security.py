"""Security checks against the real binary: API keys never logged or stored,
request limits, state ids that try to reach the filesystem, the default
listen address. (Per-key state isolation: test_states.py, tenant isolation
on the disk store and on Redis.) docs/reliability.md ("Security") sums up."""
import http.client
import json

import pytest
import requests

KEYS = ("sk-first-4f1c9a07", "sk-second-77b2e0d1")
WRONG_KEY = "sk-wrong-0d93aa5c"


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_api_keys_never_reach_the_log_or_the_state_store(make_server, tmp_path, log_format):
    state_dir = tmp_path / "states"
    server = make_server("--api-key", ",".join(KEYS), "--log-format", log_format, "--state-dir", str(state_dir))
    auth = {"Authorization": f"Bearer {KEYS[0]}"}
    wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
    answers = [
        server.post("/v1/embeddings", {"input": "hello"}, headers=auth),
        server.post("/v1/embeddings", {"input": "hello"}, headers=wrong),
        server.post("/v1/embeddings", {"input": "hello"}, headers={"Authorization": KEYS[1]}),  # no "Bearer"
        server.post("/v1/embeddings", {"input": 5}, headers=auth),
        server.post(f"/v1/embeddings?api_key={KEYS[1]}", {"input": "hello"}, headers=auth),
        server.post("/v1/states", {"documents": [{"text": "doc", "id": "mine"}]}, headers=auth),
        server.post("/v1/rerank", {"query": "q", "documents": [{"state_id": "mine"}]}, headers=auth),
        server.get("/v1/states/mine/content", headers=auth),
        server.get("/v1/states", headers=wrong),
        server.get("/v1/nothing", headers=auth),
        requests.delete(f"{server.url}/v1/states/mine", headers=auth, timeout=60),
        server.post("/v1/states", {"documents": [{"text": "kept", "id": "kept"}]},
                    headers={"Authorization": f"Bearer {KEYS[1]}"}),
    ]
    assert [r.status_code for r in answers] == [200, 401, 401, 400, 200, 200, 200, 200, 401, 404, 200, 200]
    log = server.output()
    assert "POST /v1/states" in log or '"/v1/states"' in log  # requests are logged...
    for key in (*KEYS, WRONG_KEY):  # ...keys are not, nor are they stored
        assert key not in log
        for path in state_dir.rglob("*"):
            assert key not in path.name
            assert not path.is_file() or key.encode() not in path.read_bytes()
        for r in answers:
            assert key not in r.text


@pytest.mark.parametrize("path,body,status,words", [
    ("/v1/embeddings", {"input": ["a"] * 5}, 413, "over the limit of 4"),
    ("/v1/embed", {"texts": ["a"] * 5}, 413, "over the limit of 4"),
    ("/v1/rerank", {"query": "q", "documents": ["a"] * 5}, 413, "over the limit of 4"),
    ("/v1/states", {"documents": ["a"] * 5}, 413, "over the limit of 4"),
    ("/v1/embeddings", {"input": "word " * 40}, 400, "limit of 16"),
    ("/v1/embeddings", {"input": [*range(100, 139), 65535]}, 400, "limit of 16"),
    ("/v1/rerank", {"query": "q", "documents": ["word " * 40]}, 400, "limit of 16"),
    ("/v1/rerank", {"query": "word " * 40, "documents": [{"state_id": "s"}]}, 400, "limit of 16"),
    ("/v1/states", {"documents": ["word " * 40]}, 400, "limit of 16"),
    ("/v1/embeddings", {"input": "x" * 9000}, 413, "too large"),
    ("/v1/embeddings", json.loads("[" * 100 + "]" * 100), 400, "nest"),
])
def test_request_limits_are_enforced_with_clear_4xx(make_server, path, body, status, words):
    server = make_server("--max-inputs", "4", "--max-input-tokens", "16", "--max-body-bytes", "8192",
                         "--state-store", "memory")
    r = server.post(path, body)
    assert r.status_code == status, r.text
    error = r.json()
    message = error["error"]["message"] if "error" in error else error["message"]
    assert words in message, message


def raw(server, method, target, body=b"", headers=()):
    """A request with `target` sent exactly as given (no client normalization)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for k, v in headers:
            conn.putheader(k, v)
        conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# Ids that, pasted into a path, would leave the state folder or cut the name.
TRAVERSAL_IDS = ["..", ".", "../outside", "..%2Foutside", "%2e%2e", "%2E%2E%2Foutside", "%2Fetc%2Fpasswd",
                 "x%00y", "%00", "..%5Coutside", "..%252Foutside", "~root", "a%2Fb", "x" * 129]


def test_state_ids_cannot_reach_outside_the_state_folder(make_server, tmp_path):
    state_dir = tmp_path / "states"
    server = make_server("--state-dir", str(state_dir))
    assert server.post("/v1/states", {"documents": [{"text": "inside", "id": "inside"}]}).status_code == 200
    blob = server.get("/v1/states/inside/content").content
    # Bait next to the folder: a valid record under the name a traversal would reach.
    (tmp_path / "outside.state").write_bytes((state_dir / "_" / "inside.state").read_bytes())
    (state_dir / "outside.state").write_bytes((state_dir / "_" / "inside.state").read_bytes())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    octet = (("Content-Type", "application/octet-stream"),)
    for state_id in TRAVERSAL_IDS:
        for method, target, body, headers in [
                ("GET", f"/v1/states/{state_id}", b"", ()),
                ("GET", f"/v1/states/{state_id}/content", b"", ()),
                ("PUT", f"/v1/states/{state_id}", blob, octet),
                ("DELETE", f"/v1/states/{state_id}", b"", ())]:
            status, reply = raw(server, method, target, body, headers)
            assert status in (400, 404), (method, target, status, reply[:200])
            assert json.loads(reply)["error"]["message"], (method, target)
    for state_id in ["..", ".", "../outside", "/etc/passwd", "x\0y", "a/b", "..\\outside", "x" * 129, ""]:
        r = server.post("/v1/states", {"documents": [{"text": "t", "id": state_id}]})
        assert r.status_code == 400 and "invalid state id" in r.json()["error"]["message"], (state_id, r.text)
        r = server.post("/v1/rerank", {"query": "q", "documents": [{"state_id": state_id}]})
        assert r.status_code in (400, 404) and r.json()["message"], (state_id, r.text)
    # Nothing outside (or inside) was read as a state, written or removed.
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert [m["id"] for m in server.get("/v1/states").json()["data"]] == ["inside"]


def listening_addresses(port):
    """Local addresses of the sockets listening on `port` (/proc/net/tcp, tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                    continue
                raw_bytes = bytes.fromhex(address)
                if width == 8:
                    found.add(".".join(str(b) for b in reversed(raw_bytes)))
                else:
                    found.add(raw_bytes.hex())
    return found


def test_the_default_listen_address_is_loopback_only(make_server):
    assert listening_addresses(make_server().port) == {"127.0.0.1"}
    # The check sees other addresses when they are asked for.
    assert listening_addresses(make_server("--host", "0.0.0.0").port) == {"0.0.0.0"}
