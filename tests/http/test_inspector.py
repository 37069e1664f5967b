"""The memory inspector (/ui/) in a real headless Chromium against a real server.

The server runs with API keys; alice's key is bound to her tenant. A few
memories are remembered over Connect first, then the browser script
(client/node/inspector/test/inspector.browser.mjs, playwright-core driving
/usr/bin/chromium) loads the page, opens alice, lists and filters, recalls,
forgets one memory after the confirmation, and opens a forbidden tenant. The
screenshots land in this test's tmp_path (printed), e.g.
`pytest tests/http/test_inspector.py -s` shows where.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from connect_kit import connect_call
from mlsdm_testkit import ServerThread, server_thread
from policy_kit import KeysFile, bearer

from mlsdm.v1 import memory_service_pb2 as mpb

ROOT = Path(__file__).resolve().parents[2]
INSPECTOR = ROOT / "client" / "node" / "inspector"
SCRIPT = INSPECTOR / "test" / "inspector.browser.mjs"
CHROMIUM = os.environ.get("MLSDM_CHROMIUM", "/usr/bin/chromium")
BROWSER_LIMIT_S = 180.0
MEMORIES = [
    ("The tomatoes grow by the south wall of the garden.", "alice", "garden"),
    ("Bob keeps the spare key under the blue flower pot.", "bob", "house"),
    ("The bike with the red frame belongs to Carol.", "carol", "garage"),
    ("The garden hose leaks near the tomatoes.", "bob", "garden"),
]
FORGET = "The bike with the red frame"


def _browser_ready() -> str | None:
    """Why the browser test cannot run here (None when it can)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} missing (apt-get install -y chromium; .ci/run installs it)"
    if shutil.which("node") is None:
        return "node missing"
    if not (INSPECTOR / "node_modules" / "playwright-core").is_dir():
        return "client/node/inspector/node_modules missing (npm ci there; .ci/run does)"
    return None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, str]]:
    keys = KeysFile(tmp_path_factory.mktemp("inspector") / "api-keys")
    key = keys.add("alice", "write", tenants=("alice",))
    with server_thread({"auth": {"api_keys_file": str(keys.path)}}) as running:
        md = (*bearer(key), ("x-mlsdm-tenant", "alice"))
        items = [
            mpb.MemoryInput(text=text, speaker=speaker, session=session)
            for text, speaker, session in MEMORIES
        ]
        stored = connect_call(
            running.http_url,
            "/mlsdm.v1.MemoryService/Remember",
            mpb.RememberRequest(memories=items),
            mpb.RememberResponse,
            md,
        )
        assert stored.stored_count == len(MEMORIES)
        yield running, key


def test_inspector_in_chromium(served: tuple[ServerThread, str], tmp_path: Path) -> None:
    why = _browser_ready()
    if why is not None:
        pytest.skip(why)
    running, key = served
    env = {
        **os.environ,
        "BASE_URL": running.http_url,
        "KEY": key,
        "TENANT": "alice",
        "FORBIDDEN_TENANT": "bob",
        "SPEAKER": "bob",
        "QUERY": "Where do the tomatoes grow?",
        "FORGET_TEXT": FORGET,
        "OUT_DIR": str(tmp_path),
        "CHROMIUM": CHROMIUM,
    }
    done = subprocess.run(
        ["node", str(SCRIPT)],
        cwd=INSPECTOR,
        env=env,
        capture_output=True,
        text=True,
        timeout=BROWSER_LIMIT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nscreenshots: {tmp_path / 'inspector.png'} {tmp_path / 'inspector-forbidden.png'}")
    assert seen["pageErrors"] == []
    assert seen["phase"] in ("WAKE", "SLEEP")
    assert float(seen["threshold"]) > 0
    assert sorted(seen["listed"]) == sorted(text for text, _, _ in MEMORIES)
    assert sorted(seen["filtered"]) == sorted(t for t, s, _ in MEMORIES if s == "bob")
    recalled = seen["recalled"]
    assert recalled and "tomatoes" in recalled[0]["text"]
    assert [r["score"] for r in recalled] == sorted((r["score"] for r in recalled), reverse=True)
    assert FORGET in seen["confirmation"]
    assert not any(FORGET in text for text in seen["afterForget"])
    assert len(seen["afterForget"]) == len(MEMORIES) - 1
    assert seen["errorReason"] == "TENANT_FORBIDDEN"
    # Nothing of alice's stays on screen under bob's name.
    assert (seen["phaseAfterError"], seen["rowsAfterError"]) == ("-", 0)
    assert "PermissionDenied" in seen["error"] or "PERMISSION" in seen["error"].upper()
    for name in ("inspector.png", "inspector-forbidden.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    # Forgotten on the server, not only on the page.
    md = (*bearer(key), ("x-mlsdm-tenant", "alice"))
    listed = connect_call(
        running.http_url,
        "/mlsdm.v1.MemoryService/ListMemories",
        mpb.ListMemoriesRequest(),
        mpb.ListMemoriesResponse,
        md,
    )
    assert sorted(m.text for m in listed.memories) == sorted(
        t for t, _, _ in MEMORIES if not t.startswith(FORGET)
    )


def test_the_page_is_served_with_its_assets(served: tuple[ServerThread, str]) -> None:
    import httpx

    running, _ = served
    page = httpx.get(running.http_url + "/ui/")
    assert page.status_code == 200 and 'src="app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = httpx.get(f"{running.http_url}/ui/{asset}")
        assert response.status_code == 200 and kind in response.headers["content-type"]
    assert httpx.get(running.http_url + "/ui/.hidden").status_code == 404
    assert httpx.get(running.http_url + "/", follow_redirects=False).headers["location"] == "/ui/"
