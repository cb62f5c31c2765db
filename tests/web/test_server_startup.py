"""`crazy-gary serve`'s start-up without the cyclic collector: what it made is frozen, then the
collector runs again (in a process of its own: freezing is for the whole process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_SERVE = """
import gc, json, os, signal
from crazy_gary.cli import server as cli_server
from crazy_gary.web import server

seen = {}
create_app = server.create_app

def recording_create_app(*args, **kwargs):
    seen["collector while building the app"] = gc.isenabled()
    return create_app(*args, **kwargs)

def announce(*args):
    seen["collector once listening"] = gc.isenabled()
    seen["frozen objects"] = gc.get_freeze_count()
    seen["thresholds"] = gc.get_threshold()
    print(json.dumps(seen), flush=True)
    os.kill(os.getpid(), signal.SIGINT)

server.create_app = recording_create_app
server._announce = announce
cli_server.serve(host="127.0.0.1", port=0, simulate=True)
"""


def test_serve_builds_the_app_without_the_collector_and_listens_with_it(tmp_path: Path) -> None:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("CRAZY_GARY", "HF_", "HUGGINGFACE", "OTEL_"))
    }
    env.update(CRAZY_GARY_DATA_DIR=str(tmp_path), CRAZY_GARY_API_KEYS="ops:operator:ops-key-0001")
    done = subprocess.run(
        [sys.executable, "-c", _SERVE], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    seen = json.loads(done.stdout.strip().splitlines()[0])
    assert seen["collector while building the app"] is False
    assert seen["collector once listening"] is True
    assert seen["frozen objects"] > 10_000  # the modules and the app, out of the collector's way
    assert seen["thresholds"] == [50_000, 50, 10]  # collections less often than Python's (700, 10, 10)
