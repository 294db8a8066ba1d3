"""A generated sweep of hostile input over every OpenStack route: numbers
past any bound, unicode digits, NUL and control characters, regular-expression
metacharacters, huge and deeply nested bodies, in path ids, in the query
parameters clients send and in the fields of every kind of body. As the admin
(past every policy check): never a 5xx, always a JSON body with a request id."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from fastapi import FastAPI

from tests.api.conftest import Tokens
from tests.api.helpers import Api

VALUES = [
    "\u00b2",  # a digit to str.isdigit, not to int()
    "9" * 5000,
    "99999999999999999999",
    "-1",
    "1e999",
    "a\x00b",
    "\x1b[31m",
    "(a|aa)+$",
    "[",
    "' OR 1=1 --\\%*",
    "\u202e\U0001f600",
    "x" * 5000,
]
QUERY_KEYS = [
    "limit", "marker", "name", "minRam", "minDisk", "sort_key", "sort_dir", "status",
    "fields", "changes-since", "ip", "all_tenants", "host", "address", "size_min",
    "tag", "project_id", "is_public", "hypervisor_hostname_pattern", "wait",
]  # fmt: skip
BODY_FIELDS = [
    "name", "id", "description", "ram", "vcpus", "disk", "cidr", "network_id", "ip_version",
    "flavorRef", "imageRef", "networks", "fixed_ips", "binding:profile", "extra_specs",
    "password", "project_id", "state", "min_disk",
]  # fmt: skip
# JSON values built from the strings above, and some that are not strings
JSON_VALUES: list[Any] = [
    *VALUES,
    10**30,
    -(2**63),
    1.5e308,
    True,
    None,
    [],
    {},
    json.loads("[" * 30 + '"deep"' + "]" * 30),
    {"a": {"b": {"c": {"d": "\x00"}}}},
]
HUGE_BODIES = [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 20_000 + b"1" + b"}" * 20_000,
    b'{"x": "' + b"y" * 2_000_000 + b'"}',
]


def operations(app: FastAPI) -> list[tuple[str, str, str | None]]:
    """(method, path, the body's top-level key) for every OpenStack route."""
    out = []
    for path, item in app.openapi()["paths"].items():
        if path.startswith("/pcifleet/"):
            continue  # schemathesis fuzzes pcifleet's own API from its schema
        for method in item:
            out.append((method.upper(), path, resource_key(path)))
    return out


def resource_key(path: str) -> str | None:
    """The singular a body of this path is wrapped in ("/ports" -> "port")."""
    parts = [p for p in path.split("/") if p and not p.startswith("{")]
    if not parts:
        return None
    last = parts[-1]
    if last == "action":
        return None
    return last[:-1] if last.endswith("s") else last


def check(resp: Any, what: str) -> None:
    assert resp.status_code < 500, (what, resp.status_code, resp.text[:300])
    assert resp.headers["x-openstack-request-id"].startswith("req-"), what
    if resp.status_code >= 400 and resp.request.method != "HEAD":
        assert resp.headers["content-type"].startswith("application/json"), what
        json.loads(resp.text)


def fill(path: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: quote(value), path)


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def test_no_hostile_input_makes_a_5xx(api: Api, app: FastAPI, tokens: Tokens) -> None:
    # Bounded (about 2,500 requests): each value once per route, the query keys
    # and body fields taking turns, rather than every combination.
    sent = 0
    headers = {"Content-Type": "application/json"}
    for method, path, key in operations(app):
        for i, value in enumerate(VALUES):
            url = fill(path, value)
            queries = [f"{QUERY_KEYS[i % len(QUERY_KEYS)]}={quote(value)}"]
            if method == "GET" and "{" not in path:  # a list: every filter at once
                queries.append("&".join(f"{k}={quote(value[:300])}" for k in QUERY_KEYS))
            for query in queries:
                resp = api.request(method, f"{url}?{query}", token=tokens.admin)
                check(resp, f"{method} {url[:80]}?{query[:80]}")
                sent += 1
        if method not in ("POST", "PUT", "PATCH"):
            continue
        url = fill(path, "x")
        for j, value in enumerate(JSON_VALUES):
            fields = {BODY_FIELDS[j % len(BODY_FIELDS)]: value}
            shapes = [fields, {key: fields}, {key: value}] if key else [fields, value]
            body = json.dumps(shapes[j % len(shapes)])
            resp = api.request(method, url, token=tokens.admin, content=body, headers=headers)
            check(resp, f"{method} {url} {body[:80]}")
            sent += 1
        for raw in HUGE_BODIES:
            resp = api.request(method, url, token=tokens.admin, content=raw, headers=headers)
            check(resp, f"{method} {url} {raw[:20]!r}")
            sent += 1
    assert sent > 2000
