"""The input protocol of text embeddings (docs/model.md) through the real server and the
`embed` CLI: every text of ../shared/fixtures/protocol.json, with its input type, embeds
exactly as the token ids that the upstream evaluation wrapper builds for it (sent as
token ids, with the head of that input type), on the OpenAI and Cohere routes and in
the CLI; `single` gives text + one EOS; instructions, model aliases and errors."""
import base64
import json
import subprocess

import numpy as np
import pytest

from conftest import BINARY, FIXTURES, require_fixtures
from reference import unit

TOL = 2e-6  # both sides run the same float32 engine; only the batching differs
TASK_OF = {"search_document": "retrieval", "search_query": "retrieval", "sts": "sts",
           "classification": "classification", "clustering": "classification"}


@pytest.fixture(scope="module")
def protocol():
    require_fixtures()
    return json.loads((FIXTURES / "protocol.json").read_text())


def input_type(case):
    return case["input_type"] or "search_document"


def by_type(protocol):
    groups = {}
    for case in protocol["cases"]:
        groups.setdefault(input_type(case), []).append(case)
    return groups


def floats(data):
    return [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in data]


def openai(server, inputs, **fields):
    r = server.post("/v1/embeddings", {"input": inputs, "normalize": False,
                                       "encoding_format": "base64", **fields})
    assert r.status_code == 200, r.text
    return r.json()


def as_ids(server, ids, kind):
    """The embeddings of token-id inputs, with the head of input type `kind`."""
    return floats(openai(server, ids, input_type=kind)["data"])


def close(got, want, tol=TOL):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= tol, np.max(np.abs(got - want))


def test_openai_texts_embed_as_the_upstream_ids(fixture_server, protocol):
    for kind, cases in by_type(protocol).items():
        want = as_ids(fixture_server, [c["ids"] for c in cases], kind)
        fields = {} if kind == "search_document" else {"input_type": kind}  # absent: documents
        body = openai(fixture_server, [c["text"] for c in cases], **fields)
        for got, w, c in zip(floats(body["data"]), want, cases):
            close(got, w), c["name"]
        # usage: the tokens the model ran (instruction, repeats and EOS included).
        assert body["usage"]["prompt_tokens"] == sum(len(c["ids"]) for c in cases)
        if kind == "search_document":  # `task` implies the input type of its head
            continue
        for got, w in zip(floats(openai(fixture_server, [c["text"] for c in cases],
                                        task=TASK_OF[kind])["data"]), want):
            if kind != "search_query":
                close(got, w)


def test_cohere_texts_embed_as_the_upstream_ids(fixture_server, protocol):
    for kind, cases in by_type(protocol).items():
        if kind == "sts":  # not one of Cohere's input types
            continue
        want = as_ids(fixture_server, [c["ids"] for c in cases], kind)
        for version in (1, 2):
            r = fixture_server.post(f"/v{version}/embed", {
                "texts": [c["text"] for c in cases], "model": "rwkv-fixture", "input_type": kind,
                "embedding_types": ["float"]})
            assert r.status_code == 200, r.text
            for got, w in zip(r.json()["embeddings"]["float"], want):
                close(got, unit(w))
            assert r.json()["meta"]["billed_units"]["input_tokens"] == sum(len(c["ids"]) for c in cases)


def run_cli(*args, lines):
    proc = subprocess.run([str(BINARY), "embed", "--model", str(FIXTURES / "embedding.pth"),
                           "--raw", *args], input="".join(json.dumps(x) + "\n" for x in lines),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_cli_texts_embed_as_the_upstream_ids_and_as_the_api(fixture_server, protocol):
    for kind, cases in by_type(protocol).items():
        texts = run_cli("--input-type", kind, lines=[c["text"] for c in cases])
        ids = run_cli("--input-type", kind, lines=[c["ids"] for c in cases])
        api = as_ids(fixture_server, [c["ids"] for c in cases], kind)
        for t, i, a in zip(texts, ids, api):
            close(t, i)
            close(t, a)


def test_single_is_text_plus_one_eos(fixture_server, make_server, protocol):
    tok = lambda text: fixture_server.post("/tokenize", {"input": text}).json()["tokens"]
    flagged = make_server("--model", str(FIXTURES / "embedding.pth"), "--eos-protocol", "single")
    template = protocol["template"]
    for kind, cases in by_type(protocol).items():
        description = protocol["instructions"].get(kind)
        texts = [c["text"] for c in cases]
        formatted = [template.format(description=description, query=t) if description else t
                     for t in texts]
        want = as_ids(fixture_server, [tok(f) for f in formatted], kind)
        for server, fields in ((fixture_server, {"eos_protocol": "single"}), (flagged, {})):
            for got, w in zip(floats(openai(server, texts, input_type=kind, **fields)["data"]), want):
                close(got, w)
        # The request field overrides the flag.
        chunked = floats(openai(flagged, texts, input_type=kind, eos_protocol="chunked")["data"])
        for got, w in zip(chunked, as_ids(fixture_server, [c["ids"] for c in cases], kind)):
            close(got, w)


def test_boundary_lengths_embed_as_their_ids(fixture_server):
    # Texts of exactly n own tokens ("a" repeated: one token each, checked by /tokenize),
    # against the ids of the protocol's layout, built here from the rules of docs/model.md.
    def layout(ids):
        n = len(ids)
        if n < 512:
            return (ids + [65535]) * 4
        parts = 1 if n <= 2044 else -(-n // 2048)
        size, out = -(-n // parts), []
        for p in range(parts):
            part = ids[p * size:(p + 1) * size]
            piece = -(-len(part) // 4)
            for k in range(4):
                out += part[k * piece:(k + 1) * piece] + [65535]
        return out
    unit_id = fixture_server.post("/tokenize", {"input": " a", "add_eos": False}).json()["tokens"]
    assert len(unit_id) == 1
    for n in (511, 512, 513, 2044, 2045, 2048, 2049, 5000):
        text = " a" * n
        ids = fixture_server.post("/tokenize", {"input": text, "add_eos": False}).json()["tokens"]
        assert ids == unit_id * n
        assert fixture_server.post("/tokenize", {"input": text, "as_embedded": True}).json()["tokens"] == layout(ids)
        close(floats(openai(fixture_server, text)["data"])[0], as_ids(fixture_server, [layout(ids)], "search_document")[0])
    for text in ("", "   ", "\n\t "):
        ids = fixture_server.post("/tokenize", {"input": text, "add_eos": False}).json()["tokens"]
        close(floats(openai(fixture_server, text)["data"])[0], as_ids(fixture_server, [layout(ids)], "search_document")[0])


def test_tokenize_as_embedded_gives_the_upstream_ids(fixture_server, protocol):
    for c in protocol["cases"]:
        r = fixture_server.post("/tokenize", {"input": c["text"], "as_embedded": True,
                                              "input_type": input_type(c)})
        assert r.status_code == 200, r.text
        assert r.json()["tokens"] == c["ids"], c["name"]


def test_custom_instruction_replaces_the_default(fixture_server, protocol):
    case = next(c for c in protocol["cases"] if c["name"] == "sentence_query")
    text, mine = case["text"], "Find the passage that proves the claim"
    ids = fixture_server.post("/tokenize", {"input": f"Instruct: {mine}\nQuery: {text}",
                                            "add_eos": False}).json()["tokens"]
    want = as_ids(fixture_server, [(ids + [65535]) * 4], "search_query")[0]
    default = floats(openai(fixture_server, text, input_type="search_query")["data"])[0]
    got = floats(openai(fixture_server, text, input_type="search_query", instruction=mine)["data"])[0]
    close(got, want)
    assert np.max(np.abs(got - default)) > 1e-3  # the instruction matters
    r = fixture_server.post("/v1/embed", {"texts": [text], "input_type": "search_query", "instruction": mine})
    close(r.json()["embeddings"][0], unit(want))


def test_server_default_instruction_and_query_alias(make_server, protocol):
    case = next(c for c in protocol["cases"] if c["name"] == "sentence_query")
    server = make_server("--model", str(FIXTURES / "embedding.pth"), "--served-model-name", "m",
                         "--instruction-search-query", "Mine")
    models = {m["id"]: m for m in server.get("/v1/models").json()["data"]}
    assert models["m-query"]["meta"]["input_type"] == "search_query"
    ids = server.post("/tokenize", {"input": "Instruct: Mine\nQuery: " + case["text"],
                                    "add_eos": False}).json()["tokens"]
    want = as_ids(server, [(ids + [65535]) * 4], "search_query")[0]
    close(floats(openai(server, case["text"], input_type="search_query")["data"])[0], want)
    # The alias implies search_query: a client that can only choose a model name.
    body = openai(server, case["text"], model="m-query")
    assert body["model"] == "m-query"
    close(floats(body["data"])[0], want)
    # An explicit input_type wins over the alias.
    doc = floats(openai(server, case["text"], model="m-query", input_type="search_document")["data"])[0]
    close(doc, floats(openai(server, case["text"], model="m")["data"])[0])


@pytest.mark.parametrize("field,value,allowed", [
    ("input_type", "query", '"search_document", "search_query"'),
    ("eos_protocol", "multi", '"chunked", "single"'),
])
def test_unknown_values_are_400_in_each_apis_format(fixture_server, field, value, allowed):
    r = fixture_server.post("/v1/embeddings", {"input": "a", field: value})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == field and allowed in err["message"] and field in err["message"]
    for path, body in (("/v1/embed", {"texts": ["a"]}),
                       ("/v2/embed", {"texts": ["a"], "model": "rwkv-fixture", "input_type": "search_query"})):
        r = fixture_server.post(path, {**body, field: value})
        assert r.status_code == 400, r.text
        assert set(r.json()) == {"message"}
        assert field in r.json()["message"] and allowed in r.json()["message"]


def test_instruction_with_token_ids_is_400(fixture_server):
    r = fixture_server.post("/v1/embeddings", {"input": [[1, 65535]], "instruction": "x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "instruction", r.text
    assert "texts only" in r.json()["error"]["message"]


def test_ids_65530_to_65534_are_computed_by_api_and_cli(fixture_server):
    ids = [[65530, 65531, 65535], [65532, 65533, 65534, 65535]]
    got = as_ids(fixture_server, ids, "search_document")
    for g, c in zip(got, run_cli(lines=ids)):
        close(g, c)
    r = fixture_server.post("/v1/embeddings", {"input": [[1, 65535], [2, 65536, 65535]]})
    assert r.status_code == 400 and "'input[1][1]' is 65536" in r.json()["error"]["message"], r.text


def test_split_across_steps_and_batched_is_bit_identical(make_server, protocol):
    # One long text (w1500: 1679 tokens chunked) alone on a default server, and split
    # into 64-token pieces in steps shared with the other texts of a batch.
    case = next(c for c in protocol["cases"] if c["name"] == "w1500_query")
    others = [c["text"] for c in protocol["cases"] if c["name"] in ("w300", "sentence", "w480", "w2600")]
    alone = make_server("--model", str(FIXTURES / "embedding.pth"))
    split = make_server("--model", str(FIXTURES / "embedding.pth"), "--chunk-tokens", "64",
                        "--max-batch-tokens", "256")
    want = openai(alone, case["text"], input_type="search_query")["data"][0]["embedding"]
    batch = openai(split, others[:2] + [case["text"]] + others[2:], input_type="search_query")
    # Rounding-level agreement first, so that a failure below is about bits only (the CPU
    # matrix product's blocking depends on the batch shape: kernels/cpu is being made
    # batch-invariant).
    close(floats(batch["data"][2:3])[0], floats([{"embedding": want}])[0], 1e-5)
    assert batch["data"][2]["embedding"] == want  # the same float32 bytes
    assert openai(split, case["text"], input_type="search_query")["data"][0]["embedding"] == want
