#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets: tests/fuzz/corpus/<target>/.

Every seed is made here, by hand-written bytes or by the formats' own rules
(no fixture data). Run it again after changing it; the output is deterministic.
"""
import io
import json
import math
import pathlib
import shutil
import struct
import zipfile
import zlib

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"


def write(target, name, data):
    path = CORPUS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def write_json(target, bodies):
    for i, body in enumerate(bodies):
        write(target, f"{i:02d}.json", body if isinstance(body, str) else json.dumps(body))


# ---- request bodies ----

def request_seeds():
    write_json("openai_embeddings", [
        {"input": "Hello world", "model": "rwkv"},
        {"input": ["a", "b", ""], "encoding_format": "base64", "dimensions": 768},
        {"input": [1, 2, 65535], "task": "sts", "normalize": False},
        {"input": [[33155, 37], [65535]], "user": "u", "task": "classification"},
        {"input": None, "model": None},
        '{"input": ["\\u00e9\\ud83d\\ude00", 3.0]}',
        '{"input": [[[[1]]]]}',
    ])
    write_json("cohere_embed", [
        {"texts": ["hello", "world"], "input_type": "search_query"},
        {"texts": ["x"], "model": "m", "input_type": "classification",
         "embedding_types": ["float", "int8", "uint8", "binary", "ubinary", "base64"], "truncate": "START"},
        {"inputs": [{"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
         "model": "m", "input_type": "search_document", "max_tokens": 8, "output_dimension": 768},
        {"texts": ["t"], "images": ["data:"], "truncate": "NONE"},
        {"texts": [], "embedding_types": []},
    ])
    write_json("rerank", [
        {"query": "What is RWKV?", "documents": ["an RNN", "Paris"], "top_n": 1, "return_documents": True},
        {"query": "q", "documents": [{"text": "a", "title": "t"}, {"state_id": "doc-1"}],
         "max_tokens_per_doc": None, "model": "m"},
        {"query": "q", "documents": [{"title": "T", "body": "B", "n": 3}], "rank_fields": ["title", "body", "n"]},
        {"query": "q", "texts": ["a", "b"], "return_text": True, "raw_scores": True, "truncate": True},
        {"query": "  ", "documents": [], "top_n": -1},
    ])
    write_json("states_request", [
        {"documents": ["RWKV is an RNN.", {"text": "Paris", "id": "paris"}], "ttl_seconds": 60},
        {"model": "m", "documents": [{"text": "a", "id": "a.b_c-1"}, {"text": "b", "id": "a.b_c-1"}]},
        {"documents": [{"text": "a", "id": ".."}, {"text": "b", "id": "../etc/passwd"}]},
        {"documents": [{"text": "a", "id": 5}, 3, None], "ttl_seconds": 0},
    ])
    write_json("tokenize_request", [
        {"input": "Hello world!", "add_eos": False},
        {"content": ["a", "\u4e2d\u6587"], "tokens": [33155, 37, 65535, 0]},
        {"inputs": None, "input": [], "tokens": [65530, -1, 1.0, "x"]},
        {"tokens": [[1]], "add_eos": "yes"},
    ])


# ---- tokenizer ----

def tokenizer_seeds():
    write("tokenizer", "ascii.txt", "Hello world! The quick brown fox, 12345.\n\tTabs and  spaces")
    write("tokenizer", "utf8.txt", "\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4 caf\u00e9 \U0001f600 \u0645\u0631\u062d\u0628\u0627")
    write("tokenizer", "invalid-utf8.bin", b"\xff\xfe\xe4\xb8 \xc0\xaf \xed\xa0\x80 tail")
    write("tokenizer", "ids.bin", struct.pack("<8H", 33155, 37, 0, 65535, 65530, 1, 256, 65529))


# ---- state blobs (docs/state-format.md) ----

def int8_payload(values, shift_count, channels):
    """Per row (a shift vector of `channels`, a WKV row of 64): the float32 absmax, then
    round-half-away(v * 127 / absmax) as int8 (values exact in float32, absmax >= 2^-119)."""
    rows = [values[i:i + channels] for i in range(0, shift_count, channels)]
    rows += [values[i:i + 64] for i in range(shift_count, len(values), 64)]
    scales, q = b"", b""
    for row in rows:
        absmax = max(abs(v) for v in row)
        scales += struct.pack("<f", absmax)
        q += struct.pack(f"<{len(row)}b", *(
            int(math.copysign(math.floor(abs(v) * 127 / absmax + 0.5), v)) if absmax else 0
            for v in row))
    return scales + q


def state_blob(layers, heads, channels, dtype, tokens, fill):
    """dtype code 0 float32, 1 float16, 2 bfloat16, 3 int8; values from fill(i)."""
    count = layers * 2 * channels + layers * heads * 64 * 64
    if dtype == 0:
        payload = struct.pack(f"<{count}f", *(fill(i) for i in range(count)))
    elif dtype == 1:
        payload = struct.pack(f"<{count}e", *(fill(i) for i in range(count)))
    elif dtype == 2:  # bfloat16: the high half of the float32
        payload = b"".join(struct.pack("<f", fill(i))[2:] for i in range(count))
    else:
        payload = int8_payload([fill(i) for i in range(count)], layers * 2 * channels, channels)
    version = 2 if dtype == 3 else 1  # int8 came with version 2
    header = b"RWKVSTAT" + struct.pack("<HHI", version, 64, dtype) + bytes(range(16))
    header += struct.pack("<IIIIQQ", layers, heads, channels, 64, tokens, len(payload))
    body = header + payload
    return body + struct.pack("<I", zlib.crc32(body))


def state_blob_seeds():
    write("state_blob", "f16-L1H1C1.state", state_blob(1, 1, 1, 1, 7, lambda i: (i % 13 - 6) / 8))
    write("state_blob", "bf16-L1H1C2.state", state_blob(1, 1, 2, 2, 0, lambda i: (i % 5) * 0.5))
    write("state_blob", "f32-L1H1C1.state", state_blob(1, 1, 1, 0, 3, lambda i: i / 4096))
    write("state_blob", "int8-L1H1C2.state", state_blob(1, 1, 2, 3, 4, lambda i: (i % 9 - 4) / 16))
    write("state_blob", "header-only.state", state_blob(1, 1, 1, 1, 0, lambda i: 0.0)[:68])


# ---- safetensors ----

def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)]."""
    header, data = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    f32 = struct.pack("<6f", 1, -2, 0.5, 0, 3, -0.25)
    f16 = struct.pack("<4e", 1, -2, 0.5, 65504)
    write("safetensors", "f32.safetensors", safetensors([("w", "F32", [2, 3], f32)], {"format": "pt"}))
    write("safetensors", "mixed.safetensors", safetensors(
        [("a", "F16", [4], f16), ("b", "BF16", [2, 1], f32[:4]), ("empty", "F32", [0, 5], b""),
         ("scalar", "F32", [], f32[:4])]))
    write("safetensors", "unsupported.safetensors", safetensors([("i", "I64", [1], bytes(8))]))


# ---- pickles and torch zips ----

def binunicode(s):
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def integer(v):
    if 0 <= v < 256:
        return b"K" + bytes([v])
    if -2**31 <= v < 2**31:
        return b"J" + struct.pack("<i", v)
    return b"\x8a\x08" + struct.pack("<q", v)


def ints_tuple(values):
    return b"(" + b"".join(integer(v) for v in values) + b"t"


def glob(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tensor(storage_type, key, numel, offset, size, stride):
    """_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())."""
    return (glob("torch._utils", "_rebuild_tensor_v2") + b"(" +
            b"(" + binunicode("storage") + glob("torch", storage_type) + binunicode(key) +
            binunicode("cpu") + integer(numel) + b"tQ" +
            integer(offset) + ints_tuple(size) + ints_tuple(stride) + b"\x89" +
            glob("collections", "OrderedDict") + b")R" + b"tR")


def state_dict(items):
    """An OrderedDict of (key, value bytes), torch.save style, with memo puts."""
    out = b"\x80\x02" + glob("collections", "OrderedDict") + b"q\x00)Rq\x01("
    for key, value in items:
        out += binunicode(key) + value
    return out + b"u."


PICKLES = {
    "float32.pkl": state_dict([("emb.weight", tensor("FloatStorage", "0", 16, 0, [4, 4], [4, 1])),
                               ("tied", tensor("FloatStorage", "0", 16, 4, [2, 3], [1, 2]))]),
    "half-bf16.pkl": state_dict([("h", tensor("HalfStorage", "1", 8, 0, [8], [1])),
                                 ("b", tensor("BFloat16Storage", "2", 8, 2, [3, 2], [2, 1]))]),
    "int-list.pkl": state_dict([("reranker_layer_idx", b"]q\x02(" + integer(3) + integer(7) + b"e"),
                                ("name", binunicode("rwkv")), ("big", integer(2**40))]),
    "memo.pkl": (b"\x80\x02}q\x00(" + binunicode("w") + tensor("FloatStorage", "0", 16, 0, [16], [1]) +
                 b"q\x05" + binunicode("again") + b"h\x05u."),
    "parameter.pkl": state_dict([("p", glob("torch._utils", "_rebuild_parameter") + b"(" +
                                  tensor("FloatStorage", "0", 16, 0, [4], [1]) + b"\x88" +
                                  glob("collections", "OrderedDict") + b")RtR")]),
}

# The storages fuzz_pickle puts next to each pickle: 64 bytes of 0x3c.
STORAGES = {"0": b"\x3c" * 64, "1": b"\x3c" * 16, "2": b"\x3c" * 16}


def torch_zip(pickle):
    buf = io.BytesIO()
    entries = {"archive/data.pkl": pickle, "archive/byteorder": b"little", "archive/version": b"3\n"}
    entries.update({f"archive/data/{key}": data for key, data in STORAGES.items()})
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, data in entries.items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)  # reproducible
    return buf.getvalue()


def pickle_seeds():
    for name, program in PICKLES.items():
        write("pickle", name, program)
        write("pth", name.replace(".pkl", ".pth"), torch_zip(program))
    write("pth", "safetensors.bin", safetensors([("w", "F32", [1], struct.pack("<f", 1))]))


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    request_seeds()
    tokenizer_seeds()
    state_blob_seeds()
    safetensors_seeds()
    pickle_seeds()
    for d in sorted(CORPUS.iterdir()):
        print(f"{d.name}: {len(list(d.iterdir()))} seeds, {sum(f.stat().st_size for f in d.iterdir())} bytes")
