"""/v1/states and offline reranking against the real binary with the fixture
model: scores equal the fixture's offline expectations, states survive a
download and re-upload, restarts of the disk store, LRU eviction of the
memory store, Redis shared by two servers (a real redis-server started here
on a free loopback port; skipped loudly when missing), tenant isolation, and
every kind of malformed blob refused and never stored.

The blob format is docs/state-format.md; the helpers below read and write it
independently of the server's code."""
import json
import math
import os
import pathlib
import shutil
import signal
import socket
import struct
import subprocess
import time
import zlib

import numpy as np
import pytest
import requests

from conftest import FIXTURES, free_port, skip_under_sanitizers

TOL = 1e-4
HEADER = struct.Struct("<8sHHI16sIIIIQQ")  # the 64-byte header
assert HEADER.size == 64


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


# ---- The blob format, independently ----

def parse_blob(blob):
    magic, version, header_bytes, dtype, fp, layers, heads, channels, head_size, tokens, payload = \
        HEADER.unpack_from(blob, 0)
    assert (magic, version, header_bytes, head_size) == (b"RWKVSTAT", 2 if dtype == 3 else 1, 64, 64)
    assert len(blob) == 64 + payload + 4
    assert struct.unpack_from("<I", blob, 64 + payload)[0] == zlib.crc32(blob[:64 + payload])
    raw = blob[64:64 + payload]
    n_shift = layers * 2 * channels
    if dtype == 0:
        values = np.frombuffer(raw, dtype="<f4")
    elif dtype == 1:
        values = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == 2:
        values = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    else:  # int8: a float32 absmax per row (shift rows of C, WKV rows of 64), then the bytes
        rows = layers * 2 + layers * heads * 64
        scales = np.frombuffer(raw[:rows * 4], dtype="<f4").astype(np.float64)
        q = np.frombuffer(raw[rows * 4:], dtype="i1").astype(np.float64)
        shift = q[:n_shift].reshape(-1, channels) * scales[:layers * 2, None] / 127
        wkv = q[n_shift:].reshape(-1, 64) * scales[layers * 2:, None] / 127
        values = np.concatenate([shift.ravel(), wkv.ravel()]).astype(np.float32)
    return {"dtype": dtype, "fingerprint": fp.hex(), "layers": layers, "heads": heads, "channels": channels,
            "tokens": tokens, "shift": values[:n_shift].reshape(layers, 2, channels),
            "wkv": values[n_shift:].reshape(layers, heads, 64, 64)}


def make_blob(fingerprint_hex, shift, wkv, tokens=0):
    shift, wkv = np.asarray(shift, "<f4"), np.asarray(wkv, "<f4")
    layers, _, channels = shift.shape
    heads = wkv.shape[1]
    payload = shift.tobytes() + wkv.tobytes()
    header = HEADER.pack(b"RWKVSTAT", 1, 64, 0, bytes.fromhex(fingerprint_hex), layers, heads, channels, 64,
                         tokens, len(payload))
    return reseal(header + payload + b"\0\0\0\0")


def reseal(blob):
    """The blob with its CRC-32 recomputed, so only a deliberate edit is wrong."""
    body = blob[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def edit(blob, offset, fmt, value):
    b = bytearray(blob)
    struct.pack_into(fmt, b, offset, value)
    return reseal(bytes(b))


def fixture_state(ref):
    return np.fromfile(FIXTURES / ref["file"], dtype="<f4").reshape(ref["shape"])


# ---- Servers ----

def fixture_args(state_dir, *extra):
    return ("--model", str(FIXTURES / "embedding.pth"), "--reranker", str(FIXTURES / "reranker_idx.pth"),
            "--served-model-name", "rwkv-fixture", "--state-dir", str(state_dir), *extra)


@pytest.fixture()
def offline(expected):
    return expected["rerank_offline"]


@pytest.fixture()
def server(make_server, tmp_path, expected):
    return make_server(*fixture_args(tmp_path / "states"))


def create(srv, documents, headers=None, **extra):
    r = requests.post(srv.url + "/v1/states", json={"documents": documents, **extra}, headers=headers, timeout=60)
    return r


def rerank(srv, query, documents, path="/v1/rerank", headers=None, **extra):
    return requests.post(srv.url + path, json={"query": query, "documents": documents, **extra},
                         headers=headers, timeout=60)


def content(srv, state_id, headers=None, params=None):
    return requests.get(f"{srv.url}/v1/states/{state_id}/content", headers=headers, params=params,
                        timeout=60)


def put(srv, state_id, blob, headers=None, params=None):
    return requests.put(f"{srv.url}/v1/states/{state_id}", data=blob, params=params, timeout=60,
                        headers={"Content-Type": "application/octet-stream", **(headers or {})})


def scores_by_index(response):
    assert response.status_code == 200, response.text
    return {r["index"]: r["relevance_score"] for r in response.json()["results"]}


def metric(srv, name):
    for line in srv.get("/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    raise AssertionError(f"metric {name} missing")


def create_offline_states(srv, offline, prefix="d", headers=None):
    ids = [f"{prefix}{i}" for i in range(len(offline["documents"]))]
    r = create(srv, [{"text": t, "id": i} for t, i in zip(offline["documents"], ids)], headers=headers)
    assert r.status_code == 200, r.text
    return ids, r.json()


# ---- Offline scores equal the fixture ----

def test_created_states_equal_the_fixture_and_rerank_offline(server, offline):
    ids, body = create_offline_states(server, offline)
    doc_tokens = [len(x) for x in offline["doc_ids"]]
    assert body["object"] == "list" and body["model"] == "rwkv-fixture"
    assert body["usage"] == {"prompt_tokens": sum(doc_tokens), "total_tokens": sum(doc_tokens)}
    for i, item in enumerate(body["data"]):
        assert item["id"] == ids[i] and item["index"] == i and item["tokens"] == doc_tokens[i]
        assert item["bytes"] == 64 + (3 * 2 * 128 + 3 * 2 * 64 * 64) * 4 + 4

    # The stored states are the reference's cached states (float32 blob).
    for i, state_id in enumerate(ids):
        r = content(server, state_id)
        assert r.status_code == 200 and r.headers["Content-Type"] == "application/octet-stream"
        blob = parse_blob(r.content)
        meta = server.get(f"/v1/states/{state_id}").json()
        assert blob["fingerprint"] == meta["fingerprint"] and blob["tokens"] == doc_tokens[i]
        assert (meta["layers"], meta["heads"], meta["channels"], meta["dtype"]) == (3, 2, 128, "float32")
        assert meta["compatible"] is True and meta["expires_at"] is None
        for got, ref in ((blob["shift"], offline["cached_state0"][i]), (blob["wkv"], offline["cached_state1"][i])):
            want = fixture_state(ref)
            assert np.all(np.abs(got - want) <= 2e-4 + 2e-5 * np.abs(want))

    logits = offline["scores"]["rr_idx"]["logits"]
    query_tokens = len(offline["query_ids"])
    for path in ("/v1/rerank", "/v2/rerank"):
        r = rerank(server, offline["query"], [{"state_id": i} for i in ids], path=path)
        got = scores_by_index(r)
        for i, logit in enumerate(logits):
            assert abs(got[i] - sigmoid(logit)) <= TOL
        # Offline billing: the query's tokens once per state document.
        assert r.json()["meta"]["tokens"]["input_tokens"] == query_tokens * len(ids)


def test_state_and_text_documents_mix_in_one_request(server, offline):
    ids, _ = create_offline_states(server, offline)
    docs = [{"state_id": ids[0]}, offline["documents"][1], {"state_id": ids[2]}, {"text": offline["documents"][3]}]
    r = rerank(server, offline["query"], docs, return_documents=True)
    got = scores_by_index(r)
    # The fixture's online ids equal doc ids + query ids: both modes give the same scores.
    for i, logit in enumerate(offline["scores"]["rr_idx"]["logits"]):
        assert abs(got[i] - sigmoid(logit)) <= TOL
    echoed = {x["index"]: x["document"] for x in r.json()["results"]}
    assert echoed[0] == {"state_id": ids[0]} and echoed[1] == {"text": offline["documents"][1]}
    q = len(offline["query_ids"])
    online = [len(offline["doc_ids"][i]) + q for i in (1, 3)]
    assert r.json()["meta"]["tokens"]["input_tokens"] == 2 * q + sum(online)
    # The same state twice in one request.
    r = rerank(server, offline["query"], [{"state_id": ids[1]}, {"state_id": ids[1]}])
    got = scores_by_index(r)
    assert got[0] == got[1]


def test_downloaded_and_reuploaded_state_scores_identically(server, offline):
    ids, _ = create_offline_states(server, offline)
    blob = content(server, ids[0]).content
    r = put(server, "copy-0", blob, params={"ttl_seconds": 3600})
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["id"] == "copy-0" and meta["bytes"] == len(blob) and meta["tokens"] == len(offline["doc_ids"][0])
    assert meta["expires_at"] is not None and meta["expires_at"] - time.time() > 3500
    assert put(server, "copy-0", blob).status_code == 200  # replaced
    assert server.get("/v1/states/copy-0").json()["expires_at"] is None
    assert content(server, "copy-0").content == blob
    got = scores_by_index(rerank(server, offline["query"], [{"state_id": ids[0]}, {"state_id": "copy-0"}]))
    assert got[0] == got[1]


def test_half_precision_storage_halves_the_bytes(make_server, tmp_path, offline):
    srv = make_server(*fixture_args(tmp_path / "states", "--state-dtype", "float16"))
    ids, body = create_offline_states(srv, offline)
    f32_bytes = 64 + (3 * 2 * 128 + 3 * 2 * 64 * 64) * 4 + 4
    assert all(d["bytes"] == 64 + (f32_bytes - 68) // 2 + 4 for d in body["data"])
    assert srv.get(f"/v1/states/{ids[0]}").json()["dtype"] == "float16"
    got = scores_by_index(rerank(srv, offline["query"], [{"state_id": i} for i in ids]))
    for i, logit in enumerate(offline["scores"]["rr_idx"]["logits"]):
        assert abs(got[i] - sigmoid(logit)) <= 1e-2
    # A float32 blob is still accepted and used as it is.
    blob = make_blob(parse_blob(content(srv, ids[0]).content)["fingerprint"],
                     fixture_state(offline["cached_state0"][0]), fixture_state(offline["cached_state1"][0]))
    assert put(srv, "exact", blob).status_code == 201
    got = scores_by_index(rerank(srv, offline["query"], [{"state_id": "exact"}]))
    assert abs(got[0] - sigmoid(offline["scores"]["rr_idx"]["logits"][0])) <= TOL


def test_int8_storage_round_trips_converts_and_scores_close(make_server, tmp_path, offline):
    srv = make_server(*fixture_args(tmp_path / "states"))
    ids, body = create_offline_states(srv, offline)  # float32, the default
    r = create(srv, [{"text": t, "id": f"q{i}"} for i, t in enumerate(offline["documents"])], dtype="int8")
    assert r.status_code == 200, r.text
    # L=3 H=2 C=128: 390 rows of a float32 scale, 25,344 values of a byte.
    assert all(d["bytes"] == 64 + 390 * 4 + 25344 + 4 for d in r.json()["data"])
    assert srv.get("/v1/states/q0").json()["dtype"] == "int8"
    int8_blob = content(srv, "q0").content
    exact = parse_blob(content(srv, ids[0]).content)
    got = parse_blob(int8_blob)
    for name, row in (("shift", 128), ("wkv", 64)):
        want, have = exact[name].reshape(-1, row), got[name].reshape(-1, row)
        absmax = np.abs(want).max(axis=1, keepdims=True)
        assert np.all(np.abs(have - want) <= absmax / 254 * (1 + 1e-6)), name
    # Re-uploaded as downloaded: the same bytes come back.
    assert put(srv, "copy", int8_blob).status_code == 201
    assert content(srv, "copy").content == int8_blob
    # Converted on download: float32 holds the int8 values exactly, and back to int8 is the same blob.
    as_f32 = content(srv, "q0", params={"dtype": "float32"})
    assert as_f32.status_code == 200
    f32 = parse_blob(as_f32.content)
    assert f32["dtype"] == 0 and np.array_equal(f32["wkv"], got["wkv"]) and np.array_equal(f32["shift"], got["shift"])
    assert put(srv, "widened", as_f32.content).status_code == 201
    assert content(srv, "widened", params={"dtype": "int8"}).content == int8_blob
    assert parse_blob(content(srv, ids[0], params={"dtype": "int8"}).content)["dtype"] == 3
    scores = scores_by_index(rerank(srv, offline["query"], [{"state_id": f"q{i}"} for i in range(len(ids))]))
    for i, logit in enumerate(offline["scores"]["rr_idx"]["logits"]):
        assert abs(scores[i] - sigmoid(logit)) <= 1e-2
    for bad in (content(srv, "q0", params={"dtype": "int4"}), create(srv, ["x"], dtype="int4")):
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "dtype", bad.text
    # The server-wide default.
    srv8 = make_server(*fixture_args(tmp_path / "states8", "--state-dtype", "int8"))
    _, body8 = create_offline_states(srv8, offline)
    assert all(d["bytes"] == len(int8_blob) for d in body8["data"])


# ---- Disk store: restarts ----

def test_restart_with_the_disk_store_keeps_every_state(make_server, tmp_path, offline):
    state_dir = tmp_path / "states"
    first = make_server(*fixture_args(state_dir))
    ids, _ = create_offline_states(first, offline)
    r = create(first, ["extra document"], ttl_seconds=3600)
    ids.append(r.json()["data"][0]["id"])
    before = {i: first.get(f"/v1/states/{i}").json() for i in ids}
    blobs = {i: content(first, i).content for i in ids}
    scores = scores_by_index(rerank(first, offline["query"], [{"state_id": i} for i in ids]))
    assert first.terminate() == 0

    second = make_server(*fixture_args(state_dir))
    listed = second.get("/v1/states").json()["data"]
    assert sorted(m["id"] for m in listed) == sorted(ids)
    for i in ids:
        assert second.get(f"/v1/states/{i}").json() == before[i]
        assert content(second, i).content == blobs[i]
    assert scores_by_index(rerank(second, offline["query"], [{"state_id": i} for i in ids])) == scores
    assert "0 corrupted file(s) skipped" in second.output()


def test_corrupted_state_files_are_skipped_with_a_log_line(make_server, tmp_path, offline):
    state_dir = tmp_path / "states"
    first = make_server(*fixture_args(state_dir))
    ids, _ = create_offline_states(first, offline)
    assert first.terminate() == 0
    victim = state_dir / "_" / f"{ids[1]}.state"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x40
    victim.write_bytes(bytes(data))
    (state_dir / "_" / f"{ids[2]}.state").write_bytes(b"garbage")

    second = make_server(*fixture_args(state_dir))
    log = second.output()
    assert f"skipping corrupted file {victim}" in log and "checksum" in log
    assert "2 corrupted file(s) skipped" in log
    listed = sorted(m["id"] for m in second.get("/v1/states").json()["data"])
    assert listed == [ids[0], ids[3]]
    r = rerank(second, offline["query"], [{"state_id": ids[1]}])
    assert r.status_code == 404, r.text
    got = scores_by_index(rerank(second, offline["query"], [{"state_id": ids[0]}]))
    assert abs(got[0] - sigmoid(offline["scores"]["rr_idx"]["logits"][0])) <= TOL
    assert metric(second, "rwkv_emb_state_corrupted_total") == 2
    # A file corrupted while the server runs: found when read, reported, the others still served.
    late = state_dir / "_" / f"{ids[3]}.state"
    late.write_bytes(late.read_bytes()[:-10])
    assert content(second, ids[3]).status_code == 404
    assert f"state file {late} is unusable" in second.output()
    assert metric(second, "rwkv_emb_state_corrupted_total") == 3
    assert content(second, ids[0]).status_code == 200


def test_a_state_of_another_model_is_refused_in_rerank(make_server, tmp_path, offline):
    """Same shape, other weights: only the fingerprint tells (409). Other shape: 422."""
    state_dir = tmp_path / "states"
    first = make_server(*fixture_args(state_dir))
    ids, _ = create_offline_states(first, offline)
    assert first.terminate() == 0
    # Rewrite the fingerprint inside the stored record (the blob follows the metadata).
    path = state_dir / "_" / f"{ids[0]}.state"
    record = path.read_bytes()
    start = record.index(b"RWKVSTAT")
    blob = edit(record[start:], 16, "16s", bytes(16))
    path.write_bytes(record[:start] + blob)

    srv = make_server(*fixture_args(state_dir))
    meta = srv.get(f"/v1/states/{ids[0]}").json()
    assert meta["compatible"] is False and meta["fingerprint"] == "0" * 32
    r = rerank(srv, offline["query"], [{"state_id": ids[0]}])
    assert r.status_code == 409 and "another model" in r.json()["message"], r.text
    assert srv.terminate() == 0

    # The demo model has another shape.
    demo = make_server("--state-dir", str(state_dir))
    assert demo.get(f"/v1/states/{ids[1]}").json()["compatible"] is False
    r = rerank(demo, "q", [{"state_id": ids[1]}])
    assert r.status_code == 422 and "shape" in r.json()["message"], r.text


# ---- Memory store: LRU within the budget ----

def test_memory_store_evicts_least_recently_used_within_its_budget(make_server, tmp_path, offline):
    blob_bytes = 64 + (3 * 2 * 128 + 3 * 2 * 64 * 64) * 4 + 4
    budget = blob_bytes * 5 // 2
    srv = make_server(*fixture_args(tmp_path / "unused", "--state-store", "memory", "--state-max-bytes", str(budget)))
    for i in (0, 1):
        assert create(srv, [{"text": offline["documents"][i], "id": f"s{i}"}]).status_code == 200
    assert content(srv, "s0").status_code == 200  # s0 is now more recent than s1
    assert create(srv, [{"text": offline["documents"][2], "id": "s2"}]).status_code == 200
    assert srv.get("/v1/states/s1").status_code == 404
    assert srv.get("/v1/states/s0").status_code == 200 and srv.get("/v1/states/s2").status_code == 200
    assert metric(srv, "rwkv_emb_state_evictions_total") == 1
    assert metric(srv, "rwkv_emb_states_stored") == 2
    assert metric(srv, "rwkv_emb_state_bytes") == 2 * blob_bytes <= budget
    r = rerank(srv, offline["query"], [{"state_id": "s1"}, {"state_id": "s0"}])
    assert r.status_code == 404
    assert not (tmp_path / "unused").exists()


# ---- Metrics ----

def test_state_metrics(server, offline):
    ids, _ = create_offline_states(server, offline)
    rerank(server, offline["query"], [{"state_id": ids[0]}])
    rerank(server, offline["query"], [{"state_id": "missing"}])
    assert metric(server, "rwkv_emb_states_stored") == len(ids)
    assert metric(server, "rwkv_emb_state_bytes") > 0
    assert metric(server, "rwkv_emb_state_hits_total") >= 1
    assert metric(server, "rwkv_emb_state_misses_total") >= 1
    assert metric(server, "rwkv_emb_state_evictions_total") == 0


# ---- The API's rules ----

def test_create_validation_and_conflicts(server, offline):
    assert create(server, [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}]).status_code == 400
    for bad in ("a/b", "..", "sp ace", "x" * 129, "", 5):
        r = create(server, [{"text": "a", "id": bad}])
        assert r.status_code == 400 and r.json()["error"]["param"] == "documents", (bad, r.text)
    assert create(server, []).status_code == 400
    assert create(server, [3]).status_code == 400
    assert create(server, ["a"], ttl_seconds=0).status_code == 400
    assert create(server, ["a"], ttl_seconds="1").status_code == 400
    assert requests.post(server.url + "/v1/states", json={"model": "other", "documents": ["a"]}).status_code == 404
    assert create(server, [{"text": "first", "id": "taken"}]).status_code == 200
    r = create(server, [{"text": "new", "id": "fresh"}, {"text": "second", "id": "taken"}])
    assert r.status_code == 409 and "taken" in r.json()["error"]["message"]
    assert server.get("/v1/states/fresh").status_code == 404  # nothing of a refused request is stored
    # Server-made ids: unique, valid, usable.
    made = [d["id"] for d in create(server, ["p", "q", {"text": "r"}], ttl_seconds=1).json()["data"]]
    assert len(set(made)) == 3
    assert all(server.get(f"/v1/states/{i}").status_code == 200 for i in made)
    time.sleep(2.2)
    assert all(server.get(f"/v1/states/{i}").status_code == 404 for i in made)  # expired


def test_list_is_paginated_and_delete_removes(server):
    assert create(server, [{"text": str(i), "id": f"p{i}"} for i in range(5)]).status_code == 200
    seen, after, pages = [], None, 0
    while True:
        page = server.get("/v1/states", params={"limit": 2, **({"after": after} if after else {})}).json()
        pages += 1
        seen += [m["id"] for m in page["data"]]
        assert page["first_id"] == page["data"][0]["id"] and page["last_id"] == page["data"][-1]["id"]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == [f"p{i}" for i in range(5)] and pages == 3
    assert server.get("/v1/states", params={"limit": 0}).status_code == 400
    assert server.get("/v1/states", params={"limit": "x"}).status_code == 400
    assert server.get("/v1/states", params={"limit": ""}).status_code == 400  # no integer (schemathesis)
    r = requests.delete(server.url + "/v1/states/p3", timeout=10)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert requests.delete(server.url + "/v1/states/p3", timeout=10).status_code == 404
    assert server.get("/v1/states/p3").status_code == 404
    assert content(server, "p3").status_code == 404
    assert len(server.get("/v1/states").json()["data"]) == 4


# ---- Malformed blobs ----

def test_every_malformed_blob_is_refused_and_never_stored(server, offline):
    ids, _ = create_offline_states(server, offline)
    good = content(server, ids[0]).content
    nan = bytearray(good)
    struct.pack_into("<f", nan, 64 + 12, float("nan"))
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 1
    int8 = content(server, ids[0], params={"dtype": "int8"}).content
    int8_values = 64 + 390 * 4  # after the 390 row scales (docs/state-format.md)
    cases = {
        "empty": (b"", 400),
        "not a blob": (b'{"json": true}', 400),
        "truncated header": (good[:40], 400),
        "truncated payload": (good[:len(good) // 2], 400),
        "missing checksum": (good[:-4], 400),
        "trailing bytes": (good + b"\0", 400),
        "twice": (good + good, 400),
        "bad magic": (reseal(b"RWKVSTAX" + good[8:]), 400),
        "corrupted byte": (bytes(flipped), 400),
        "future version": (edit(good, 8, "<H", 3), 400),
        "unknown dtype": (edit(good, 12, "<I", 9), 400),
        "dtype disagrees with size": (edit(good, 12, "<I", 1), 400),
        "head size": (edit(good, 44, "<I", 32), 400),
        "payload field": (edit(good, 56, "<Q", 12), 400),
        "layers disagree with size": (edit(good, 32, "<I", 4), 400),
        "zero layers": (edit(good, 32, "<I", 0), 400),
        "NaN": (reseal(bytes(nan)), 400),
        "int8 in version 1": (edit(int8, 8, "<H", 1), 400),
        "int8 negative scale": (edit(int8, 64 + 4 * 10, "<f", -1.0), 400),
        "int8 NaN scale": (edit(int8, 64, "<f", float("nan")), 400),
        "int8 -128": (edit(int8, int8_values + 5, "<b", -128), 400),
        "int8 zero scale with values": (edit(int8, 64, "<f", 0.0), 400),
        # Well-formed blobs that this model cannot use.
        "other shape": (make_blob(parse_blob(good)["fingerprint"], np.zeros((4, 2, 128)), np.zeros((4, 2, 64, 64))), 422),
        "other model": (edit(good, 16, "16s", b"\x01" * 16), 409),
    }
    for name, (blob, status) in cases.items():
        r = put(server, "bad", blob)
        assert r.status_code == status, (name, r.text)
        assert r.json()["error"]["message"], name
        assert server.get("/v1/states/bad").status_code == 404, name
    assert "checksum" in put(server, "bad", bytes(flipped)).json()["error"]["message"]
    assert "truncated" in put(server, "bad", good[:len(good) // 2]).json()["error"]["message"]
    assert "another model" in put(server, "bad", cases["other model"][0]).json()["error"]["message"]
    # Wrong ways to send it.
    r = requests.put(server.url + "/v1/states/bad", json={"blob": "x"}, timeout=10)
    assert r.status_code == 415
    r = requests.put(server.url + "/v1/states/bad", files={"f": good}, timeout=10)
    assert r.status_code == 415
    r = put(server, "bad", b"\0" * (17 << 20))  # beyond --max-body-bytes (16 MiB)
    assert r.status_code == 413
    # `curl --data-binary` without -H sends a form type, which httplib caps at 8 KiB: say what to do.
    r = requests.put(server.url + "/v1/states/bad", data=good, timeout=10,
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and "application/octet-stream" in r.json()["error"]["message"]
    for bad_id in ("sp%20ace", "x" * 129, "%2E%2E"):
        assert put(server, bad_id, good).status_code in (400, 404), bad_id
    assert sorted(m["id"] for m in server.get("/v1/states").json()["data"]) == ids
    assert put(server, "good-one", good).status_code == 201


# ---- Tenant isolation ----

def test_states_belong_to_the_key_that_created_them(make_server, tmp_path, offline):
    state_dir = tmp_path / "states"
    srv = make_server(*fixture_args(state_dir, "--api-key", "key-one,key-two"))
    one = {"Authorization": "Bearer key-one"}
    two = {"Authorization": "Bearer key-two"}
    ids, _ = create_offline_states(srv, offline, headers=one)
    mine = ids[0]

    def missing_message(r):
        return r.json()["message"].replace("'missing-id'", "'ID'").replace(f"'{mine}'", "'ID'")

    # Another key: 404 everywhere, exactly like an id that exists for nobody.
    assert srv.get(f"/v1/states/{mine}", headers=two).status_code == 404
    assert content(srv, mine, headers=two).status_code == 404
    assert srv.get("/v1/states", headers=two).json()["data"] == []
    assert requests.delete(f"{srv.url}/v1/states/{mine}", headers=two, timeout=10).status_code == 404
    theirs = rerank(srv, offline["query"], [{"state_id": mine}], headers=two)
    nobody = rerank(srv, offline["query"], [{"state_id": "missing-id"}], headers=two)
    assert theirs.status_code == nobody.status_code == 404
    assert missing_message(theirs) == missing_message(nobody)
    a = srv.get(f"/v1/states/{mine}", headers=two).json()["error"]
    b = srv.get("/v1/states/missing-id", headers=two).json()["error"]
    assert a["message"].replace(mine, "ID") == b["message"].replace("missing-id", "ID")
    # The id is free for the other key, and the two states stay apart.
    assert create(srv, [{"text": "someone else's", "id": mine}], headers=two).status_code == 200
    assert content(srv, mine, headers=one).content != content(srv, mine, headers=two).content
    got = scores_by_index(rerank(srv, offline["query"], [{"state_id": mine}], headers=one))
    assert abs(got[0] - sigmoid(offline["scores"]["rr_idx"]["logits"][0])) <= TOL
    assert requests.delete(f"{srv.url}/v1/states/{mine}", headers=two, timeout=10).status_code == 200
    assert srv.get(f"/v1/states/{mine}", headers=one).status_code == 200
    assert len(srv.get("/v1/states", headers=one).json()["data"]) == len(ids)
    # No key: 401; the keys never appear on disk or in the log.
    assert srv.get("/v1/states").status_code == 401
    assert requests.post(srv.url + "/v1/states", json={"documents": ["a"]}, timeout=10).status_code == 401
    names = " ".join(str(p) for p in state_dir.rglob("*"))
    assert "key-one" not in names and "key-two" not in names
    assert "key-one" not in srv.output()


# ---- Redis ----

@pytest.fixture()
def redis(tmp_path):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("\n\n*** redis-server NOT FOUND (apt-get install redis-server, or scripts/setup.sh); "
                    "Redis state store tests SKIPPED ***\n")
    procs = []

    class Redis:
        port = free_port()
        url = f"redis://127.0.0.1:{port}/0"

        def start(self):
            folder = tmp_path / f"redis-{len(procs)}"
            folder.mkdir()
            procs.append(subprocess.Popen(
                [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(folder), "--logfile", str(folder / "redis.log")]))
            deadline = time.time() + 10
            while time.time() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(16).startswith(b"+PONG"):
                            return
                except OSError:
                    time.sleep(0.05)
            raise RuntimeError("redis-server did not start")

        def stop(self):
            proc = procs[-1]
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)

    r = Redis()
    r.start()
    yield r
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.wait(10)


def redis_args(tmp_path, redis, *extra):
    return fixture_args(tmp_path / "unused", "--state-store", "redis", "--redis-url", redis.url, *extra)


def test_redis_store_is_shared_by_two_servers(make_server, tmp_path, redis, offline):
    a = make_server(*redis_args(tmp_path, redis))
    b = make_server(*redis_args(tmp_path, redis))
    ids, _ = create_offline_states(a, offline)
    got = scores_by_index(rerank(b, offline["query"], [{"state_id": i} for i in ids]))
    for i, logit in enumerate(offline["scores"]["rr_idx"]["logits"]):
        assert abs(got[i] - sigmoid(logit)) <= TOL
    assert sorted(m["id"] for m in b.get("/v1/states").json()["data"]) == ids
    assert b.get(f"/v1/states/{ids[0]}").json() == a.get(f"/v1/states/{ids[0]}").json()
    assert create(b, [{"text": "x", "id": ids[0]}]).status_code == 409  # taken, seen from the other server
    blob = content(a, ids[0]).content
    assert put(b, "uploaded-on-b", blob).status_code == 201
    assert content(a, "uploaded-on-b").content == blob
    assert requests.delete(f"{b.url}/v1/states/{ids[1]}", timeout=10).status_code == 200
    assert a.get(f"/v1/states/{ids[1]}").status_code == 404
    assert metric(a, "rwkv_emb_states_stored") == len(ids)  # 4 - 1 deleted + 1 uploaded
    assert not (tmp_path / "unused").exists()


def test_decoded_states_are_cached_and_never_stale_across_replicas(make_server, tmp_path, redis, offline):
    a = make_server(*redis_args(tmp_path, redis))
    b = make_server(*redis_args(tmp_path, redis))
    ids, _ = create_offline_states(a, offline)
    docs = [{"state_id": i} for i in ids]
    first = scores_by_index(rerank(a, offline["query"], docs))
    assert metric(a, "rwkv_emb_state_cache_misses_total") == len(ids)
    assert metric(a, "rwkv_emb_state_cache_entries") == len(ids)
    assert metric(a, "rwkv_emb_state_cache_bytes") == len(ids) * (3 * 2 * 128 + 3 * 2 * 64 * 64) * 4
    # One fetch of every state, and its bytes.
    assert metric(a, "rwkv_emb_state_fetch_bytes_count") == 1
    assert metric(a, "rwkv_emb_state_fetch_bytes_sum") == len(ids) * 101444
    assert f"rerank: {len(ids)} of {len(ids)} states fetched from the redis store, {len(ids) * 101444} bytes" \
        in a.output()
    store_reads = metric(a, "rwkv_emb_state_hits_total")
    # Again: every state from the cache, no blob read from Redis.
    assert scores_by_index(rerank(a, offline["query"], docs)) == first
    assert metric(a, "rwkv_emb_state_cache_hits_total") == len(ids)
    assert metric(a, "rwkv_emb_state_hits_total") == store_reads
    assert metric(a, "rwkv_emb_state_fetch_bytes_count") == 1
    # Another replica overwrites a state with another's bytes: this one scores the new state.
    assert put(b, ids[0], content(b, ids[1]).content).status_code == 200
    assert scores_by_index(rerank(a, offline["query"], [{"state_id": ids[0]}]))[0] == first[1]
    assert metric(a, "rwkv_emb_state_cache_misses_total") == len(ids) + 1
    # ... or deletes one: 404 here, never the cached copy.
    assert requests.delete(f"{b.url}/v1/states/{ids[1]}", timeout=10).status_code == 200
    assert rerank(a, offline["query"], [{"state_id": ids[1]}]).status_code == 404
    assert metric(a, "rwkv_emb_state_cache_entries") == len(ids) - 1
    # Overwritten and deleted here.
    assert put(a, ids[2], content(a, ids[3]).content).status_code == 200
    assert scores_by_index(rerank(a, offline["query"], [{"state_id": ids[2]}]))[0] == first[3]
    assert requests.delete(f"{a.url}/v1/states/{ids[3]}", timeout=10).status_code == 200
    assert rerank(a, offline["query"], [{"state_id": ids[3]}]).status_code == 404
    # --state-cache-bytes 0: every rerank reads the store.
    c = make_server(*redis_args(tmp_path, redis, "--state-cache-bytes", "0"))
    for _ in range(2):
        assert scores_by_index(rerank(c, offline["query"], [{"state_id": ids[0]}]))[0] == first[1]
    assert metric(c, "rwkv_emb_state_cache_hits_total") == 0
    assert metric(c, "rwkv_emb_state_hits_total") == 2
    assert metric(c, "rwkv_emb_state_cache_entries") == 0


def test_redis_isolation_and_ttl(make_server, tmp_path, redis, offline):
    a = make_server(*redis_args(tmp_path, redis, "--api-key", "k1,k2"))
    b = make_server(*redis_args(tmp_path, redis, "--api-key", "k1,k2"))
    k1, k2 = {"Authorization": "Bearer k1"}, {"Authorization": "Bearer k2"}
    assert create(a, [{"text": "doc", "id": "private"}], headers=k1, ttl_seconds=1).status_code == 200
    assert b.get("/v1/states/private", headers=k1).status_code == 200
    assert b.get("/v1/states/private", headers=k2).status_code == 404
    assert b.get("/v1/states", headers=k2).json()["data"] == []
    assert rerank(b, "q", [{"state_id": "private"}], headers=k2).status_code == 404
    time.sleep(2.2)
    assert b.get("/v1/states/private", headers=k1).status_code == 404  # Redis expired it


def test_redis_outage_is_503_and_recovers(make_server, tmp_path, redis, offline):
    srv = make_server(*redis_args(tmp_path, redis))
    ids, _ = create_offline_states(srv, offline)
    redis.stop()
    for r in (create(srv, ["a"]), rerank(srv, offline["query"], [{"state_id": ids[0]}]),
              srv.get("/v1/states"), srv.get(f"/v1/states/{ids[0]}"), content(srv, ids[0])):
        assert r.status_code == 503, r.text
        assert r.headers.get("Retry-After")
        body = r.json()
        assert "state store is unavailable" in (body["error"] if "error" in body else body)["message"]
    assert "Connection refused" in srv.output()
    # Text-only requests do not need the store.
    assert rerank(srv, offline["query"], offline["documents"]).status_code == 200
    redis.start()  # same port, empty (no persistence)
    assert srv.get(f"/v1/states/{ids[0]}").status_code == 404
    ids, _ = create_offline_states(srv, offline)
    assert scores_by_index(rerank(srv, offline["query"], [{"state_id": ids[0]}]))


def test_unreachable_redis_at_start_does_not_stop_the_server(make_server, tmp_path):
    srv = make_server(*fixture_args(tmp_path / "unused", "--state-store", "redis",
                                    "--redis-url", f"redis://127.0.0.1:{free_port()}"))
    assert "503 until it is reachable" in srv.output()
    assert srv.post("/v1/states", {"documents": ["a"]}).status_code == 503
    assert srv.post("/v1/embeddings", {"input": "a"}).status_code == 200


@skip_under_sanitizers("the 0.1B demo weights take half a minute to generate in the -O1 sanitizer build, "
                       "for a 413 given before any state is computed")
def test_one_request_computes_a_bounded_amount_of_state(make_server, tmp_path):
    """States are held in memory until the request ends: 512 MiB at most (220 of the 0.1B shape)."""
    srv = make_server("--demo-shape", "0.1b", "--state-store", "memory")
    r = srv.post("/v1/states", {"documents": ["x"] * 221})
    assert r.status_code == 413 and "at most 220 documents" in r.json()["error"]["message"], r.text
