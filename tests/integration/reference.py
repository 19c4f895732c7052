"""Comparing what a client got with the fixture reference (../shared/fixtures).

The tolerance is the engine's: the fixture README measures float32-vs-float64
differences below 3e-6."""
import math

import numpy as np

TOL = 1e-4


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def close(got, want, tol=TOL):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) <= tol, np.max(np.abs(got - want))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def text_cases(expected):
    """The fixture's text embedding cases: name, text, ids and the retr/cls/sts head outputs."""
    return [c for c in expected["embeddings"] if c["input_kind"] == "text"]


def rerank_scores(expected):
    """{document: Cohere relevance_score} of the fixture's online rerank with the rr_idx reranker."""
    ro = expected["rerank_online"]
    return {d: sigmoid(x) for d, x in zip(ro["documents"], ro["scores"]["rr_idx"]["logits"])}
