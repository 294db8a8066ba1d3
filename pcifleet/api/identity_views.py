"""How Identity v3 shows a domain, a project, a user, a group and a role:
shared by the token routes and the administration routes (which may not
import each other)."""

from __future__ import annotations

from typing import Any

from pcifleet.store.cloud import Group, Project, Role, User

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"


def project_view(p: Project) -> dict[str, Any]:
    # a domain seen through /v3/projects: no domain, no parent (Keystone's)
    return {
        "id": p.id,
        "name": p.name,
        "domain_id": p.domain_id,
        "description": p.description,
        "enabled": p.enabled,
        "is_domain": p.is_domain,
        "parent_id": p.parent_id,
        "tags": list(p.tags or []),
        "options": {},
        "links": {"self": f"/v3/projects/{p.id}"},
    }


def domain_view(d: Project) -> dict[str, Any]:
    return {
        "id": d.id,
        "name": d.name,
        "description": d.description,
        "enabled": d.enabled,
        "tags": list(d.tags or []),
        "options": {},
        "links": {"self": f"/v3/domains/{d.id}"},
    }


def domain_ref(d: Project | None, domain_id: str) -> dict[str, str]:
    """``{"id", "name"}`` as tokens and role assignments name a domain."""
    return {"id": domain_id, "name": d.name if d is not None else ""}


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


def group_view(g: Group) -> dict[str, Any]:
    return (g.extra or {}) | {
        "id": g.id,
        "name": g.name,
        "domain_id": g.domain_id,
        "description": g.description,
        "links": {"self": f"/v3/groups/{g.id}"},
    }


def role_view(r: Role) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "description": r.description,
        "domain_id": r.domain_id,
        "options": {},
        "links": {"self": f"/v3/roles/{r.id}"},
    }


def role_ref(r: Role) -> dict[str, Any]:
    """A role as a role inference rule names it."""
    return {"id": r.id, "name": r.name, "links": {"self": f"/v3/roles/{r.id}"}}
