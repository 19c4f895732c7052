"""--dtype on the CPU: the dtype the server runs is logged and shown in
/v1/models; unset it is float32, auto the fastest within the half-precision
bounds (bfloat16 where the CPU has AVX512-BF16), int8 only when asked (VNNI)."""
import numpy as np

from conftest import FIXTURES

CPU_FLAGS = set(next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split())
VNNI = bool(CPU_FLAGS & {"avx512_vnni", "avx_vnni"})


def models_dtype(server):
    return {card["meta"]["dtype"] for card in server.get("/v1/models").json()["data"]}


def embed(server):
    r = server.post("/v1/embeddings", {"input": ["int8 products on the CPU"]})
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["data"][0]["embedding"])


def test_dtypes_are_reported_and_int8_stays_close(make_server):
    model = ("--model", str(FIXTURES / "embedding.pth"))
    default = make_server(*model)
    assert models_dtype(default) == {"float32"}
    assert "matrix products in float32 (--dtype unset)" in default.output()
    auto = make_server(*model, "--dtype", "auto")
    want = "bfloat16" if "avx512_bf16" in CPU_FLAGS else "float32"
    assert models_dtype(auto) == {want}
    assert f"matrix products in {want} (--dtype auto)" in auto.output()
    if not VNNI:
        return
    int8 = make_server(*model, "--dtype", "int8")
    assert models_dtype(int8) == {"int8"}
    assert "VNNI int8" in int8.output()  # the backend's name in the start-up log
    a, b = embed(default), embed(int8)
    cosine = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert 0.9997 <= cosine < 1, cosine  # int8 (tests/model/test_cpu_int8_model.cpp measures it)
