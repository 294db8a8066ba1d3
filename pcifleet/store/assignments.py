"""Who holds which role where: role assignments of users and groups on projects,
domains (project rows with ``is_domain``) and the system; role inference rules;
and the effective roles a token carries, worked out as Keystone does: the
user's own assignments and its groups', every role they imply (transitively),
less the domain-specific roles, which only imply.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pcifleet.store.cloud import (
    GroupMember,
    ImpliedRole,
    Project,
    Role,
    RoleAssignment,
    SystemGroupRoleAssignment,
    SystemRoleAssignment,
    Token,
)


def add_once(
    session: Session,
    row: RoleAssignment
    | SystemRoleAssignment
    | SystemGroupRoleAssignment
    | ImpliedRole
    | GroupMember,
) -> None:
    """Add a row that an idempotent PUT asks for. When another writer added the
    same row since the caller looked, the unique key refuses ours: the row
    exists, which is what was asked, so the failed flush is rolled back (the
    callers have only read before) and nothing else happens."""
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()


@dataclass(frozen=True)
class Actor:
    """A user or a group (exactly one of the two ids)."""

    user_id: str | None = None
    group_id: str | None = None


def _actor_where(actor: Actor):  # type: ignore[no-untyped-def]
    if actor.user_id is not None:
        return RoleAssignment.user_id == actor.user_id
    return RoleAssignment.group_id == actor.group_id


def grants(session: Session, actor: Actor, target_id: str) -> list[Role]:
    """The roles assigned (not implied) to the actor on a project or domain."""
    return list(
        session.scalars(
            select(Role)
            .join(RoleAssignment, RoleAssignment.role == Role.id)
            .where(_actor_where(actor), RoleAssignment.project_id == target_id)
            .order_by(Role.name)
        )
    )


def assign(session: Session, actor: Actor, target_id: str, role_id: str) -> None:
    """Idempotent, as Keystone's PUT."""
    exists = session.scalar(
        select(RoleAssignment.id).where(
            _actor_where(actor),
            RoleAssignment.project_id == target_id,
            RoleAssignment.role == role_id,
        )
    )
    if exists is None:
        add_once(
            session,
            RoleAssignment(
                user_id=actor.user_id, group_id=actor.group_id, project_id=target_id, role=role_id
            ),
        )


def revoke(session: Session, actor: Actor, target_id: str, role_id: str) -> bool:
    """False when there was no such assignment."""
    result = session.execute(
        delete(RoleAssignment).where(
            _actor_where(actor),
            RoleAssignment.project_id == target_id,
            RoleAssignment.role == role_id,
        )
    )
    if actor.user_id is not None:
        # tokens of the target end at once, as Keystone revokes them
        session.execute(
            delete(Token).where(
                Token.user_id == actor.user_id,
                (Token.project_id == target_id) | (Token.domain_id == target_id),
            )
        )
    return bool(getattr(result, "rowcount", 0))


def system_grants(session: Session, actor: Actor) -> list[Role]:
    if actor.user_id is not None:
        query = select(Role).join(SystemRoleAssignment, SystemRoleAssignment.role == Role.id)
        query = query.where(SystemRoleAssignment.user_id == actor.user_id)
    else:
        query = select(Role).join(
            SystemGroupRoleAssignment, SystemGroupRoleAssignment.role == Role.id
        )
        query = query.where(SystemGroupRoleAssignment.group_id == actor.group_id)
    return list(session.scalars(query.order_by(Role.name)))


def assign_system(session: Session, actor: Actor, role_id: str) -> None:
    if actor.user_id is not None:
        if session.get(SystemRoleAssignment, (actor.user_id, role_id)) is None:
            add_once(session, SystemRoleAssignment(user_id=actor.user_id, role=role_id))
    elif session.get(SystemGroupRoleAssignment, (actor.group_id, role_id)) is None:
        add_once(session, SystemGroupRoleAssignment(group_id=actor.group_id, role=role_id))


def revoke_system(session: Session, actor: Actor, role_id: str) -> bool:
    row: SystemRoleAssignment | SystemGroupRoleAssignment | None
    if actor.user_id is not None:
        row = session.get(SystemRoleAssignment, (actor.user_id, role_id))
    else:
        row = session.get(SystemGroupRoleAssignment, (actor.group_id, role_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


# --- role inference rules --------------------------------------------------------


def implied_by(session: Session, prior_role_id: str) -> list[Role]:
    """The roles a role implies directly (its rules, not their closure)."""
    return list(
        session.scalars(
            select(Role)
            .join(ImpliedRole, ImpliedRole.implied_role_id == Role.id)
            .where(ImpliedRole.prior_role_id == prior_role_id)
            .order_by(Role.name)
        )
    )


def inference_rules(session: Session) -> list[tuple[str, str]]:
    rows = session.execute(select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)).all()
    return sorted((p, i) for p, i in rows)


def has_rule(session: Session, prior_role_id: str, implied_role_id: str) -> bool:
    return session.get(ImpliedRole, (prior_role_id, implied_role_id)) is not None


def add_rule(session: Session, prior_role_id: str, implied_role_id: str) -> None:
    if not has_rule(session, prior_role_id, implied_role_id):
        add_once(session, ImpliedRole(prior_role_id=prior_role_id, implied_role_id=implied_role_id))


def remove_rule(session: Session, prior_role_id: str, implied_role_id: str) -> bool:
    row = session.get(ImpliedRole, (prior_role_id, implied_role_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


# --- effective assignments ----------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """One role assignment as ``/v3/role_assignments`` lists it. ``target_id``
    None: on the system. In effective mode ``via_group`` names the group a user
    has it through and ``prior_role`` the role that implies it."""

    role_id: str
    user_id: str | None
    group_id: str | None
    target_id: str | None
    target_is_domain: bool
    via_group: str | None = None
    prior_role: str | None = None


def _groups_of(session: Session, user_id: str) -> list[str]:
    return list(session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user_id)))


def _members(session: Session, group_id: str) -> list[str]:
    return list(
        session.scalars(select(GroupMember.user_id).where(GroupMember.group_id == group_id))
    )


def direct_assignments(
    session: Session,
    *,
    user_id: str | None = None,
    group_ids: list[str] | None = None,
    target_id: str | None = None,
    domains_only: bool | None = None,
    role_id: str | None = None,
    system: bool | None = None,
) -> list[Assignment]:
    """Assignments as stored. ``system``: True only system ones, False none of
    them, None both (unless a target is named)."""
    out: list[Assignment] = []
    if system is not True:
        query = select(RoleAssignment, Project.is_domain).join(
            Project, Project.id == RoleAssignment.project_id
        )
        if user_id is not None and group_ids is not None:
            query = query.where(
                (RoleAssignment.user_id == user_id) | RoleAssignment.group_id.in_(group_ids)
            )
        elif user_id is not None:
            query = query.where(RoleAssignment.user_id == user_id)
        elif group_ids is not None:
            query = query.where(RoleAssignment.group_id.in_(group_ids))
        if target_id is not None:
            query = query.where(RoleAssignment.project_id == target_id)
        if domains_only is not None:
            query = query.where(Project.is_domain.is_(domains_only))
        if role_id is not None:
            query = query.where(RoleAssignment.role == role_id)
        for a, is_domain in session.execute(query.order_by(RoleAssignment.id)):
            out.append(Assignment(a.role, a.user_id, a.group_id, a.project_id, bool(is_domain)))
    if system is True or (system is None and target_id is None and domains_only is None):
        if group_ids is None or user_id is not None:
            users = select(SystemRoleAssignment)
            if user_id is not None:
                users = users.where(SystemRoleAssignment.user_id == user_id)
            for s in session.scalars(users):
                out.append(Assignment(s.role, s.user_id, None, None, False))
        if user_id is None or group_ids is not None:
            groups = select(SystemGroupRoleAssignment)
            if group_ids is not None:
                groups = groups.where(SystemGroupRoleAssignment.group_id.in_(group_ids))
            for g in session.scalars(groups):
                out.append(Assignment(g.role, None, g.group_id, None, False))
        if role_id is not None:
            out = [a for a in out if a.target_id is not None or a.role_id == role_id]
    return out


def effective_assignments(
    session: Session,
    *,
    user_id: str | None = None,
    target_id: str | None = None,
    domains_only: bool | None = None,
    role_id: str | None = None,
) -> list[Assignment]:
    """Keystone's effective mode on projects and domains: group assignments
    become one per member, implied roles are added (each naming its prior
    role), domain-specific roles are left out."""
    group_ids = _groups_of(session, user_id) if user_id is not None else None
    stored = direct_assignments(
        session,
        user_id=user_id,
        group_ids=group_ids,
        target_id=target_id,
        domains_only=domains_only,
        system=False,
    )
    expanded: list[Assignment] = []
    for a in stored:
        if a.group_id is None:
            expanded.append(a)
            continue
        users = [user_id] if user_id is not None else _members(session, a.group_id)
        for u in users:
            expanded.append(
                Assignment(a.role_id, u, None, a.target_id, a.target_is_domain, a.group_id)
            )
    rules: dict[str, list[str]] = {}
    for prior, implied in inference_rules(session):
        rules.setdefault(prior, []).append(implied)
    result = list(expanded)
    todo = list(expanded)
    seen = set(expanded)
    while todo:
        a = todo.pop()
        for implied in rules.get(a.role_id, []):
            b = Assignment(
                implied, a.user_id, None, a.target_id, a.target_is_domain, a.via_group, a.role_id
            )
            if b not in seen:  # a cycle of rules ends here
                seen.add(b)
                result.append(b)
                todo.append(b)
    domain_roles = set(session.scalars(select(Role.id).where(Role.domain_id.is_not(None))))
    result = [a for a in result if a.role_id not in domain_roles]
    if role_id is not None:
        result = [a for a in result if a.role_id == role_id]
    return result


def effective_roles(session: Session, user_id: str, target_id: str) -> frozenset[str]:
    """The role ids a token of ``user_id`` scoped to a project or domain carries."""
    return frozenset(
        a.role_id for a in effective_assignments(session, user_id=user_id, target_id=target_id)
    )


def effective_system_roles(session: Session, user_id: str) -> frozenset[str]:
    """The role ids of a system-scoped token: the user's and its groups'
    system roles with what they imply."""
    group_ids = _groups_of(session, user_id)
    roles = {
        a.role_id
        for a in direct_assignments(session, user_id=user_id, group_ids=group_ids, system=True)
    }
    rules = inference_rules(session)
    grew = True
    while grew:
        more = {i for p, i in rules if p in roles} - roles
        roles |= more
        grew = bool(more)
    domain_roles = set(session.scalars(select(Role.id).where(Role.domain_id.is_not(None))))
    return frozenset(roles - domain_roles)


def targets_of_user(session: Session, user_id: str, *, domains: bool) -> list[Project]:
    """The enabled projects (or domains) a user holds an effective role on."""
    ids = {
        a.target_id
        for a in effective_assignments(session, user_id=user_id, domains_only=domains)
        if a.target_id is not None
    }
    if not ids:
        return []
    return list(session.scalars(select(Project).where(Project.id.in_(ids)).order_by(Project.name)))
