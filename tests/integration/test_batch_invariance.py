"""The README's promise, tried as a user would: a text's embedding, state and rerank score are the
same bytes whether it is sent alone, with others in one request, or in concurrent requests that the
scheduler packs together and splits across steps; through the server at 1 and 2 threads, and
through the `embed` command line. On the fixture model with the fixture's real texts."""
import base64
import concurrent.futures
import json
import random
import subprocess

import pytest

from conftest import BINARY, FIXTURES

# Small steps and chunks: long texts are split across steps and share them with others.
STEP_FLAGS = ("--chunk-tokens", "24", "--max-batch-tokens", "64", "--max-batch-seqs", "5")


@pytest.fixture(scope="module")
def texts(expected):
    """The fixture's text inputs (the empty one included) and its rerank documents."""
    return ([c["text"] for c in expected["embeddings"] if c["input_kind"] == "text"]
            + expected["rerank_online"]["documents"] + expected["rerank_offline"]["documents"])


def fixture_server(make_server, threads, tmp_path):
    return make_server("--model", str(FIXTURES / "embedding.pth"),
                       "--reranker", str(FIXTURES / "reranker_idx.pth"),
                       "--threads", str(threads), "--state-dir", str(tmp_path / f"states{threads}"),
                       *STEP_FLAGS)


def embed_bytes(server, inputs):
    r = server.post("/v1/embeddings", {"input": inputs, "encoding_format": "base64"})
    assert r.status_code == 200, r.text
    return [base64.b64decode(d["embedding"]) for d in r.json()["data"]]


def rerank_scores(server, query, documents):
    r = server.post("/v1/rerank", {"query": query, "documents": documents})
    assert r.status_code == 200, r.text
    return {x["index"]: x["relevance_score"] for x in r.json()["results"]}


def state_bytes(server, documents, prefix):
    ids = [f"{prefix}-{i}" for i in range(len(documents))]
    r = server.post("/v1/states", {"documents": [{"text": t, "id": i} for t, i in zip(documents, ids)]})
    assert r.status_code == 200, r.text
    return [server.get(f"/v1/states/{i}/content").content for i in ids]


def random_subsets(n, count, seed):
    rng = random.Random(seed)
    return [rng.sample(range(n), rng.randint(1, n)) for _ in range(count)]


@pytest.mark.parametrize("threads", [1, 2])
def test_embeddings_alone_batched_and_concurrent_are_bit_identical(make_server, tmp_path, texts, threads):
    server = fixture_server(make_server, threads, tmp_path)
    alone = [embed_bytes(server, [t])[0] for t in texts]
    assert embed_bytes(server, texts) == alone
    subsets = random_subsets(len(texts), 24, seed=threads)
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda s: embed_bytes(server, [texts[i] for i in s]), subsets))
    mismatches = [(i, s) for s, got in zip(subsets, results) for i, e in zip(s, got) if e != alone[i]]
    assert mismatches == [], f"{len(mismatches)} embeddings differ from their single-request bytes"


@pytest.mark.parametrize("threads", [1, 2])
def test_states_and_rerank_scores_alone_batched_and_concurrent_are_bit_identical(
        make_server, tmp_path, texts, expected, threads):
    server = fixture_server(make_server, threads, tmp_path)
    query = expected["rerank_online"]["query"]
    docs = [t for t in texts if t.strip()][:8]  # a document needs text
    alone = [rerank_scores(server, query, [d])[0] for d in docs]
    assert rerank_scores(server, query, docs) == dict(enumerate(alone))
    subsets = random_subsets(len(docs), 12, seed=10 + threads)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda s: rerank_scores(server, query, [docs[i] for i in s]), subsets))
    for s, got in zip(subsets, results):
        assert [got[j] for j in range(len(s))] == [alone[i] for i in s]

    states_alone = [state_bytes(server, [d], f"alone{i}")[0] for i, d in enumerate(docs)]
    assert state_bytes(server, docs, "together") == states_alone
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda k: state_bytes(server, docs[k:] + docs[:k], f"rot{k}"), range(4)))
    for k, blobs in enumerate(together):
        assert blobs == states_alone[k:] + states_alone[:k]
    # Offline rerank from those states: the same scores alone and together.
    ids = [f"together-{i}" for i in range(len(docs))]
    offline_alone = [rerank_scores(server, query, [{"state_id": i}])[0] for i in ids]
    assert rerank_scores(server, query, [{"state_id": i} for i in ids]) == dict(enumerate(offline_alone))


def cli_embed(lines, threads):
    proc = subprocess.run([str(BINARY), "embed", "--model", str(FIXTURES / "embedding.pth"), "--raw",
                           "--threads", str(threads)],
                          input="".join(json.dumps(x) + "\n" for x in lines),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


@pytest.mark.parametrize("threads", [1, 2])
def test_cli_embed_all_at_once_equals_one_per_process(texts, threads):
    alone = [cli_embed([t], threads)[0] for t in texts]
    assert cli_embed(texts, threads) == alone
    assert cli_embed(list(reversed(texts)), threads) == list(reversed(alone))
