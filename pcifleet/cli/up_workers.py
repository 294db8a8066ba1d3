"""``pcifleet up --workers N``: N API processes on one socket, the agents in this one.

uvicorn's supervisor binds the socket once and spawns N worker processes that
accept on it; each builds the app from the settings given here (pickled into
the child), with its own job threads and reconciler taking from the one job
queue. Only PostgreSQL is offered for this: jobs are taken there with
``FOR UPDATE SKIP LOCKED`` and leases, so a job is run by one process, and
every claim is a guarded transaction, so no device is handed out twice. The
simulated hosts' agents stay in this process: an agent in a worker would die
and be duplicated with it.

On Ctrl-C or SIGTERM the agents are told to stop first, then the workers get
SIGTERM (their long-polls end within uvicorn's one-second grace), then this
process waits for the agents' threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
from fastapi import FastAPI
from uvicorn import Config
from uvicorn.supervisors import Multiprocess

from pcifleet.api.app import create_app
from pcifleet.api.settings import ApiSettings
from pcifleet.cli.errors import CliError
from pcifleet.cli.simhosts import AgentThreads
from pcifleet.logcontext import configure_logging

# How long the workers have to answer before `up` gives up waiting for them
READY_TIMEOUT = 120.0


def worker_app(settings: ApiSettings, verbose: bool) -> FastAPI:
    """The app of one worker process (uvicorn calls this in the child)."""
    configure_logging(verbose)
    return create_app(settings)


class _Supervisor(Multiprocess):
    """uvicorn's supervisor, telling the agents to stop before the workers go."""

    def __init__(self, config: Config, agents: AgentThreads) -> None:
        self.sock = config.bind_socket()
        super().__init__(config, sockets=[self.sock])
        self.agents = agents

    def terminate_all(self) -> None:
        self.agents.stop(timeout=0)  # ask only; their threads are joined after
        super().terminate_all()


def serve_workers(
    config: Config, base_url: str, agents: AgentThreads, ready: Callable[[], None]
) -> None:
    """Run ``config.workers`` API processes until a signal; once the API
    answers, ``ready`` is called (it starts the agents and says so)."""
    try:
        supervisor = _Supervisor(config, agents)
    except SystemExit:  # uvicorn logged why it could not bind
        raise CliError(f"the API could not listen on {config.host}:{config.port}") from None

    def when_answering() -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        with httpx.Client(base_url=base_url, timeout=2) as client:
            while not supervisor.should_exit.is_set():
                try:
                    if client.get("/v3").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    supervisor.should_exit.set()
                    return
                time.sleep(0.05)
            else:
                return
        ready()

    threading.Thread(target=when_answering, name="pcifleet-up-start", daemon=True).start()
    try:
        supervisor.run()
    finally:
        agents.stop()
        supervisor.sock.close()
