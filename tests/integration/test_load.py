"""A one-minute run of bench/load_test.py against the fixture model: mixed
traffic (embeddings, online rerank, state creation, upload, download, deletes
and rerank of cached states) at 0.5x, 1x and 2x the measured capacity, with a
16-request queue and a decoded-state cache budget of four states, fewer than
the run stores (dozens), so that it evicts. bench/README.md has the numbers
of the long soak."""
import pathlib
import sys

from conftest import BINARY, ROOT, SANITIZER_REPORT, skip_under_sanitizers

sys.path.insert(0, str(ROOT / "bench"))
import load_test  # noqa: E402


@skip_under_sanitizers("ASan's quarantine holds freed memory, so RSS grows past the bound, and its "
                       "minute of traffic would lengthen the sanitized run; the other HTTP tests take the same routes")
def test_mixed_traffic_at_and_above_capacity(expected):
    model = expected["model"]
    # A decoded state: the WKV matrix of each head and two shift vectors per layer, in float32.
    state_bytes = model["n_layer"] * (model["n_head"] * model["head_size"] ** 2 + 2 * model["n_embd"]) * 4
    opts = load_test.parse_args([str(BINARY), "--capacity-seconds", "10", "--phase-seconds", "15",
                                 "--state-cache-bytes", str(4 * state_bytes)])
    summary = load_test.run(opts.binary, opts)
    load_test.report(summary)
    # No 5xx, nothing lost or malformed, 429 only while the queue was full,
    # the queue empty at the end, RSS within a generous bound after warm-up,
    # the decoded-state cache within its budget.
    assert load_test.check(summary, max_rss_growth_mib=64) == [], summary["failures"]
    assert summary["429"] > 0, "the 2x phase did not overload the server"
    cache = summary["state_cache"]
    assert cache["evictions"] > 0, "the states reranked fit the cache: its budget was not exercised"
    assert cache["hits"] > 0, cache
    report = SANITIZER_REPORT.search(pathlib.Path(summary["server_log"]).read_text())  # sanitizer builds
    assert report is None, report[0]
