"""The official OpenAI and Cohere Python SDKs against the real server and the
fixture model: what they send by default must give the reference numbers.

The reference numbers (expected.json) are for text + one EOS without an
instruction, so these tests use `seed_server` (--eos-protocol single, no
instructions): they test what the SDKs send and decode. The input protocol is
test_protocol.py's; the last test here sets it from the SDK (extra_body)."""
import cohere
import numpy as np
import openai
import pytest

from reference import TOL, close, sigmoid, unit


@pytest.fixture(scope="module")
def oai(seed_server):
    return openai.OpenAI(base_url=seed_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def text_cases(expected):
    return [c for c in expected["embeddings"] if c["input_kind"] == "text"]


def test_openai_sdk_default_request_is_base64_and_decodes_to_reference(oai, text_cases):
    # The SDK asks for base64 unless told otherwise and decodes little-endian float32.
    r = oai.embeddings.create(model="rwkv-fixture", input=[c["text"] for c in text_cases])
    assert [d.index for d in r.data] == list(range(len(text_cases)))
    for d, c in zip(r.data, text_cases):
        close(d.embedding, unit(c["retr"]))
    assert r.usage.prompt_tokens == sum(len(c["ids"]) for c in text_cases)


@pytest.mark.parametrize("fmt", ["float", "base64"])
def test_openai_sdk_explicit_formats(oai, text_cases, fmt):
    case = text_cases[1]
    r = oai.embeddings.create(model="rwkv-fixture", input=case["text"], encoding_format=fmt)
    got = r.data[0].embedding
    if fmt == "base64":  # an explicit base64 is handed to the caller undecoded
        import base64
        got = np.frombuffer(base64.b64decode(got), dtype="<f4")
    close(got, unit(case["retr"]))


def test_openai_sdk_token_ids_and_extension_fields(oai, expected):
    case = next(c for c in expected["embeddings"] if c["input_kind"] == "tokens")
    r = oai.embeddings.create(model="rwkv-fixture", input=[case["ids"]],
                              extra_body={"task": "sts", "normalize": False})
    close(r.data[0].embedding, case["sts"])


def test_openai_sdk_errors_map_to_sdk_exceptions(oai):
    with pytest.raises(openai.NotFoundError):
        oai.embeddings.create(model="gpt-4o", input="x")
    with pytest.raises(openai.BadRequestError) as e:
        oai.embeddings.create(model="rwkv-fixture", input=[[70000]])
    assert "check_embedding_ctx_length" in str(e.value)


@pytest.fixture(scope="module")
def co_v1(seed_server):
    return cohere.Client(base_url=seed_server.url, api_key="unused")


@pytest.fixture(scope="module")
def co_v2(seed_server):
    return cohere.ClientV2(base_url=seed_server.url, api_key="unused")


def test_cohere_v1_and_v2_rerank(co_v1, co_v2, expected):
    ro = expected["rerank_online"]
    want = [sigmoid(x) for x in ro["scores"]["rr_idx"]["logits"]]
    r1 = co_v1.rerank(model="rwkv-fixture", query=ro["query"], documents=ro["documents"],
                      return_documents=True)
    r2 = co_v2.rerank(model="rwkv-fixture", query=ro["query"], documents=ro["documents"], top_n=2)
    for res in r1.results:
        assert abs(res.relevance_score - want[res.index]) <= TOL
        assert res.document.text == ro["documents"][res.index]
    assert len(r2.results) == 2
    assert r2.results[0].relevance_score == pytest.approx(max(want), abs=TOL)


@pytest.mark.parametrize("input_type,head", [("search_document", "retr"), ("search_query", "retr"),
                                             ("classification", "cls"), ("clustering", "cls")])
def test_cohere_embed_input_types(co_v1, co_v2, text_cases, input_type, head):
    texts = [c["text"] for c in text_cases[:3]]
    r1 = co_v1.embed(model="rwkv-fixture", texts=texts, input_type=input_type)
    for e, c in zip(r1.embeddings, text_cases):
        close(e, unit(c[head]))
    r2 = co_v2.embed(model="rwkv-fixture", texts=texts, input_type=input_type, embedding_types=["float"])
    for e, c in zip(r2.embeddings.float_, text_cases):
        close(e, unit(c[head]))


def test_cohere_embedding_types(co_v1, text_cases):
    case = text_cases[2]
    r = co_v1.embed(model="rwkv-fixture", texts=[case["text"]], input_type="search_query",
                    embedding_types=["float", "int8", "uint8", "binary", "ubinary"])
    want = unit(case["retr"])
    close(r.embeddings.float_[0], want)
    assert r.embeddings.ubinary[0] == np.packbits(want >= 0).tolist()
    assert len(r.embeddings.int8[0]) == len(want) and len(r.embeddings.uint8[0]) == len(want)


def test_cohere_v1_sdk_batches_of_96_are_merged(co_v1, text_cases):
    # The SDK splits > 96 texts into parallel requests and joins the ids.
    texts = [text_cases[i % len(text_cases)]["text"] for i in range(200)]
    r = co_v1.embed(model="rwkv-fixture", texts=texts, input_type="search_document")
    assert len(r.embeddings) == 200
    close(r.embeddings[150], unit(text_cases[150 % len(text_cases)]["retr"]))


def test_openai_sdk_sets_the_input_protocol_with_extra_body(fixture_server):
    # The default server (chunked, instructions): input_type through extra_body, as the
    # README tells; equal to the ids that /tokenize as_embedded says are run.
    import json
    from conftest import FIXTURES
    case = next(c for c in json.loads((FIXTURES / "protocol.json").read_text())["cases"]
                if c["name"] == "sentence_query")
    client = openai.OpenAI(base_url=fixture_server.url + "/v1", api_key="unused", max_retries=0)
    got = client.embeddings.create(model="rwkv-fixture", input=case["text"],
                                   extra_body={"input_type": "search_query", "normalize": False})
    want = client.embeddings.create(model="rwkv-fixture", input=[case["ids"]],
                                    extra_body={"normalize": False})
    close(got.data[0].embedding, want.data[0].embedding, 2e-6)
    alias = client.embeddings.create(model="rwkv-fixture-query", input=case["text"],
                                     extra_body={"normalize": False})
    close(alias.data[0].embedding, want.data[0].embedding, 2e-6)
