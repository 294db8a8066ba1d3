"""How Identity v3 shows a project, a user, a role and the one domain: shared by
the token routes and the administration routes (which may not import each other)."""

from __future__ import annotations

from typing import Any

from pcifleet.store.cloud import Project, Role, User

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"


def project_view(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "is_domain": False,
        "parent_id": p.domain_id,
        "tags": list(p.tags or []),
        "options": {},
        "links": {"self": f"/v3/projects/{p.id}"},
    }


def user_view(u: User) -> dict[str, Any]:
    # the free attributes first, so none of them can hide a modelled one
    return (u.extra or {}) | {
        "id": u.id,
        "name": u.name,
        "domain_id": u.domain_id,
        "enabled": u.enabled,
        "default_project_id": u.default_project_id,
        "password_expires_at": None,
        "options": {},
        "links": {"self": f"/v3/users/{u.id}"},
    }


def role_view(r: Role) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "domain_id": None,
        "options": {},
        "links": {"self": f"/v3/roles/{r.id}"},
    }


def domain_view() -> dict[str, Any]:
    return {
        "id": DEFAULT_DOMAIN_ID,
        "name": DEFAULT_DOMAIN_NAME,
        "description": "The default domain",
        "enabled": True,
        "tags": [],
        "options": {},
        "links": {"self": f"/v3/domains/{DEFAULT_DOMAIN_ID}"},
    }
