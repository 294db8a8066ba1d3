"""Identity administration in the store: projects, users, roles and who holds
which role where, as Keystone's v3 API changes them.

Each function works in the caller's session and flushes, so a uniqueness clash
surfaces here as ``NameInUse`` rather than at commit. Passwords arrive already
hashed: hashing is the API's business (``pcifleet.api.security``).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pcifleet.store.cloud import Project, Role, RoleAssignment, SystemRoleAssignment, Token, User
from pcifleet.store.errors import StoreError


class NameInUse(StoreError):
    """A project, user or role of that name exists already."""

    code = "pcifleet.name_in_use"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(
            f"Conflict occurred attempting to store {kind} - Duplicate entry {name!r}."
        )
        self.kind = kind


def _name_taken(
    session: Session, model: type[Project | User | Role], name: str, own_id: str | None
) -> bool:
    found = session.scalar(select(model.id).where(model.name == name))
    return found is not None and found != own_id


def create_project(
    session: Session, name: str, description: str, enabled: bool, tags: list[str]
) -> Project:
    if _name_taken(session, Project, name, None):
        raise NameInUse("project", name)
    project = Project(
        id=uuid.uuid4().hex, name=name, description=description, enabled=enabled, tags=tags
    )
    session.add(project)
    session.flush()
    return project


def update_project(session: Session, project: Project, changes: dict[str, Any]) -> Project:
    """``changes``: any of ``name``, ``description``, ``enabled``, ``tags``."""
    if "name" in changes and _name_taken(session, Project, changes["name"], project.id):
        raise NameInUse("project", changes["name"])
    for key, value in changes.items():
        setattr(project, key, value)
    if changes.get("enabled") is False:
        # Keystone revokes a disabled project's tokens; ours are refused at
        # validation anyway, dropping them frees the rows now
        session.execute(delete(Token).where(Token.project_id == project.id))
    session.flush()
    return project


def delete_project(session: Session, project: Project) -> None:
    # role assignments and tokens go with it (ON DELETE CASCADE); servers,
    # networks and images keep the project id, as in OpenStack
    session.execute(delete(RoleAssignment).where(RoleAssignment.project_id == project.id))
    session.execute(delete(Token).where(Token.project_id == project.id))
    session.delete(project)
    session.flush()


def create_user(
    session: Session,
    name: str,
    password_hash: str,
    *,
    enabled: bool,
    default_project_id: str | None,
    extra: dict[str, Any],
) -> User:
    if _name_taken(session, User, name, None):
        raise NameInUse("user", name)
    user = User(
        id=uuid.uuid4().hex,
        name=name,
        password_hash=password_hash,
        enabled=enabled,
        default_project_id=default_project_id,
        extra=extra,
    )
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session, user: User, changes: dict[str, Any], extra: dict[str, Any]
) -> User:
    """``changes``: columns (``name``, ``enabled``, ``default_project_id``,
    ``password_hash``); ``extra``: free attributes merged in (None removes one)."""
    if "name" in changes and _name_taken(session, User, changes["name"], user.id):
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


def create_role(session: Session, name: str, description: str | None) -> Role:
    if _name_taken(session, Role, name, None):
        raise NameInUse("role", name)
    role = Role(id=uuid.uuid4().hex, name=name, description=description)
    session.add(role)
    session.flush()
    return role


def update_role(session: Session, role: Role, changes: dict[str, Any]) -> Role:
    if "name" in changes and _name_taken(session, Role, changes["name"], role.id):
        raise NameInUse("role", changes["name"])
    for key, value in changes.items():
        setattr(role, key, value)
    session.flush()
    return role


def delete_role(session: Session, role: Role) -> None:
    session.execute(delete(RoleAssignment).where(RoleAssignment.role == role.id))
    session.execute(delete(SystemRoleAssignment).where(SystemRoleAssignment.role == role.id))
    session.delete(role)
    session.flush()


def project_roles(session: Session, user_id: str, project_id: str) -> list[Role]:
    """The roles assigned (not implied) to the user on the project."""
    return list(
        session.scalars(
            select(Role)
            .join(RoleAssignment, RoleAssignment.role == Role.id)
            .where(RoleAssignment.user_id == user_id, RoleAssignment.project_id == project_id)
            .order_by(Role.name)
        )
    )


def assign_project_role(session: Session, user_id: str, project_id: str, role_id: str) -> None:
    """Idempotent, as Keystone's PUT."""
    exists = session.scalar(
        select(RoleAssignment.id).where(
            RoleAssignment.user_id == user_id,
            RoleAssignment.project_id == project_id,
            RoleAssignment.role == role_id,
        )
    )
    if exists is None:
        session.add(RoleAssignment(user_id=user_id, project_id=project_id, role=role_id))
        session.flush()


def revoke_project_role(session: Session, user_id: str, project_id: str, role_id: str) -> bool:
    """False when there was no such assignment."""
    result = session.execute(
        delete(RoleAssignment).where(
            RoleAssignment.user_id == user_id,
            RoleAssignment.project_id == project_id,
            RoleAssignment.role == role_id,
        )
    )
    # tokens of the project carry the roles of their issue: drop them so the
    # revoked role is gone at once
    session.execute(delete(Token).where(Token.user_id == user_id, Token.project_id == project_id))
    return bool(getattr(result, "rowcount", 0))


def system_roles(session: Session, user_id: str) -> list[Role]:
    return list(
        session.scalars(
            select(Role)
            .join(SystemRoleAssignment, SystemRoleAssignment.role == Role.id)
            .where(SystemRoleAssignment.user_id == user_id)
            .order_by(Role.name)
        )
    )


def assign_system_role(session: Session, user_id: str, role_id: str) -> None:
    if session.get(SystemRoleAssignment, (user_id, role_id)) is None:
        session.add(SystemRoleAssignment(user_id=user_id, role=role_id))
        session.flush()


def revoke_system_role(session: Session, user_id: str, role_id: str) -> bool:
    row = session.get(SystemRoleAssignment, (user_id, role_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def projects_of_user(session: Session, user_id: str) -> list[Project]:
    """Projects where the user holds any role."""
    return list(
        session.scalars(
            select(Project)
            .where(
                Project.id.in_(
                    select(RoleAssignment.project_id).where(RoleAssignment.user_id == user_id)
                )
            )
            .order_by(Project.name)
        )
    )


def role_assignments(
    session: Session,
    *,
    user_id: str | None = None,
    project_id: str | None = None,
    role_id: str | None = None,
) -> list[RoleAssignment]:
    query = select(RoleAssignment).order_by(RoleAssignment.id)
    if user_id is not None:
        query = query.where(RoleAssignment.user_id == user_id)
    if project_id is not None:
        query = query.where(RoleAssignment.project_id == project_id)
    if role_id is not None:
        query = query.where(RoleAssignment.role == role_id)
    return list(session.scalars(query))
