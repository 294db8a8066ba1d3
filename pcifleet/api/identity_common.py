"""Lookups and query parsing the Identity administration routes share: each
lookup answers Keystone's 404 for an id that names nothing."""

from __future__ import annotations

from sqlalchemy.orm import Session

from pcifleet.api.errors import BadRequest, Conflict, Forbidden, NotFound
from pcifleet.store.cloud import Group, Project, Role, User
from pcifleet.store.identity import DEFAULT_DOMAIN_ID, NameInUse


def conflict(exc: NameInUse) -> Conflict:
    return Conflict(str(exc))


def get_project(session: Session, project_id: str) -> Project:
    project = session.get(Project, project_id)
    if project is None:
        raise NotFound(f"Could not find project: {project_id[:64]}.")
    return project


def get_domain(session: Session, domain_id: str) -> Project:
    domain = session.get(Project, domain_id)
    if domain is None or not domain.is_domain:
        raise NotFound(f"Could not find domain: {domain_id[:64]}.")
    return domain


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"Could not find user: {user_id[:64]}.")
    return user


def get_group(session: Session, group_id: str) -> Group:
    group = session.get(Group, group_id)
    if group is None:
        raise NotFound(f"Could not find group: {group_id[:64]}.")
    return group


def get_role(session: Session, role_id: str) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise NotFound(f"Could not find role: {role_id[:64]}.")
    return role


def query_bool(name: str, value: str | None) -> bool | None:
    """A boolean query parameter as Keystone reads one: a bare key is true."""
    if value is None:
        return None
    if value.lower() in ("true", "1", "yes", ""):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(f"Invalid input for field '{name}': {value[:32]!r} is not a boolean")


def check_domain_deletable(domain: Project) -> None:
    """Keystone deletes only a disabled domain; ``Default`` holds pcifleet's
    own users (the admin, the agents' service project) and is never deleted."""
    if domain.id == DEFAULT_DOMAIN_ID:
        raise Forbidden("The Default domain cannot be deleted.")
    if domain.enabled:
        raise Forbidden("Cannot delete a domain that is enabled, please disable it first.")
