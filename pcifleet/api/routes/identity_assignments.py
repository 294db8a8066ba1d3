"""``/v3/role_assignments`` (Keystone's): every role assignment, or those of a
user, group, role, project, domain or the system; ``effective`` shows what a
token would carry (group assignments as one per member, implied roles added,
domain-specific roles left out), ``include_names`` names every entity."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.orm import Session

from pcifleet.api.deps import IdentityContextDep as ContextDep
from pcifleet.api.deps import SessionDep
from pcifleet.api.errors import BadRequest
from pcifleet.api.identity_common import query_bool
from pcifleet.api.identity_views import domain_ref
from pcifleet.store import assignments as grants
from pcifleet.store.assignments import Assignment
from pcifleet.store.cloud import Group, Project, Role, User

router = APIRouter(tags=["identity"])


def _nand(request: Request, a: str, b: str) -> None:
    if request.query_params.get(a) and request.query_params.get(b):
        raise BadRequest(f"Invalid input for fields '{a}' and '{b}': give one, not both")


class _Names:
    """Names for include_names, each row read once."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def domain(self, domain_id: str | None) -> dict[str, str]:
        return domain_ref(
            self.session.get(Project, domain_id) if domain_id else None, domain_id or ""
        )

    def project(self, p: dict[str, Any]) -> None:
        row = self.session.get(Project, p["id"])
        p["name"] = row.name if row else ""
        if row is not None and not row.is_domain:
            p["domain"] = self.domain(row.domain_id)

    def user(self, u: dict[str, Any]) -> None:
        row = self.session.get(User, u["id"])
        u["name"] = row.name if row else ""
        u["domain"] = self.domain(row.domain_id if row else None)

    def group(self, g: dict[str, Any]) -> None:
        row = self.session.get(Group, g["id"])
        g["name"] = row.name if row else ""
        g["domain"] = self.domain(row.domain_id if row else None)

    def role(self, r: dict[str, Any]) -> None:
        row = self.session.get(Role, r["id"])
        r["name"] = row.name if row else r["id"]
        if row is not None and row.domain_id is not None:
            r["domain"] = self.domain(row.domain_id)


def _assignment_view(a: Assignment, names: _Names | None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": {"id": a.role_id}, "links": {}}
    if a.target_id is None:
        out["scope"] = {"system": {"all": True}}
        link = "/v3/system"
    elif a.target_is_domain:
        out["scope"] = {"domain": {"id": a.target_id}}
        link = f"/v3/domains/{a.target_id}"
    else:
        out["scope"] = {"project": {"id": a.target_id}}
        link = f"/v3/projects/{a.target_id}"
    if a.user_id is not None:
        out["user"] = {"id": a.user_id}
        if a.via_group is not None:
            link += f"/groups/{a.via_group}"
            out["links"]["membership"] = f"/v3/groups/{a.via_group}/users/{a.user_id}"
        else:
            link += f"/users/{a.user_id}"
    else:
        out["group"] = {"id": a.group_id}
        link += f"/groups/{a.group_id}"
    if a.prior_role is not None:
        link += f"/roles/{a.prior_role}"
        out["links"]["prior_role"] = f"/v3/roles/{a.prior_role}/implies/{a.role_id}"
    else:
        link += f"/roles/{a.role_id}"
    out["links"]["assignment"] = link
    if names is not None:
        names.role(out["role"])
        if "user" in out:
            names.user(out["user"])
        else:
            names.group(out["group"])
        if "project" in out["scope"]:
            names.project(out["scope"]["project"])
        elif "domain" in out["scope"]:
            out["scope"]["domain"] = names.domain(a.target_id)
    return out


@router.get("/v3/role_assignments")
def list_role_assignments(
    request: Request,
    session: SessionDep,
    caller: ContextDep,
    user_id: Annotated[str | None, Query(alias="user.id", max_length=64)] = None,
    group_id: Annotated[str | None, Query(alias="group.id", max_length=64)] = None,
    role_id: Annotated[str | None, Query(alias="role.id", max_length=64)] = None,
    project_id: Annotated[str | None, Query(alias="scope.project.id", max_length=64)] = None,
    domain_id: Annotated[str | None, Query(alias="scope.domain.id", max_length=64)] = None,
    system: Annotated[str | None, Query(alias="scope.system", max_length=8)] = None,
    effective: Annotated[str | None, Query(max_length=8)] = None,
    include_names: Annotated[str | None, Query(max_length=8)] = None,
) -> dict[str, Any]:
    caller.require_admin("identity:list_role_assignments")
    _nand(request, "scope.domain.id", "scope.project.id")
    _nand(request, "scope.system", "scope.domain.id")
    _nand(request, "scope.system", "scope.project.id")
    _nand(request, "user.id", "group.id")
    if system is not None and system != "all":
        raise BadRequest("Invalid input for field 'scope.system': only 'all' is known")
    target_id = project_id or domain_id
    domains_only = True if domain_id else False if project_id else None
    if query_bool("effective", effective):
        if group_id:
            raise BadRequest(
                "Invalid input for field 'group.id': combining effective and group "
                "filter will always result in an empty list"
            )
        rows = (
            []
            if system
            else grants.effective_assignments(
                session,
                user_id=user_id,
                target_id=target_id,
                domains_only=domains_only,
                role_id=role_id,
            )
        )
    else:
        rows = grants.direct_assignments(
            session,
            user_id=user_id,
            group_ids=[group_id] if group_id else None,
            target_id=target_id,
            domains_only=domains_only,
            role_id=role_id,
            system=True if system else None,
        )
    if target_id is not None:
        # the filter names a project or a domain: not the other kind
        rows = [a for a in rows if a.target_is_domain == bool(domain_id)]
    names = _Names(session) if query_bool("include_names", include_names) else None
    return {"role_assignments": [_assignment_view(a, names) for a in rows], "links": {}}
