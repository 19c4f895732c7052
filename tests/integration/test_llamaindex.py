"""LlamaIndex against the real server and the fixture model: the OpenAI(-like)
embeddings, a vector index, and the CohereRerank node postprocessor.

The nodes are built directly (no text splitter), so nothing asks NLTK or
tiktoken for data files; no LLM is involved. The reference numbers
(expected.json) are for text + one EOS without an instruction, so the tests use
`seed_server` (--eos-protocol single, no instructions).
"""
import pytest
from llama_index.core import VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.embeddings.openai import OpenAIEmbedding
from llama_index.embeddings.openai_like import OpenAILikeEmbedding
from llama_index.postprocessor.cohere_rerank import CohereRerank

from reference import close, rerank_scores, text_cases, unit, TOL


def openai_like(server):
    return OpenAILikeEmbedding(model_name="rwkv-fixture", api_base=server.url + "/v1", api_key="unused")


def openai_embedding(server):
    # OpenAIEmbedding(model=...) accepts only OpenAI's model names; model_name= is passed as is.
    return OpenAIEmbedding(model_name="rwkv-fixture", api_base=server.url + "/v1", api_key="unused")


@pytest.mark.parametrize("make", [openai_like, openai_embedding])
def test_embeddings_match_reference(seed_server, expected, make):
    emb = make(seed_server)
    cases = [c for c in text_cases(expected) if "\n" not in c["text"]]
    for got, case in zip(emb.get_text_embedding_batch([c["text"] for c in cases]), cases):
        close(got, unit(case["retr"]))
    close(emb.get_query_embedding(cases[0]["text"]), unit(cases[0]["retr"]))


def test_newlines_are_replaced_by_spaces_before_sending(seed_server, expected):
    # LlamaIndex's OpenAI embeddings send text.replace("\n", " "): a multi-line text gets
    # the embedding of its one-line form, not the one other clients get.
    case = next(c for c in text_cases(expected) if "\n" in c["text"])
    got = openai_like(seed_server).get_text_embedding(case["text"])
    one_line = seed_server.post("/v1/embeddings", {"input": case["text"].replace("\n", " ")})
    close(got, one_line.json()["data"][0]["embedding"])
    with pytest.raises(AssertionError):
        close(got, unit(case["retr"]))


def test_cohere_rerank_postprocessor_after_a_vector_retriever(seed_server, expected):
    ro = expected["rerank_online"]
    want = rerank_scores(expected)
    index = VectorStoreIndex([TextNode(text=d) for d in ro["documents"]], embed_model=openai_like(seed_server))
    retriever = index.as_retriever(similarity_top_k=4)
    rerank = CohereRerank(model="rwkv-fixture", api_key="unused", base_url=seed_server.url, top_n=3)
    nodes = rerank.postprocess_nodes(retriever.retrieve(ro["query"]), query_str=ro["query"])
    assert [n.node.text for n in nodes] == sorted(want, key=want.get, reverse=True)[:3]
    for n in nodes:
        assert abs(n.score - want[n.node.text]) <= TOL


def test_query_alias_embeds_queries_with_the_query_instruction(fixture_server, expected):
    # The README's setup on the default server: the index on the model, the retriever's
    # queries on the alias rwkv-fixture-query (search_query: the query instruction).
    docs = [c["text"] for c in text_cases(expected) if "\n" not in c["text"]][:4]
    index = VectorStoreIndex([TextNode(text=d) for d in docs], embed_model=openai_like(fixture_server))
    queries = OpenAILikeEmbedding(model_name="rwkv-fixture-query", api_base=fixture_server.url + "/v1",
                                  api_key="unused")
    retriever = index.as_retriever(similarity_top_k=2, embed_model=queries)
    want = fixture_server.post("/v1/embeddings", {"input": docs[1], "input_type": "search_query"})
    close(queries.get_query_embedding(docs[1]), want.json()["data"][0]["embedding"], 2e-6)
    assert len(retriever.retrieve(docs[1])) == 2
