"""Answers encoded by orjson: the same JSON as Starlette's, compact and UTF-8."""

from __future__ import annotations

import json

import pytest

from pcifleet.api.fast_json import FastJSONResponse, json_response


def test_encodes_what_json_reads_back_compact_and_in_utf8() -> None:
    body = {
        "servers": [{"name": "vm-é", "id": "x", "progress": 0, "locked": False}],
        "nested": {"empty": [], "none": None, "ratio": 2.5, "big": 2**53},
    }
    resp = json_response(body)
    assert resp.status_code == 200
    assert resp.media_type == "application/json"
    assert resp.headers["content-length"] == str(len(resp.body))
    assert json.loads(bytes(resp.body)) == body
    # what Starlette's JSONResponse writes: no spaces, characters as themselves
    assert resp.body == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def test_status_code_is_passed_on() -> None:
    assert json_response({}, status_code=202).status_code == 202


def test_shared_parts_are_written_at_each_place() -> None:
    # server views share one flavor dict; each occurrence is written in full
    flavor = {"ram": 1024}
    resp = json_response({"servers": [{"flavor": flavor}, {"flavor": flavor}]})
    assert json.loads(bytes(resp.body)) == {"servers": [{"flavor": {"ram": 1024}}] * 2}


@pytest.mark.parametrize("content", [{1: "a"}, {"a": object()}, {"n": 2**70}])
def test_what_is_not_plain_json_is_refused_not_written_wrongly(content: object) -> None:
    with pytest.raises(TypeError):
        FastJSONResponse(content)
