"""Stopping ``pcifleet up``: the agents first, then the API.

uvicorn alone stops the API first: the agents' long-polls then hang until
their wait ends and their next call is refused ("Connection refused;
retrying"), which took 10-12 s and read as a failure. Here the first Ctrl-C or
SIGTERM tells the agents to stop, ends the long-polls they are in (the API's
``draining`` event), waits for them, and only then lets uvicorn stop serving.
A second signal is uvicorn's own: stop now.
"""

from __future__ import annotations

import logging
import threading
from types import FrameType
from typing import Protocol

import uvicorn

log = logging.getLogger("pcifleet.up")
# how long the agents get to finish before the API stops anyway
AGENTS_GRACE_SECONDS = 1.5


class Stoppable(Protocol):
    def stop(self, timeout: float = ...) -> None: ...


class AgentsFirstServer(uvicorn.Server):
    """uvicorn's server whose first stop signal stops ``agents`` before the API."""

    def __init__(
        self, config: uvicorn.Config, agents: Stoppable, draining: threading.Event
    ) -> None:
        super().__init__(config)
        self.agents = agents
        self.draining = draining
        self._stopping: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._stopping is not None or not self.started:
            super().handle_exit(sig, frame)
            return
        # Runs in the signal handler on the event loop's thread: the waiting is
        # done in a thread of its own so the API keeps answering meanwhile.
        self._stopping = threading.Thread(
            target=self.stop_in_order, name="pcifleet-up-stop", daemon=True
        )
        self._stopping.start()

    def stop_in_order(self) -> None:
        log.info("stopping: the agents first")
        self.draining.set()
        self.agents.stop(timeout=AGENTS_GRACE_SECONDS)
        log.info("stopping: the API")
        self.should_exit = True
