"""A stand-in for a host's agent in the API tests: it speaks the real
/pcifleet/v1 API (credential, inventory, task feed, results, a cold move's
disk) and builds nothing."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from tests.api.helpers import Api
from tests.api.inventory import sample_report


class FakeAgent:
    def __init__(self, api: Api, admin_token: str, host: str) -> None:
        self.api = api
        self.host = host
        resp = api.post(f"/pcifleet/v1/hosts/{host}/credential", token=admin_token)
        assert resp.status_code == 201, resp.text
        self.headers = {"Authorization": f"Bearer {resp.json()['credential']}"}
        self.generation = 0

    def report(self, **kwargs: Any) -> dict[str, Any]:
        body = sample_report(self.generation, **kwargs)
        resp = self.api.post(
            f"/pcifleet/v1/hosts/{self.host}/inventory", json=body, headers=self.headers
        )
        assert resp.status_code == 200, resp.text
        result: dict[str, Any] = resp.json()
        self.generation = result["generation"]
        return result

    def tasks(self) -> list[dict[str, Any]]:
        resp = self.api.get(f"/pcifleet/v1/hosts/{self.host}/tasks", headers=self.headers)
        assert resp.status_code == 200, resp.text
        tasks: list[dict[str, Any]] = resp.json()["tasks"]
        return tasks

    def finish(
        self,
        task: dict[str, Any],
        state: str = "done",
        message: str = "",
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Report the task's outcome; returns the task as the controller recorded it.

        A cold move's source that reports done hands over a disk first, as a
        real agent does."""
        if task["kind"] == "move_source" and state == "done":
            handed = self.hand_over_disk(task["payload"]["migration"])
            assert handed.status_code == 204, handed.text
        resp = self.api.post(
            f"/pcifleet/v1/tasks/{task['id']}/result",
            json={"state": state, "message": message, "details": details or {}},
            headers=self.headers,
        )
        assert resp.status_code == 200, resp.text
        recorded: dict[str, Any] = resp.json()["task"]
        return recorded

    def disk_url(self, migration: str) -> str:
        return f"/pcifleet/v1/hosts/{self.host}/migrations/{migration}/disk"

    def hand_over_disk(
        self, migration: str, data: bytes = b"the guest's writes", sha256: str | None = None
    ) -> httpx.Response:
        """PUT ``data`` as migration ``migration``'s disk, named by its SHA-256
        (or by ``sha256``)."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        headers = {**self.headers, "X-Disk-Sha256": digest}
        return self.api.put(self.disk_url(migration), content=data, headers=headers)

    def run_all(self, state: str = "done") -> list[dict[str, Any]]:
        """Finish every pending task; returns them."""
        tasks = self.tasks()
        for task in tasks:
            self.finish(task, state)
        return tasks
