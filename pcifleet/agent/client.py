"""The agent's HTTP client for the controller's ``/pcifleet/v1`` API."""

from __future__ import annotations

import functools
import hashlib
import os
import ssl
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from pcifleet.agent.images import ImageCorrupt, ImageDigests
from pcifleet.virt.tasks import MoveDisk, TaskImage

__all__ = ["API", "ControllerClient", "ControllerError", "DiskCorrupt", "ImageCorrupt"]

API = "/pcifleet/v1"
# what disks and images are read and written in, so none is held in memory whole
CHUNK = 1 << 20
SHA_HEADER = "X-Disk-Sha256"


class ControllerError(Exception):
    """The controller answered with an error, or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def _error(response: httpx.Response) -> ControllerError:
    code, detail = None, response.text[:300]
    try:
        errors = response.json().get("errors") or []
        if errors:
            code, detail = errors[0].get("code"), errors[0].get("detail", detail)
    except (ValueError, AttributeError):
        pass
    return ControllerError(
        f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}",
        response.status_code,
        code,
    )


class DiskCorrupt(Exception):
    """A cold move's disk did not arrive as the controller recorded it."""


# Pauses between tries of a task result the controller could not take.
RESULT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every client of this process: loading the CA bundle
    takes a tenth of a second or more, and ``pcifleet up`` runs an agent (a
    client) for each of up to 64 simulated hosts."""
    return httpx.create_ssl_context()


class ControllerClient:
    """Calls for one host, authenticated with that host's credential."""

    def __init__(self, base_url: str, host: str, credential: str, timeout: float = 30.0) -> None:
        self.host = host
        # the host registration the last instance list was for (None: not said)
        self.registration: str | None = None
        # the controller's time when it read that list (sent back with power states)
        self.instances_as_of: str | None = None
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {credential}"},
            timeout=httpx.Timeout(timeout, connect=5.0),
            verify=_tls(),
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, API + path, **kwargs)
        except httpx.HTTPError as exc:
            raise ControllerError(f"{method} {path}: {exc}") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else None

    def host_generation(self) -> int | None:
        try:
            return int(self._call("GET", f"/hosts/{self.host}")["host"]["generation"])
        except ControllerError as exc:
            if exc.status == 404:
                return None
            raise

    def report_inventory(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/hosts/{self.host}/inventory", json=body)
        return result

    def poll_tasks(self, wait: float, include_running: bool = False) -> list[dict[str, Any]]:
        params = {"wait": wait, "include_running": str(include_running).lower()}
        timeout = httpx.Timeout(wait + 30.0, connect=5.0)
        data = self._call("GET", f"/hosts/{self.host}/tasks", params=params, timeout=timeout)
        tasks: list[dict[str, Any]] = data["tasks"]
        return tasks

    def expected_instances(self) -> set[str] | None:
        """The servers the controller expects on this host (their UUIDs), or None
        when it does not offer the list (an older controller answers 404).

        A malformed answer raises ``ControllerError``: the orphan sweep must never
        act on a list it could not read.
        """
        try:
            data = self._call("GET", f"/hosts/{self.host}/instances")
        except ControllerError as exc:
            if exc.status == 404:
                return None
            raise
        instances = data.get("instances") if isinstance(data, dict) else None
        if not isinstance(instances, list) or not all(isinstance(u, str) for u in instances):
            raise ControllerError(
                f"GET /hosts/{self.host}/instances: expected {{'instances': [uuid, ...]}}, "
                f"got {str(data)[:200]}"
            )
        registration = data.get("registration")
        self.registration = registration if isinstance(registration, str) else None
        as_of = data.get("as_of")
        self.instances_as_of = as_of if isinstance(as_of, str) else None
        return {u.lower() for u in instances}

    def report_power_states(self, domains: dict[str, str]) -> dict[str, Any] | None:
        """Report the power state of each of this host's domains (uuid -> state),
        as seen after the last ``expected_instances``; the controller's answer
        (which servers it stopped or asked to stop), or None from a controller
        without power-state sync (it answers 404) or before any instance list."""
        if self.registration is None or self.instances_as_of is None:
            return None
        body = {
            "registration": self.registration,
            "as_of": self.instances_as_of,
            "domains": domains,
        }
        try:
            data = self._call("POST", f"/hosts/{self.host}/power-states", json=body)
        except ControllerError as exc:
            if exc.status == 404:
                return None
            raise
        return data if isinstance(data, dict) else None

    def report_result(
        self, task_id: int, state: str, message: str = "", details: dict[str, Any] | None = None
    ) -> str:
        """Report a task's outcome; returns the state the controller recorded
        (``cancelled`` when the task's server went away meanwhile).

        A busy or unreachable controller is retried for a while: a result that
        never arrives leaves the server waiting until the task's lease runs out.
        Reporting again is safe, the controller keeps the first outcome.
        """
        body = {"state": state, "message": message[:4096], "details": details or {}}
        for delay in (*RESULT_RETRY_DELAYS, None):
            try:
                answer = self._call("POST", f"/tasks/{task_id}/result", json=body)
                return str(((answer or {}).get("task") or {}).get("state", state))
            except ControllerError as exc:
                transient = exc.status is None or exc.status >= 500
                if not transient or delay is None:
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")

    def report_results(
        self, results: list[tuple[int, str, str, dict[str, Any] | None]]
    ) -> list[str]:
        """Report several tasks' outcomes (task id, state, message, details) in
        one call; the states the controller recorded, in the same order.

        A controller without the batch call (404, 405), or one that refused
        the batch as a whole (another error), gets each result on its own, so
        one result it cannot take does not hold back the others.
        """
        if len(results) == 1:
            return [self.report_result(*results[0])]
        body = {
            "results": [
                {
                    "task_id": task_id,
                    "state": state,
                    "message": message[:4096],
                    "details": details or {},
                }
                for task_id, state, message, details in results
            ]
        }
        for delay in (*RESULT_RETRY_DELAYS, None):
            try:
                answer = self._call("POST", f"/hosts/{self.host}/results", json=body)
                tasks = (answer or {}).get("tasks") or []
                return [str(t.get("state", r[1])) for t, r in zip(tasks, results, strict=True)]
            except ControllerError as exc:
                if exc.status == 503 and delay is not None:
                    time.sleep(delay)
                    continue
                if exc.status is None and delay is not None:
                    time.sleep(delay)
                    continue
                break
            except (ValueError, AttributeError):
                break  # an answer we cannot read: report them one by one
        return [self.report_result(*r) for r in results]

    def download_image(
        self, image_id: str, dest: Path, expect: TaskImage | None = None
    ) -> tuple[Path, str]:
        """Fetch an image file once into ``dest``; returns it and its disk format.

        With ``expect`` (the build task's image), the bytes are checked against
        its ``size``, md5 ``checksum`` and ``os_hash_value`` as they arrive; a
        mismatch deletes the download and raises ``ImageCorrupt``. The file is
        written whole, checked, and only then renamed into place (its format kept
        beside it first), so an interrupted, concurrent or corrupt download is
        never taken for an image.
        """
        fmt_file = dest.with_name(dest.name + ".format")
        if dest.exists() and fmt_file.exists():
            return dest, fmt_file.read_text().strip()
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        path = f"{API}/hosts/{self.host}/images/{image_id}/file"
        digests = ImageDigests(expect)
        try:
            with os.fdopen(fd, "wb") as out, self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                disk_format = response.headers.get("x-image-disk-format", "raw")
                for chunk in response.iter_bytes(1 << 20):
                    digests.update(chunk)
                    out.write(chunk)
            digests.check(image_id)
            _write_atomic(fmt_file, disk_format + "\n")
            os.replace(tmp, dest)
        except httpx.HTTPError as exc:
            raise ControllerError(f"image {image_id}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return dest, disk_format

    def upload_move_disk(self, migration: str, path: Path) -> tuple[str, int]:
        """Hand the server disk at ``path`` to the controller for cold move
        ``migration``; returns its SHA-256 and size. The file is read twice
        in chunks (to hash it, then to send it), never held whole: the guest
        is stopped, so it does not change in between, and the controller
        refuses it if it did."""
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)

        def body() -> Any:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk

        sha256 = digest.hexdigest()
        headers = {SHA_HEADER: sha256, "Content-Length": str(size)}
        self._call(
            "PUT",
            f"/hosts/{self.host}/migrations/{migration}/disk",
            content=body(),
            headers=headers,
        )
        return sha256, size

    def download_move_disk(self, disk: MoveDisk, directory: Path) -> Path:
        """Fetch cold move ``disk.migration``'s disk into a new file in
        ``directory`` (a hidden temporary name; the caller renames it into
        place), checked against the size and SHA-256 the build task names as
        it arrives. A mismatch deletes it and raises ``DiskCorrupt``."""
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".move-", suffix=".part")
        path = f"{API}/hosts/{self.host}/migrations/{disk.migration}/disk"
        digest, size = hashlib.sha256(), 0
        try:
            with os.fdopen(fd, "wb") as out, self._http.stream("GET", path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                for chunk in response.iter_bytes(CHUNK):
                    size += len(chunk)
                    if size > disk.size:
                        raise DiskCorrupt(
                            f"disk of migration {disk.migration}: more than the {disk.size} "
                            "bytes recorded"
                        )
                    digest.update(chunk)
                    out.write(chunk)
            if size != disk.size or digest.hexdigest() != disk.sha256:
                raise DiskCorrupt(
                    f"disk of migration {disk.migration}: {size} bytes with SHA-256 "
                    f"{digest.hexdigest()}, expected {disk.size} bytes with {disk.sha256}"
                )
        except httpx.HTTPError as exc:
            os.unlink(tmp)
            raise ControllerError(f"disk of migration {disk.migration}: {exc}") from exc
        except BaseException:
            os.unlink(tmp)
            raise
        return Path(tmp)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
