"""Stopping ``pcifleet up``: the agents first, then the API, exit 0, and no
agent complaining that the controller went away. (How long it takes is in
benchmarks/cli_startup.py, not here.)"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest

from .helpers import start_up, stop

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_the_agents_then_the_api(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    proc, url = start_up(data_dir, "-v", hosts=2)
    try:
        # both agents are in their task long-poll once they asked for their instances
        log = next(tmp_path.glob("up-*.log"))
        deadline = time.monotonic() + 60
        while log.read_text().count("/instances HTTP/1.1") < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        httpx.get(url + "/v3").raise_for_status()
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        stop(proc)
    text = log.read_text()
    agents, api = text.index("stopping: the agents first"), text.index("stopping: the API")
    assert agents < api < text.index("Shutting down")
    assert "retrying" not in text and "Connection refused" not in text
    assert "Traceback" not in text
