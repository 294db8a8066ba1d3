"""Identity administration in the store: domains, projects, users and roles, as
Keystone's v3 API changes them. Groups are in ``groups``, who holds which role
where in ``assignments``.

A domain is a project row with ``is_domain`` (Keystone's own model). Names are
unique per domain: projects, users and roles of one domain among themselves,
domains and global roles among themselves.

Each function works in the caller's session and flushes, so a uniqueness clash
surfaces here as ``NameInUse`` rather than at commit. Passwords arrive already
hashed: hashing is the API's business (``pcifleet.api.security``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pcifleet.store.cloud import (
    Group,
    ImpliedRole,
    Project,
    Role,
    RoleAssignment,
    SystemRoleAssignment,
    Token,
    User,
)
from pcifleet.store.errors import StoreError

DEFAULT_DOMAIN_ID = "default"


class NameInUse(StoreError):
    """A domain, project, user, group or role of that name exists already."""

    code = "pcifleet.name_in_use"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"Conflict occurred attempting to store {kind} - Duplicate entry {name!r}."
        )
        self.kind = kind


class NotLeaf(StoreError):
    """A project with projects under it cannot be deleted (Keystone's 403)."""

    code = "pcifleet.project_not_leaf"

    def __init__(self, project_id: str) -> None:
        super().__init__(
            f"Cannot delete the project {project_id} since it is not a leaf in the hierarchy."
        )


def name_taken(
    session: Session,
    model: type[Project | User | Role | Group],
    name: str,
    domain_id: str | None,
    own_id: str | None = None,
) -> bool:
    """Whether another row of ``model`` in ``domain_id`` (None: the domains
    themselves, or the global roles) has ``name``."""
    where = model.domain_id.is_(None) if domain_id is None else model.domain_id == domain_id
    found = session.scalar(select(model.id).where(model.name == name, where))
    return found is not None and found != own_id


def insert_named(session: Session, row: Project | User | Role | Group, kind: str) -> None:
    """Add a named row; a writer that won the race for its name since our
    check makes the unique constraint fail, which is the same ``NameInUse``."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise NameInUse(kind, row.name) from None


def create_project(
    session: Session,
    name: str,
    *,
    description: str = "",
    enabled: bool = True,
    tags: list[str] | None = None,
    domain_id: str | None = DEFAULT_DOMAIN_ID,
    parent_id: str | None = None,
    is_domain: bool = False,
) -> Project:
    """A project under ``parent_id`` (default: the top of ``domain_id``), or a
    domain when ``is_domain`` (then ``domain_id`` and ``parent_id`` are None)."""
    if is_domain:
        domain_id = parent_id = None
    if name_taken(session, Project, name, domain_id):
        raise NameInUse("domain" if is_domain else "project", name)
    project = Project(
        id=uuid.uuid4().hex,
        name=name,
        description=description,
        enabled=enabled,
        tags=list(tags or []),
        domain_id=domain_id,
        parent_id=parent_id or domain_id,
        is_domain=is_domain,
    )
    insert_named(session, project, "domain" if is_domain else "project")
    return project


def update_project(session: Session, project: Project, changes: dict[str, Any]) -> Project:
    """``changes``: any of ``name``, ``description``, ``enabled``, ``tags``."""
    if "name" in changes and name_taken(
        session, Project, changes["name"], project.domain_id, project.id
    ):
        raise NameInUse("domain" if project.is_domain else "project", changes["name"])
    for key, value in changes.items():
        setattr(project, key, value)
    if changes.get("enabled") is False:
        # Keystone revokes a disabled project's (or domain's) tokens; ours are
        # refused at validation anyway, dropping them frees the rows now
        session.execute(delete(Token).where(Token.project_id == project.id))
        session.execute(delete(Token).where(Token.domain_id == project.id))
    session.flush()
    return project


def children(session: Session, project_id: str) -> list[Project]:
    return list(
        session.scalars(
            select(Project).where(Project.parent_id == project_id, Project.is_domain.is_(False))
        )
    )


def delete_project(session: Session, project: Project) -> None:
    """A leaf project; its role assignments and tokens go with it. Servers,
    networks and images keep the project id, as in OpenStack."""
    if children(session, project.id):
        raise NotLeaf(project.id)
    session.execute(delete(RoleAssignment).where(RoleAssignment.project_id == project.id))
    session.execute(delete(Token).where(Token.project_id == project.id))
    session.delete(project)
    session.flush()


def delete_domain(session: Session, domain: Project) -> None:
    """A domain and everything in it: its projects, users, groups, roles and
    the assignments on it (the caller has checked it is disabled)."""
    in_domain = list(session.scalars(select(Project).where(Project.domain_id == domain.id)))
    ids = [p.id for p in in_domain] + [domain.id]
    session.execute(delete(RoleAssignment).where(RoleAssignment.project_id.in_(ids)))
    session.execute(delete(Token).where(Token.project_id.in_(ids)))
    session.execute(delete(Token).where(Token.domain_id == domain.id))
    for p in in_domain:
        session.delete(p)
    for user in session.scalars(select(User).where(User.domain_id == domain.id)):
        delete_user(session, user)
    session.execute(delete(Group).where(Group.domain_id == domain.id))
    for role in session.scalars(select(Role).where(Role.domain_id == domain.id)):
        delete_role(session, role)
    session.delete(domain)
    session.flush()


def create_user(
    session: Session,
    name: str,
    password_hash: str,
    *,
    enabled: bool,
    default_project_id: str | None,
    extra: dict[str, Any],
    domain_id: str = DEFAULT_DOMAIN_ID,
) -> User:
    if name_taken(session, User, name, domain_id):
        raise NameInUse("user", name)
    user = User(
        id=uuid.uuid4().hex,
        name=name,
        domain_id=domain_id,
        password_hash=password_hash,
        enabled=enabled,
        default_project_id=default_project_id,
        extra=extra,
    )
    insert_named(session, user, "user")
    return user


def update_user(
    session: Session, user: User, changes: dict[str, Any], extra: dict[str, Any]
) -> User:
    """``changes``: columns (``name``, ``enabled``, ``default_project_id``,
    ``password_hash``); ``extra``: free attributes merged in (None removes one)."""
    if "name" in changes and name_taken(session, User, changes["name"], user.domain_id, user.id):
        raise NameInUse("user", changes["name"])
    for key, value in changes.items():
        setattr(user, key, value)
    if extra:
        merged = dict(user.extra or {})
        merged.update(extra)
        user.extra = {k: v for k, v in merged.items() if v is not None}
    if changes.get("enabled") is False or "password_hash" in changes:
        # a disabled user, or one whose password changed, keeps no live token
        session.execute(delete(Token).where(Token.user_id == user.id))
    session.flush()
    return user


def delete_user(session: Session, user: User) -> None:
    session.execute(delete(RoleAssignment).where(RoleAssignment.user_id == user.id))
    session.execute(delete(SystemRoleAssignment).where(SystemRoleAssignment.user_id == user.id))
    session.execute(delete(Token).where(Token.user_id == user.id))
    session.delete(user)
    session.flush()


def create_role(
    session: Session, name: str, description: str | None, domain_id: str | None = None
) -> Role:
    if name_taken(session, Role, name, domain_id):
        raise NameInUse("role", name)
    role = Role(id=uuid.uuid4().hex, name=name, description=description, domain_id=domain_id)
    insert_named(session, role, "role")
    return role


def update_role(session: Session, role: Role, changes: dict[str, Any]) -> Role:
    if "name" in changes and name_taken(session, Role, changes["name"], role.domain_id, role.id):
        raise NameInUse("role", changes["name"])
    for key, value in changes.items():
        setattr(role, key, value)
    session.flush()
    return role


def delete_role(session: Session, role: Role) -> None:
    # assignments, system grants and inference rules name it: they go too
    session.execute(delete(RoleAssignment).where(RoleAssignment.role == role.id))
    session.execute(delete(SystemRoleAssignment).where(SystemRoleAssignment.role == role.id))
    session.execute(
        delete(ImpliedRole).where(
            (ImpliedRole.prior_role_id == role.id) | (ImpliedRole.implied_role_id == role.id)
        )
    )
    session.delete(role)
    session.flush()
