"""Compute v2.1 version discovery, with the microversion range we follow."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pcifleet.api.catalog import base_url
from pcifleet.api.deps import SettingsDep
from pcifleet.api.middleware import MAX_MICROVERSION, MIN_MICROVERSION, format_version
from pcifleet.api.paths import COMPUTE as PREFIX

router = APIRouter(tags=["compute"])


def _version(base: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": format_version(MAX_MICROVERSION),
        "min_version": format_version(MIN_MICROVERSION),
        "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2.1/"}],
        "media-types": [
            {
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version=2.1",
            }
        ],
    }


def _legacy_version(base: str) -> dict[str, Any]:
    """Nova still lists v2.0 (the same API without microversions) before v2.1;
    clients and Tempest expect it there. Only its discovery document is served:
    the catalog points at v2.1."""
    return {
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": f"{base}/compute/v2/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.compute+json;version=2"}
        ],
    }


@router.get("/compute")
def versions(request: Request, settings: SettingsDep) -> JSONResponse:
    base = base_url(request, settings)
    return JSONResponse({"versions": [_legacy_version(base), _version(base)]})


@router.get("/compute/v2")
@router.get("/compute/v2/")
def legacy_version(request: Request, settings: SettingsDep) -> dict[str, Any]:
    return {"version": _legacy_version(base_url(request, settings))}


@router.get(PREFIX)
def version(request: Request, settings: SettingsDep) -> dict[str, Any]:
    return {"version": _version(base_url(request, settings))}
