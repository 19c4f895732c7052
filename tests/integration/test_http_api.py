"""Every HTTP endpoint against the fixture model, numerically equal to the
reference outputs in ../shared/fixtures (tolerance 1e-4, as for the engine:
the fixture README measures float32-vs-float64 differences below 3e-6).

expected.json's text embeddings are text + one EOS without an instruction:
the tests that compare texts with them use `seed_server` (--eos-protocol
single, no instructions). The input protocol is test_protocol.py's."""
import base64

import numpy as np
import pytest

from reference import TOL, close, sigmoid, unit

HEADS = {"retrieval": "retr", "sts": "sts", "classification": "cls"}


def openai_error(r, status, param=None):
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param:
        assert err["param"] == param
    return err


def cohere_error(r, status):
    assert r.status_code == status, r.text
    assert isinstance(r.json()["message"], str) and r.json()["message"]


# ---- OpenAI /v1/embeddings ----

@pytest.mark.parametrize("task", list(HEADS))
def test_openai_embeddings_match_reference_for_every_case(seed_server, expected, task):
    for case in expected["embeddings"]:
        given = case["text"] if case["input_kind"] == "text" else case["ids"]
        r = seed_server.post("/v1/embeddings", {"input": given, "model": "rwkv-fixture",
                                                   "task": task, "normalize": False})
        assert r.status_code == 200, r.text
        body = r.json()
        close(body["data"][0]["embedding"], case[HEADS[task]])
        assert body["usage"] == {"prompt_tokens": len(case["ids"]), "total_tokens": len(case["ids"])}


def test_openai_embeddings_shape_order_base64_and_normalization(seed_server, expected):
    cases = expected["embeddings"][:5]
    texts = [c["text"] for c in cases]
    for path in ("/v1/embeddings", "/embeddings"):
        r = seed_server.post(path, {"input": texts, "model": "alias-name"})
        body = r.json()
        assert body["object"] == "list" and body["model"] == "alias-name"
        assert [d["index"] for d in body["data"]] == list(range(len(texts)))
        for d, c in zip(body["data"], cases):
            assert d["object"] == "embedding"
            close(d["embedding"], unit(c["retr"]))
    r = seed_server.post("/v1/embeddings", {"input": texts, "encoding_format": "base64"})
    for d, c in zip(r.json()["data"], cases):
        close(np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4"), unit(c["retr"]))


def test_openai_embeddings_token_inputs_are_used_as_given(fixture_server, expected):
    cases = [c for c in expected["embeddings"] if c["input_kind"] == "tokens"]
    r = fixture_server.post("/v1/embeddings", {"input": [c["ids"] for c in cases], "normalize": False})
    for d, c in zip(r.json()["data"], cases):
        close(d["embedding"], c["retr"])


def test_openai_embeddings_token_inputs_without_eos_are_400(fixture_server, expected):
    # No EOS, nothing to pool: such ids (e.g. LangChain's tiktoken ids, mostly < 65536
    # too) would otherwise be embedded as garbage.
    case = next(c for c in expected["embeddings"] if c["name"] == "hello")
    err = openai_error(fixture_server.post("/v1/embeddings", {"input": [case["ids"], case["ids"][:-1]]}), 400, "input")
    assert "input[1]" in err["message"] and "check_embedding_ctx_length=False" in err["message"]


def test_openai_embeddings_empty_string_is_eos_only(seed_server, expected):
    case = next(c for c in expected["embeddings"] if c["name"] == "empty_text_eos_only")
    r = seed_server.post("/v1/embeddings", {"input": "", "normalize": False})
    close(r.json()["data"][0]["embedding"], case["retr"])


@pytest.mark.parametrize("body,param", [
    ({"input": []}, "input"),
    ({"input": 5}, "input"),
    ({"input": ["a", 1]}, "input"),
    ({"input": [[1, 2], "a"]}, "input"),
    ({"input": [[100000]]}, "input"),
    ({"input": [-1]}, "input"),
    ({}, "input"),
    ({"input": "a", "encoding_format": "hex"}, "encoding_format"),
    ({"input": "a", "dimensions": 64}, "dimensions"),
    ({"input": "a", "task": "poetry"}, "task"),
])
def test_openai_embeddings_bad_fields_are_400(fixture_server, body, param):
    openai_error(fixture_server.post("/v1/embeddings", body), 400, param)


def test_openai_embeddings_langchain_token_ids_get_a_hint(fixture_server):
    err = openai_error(fixture_server.post("/v1/embeddings", {"input": [[9906, 1917, 100256]]}), 400)
    assert "check_embedding_ctx_length=False" in err["message"]


def test_unknown_model_is_404(fixture_server):
    err = openai_error(fixture_server.post("/v1/embeddings", {"input": "a", "model": "gpt-4"}), 404, "model")
    assert err["code"] == "model_not_found"
    cohere_error(fixture_server.post("/v2/rerank", {"model": "nope", "query": "q", "documents": ["d"]}), 404)


def test_malformed_bodies_are_400_never_500(fixture_server):
    for raw in [b"{", b"not json", b"[1,2]", b'"str"', b"\xff\xfe{}", b'{"input": "\xc3\x28"}',
                b"[" * 100000, b""]:
        r = fixture_server.post("/v1/embeddings", None, data=raw, headers={"Content-Type": "application/json"})
        openai_error(r, 400)
        r = fixture_server.post("/v1/rerank", None, data=raw, headers={"Content-Type": "application/json"})
        cohere_error(r, 400)


def test_over_long_input_is_400_and_truncation_is_opt_in(make_server, expected):
    require = expected  # noqa: F841  (fixtures present)
    from conftest import FIXTURES
    server = make_server("--model", str(FIXTURES / "embedding.pth"), "--max-input-tokens", "8")
    long_text = "one two three four five six seven eight nine ten eleven"
    openai_error(server.post("/v1/embeddings", {"input": long_text}), 400, "input")
    cohere_error(server.post("/v1/embed", {"texts": [long_text], "truncate": "NONE"}), 400)
    for mode in ("START", "END"):
        r = server.post("/v1/embed", {"texts": [long_text], "truncate": mode})
        assert r.status_code == 200, r.text
        # The limit counts the text's own tokens (8 kept); billed are the tokens run, which
        # the chunked protocol repeats 4 times, each with its EOS (it was 7 + 1 EOS).
        assert r.json()["meta"]["billed_units"]["input_tokens"] == 4 * (8 + 1)


def test_oversized_body_is_413(make_server, expected):
    from conftest import FIXTURES
    server = make_server("--model", str(FIXTURES / "embedding.pth"), "--max-body-bytes", "1000")
    openai_error(server.post("/v1/embeddings", {"input": "x" * 5000}), 413)


def test_unknown_route_is_404(fixture_server):
    openai_error(fixture_server.get("/v1/nothing"), 404)


# ---- Cohere embed ----

@pytest.mark.parametrize("input_type,head", [("search_document", "retr"), ("search_query", "retr"),
                                             ("classification", "cls"), ("clustering", "cls")])
def test_cohere_v1_embed_floats(seed_server, expected, input_type, head):
    cases = [c for c in expected["embeddings"] if c["input_kind"] == "text"][:4]
    r = seed_server.post("/v1/embed", {"texts": [c["text"] for c in cases], "input_type": input_type})
    body = r.json()
    assert body["response_type"] == "embeddings_floats" and isinstance(body["id"], str)
    assert body["texts"] == [c["text"] for c in cases]
    for e, c in zip(body["embeddings"], cases):
        close(e, unit(c[head]))


def test_cohere_v2_embed_by_type(seed_server, expected):
    case = next(c for c in expected["embeddings"] if c["name"] == "pangram")
    r = seed_server.post("/v2/embed", {"texts": [case["text"]], "model": "rwkv-fixture",
                                          "input_type": "search_query",
                                          "embedding_types": ["float", "int8", "ubinary", "binary", "base64"]})
    assert r.status_code == 200, r.text
    emb = r.json()["embeddings"]
    want = unit(case["retr"])
    close(emb["float"][0], want)
    close(np.frombuffer(base64.b64decode(emb["base64"][0]), dtype="<f4"), want)
    bits = np.packbits(want >= 0)
    assert emb["ubinary"][0] == bits.tolist()
    assert emb["binary"][0] == (bits.astype(int) - 128).tolist()
    assert len(emb["int8"][0]) == len(want)


def test_cohere_embed_errors(fixture_server):
    cohere_error(fixture_server.post("/v2/embed", {"texts": ["a"], "input_type": "search_query"}), 400)  # no model
    cohere_error(fixture_server.post("/v2/embed", {"texts": ["a"], "model": "rwkv-fixture"}), 400)  # no input_type
    cohere_error(fixture_server.post("/v1/embed", {"texts": []}), 400)
    cohere_error(fixture_server.post("/v1/embed", {"texts": ["a"], "embedding_types": ["float16"]}), 400)


# ---- Rerank ----

def test_rerank_online_scores_match_reference(fixture_server, expected):
    ro = expected["rerank_online"]
    logits = ro["scores"]["rr_idx"]["logits"]
    for path, version in (("/v1/rerank", "1"), ("/v2/rerank", "2"), ("/rerank", "1")):
        body = {"model": "rwkv-fixture", "query": ro["query"], "documents": ro["documents"]}
        r = fixture_server.post(path, body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["meta"]["api_version"]["version"] == version
        assert out["meta"]["billed_units"]["search_units"] == 1
        scores = [res["relevance_score"] for res in out["results"]]
        assert scores == sorted(scores, reverse=True)
        for res in out["results"]:
            assert abs(res["relevance_score"] - sigmoid(logits[res["index"]])) <= TOL
            assert "document" not in res


def test_rerank_top_n_documents_objects_and_tei_shape(fixture_server, expected):
    ro = expected["rerank_online"]
    logits = ro["scores"]["rr_idx"]["logits"]
    best = max(range(len(logits)), key=lambda i: logits[i])
    r = fixture_server.post("/v1/rerank", {"query": ro["query"], "top_n": 1, "return_documents": True,
                                           "documents": [{"text": d} for d in ro["documents"]],
                                           "max_tokens_per_doc": None})
    [res] = r.json()["results"]
    assert res["index"] == best and res["document"] == {"text": ro["documents"][best]}
    tei = fixture_server.post("/rerank", {"query": ro["query"], "texts": ro["documents"], "raw_scores": True})
    assert tei.status_code == 200, tei.text
    for item in tei.json():
        assert abs(item["score"] - logits[item["index"]]) <= TOL


def test_rerank_errors(fixture_server):
    cohere_error(fixture_server.post("/v1/rerank", {"query": "q", "documents": []}), 400)
    cohere_error(fixture_server.post("/v1/rerank", {"query": "  ", "documents": ["d"]}), 400)
    cohere_error(fixture_server.post("/v1/rerank", {"query": "q", "documents": [3]}), 400)
    cohere_error(fixture_server.post("/v1/rerank", {"query": "q", "documents": ["d"], "top_n": -1}), 400)


# ---- Tokenizer, models, health, metrics ----

def test_tokenize_and_detokenize_match_reference(fixture_server, expected):
    for case in expected["tokenizer"]:
        r = fixture_server.post("/tokenize", {"input": case["text"]})
        assert r.json()["tokens"] == case["ids"], case["name"]
        r = fixture_server.post("/detokenize", {"tokens": case["ids"][:-1]})
        if case["roundtrip_ok"]:
            assert r.json()["text"] == case["decoded_without_eos"], case["name"]
    openai_error(fixture_server.post("/detokenize", {"tokens": [65531]}), 400, "tokens")


def test_models_health_version_metrics(fixture_server):
    models = fixture_server.get("/v1/models").json()
    # The served names, then the default query alias (<first name>-query: search_query),
    # new with the input protocol, for clients that can only choose a model name.
    assert [m["id"] for m in models["data"]] == ["rwkv-fixture", "alias-name", "rwkv-fixture-query"]
    assert models["data"][0]["meta"]["dimensions"] == 128 and not models["data"][0]["meta"]["demo"]
    assert models["data"][0]["meta"]["eos_protocol"] == "chunked"
    assert models["data"][2]["meta"]["input_type"] == "search_query"
    assert "input_type" not in models["data"][0]["meta"]
    assert fixture_server.get("/health").json() == {"status": "ok"}
    assert fixture_server.get("/version").json()["name"] == "rwkv-emb-server"
    fixture_server.post("/v1/embeddings", {"input": "metrics"})
    text = fixture_server.get("/metrics").text
    for name in ("rwkv_emb_http_requests_total", "rwkv_emb_http_request_duration_seconds",
                 "rwkv_emb_queue_requests", "rwkv_emb_step_tokens", "rwkv_emb_step_duration_seconds",
                 "rwkv_emb_tokens_processed_total"):
        assert name in text


def test_demo_model_says_it_is_meaningless(make_server):
    server = make_server()
    card = server.get("/v1/models").json()["data"][0]
    assert card["meta"]["demo"] and "meaningless" in card["meta"]["warning"]
    assert "RANDOM DEMO MODEL" in server.output()
    assert server.post("/v1/embeddings", {"input": "hi"}).status_code == 200


def test_api_keys(make_server):
    server = make_server("--api-key", "k1,k2")
    openai_error(server.post("/v1/embeddings", {"input": "a"}), 401)
    openai_error(server.post("/v1/embeddings", {"input": "a"}, headers={"Authorization": "Bearer k3"}), 401)
    cohere_error(server.post("/v1/rerank", {"query": "q", "documents": ["d"]}), 401)
    ok = server.post("/v1/embeddings", {"input": "a"}, headers={"Authorization": "Bearer k2"})
    assert ok.status_code == 200
    assert server.get("/health").status_code == 200  # probes need no key
    assert "k2" not in server.output()
