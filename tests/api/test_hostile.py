"""Hostile input against every route: whatever the body, query or path, the
answer is a 4xx in the service's error shape, never a 500."""

from __future__ import annotations

import re

from fastapi import FastAPI

from tests.api.conftest import Tokens
from tests.api.helpers import Api

BODIES = [
    b"",
    b"{",
    b"null",
    b"[]",
    b'"x"',
    b"1e999999",
    b'{"a": 1}',
    b"[" * 50_000 + b"]" * 50_000,
    b'{"x": "' + b"\xff\xfe" * 10 + b'"}',
    b'{"network": {"name": "' + b"x" * 100_000 + b'"}}',
]
PATH_VALUES = ["x", "..%2F%00", "9" * 30]


def routes(app: FastAPI) -> list[tuple[str, str]]:
    out = []
    for path, item in app.openapi()["paths"].items():
        for method in item:
            out.append((method.upper(), path))
    return out


def test_no_body_path_or_query_makes_a_500(api: Api, app: FastAPI, tokens: Tokens) -> None:
    seen = 0
    for method, path in routes(app):
        for value in PATH_VALUES:
            url = re.sub(r"\{[^}]+\}", value, path)
            bodies = BODIES if method in ("POST", "PUT", "PATCH") else [b""]
            for body in bodies:
                resp = api.request(
                    method,
                    url + "?limit=-1&marker=zz&wait=abc&fields=%00&name=" + "n" * 2000,
                    token=tokens.admin,  # as the admin: past every policy check
                    content=body,
                    headers={"Content-Type": "application/json"},
                )
                seen += 1
                assert resp.status_code < 500, (method, url, body[:40], resp.text[:300])
                if resp.status_code >= 400:
                    assert resp.headers["content-type"].startswith("application/json")
    assert seen > 300
