"""The config files shipped with the server and its deployments are accepted
by the server (an unknown key or a bad value would stop it at start)."""
import json

import pytest

from conftest import FIXTURES, ROOT, require_fixtures


@pytest.mark.parametrize("config", ["config/rwkv-emb-server.toml", "deploy/k8s/base/rwkv-emb-server.toml"])
def test_shipped_config_files_start_the_server(make_server, config):
    require_fixtures()
    # Flags win over the file: a local model, no Redis, loopback only.
    server = make_server("--config", str(ROOT / config), "--model", str(FIXTURES / "embedding.pth"),
                         "--state-store", "memory", "--host", "127.0.0.1", "--threads", "1")
    assert server.get("/v1/models").status_code == 200
    if "k8s" in config:  # the file's own settings apply: JSON access log lines
        access = [line for line in server.output().splitlines() if '"/v1/models"' in line]
        assert access and json.loads(access[-1][access[-1].index("{"):])["status"] == 200
