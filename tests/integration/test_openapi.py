"""The served OpenAPI document (GET /openapi.json) against the real server.

The document must be valid OpenAPI 3.0. It must list exactly the routes the
server has. Every response the server gives, successful or an error of any
class (400, 401, 404, 409, 413, 415, 422, 429, 503, 507), must match the
schema the document declares for that path, method and status. The JSON
request bodies the server accepts must also match the declared request
schemas. Servers that store states use the memory store or a temporary
folder, never the working directory.
"""
import json
import re
import signal
import socket
import struct
import threading
import time
import zlib

import pytest
import requests
import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from openapi_spec_validator import validate as validate_spec

from conftest import FIXTURES, ROOT, Server

# Every route the server registers (server/routes_*.cpp). A new route must be
# added both here and to api/openapi.yaml.
DOCS_ROUTES = {("get", "/"), ("get", "/openapi.json"), ("get", "/docs"),
               ("get", "/docs/swagger-ui-bundle.js"), ("get", "/docs/swagger-ui.css")}
SERVER_ROUTES = DOCS_ROUTES | {
    ("get", "/health"), ("get", "/version"), ("get", "/metrics"),
    ("get", "/v1/models"), ("get", "/models"),
    ("post", "/tokenize"), ("post", "/detokenize"),
    ("post", "/v1/embeddings"), ("post", "/embeddings"),
    ("post", "/v1/embed"), ("post", "/v2/embed"),
    ("post", "/v1/rerank"), ("post", "/v2/rerank"), ("post", "/rerank"),
    ("get", "/v1/states"), ("post", "/v1/states"),
    ("get", "/v1/states/{id}"), ("put", "/v1/states/{id}"), ("delete", "/v1/states/{id}"),
    ("get", "/v1/states/{id}/content"),
}
STATE_ROUTES = {route for route in SERVER_ROUTES if route[1].startswith("/v1/states")}
OPEN_ROUTES = DOCS_ROUTES | {("get", "/health"), ("get", "/version"), ("get", "/metrics")}
OPENAI_ROUTES = {("get", "/v1/models"), ("get", "/models"), ("post", "/tokenize"), ("post", "/detokenize"),
                 ("post", "/v1/embeddings"), ("post", "/embeddings")} | STATE_ROUTES
COHERE_ROUTES = {("post", "/v1/embed"), ("post", "/v2/embed"),
                 ("post", "/v1/rerank"), ("post", "/v2/rerank"), ("post", "/rerank")}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
TOO_LONG = "a" * ((1 << 20) + 1)  # one byte over the 1 MiB limit on one text
FIXTURE_MODEL = ("--model", str(FIXTURES / "embedding.pth"))
FIXTURE_RERANKER = ("--reranker", str(FIXTURES / "reranker_idx.pth"))
MEMORY_STATES = ("--state-store", "memory")
OCTET = {"Content-Type": "application/octet-stream"}

WORDS = "state recurrent token embedding rerank query document model batch chunk".split()


# ---- The document and schema checks ----

@pytest.fixture(scope="module")
def spec(fixture_server):
    r = fixture_server.get("/openapi.json")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()


def resolve(spec, node):
    """`node` with its top-level $ref chain followed (local refs only)."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        node = spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def inline(spec, node, stack=()):
    """A copy of schema `node` with every $ref replaced by its target."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            assert ref not in stack, f"recursive schema at {ref}"
            return inline(spec, resolve(spec, node), stack + (ref,))
        return {k: inline(spec, v, stack) for k, v in node.items()}
    if isinstance(node, list):
        return [inline(spec, v, stack) for v in node]
    return node


def schema_errors(spec, schema, value):
    """Messages of every way `value` breaks `schema` (OpenAPI 3.0 dialect: nullable, format byte...)."""
    # The $refs are inlined; the components stay reachable for discriminator mappings.
    root = {**inline(spec, schema), "components": spec["components"]}
    validator = OAS30Validator(root, format_checker=oas30_format_checker)
    errors = []
    for e in validator.iter_errors(value):
        where = "/".join(map(str, e.absolute_path)) or "<root>"
        causes = "; ".join(sorted({f"{c.validator}: {c.message[-150:]}" for c in e.context}))[:600]
        errors.append(f"{where}: [{e.validator}] {e.message[-200:]}" + (f" (because {causes})" if causes else ""))
    return sorted(errors)


def operation(spec, method, path):
    assert path in spec["paths"], f"{path} is not in the OpenAPI document"
    item = resolve(spec, spec["paths"][path])
    assert method in item, f"{method.upper()} {path} is not in the OpenAPI document"
    return item[method]


def check_request(spec, method, path, body):
    """Asserts that `body`, which the server accepted, matches the declared request schema."""
    request_body = resolve(spec, operation(spec, method, path)["requestBody"])
    errors = schema_errors(spec, request_body["content"]["application/json"]["schema"], body)
    assert not errors, f"{method.upper()} {path}: an accepted request does not match the request schema:\n" + \
        "\n".join(errors) + f"\nrequest: {json.dumps(body)[:500]}"


def check_response(spec, r, method, path):
    """Asserts that response `r` of `method path` matches the declared status, media type, headers
    and schema, and returns its parsed body (JSON) or text."""
    responses = operation(spec, method, path)["responses"]
    status = str(r.status_code)
    assert status in responses, (f"{method.upper()} {path} answered {status}, which the document does not "
                                 f"declare (declared: {sorted(responses)}): {r.text[:300]}")
    return check_declared_response(spec, resolve(spec, responses[status]), r, f"{method.upper()} {path} {status}")


def check_declared_response(spec, declared, r, what):
    media = r.headers.get("Content-Type", "").split(";")[0].strip()
    assert media in declared.get("content", {}), f"{what}: media type {media!r} is not declared"
    for name in declared.get("headers", {}):
        assert name in r.headers, f"{what}: declared header {name} is missing"
    if media == "application/json":
        body = json.loads(r.text)  # streamed answers start with spaces: valid JSON whitespace
    elif media.startswith("text/"):
        body = r.text
    else:
        return r.content  # a binary body: its media type is all the document says
    errors = schema_errors(spec, declared["content"][media]["schema"], body)
    assert not errors, f"{what}: the response does not match the declared schema:\n" + "\n".join(errors) + \
        f"\nresponse: {r.text[:500]}"
    return body


def call(server, method, path, body=None, headers=None, state_id="probe"):
    """`method` on the route `path` (a template: {id} becomes `state_id`). A PUT
    sends `body` as an octet stream (JSON-encoded first unless it is bytes)."""
    url = server.url + path.replace("{id}", state_id)
    headers = dict(headers or {})
    if method == "get":
        return requests.get(url, headers=headers, timeout=60)
    if method == "delete":
        return requests.delete(url, headers=headers, timeout=60)
    if method == "put":
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return requests.put(url, data=data, headers={**OCTET, **headers}, timeout=60)
    return requests.post(url, json=body, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def state_server(expected):
    """The fixture model and reranker with an in-memory state store."""
    server = Server(*FIXTURE_MODEL, *FIXTURE_RERANKER, "--served-model-name", "rwkv-fixture", *MEMORY_STATES)
    yield server
    assert server.terminate() == 0, server.output()


# ---- The document itself ----

def test_served_document_is_valid_openapi_3_0(spec):
    assert spec["openapi"].startswith("3.0.")
    validate_spec(spec)


def test_served_document_is_the_yaml_in_the_repository(spec):
    source = yaml.safe_load((ROOT / "api" / "openapi.yaml").read_text(encoding="utf-8"))
    assert spec == source, "the server embeds a stale api/openapi.yaml: rebuild"


def test_document_lists_exactly_the_server_routes(spec):
    documented = {(m, p) for p, item in spec["paths"].items() for m in resolve(spec, item) if m in HTTP_METHODS}
    assert documented == SERVER_ROUTES, (f"missing from the document: {sorted(SERVER_ROUTES - documented)}; "
                                         f"not served: {sorted(documented - SERVER_ROUTES)}")


def test_security_and_error_declarations_are_consistent(spec):
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    for method, path in SERVER_ROUTES:
        op = operation(spec, method, path)
        security = op.get("security", spec["security"])
        if (method, path) in OPEN_ROUTES:
            assert security == [], f"{path} must be open"
        else:
            assert security == [{"bearerAuth": []}], path
            assert {"401", "503"} <= set(op["responses"]), f"{method} {path}: 401/503 undeclared"
        if method == "post":
            assert {"200", "400", "413"} <= set(op["responses"]), f"{path}: 200/400/413 undeclared"


def test_every_documented_route_exists_on_the_server(state_server, spec):
    r = state_server.post("/v1/states", {"documents": [{"text": "a probe", "id": "probe"}]})
    assert r.status_code == 200, r.text
    blob = call(state_server, "get", "/v1/states/{id}/content").content
    # The DELETE comes last: the other routes use the state "probe".
    for method, path in sorted(SERVER_ROUTES, key=lambda route: (route[0] == "delete", route)):
        r = call(state_server, method, path, blob if method == "put" else {})
        assert r.status_code != 404, f"{method.upper()} {path}: 404 {r.text}"
        check_response(spec, r, method, path)


def test_unknown_routes_answer_the_openai_404(fixture_server, spec):
    # (A method that a known path does not serve is 405: test_schemathesis.py.)
    declared = resolve(spec, spec["components"]["responses"]["OpenAINotFound"])
    for r in (fixture_server.get("/v1/nothing"), fixture_server.post("/nothing", {}),
              requests.delete(fixture_server.url + "/v1/rerank/x", timeout=60)):
        assert r.status_code == 404, r.text
        check_declared_response(spec, declared, r, f"{r.request.method} {r.request.path_url} 404")


# ---- Successful requests ----

def ok_requests(expected):
    ro = expected["rerank_online"]
    query, docs = ro["query"], ro["documents"]
    ids = next(c for c in expected["embeddings"] if c["input_kind"] == "tokens")["ids"]
    hello = next(c for c in expected["embeddings"] if c["name"] == "hello")["ids"]
    return [
        ("get", "/health", None),
        ("get", "/version", None),
        ("get", "/metrics", None),
        ("get", "/openapi.json", None),
        ("get", "/", None),
        ("get", "/docs", None),
        ("get", "/docs/swagger-ui-bundle.js", None),
        ("get", "/docs/swagger-ui.css", None),
        ("get", "/v1/models", None),
        ("get", "/models", None),
        ("post", "/tokenize", {"input": "Hello world"}),
        ("post", "/tokenize", {"input": ["a", "b c", ""], "add_eos": False}),
        ("post", "/tokenize", {"content": "llama.cpp names it content"}),
        ("post", "/tokenize", {"input": None, "inputs": ["TEI names it inputs"]}),
        ("post", "/detokenize", {"tokens": hello}),
        ("post", "/detokenize", {"tokens": []}),
        ("post", "/v1/embeddings", {"input": "hello", "model": "rwkv-fixture"}),
        ("post", "/v1/embeddings", {"input": ["a", "b"], "encoding_format": "base64", "user": "u"}),
        ("post", "/v1/embeddings", {"input": ids, "task": "classification", "encoding_format": None}),
        ("post", "/v1/embeddings", {"input": "", "model": None, "dimensions": 128}),
        ("post", "/embeddings", {"input": [hello, ids], "task": "sts", "normalize": False, "model": "alias-name"}),
        ("post", "/v1/embed", {"texts": ["a", "b"], "input_type": "search_document"}),
        ("post", "/v1/embed", {"texts": ["a"], "truncate": "END", "model": "rwkv-fixture",
                               "embedding_types": ["float", "int8", "uint8", "binary", "ubinary", "base64"]}),
        ("post", "/v1/embed", {"texts": [""], "embedding_types": [], "input_type": None}),
        ("post", "/v2/embed", {"texts": ["a"], "model": "rwkv-fixture", "input_type": "search_query"}),
        ("post", "/v2/embed", {"inputs": [{"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
                               "model": "alias-name", "input_type": "clustering",
                               "embedding_types": ["int8", "ubinary"], "output_dimension": 128, "max_tokens": 64}),
        ("post", "/v1/rerank", {"query": query, "documents": docs}),
        ("post", "/v1/rerank", {"query": query, "documents": [{"text": d, "id": i} for i, d in enumerate(docs)],
                                "return_documents": True, "top_n": 2, "max_tokens_per_doc": None}),
        ("post", "/v1/rerank", {"query": query, "rank_fields": ["title", "body"], "return_documents": True,
                                "documents": [{"title": "t", "body": d} for d in docs]}),
        ("post", "/v2/rerank", {"model": "rwkv-fixture", "query": query, "documents": docs, "top_n": 1,
                                "max_tokens_per_doc": 8}),
        ("post", "/rerank", {"query": query, "texts": docs, "raw_scores": True, "return_text": True}),
        ("post", "/rerank", {"query": query, "texts": docs, "top_n": 2}),
        ("post", "/rerank", {"query": query, "documents": docs, "top_n": 0, "return_documents": True}),
    ]


def test_successful_responses_match_the_document(fixture_server, spec, expected):
    covered = set()
    for method, path, body in ok_requests(expected):
        r = call(fixture_server, method, path, body)
        assert r.status_code == 200, f"{method.upper()} {path} {body}: {r.status_code} {r.text[:300]}"
        check_response(spec, r, method, path)
        if body is not None:
            check_request(spec, method, path, body)
        covered.add((method, path))
    assert covered == SERVER_ROUTES - STATE_ROUTES


def test_response_variants_are_the_ones_requested(fixture_server, spec):
    # The schemas allow alternatives (floats or base64, floats or by-type, Cohere or TEI):
    # check that each request got the variant it asked for.
    body = check_response(spec, fixture_server.post("/v1/embeddings", {"input": "x", "encoding_format": "base64"}),
                          "post", "/v1/embeddings")
    assert isinstance(body["data"][0]["embedding"], str)
    body = check_response(spec, fixture_server.post("/v1/embed", {"texts": ["x"]}), "post", "/v1/embed")
    assert body["response_type"] == "embeddings_floats"
    body = check_response(spec, fixture_server.post("/v1/embed", {"texts": ["x"], "embedding_types": ["uint8"]}),
                          "post", "/v1/embed")
    assert body["response_type"] == "embeddings_by_type" and set(body["embeddings"]) == {"uint8"}
    body = check_response(spec, fixture_server.post("/rerank", {"query": "q", "texts": ["d"]}), "post", "/rerank")
    assert isinstance(body, list)
    body = check_response(spec, fixture_server.post("/rerank", {"query": "q", "documents": ["d"]}), "post", "/rerank")
    assert isinstance(body, dict) and body["meta"]["api_version"]["version"] == "1"
    body = check_response(spec, fixture_server.post("/tokenize", {"input": ["a"]}), "post", "/tokenize")
    assert isinstance(body["tokens"][0], list)


# ---- Errors on the fixture server: 400, 404, 413 from the parsers ----

def error_requests():
    return [
        # OpenAI shape
        ("post", "/tokenize", {}, 400),
        ("post", "/tokenize", {"input": 5}, 400),
        ("post", "/tokenize", {"input": "a", "add_eos": "yes"}, 400),
        ("post", "/detokenize", {"tokens": [65531]}, 400),
        ("post", "/detokenize", {"tokens": "1 2"}, 400),
        ("post", "/v1/embeddings", {"input": []}, 400),
        ("post", "/v1/embeddings", {"input": [[9906, 1917, 100256]]}, 400),
        ("post", "/v1/embeddings", {"input": "a", "dimensions": 64}, 400),
        ("post", "/v1/embeddings", {"input": "a", "task": "poetry"}, 400),
        ("post", "/v1/embeddings", {"input": "a", "model": "gpt-4"}, 404),
        ("post", "/v1/embeddings", {"input": TOO_LONG}, 413),
        ("post", "/embeddings", {"input": ["a", 1]}, 400),
        ("post", "/embeddings", {"input": "a", "model": "nope"}, 404),
        ("post", "/embeddings", {"input": ["a", TOO_LONG]}, 413),
        # Cohere shape
        ("post", "/v1/embed", {"texts": []}, 400),
        ("post", "/v1/embed", {"texts": ["a"], "embedding_types": ["float16"]}, 400),
        ("post", "/v1/embed", {"texts": ["a"], "input_type": "image"}, 400),
        ("post", "/v1/embed", {"texts": ["a"], "model": "nope"}, 404),
        ("post", "/v1/embed", {"texts": [TOO_LONG]}, 413),
        ("post", "/v2/embed", {"texts": ["a"], "input_type": "search_query"}, 400),
        ("post", "/v2/embed", {"texts": ["a"], "model": "rwkv-fixture"}, 400),
        ("post", "/v2/embed", {"texts": ["a"], "model": "nope", "input_type": "search_query"}, 404),
        ("post", "/v2/embed", {"texts": [TOO_LONG], "model": "rwkv-fixture", "input_type": "search_query"}, 413),
        ("post", "/v1/rerank", {"query": "q", "documents": []}, 400),
        ("post", "/v1/rerank", {"query": "q", "documents": ["d"], "top_n": -1}, 400),
        ("post", "/v1/rerank", {"query": "q", "documents": ["d"], "model": "nope"}, 404),
        ("post", "/v1/rerank", {"query": "q", "documents": [TOO_LONG]}, 413),
        ("post", "/v2/rerank", {"query": "  ", "documents": ["d"]}, 400),
        ("post", "/v2/rerank", {"query": "q", "documents": ["d"], "model": "nope"}, 404),
        ("post", "/v2/rerank", {"query": TOO_LONG, "documents": ["d"]}, 413),
        ("post", "/rerank", {"query": "q", "texts": [3]}, 400),
        ("post", "/rerank", {"query": "q", "texts": [{"text": "objects are not TEI"}]}, 400),
        ("post", "/rerank", {"query": "q", "texts": ["d"], "model": "nope"}, 404),
        ("post", "/rerank", {"query": "q", "texts": [TOO_LONG]}, 413),
    ]


def assert_error_shape(method, path, body):
    """Routes answer errors in their API's shape (the schemas allow both for 413)."""
    assert (method, path) in OPENAI_ROUTES | COHERE_ROUTES
    if (method, path) in COHERE_ROUTES:
        assert set(body) == {"message"}, body
    else:
        assert set(body) == {"error"}, body


@pytest.mark.parametrize("method,path,body,status", error_requests(),
                         ids=lambda v: v if isinstance(v, (str, int)) else None)
def test_error_responses_match_the_document(fixture_server, spec, method, path, body, status):
    r = call(fixture_server, method, path, body)
    assert r.status_code == status, r.text[:300]
    assert_error_shape(method, path, check_response(spec, r, method, path))


@pytest.mark.parametrize("method,path", sorted(m for m in SERVER_ROUTES if m[0] == "post"))
@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"", b"\xff{}"])
def test_malformed_bodies_match_the_declared_400(fixture_server, spec, method, path, raw):
    r = requests.post(fixture_server.url + path, data=raw, headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 400, r.text
    assert_error_shape(method, path, check_response(spec, r, method, path))


# ---- /v1/states and offline rerank ----

def zero_fingerprint(blob):
    """The blob as if another model of the same shape had made it: the
    fingerprint (bytes 16..31) zeroed, the trailing CRC-32 recomputed."""
    edited = blob[:16] + bytes(16) + blob[32:-4]
    return edited + struct.pack("<I", zlib.crc32(edited))


def test_state_routes_and_offline_rerank_match_the_document(state_server, spec, expected):
    srv = state_server
    ro = expected["rerank_online"]

    def ok(method, path, body=None, status=200, state_id="probe", **kw):
        r = call(srv, method, path, body, state_id=state_id, **kw)
        assert r.status_code == status, f"{method.upper()} {path}: {r.status_code} {r.text[:300]}"
        if isinstance(body, dict):
            check_request(spec, method, path, body)
        return check_response(spec, r, method, path)

    def error(method, path, body, status, state_id="probe", **kw):
        r = call(srv, method, path, body, state_id=state_id, **kw)
        assert r.status_code == status, f"{method.upper()} {path} {str(body)[:100]}: {r.status_code} {r.text[:300]}"
        result = check_response(spec, r, method, path)
        assert_error_shape(method, path, result)
        return result

    created = ok("post", "/v1/states", {"model": "rwkv-fixture", "ttl_seconds": 3600,
                                        "documents": [ro["documents"][0], {"text": ro["documents"][1], "id": "doc-a"},
                                                      {"text": "x", "id": None}]})
    assert [d["index"] for d in created["data"]] == [0, 1, 2] and created["data"][1]["id"] == "doc-a"
    listed = ok("get", "/v1/states")
    assert {"doc-a", created["data"][0]["id"]} <= {m["id"] for m in listed["data"]}
    page = requests.get(srv.url + "/v1/states", params={"limit": 1}, timeout=60)
    assert check_response(spec, page, "get", "/v1/states")["has_more"] is True
    meta = ok("get", "/v1/states/{id}", state_id="doc-a")
    assert meta["compatible"] is True and isinstance(meta["expires_at"], int)
    blob = ok("get", "/v1/states/{id}/content", state_id="doc-a")
    assert ok("put", "/v1/states/{id}", blob, status=201, state_id="doc-b")["expires_at"] is None
    r = requests.put(srv.url + "/v1/states/doc-b", data=blob, params={"ttl_seconds": 60}, headers=OCTET, timeout=60)
    assert r.status_code == 200, r.text  # replaced
    check_response(spec, r, "put", "/v1/states/{id}")

    # Offline rerank: state documents, alone or mixed with text documents.
    mixed = [{"state_id": "doc-a"}, ro["documents"][2], {"state_id": "doc-b"}]
    body = ok("post", "/v1/rerank", {"query": ro["query"], "documents": mixed, "return_documents": True})
    assert {r["index"]: r["document"] for r in body["results"]}[0] == {"state_id": "doc-a"}
    ok("post", "/v2/rerank", {"model": "rwkv-fixture", "query": ro["query"], "documents": mixed, "top_n": 2})
    ok("post", "/rerank", {"query": ro["query"], "documents": [{"state_id": "doc-a"}]})

    deleted = ok("delete", "/v1/states/{id}", state_id="doc-b")
    assert deleted == {"object": "state.deleted", "id": "doc-b", "deleted": True}

    # Errors: the OpenAI shape on /v1/states, the Cohere shape on rerank.
    error("get", "/v1/states/{id}", None, 404, state_id="doc-b")
    error("get", "/v1/states/{id}/content", None, 404, state_id="doc-b")
    error("delete", "/v1/states/{id}", None, 404, state_id="doc-b")
    error("get", "/v1/states/{id}", None, 400, state_id="bad id")
    error("delete", "/v1/states/{id}", None, 400, state_id="bad id")
    error("get", "/v1/states/{id}/content", None, 400, state_id="bad id")
    for params in ({"limit": 0}, {"limit": "many"}, {"after": "x" * 129}):
        r = requests.get(srv.url + "/v1/states", params=params, timeout=60)
        assert r.status_code == 400, r.text
        assert_error_shape("get", "/v1/states", check_response(spec, r, "get", "/v1/states"))
    error("post", "/v1/states", {}, 400)
    error("post", "/v1/states", {"documents": []}, 400)
    error("post", "/v1/states", {"documents": [3]}, 400)
    error("post", "/v1/states", {"documents": [{"text": "x", "id": "bad id"}]}, 400)
    error("post", "/v1/states", {"documents": [{"text": "x", "id": "d"}, {"text": "y", "id": "d"}]}, 400)
    error("post", "/v1/states", {"documents": ["x"], "ttl_seconds": 0}, 400)
    assert error("post", "/v1/states", {"documents": [{"text": "x", "id": "doc-a"}]}, 409)["error"]["code"] == \
        "state_exists"
    assert error("post", "/v1/states", {"documents": ["x"], "model": "nope"}, 404)["error"]["code"] == \
        "model_not_found"
    error("post", "/v1/states", {"documents": [TOO_LONG]}, 413)
    error("put", "/v1/states/{id}", b"", 400, state_id="doc-c")
    error("put", "/v1/states/{id}", b"not a state blob", 400, state_id="doc-c")
    error("put", "/v1/states/{id}", blob[:-1], 400, state_id="doc-c")
    error("put", "/v1/states/{id}", blob, 400, state_id="bad id")
    assert error("put", "/v1/states/{id}", zero_fingerprint(blob), 409, state_id="doc-c")["error"]["code"] == \
        "state_model_mismatch"
    r = requests.put(srv.url + "/v1/states/doc-c", json={"blob": "no"}, timeout=60)
    assert r.status_code == 415, r.text
    assert_error_shape("put", "/v1/states/{id}", check_response(spec, r, "put", "/v1/states/{id}"))
    r = requests.put(srv.url + "/v1/states/doc-c", data=blob, params={"ttl_seconds": "-1"}, headers=OCTET,
                     timeout=60)
    assert r.status_code == 400, r.text
    check_response(spec, r, "put", "/v1/states/{id}")
    error("post", "/v1/rerank", {"query": "q", "documents": [{"state_id": "no-such-state"}]}, 404)
    error("post", "/v2/rerank", {"query": "q", "documents": [{"state_id": "doc-b"}, "d"]}, 404)
    error("post", "/rerank", {"query": "q", "documents": [{"state_id": "bad id"}]}, 400)
    error("post", "/v1/rerank", {"query": "q", "documents": [{"state_id": "doc-a", "text": "both"}]}, 400)


def test_states_of_another_model_shape_are_422(make_server, spec, tmp_path):
    state_dir = str(tmp_path / "states")
    fixture = make_server(*FIXTURE_MODEL, "--state-dir", state_dir)
    assert fixture.post("/v1/states", {"documents": [{"text": "a document", "id": "doc"}]}).status_code == 200
    blob = call(fixture, "get", "/v1/states/{id}/content", state_id="doc").content
    assert fixture.terminate() == 0
    demo = make_server("--state-dir", state_dir)  # the random demo model: another shape
    meta = check_response(spec, call(demo, "get", "/v1/states/{id}", state_id="doc"), "get", "/v1/states/{id}")
    assert meta["compatible"] is False
    for path in ("/v1/rerank", "/v2/rerank", "/rerank"):
        r = demo.post(path, {"query": "q", "documents": [{"state_id": "doc"}]})
        assert r.status_code == 422, r.text
        assert_error_shape("post", path, check_response(spec, r, "post", path))
    r = call(demo, "put", "/v1/states/{id}", blob, state_id="copy")
    assert r.status_code == 422, r.text
    assert_error_shape("put", "/v1/states/{id}", check_response(spec, r, "put", "/v1/states/{id}"))


def test_a_full_state_store_answers_507(make_server, state_server, spec, tmp_path):
    assert state_server.post("/v1/states", {"documents": [{"text": "for 507", "id": "full"}]}).status_code in (200, 409)
    blob = call(state_server, "get", "/v1/states/{id}/content", state_id="full").content
    full = make_server(*FIXTURE_MODEL, "--state-dir", str(tmp_path / "states"), "--state-max-bytes", "1")
    r = call(full, "put", "/v1/states/{id}", blob, state_id="full")
    assert r.status_code == 507, r.text
    assert_error_shape("put", "/v1/states/{id}", check_response(spec, r, "put", "/v1/states/{id}"))


def test_a_full_state_store_answers_507_to_a_slow_create(make_server, spec, tmp_path):
    full = make_server(*FIXTURE_MODEL, "--state-dir", str(tmp_path / "states"), "--state-max-bytes", "1",
                       "--max-batch-seqs", "1", "--chunk-tokens", "16")
    r = full.post("/v1/states", {"documents": [" ".join(WORDS * 100)] * 4})
    assert r.status_code == 507, r.text[:300]
    check_response(spec, r, "post", "/v1/states")


def test_with_heartbeats_a_failure_after_the_200_is_an_error_body_logged_and_counted(make_server, tmp_path):
    """--heartbeat-seconds: the slow create is answered 200 and spaces before
    storing fails; the body is then the route's error (no internal details),
    and the log and the metrics say 507."""
    full = make_server(*FIXTURE_MODEL, "--state-dir", str(tmp_path / "states"), "--state-max-bytes", "1",
                       "--max-batch-seqs", "1", "--chunk-tokens", "16", "--heartbeat-seconds", "0.05")
    r = full.post("/v1/states", {"documents": [" ".join(WORDS * 100)] * 4})
    assert r.status_code == 200 and r.headers["Transfer-Encoding"] == "chunked"
    assert r.text.startswith(" ")
    error = r.json()["error"]
    assert error["type"] == "server_error" and "full" in error["message"], error
    assert str(tmp_path) not in r.text  # the store's path is in the log only
    wait_until(lambda: "POST /v1/states 507 " in full.output(), "the access log line (written after the body)")
    assert "[error] POST /v1/states: failed with 507 after its status 200 went out" in full.output()
    assert re.search(r'^rwkv_emb_http_requests_total\{route="/v1/states",status="507"\} 1$',
                     full.get("/metrics").text, re.M)


# ---- Errors that need a differently configured server: 400, 401, 413 ----

def test_unauthorized_and_open_routes(make_server, spec, expected):
    server = make_server(*FIXTURE_MODEL, *MEMORY_STATES, "--api-key", "k1,k2")
    for method, path in sorted(SERVER_ROUTES):
        if (method, path) in OPEN_ROUTES:
            r = call(server, method, path)
            assert r.status_code == 200, f"{path} must need no key: {r.text[:200]}"
            check_response(spec, r, method, path)
            continue
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k1"}):
            r = call(server, method, path, {}, headers=headers)
            assert r.status_code == 401, f"{method.upper()} {path} {headers}: {r.status_code} {r.text[:200]}"
            assert r.headers["WWW-Authenticate"] == "Bearer"
            assert_error_shape(method, path, check_response(spec, r, method, path))
    key = {"Authorization": "Bearer k2"}
    check_response(spec, server.get("/v1/models", headers=key), "get", "/v1/models")
    r = server.post("/v1/embeddings", {"input": "a"}, headers=key)
    assert r.status_code == 200
    check_response(spec, r, "post", "/v1/embeddings")
    # A server without --reranker refuses rerank requests with 400.
    for path, body in (("/v1/rerank", {"query": "q", "documents": ["d"]}),
                       ("/rerank", {"query": "q", "texts": ["d"]})):
        r = server.post(path, body, headers=key)
        assert r.status_code == 400, r.text
        assert_error_shape("post", path, check_response(spec, r, "post", path))


def test_bodies_over_the_limit_get_the_openai_413_on_every_route(make_server, spec):
    server = make_server(*FIXTURE_MODEL, *MEMORY_STATES, "--max-body-bytes", "2000")
    for method, path in sorted(m for m in SERVER_ROUTES if m[0] in ("post", "put")):
        r = call(server, method, path, {"input": "x" * 5000, "texts": ["x"], "query": "q"})
        assert r.status_code == 413, f"{path}: {r.status_code} {r.text[:200]}"
        body = check_response(spec, r, method, path)
        assert set(body) == {"error"}, body  # refused before any route: always the OpenAI shape


def test_chunked_bodies_over_the_limit_get_413(make_server, spec):
    server = make_server(*FIXTURE_MODEL, *MEMORY_STATES, "--max-body-bytes", "2000")
    payload = json.dumps({"input": "x" * 5000}).encode()
    r = requests.post(server.url + "/v1/embeddings", data=iter([payload[:100], payload[100:]]),
                      headers={"Content-Type": "application/json"}, timeout=60)
    assert r.status_code == 413, r.status_code
    check_response(spec, r, "post", "/v1/embeddings")


# ---- 429 (queue full), streamed 200s, 503 (draining) ----

def queue_depth(server):
    for line in server.get("/metrics").text.splitlines():
        if line.startswith("rwkv_emb_queue_requests "):
            return float(line.split()[1])
    raise AssertionError("no rwkv_emb_queue_requests metric")


def wait_until(condition, what, timeout=30):
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start_slow_request(server, n_words=100000):
    """A long embedding request over a raw socket that is never read. Closing
    the socket cancels its work (the server notices when its waiting spaces
    can no longer be written)."""
    text = " ".join(WORDS[(i * 7) % len(WORDS)] for i in range(n_words))
    body = json.dumps({"input": text}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    return sock


def probe_bodies():
    """A valid request for every route that needs a key."""
    docs = ["d"]
    return {
        ("get", "/v1/models"): None, ("get", "/models"): None,
        ("post", "/tokenize"): {"input": "a"}, ("post", "/detokenize"): {"tokens": [100]},
        ("post", "/v1/embeddings"): {"input": "a"}, ("post", "/embeddings"): {"input": "a"},
        ("post", "/v1/embed"): {"texts": ["a"]},
        ("post", "/v2/embed"): {"texts": ["a"], "model": "rwkv-fixture", "input_type": "search_query"},
        ("post", "/v1/rerank"): {"query": "q", "documents": docs},
        ("post", "/v2/rerank"): {"query": "q", "documents": docs},
        ("post", "/rerank"): {"query": "q", "texts": docs},
        ("post", "/v1/states"): {"documents": docs},
        ("get", "/v1/states"): None, ("get", "/v1/states/{id}"): None, ("get", "/v1/states/{id}/content"): None,
        ("put", "/v1/states/{id}"): b"blob", ("delete", "/v1/states/{id}"): None,
    }


def test_queue_full_429_streamed_200_and_draining_503(make_server, spec):
    server = make_server(*FIXTURE_MODEL, *FIXTURE_RERANKER, *MEMORY_STATES, "--served-model-name", "rwkv-fixture",
                         "--max-queued-requests", "3", "--max-batch-seqs", "1", "--chunk-tokens", "16",
                         "--max-input-tokens", "1000000", "--heartbeat-seconds", "0.1")
    probes = probe_bodies()
    queued_work = ["/v1/embeddings", "/rerank"]  # small requests waiting behind the slow one
    slow = start_slow_request(server)
    wait_until(lambda: queue_depth(server) >= 1, "the slow request to be queued")

    results = {}

    def queued(path):
        results[path] = server.post(path, probes[("post", path)])

    threads = [threading.Thread(target=queued, args=(p,)) for p in queued_work]
    for t in threads:
        t.start()
    wait_until(lambda: queue_depth(server) >= 3, "the queue to fill")

    # The queue is full: every route that submits work answers 429 in its own shape.
    for (method, path), body in sorted(probes.items()):
        if method != "post" or path in ("/tokenize", "/detokenize"):
            continue  # these do not queue work
        r = call(server, method, path, body)
        assert r.status_code == 429, f"{path}: {r.status_code} {r.text[:200]}"
        assert r.headers["Retry-After"] == "1"
        assert_error_shape(method, path, check_response(spec, r, method, path))

    # The queued requests have waited long enough to be streamed (--heartbeat-seconds:
    # a space every 100 ms after the first 100 ms). Cancel the slow request: they then finish.
    time.sleep(0.5)
    slow.close()
    for t in threads:
        t.join(120)
    for path in queued_work:
        r = results[path]
        assert r.status_code == 200, r.text[:300]
        assert r.text.startswith(" "), "a request that waited should have been streamed with leading spaces"
        check_response(spec, r, "post", path)

    # Draining after SIGTERM: 503 on every route that needs a key (and /health),
    # while a slow request keeps the server alive.
    slow = start_slow_request(server)
    wait_until(lambda: queue_depth(server) >= 1, "the second slow request to be queued")
    server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: server.get("/health").status_code == 503, "/health to turn 503")
    check_response(spec, server.get("/health"), "get", "/health")
    for (method, path), body in sorted(probes.items()):
        r = call(server, method, path, body)
        assert r.status_code == 503, f"{path}: {r.status_code} {r.text[:200]}"
        assert r.headers["Retry-After"] == "5"
        assert_error_shape(method, path, check_response(spec, r, method, path))
    for method, path in sorted(OPEN_ROUTES - {("get", "/health")}):
        check_response(spec, call(server, method, path), method, path)
    slow.close()
    assert server.proc.wait(60) == 0
