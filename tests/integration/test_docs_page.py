"""The /docs page (Swagger UI over /openapi.json) in a real headless browser.

Debian's chromium loads the page from the real server, runs its script, and
the rendered DOM must list every path of the OpenAPI document. Every request
the page makes must go to the server itself (the Swagger UI files are
embedded in the binary: no CDN). Chromium resolves no host name but the
server's, so that its own background requests (updates, accounts) never
leave the machine. The demo model is enough: the page shows only the
document.
"""
import json
import shutil
import subprocess
import urllib.parse

import pytest
import requests

from conftest import ROOT, Server

API_KEY = "sk-docs"
SWAGGER_UI = ROOT / "third_party" / "swagger-ui"


@pytest.fixture(scope="module")
def server():
    # With a key: the documentation routes must still be open, like /openapi.json.
    s = Server("--api-key", API_KEY)
    yield s
    assert s.terminate() == 0, s.output()


@pytest.fixture(scope="module")
def chromium():
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("\n\n*** chromium NOT FOUND (apt-get install chromium, or scripts/setup.sh); "
                    "/docs browser tests SKIPPED ***\n")
    return binary


def render(chromium, url, tmp_path):
    """The DOM of `url` after its scripts ran, and the requests the page made (netlog)."""
    netlog = tmp_path / "netlog.json"
    run = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--log-net-log={netlog}", "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    origin = "/".join(url.split("/", 3)[:3])
    starts = [e.get("params", {}) for e in log["events"] if e["type"] == start_job]
    # The page's own requests; the navigation to it and the browser's have no initiator.
    page_requests = [p["url"] for p in starts if p.get("initiator") == origin]
    return run.stdout, page_requests


def test_docs_page_lists_every_documented_route(server, chromium, tmp_path):
    spec = server.get("/openapi.json").json()
    dom, page_requests = render(chromium, server.url + "/docs", tmp_path)
    rendered = {p for p in spec["paths"] if f'data-path="{p}"' in dom}
    assert {"/v1/embeddings", "/v1/rerank", "/v1/states", "/v1/states/{id}"} <= set(spec["paths"])
    assert rendered == set(spec["paths"]), (
        f"not rendered: {sorted(set(spec['paths']) - rendered)}; DOM starts: {dom[:2000]}")
    assert spec["info"]["title"] in dom
    loaded = {urllib.parse.urlsplit(u).path for u in page_requests}
    assert {"/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/openapi.json"} <= loaded, page_requests
    elsewhere = [u for u in page_requests if not u.startswith(server.url + "/")]
    assert not elsewhere, f"the page fetched from elsewhere: {elsewhere}"


def test_front_page_links_the_docs(server, chromium, tmp_path):
    r = server.get("/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html"), r.text[:300]
    dom, _ = render(chromium, server.url + "/", tmp_path)
    assert '<a href="docs">' in dom, dom[:2000]
    assert urllib.parse.urljoin(server.url + "/", "docs") == server.url + "/docs"


def test_docs_routes_need_no_key_and_serve_the_embedded_files(server):
    for path in ("/", "/docs", "/openapi.json"):
        assert server.get(path).status_code == 200, path
    assert server.get("/v1/models").status_code == 401  # the key is checked elsewhere
    for name, media in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        r = requests.get(f"{server.url}/docs/{name}", timeout=60)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(media), name
        assert r.content == (SWAGGER_UI / name).read_bytes(), f"{name} is not the file the build embedded"
