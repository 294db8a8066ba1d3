"""Logs an operator can follow: every line of a request names its
``x-openstack-request-id`` (the scheduling job it queued too), each scheduling
decision is logged with its host and devices, and each NoValidHost with why."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pcifleet.logcontext import LOG_FORMAT, RequestIdFilter
from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import Api, create_port, sriov_network
from tests.api.test_servers import boot, boot_env


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(RequestIdFilter())
        self.setFormatter(logging.Formatter(LOG_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logs() -> Iterator[Collect]:
    handler = Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_every_response_has_a_request_id_and_its_lines_carry_it(
    api: Api, tokens: Tokens, logs: Collect
) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    p = create_port(api, tokens.demo, env["net"]["id"], **{"binding:vnic_type": "direct"})
    resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
    assert resp.status_code == 202, resp.text
    request_id = resp.headers["x-openstack-request-id"]
    assert request_id.startswith("req-")
    server_id = resp.json()["server"]["id"]
    (decision,) = [r for r in logs.records if "scheduled on" in r.getMessage()]
    assert decision.levelno == logging.INFO
    assert decision.request_id == request_id  # type: ignore[attr-defined]
    line = logs.format(decision)
    assert f"[{request_id}]" in line and line[:4].isdigit()  # a timestamp first
    message = decision.getMessage()
    assert server_id in message and "compute1" in message and "type-VF 8086:154c" in message
    # another request's lines name that request, and errors carry ids too
    missing = api.get("/compute/v2.1/servers/nope", token=tokens.demo)
    assert missing.status_code == 404
    assert missing.headers["x-openstack-request-id"] not in (request_id, "")


def test_no_valid_host_is_a_warning_with_its_reasons(
    api: Api, tokens: Tokens, logs: Collect
) -> None:
    env = boot_env(api, tokens)
    FakeAgent(api, tokens.admin, "compute1").report()
    net7 = sriov_network(api, tokens.admin, physnet="physnet7", vlan=700)
    p = create_port(api, tokens.demo, net7["id"], **{"binding:vnic_type": "direct"})
    resp = boot(api, tokens.demo, env, [{"port": p["id"]}])
    server_id = resp.json()["server"]["id"]
    (warning,) = [r for r in logs.records if "no valid host" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert warning.request_id == resp.headers["x-openstack-request-id"]  # type: ignore[attr-defined]
    assert server_id in warning.getMessage() and "physnet7" in warning.getMessage()


def test_lines_outside_a_request_name_none() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    RequestIdFilter().filter(record)
    assert logging.Formatter(LOG_FORMAT).format(record).endswith(" INFO x: hello")
