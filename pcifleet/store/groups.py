"""Groups of users in the store: a group belongs to a domain, its name is unique
there, and any user (of any domain, as Keystone allows) may be a member. A
group's role assignments count for every member (``assignments``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pcifleet.store.assignments import add_once
from pcifleet.store.cloud import Group, GroupMember, User
from pcifleet.store.identity import NameInUse, insert_named, name_taken


def create_group(
    session: Session, name: str, domain_id: str, description: str, extra: dict[str, Any]
) -> Group:
    if name_taken(session, Group, name, domain_id):
        raise NameInUse("group", name)
    group = Group(
        id=uuid.uuid4().hex, name=name, domain_id=domain_id, description=description, extra=extra
    )
    insert_named(session, group, "group")
    return group


def update_group(session: Session, group: Group, changes: dict[str, Any]) -> Group:
    """``changes``: ``name`` and ``description``."""
    if "name" in changes and name_taken(session, Group, changes["name"], group.domain_id, group.id):
        raise NameInUse("group", changes["name"])
    for key, value in changes.items():
        setattr(group, key, value)
    session.flush()
    return group


def delete_group(session: Session, group: Group) -> None:
    # members and the group's assignments go by ON DELETE CASCADE; tokens need
    # nothing: a token's roles are worked out again each time it is checked
    session.delete(group)
    session.flush()


def add_member(session: Session, group_id: str, user_id: str) -> None:
    """Idempotent, as Keystone's PUT."""
    if session.get(GroupMember, (group_id, user_id)) is None:
        add_once(session, GroupMember(group_id=group_id, user_id=user_id))


def remove_member(session: Session, group_id: str, user_id: str) -> bool:
    """False when the user was not a member."""
    row = session.get(GroupMember, (group_id, user_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def is_member(session: Session, group_id: str, user_id: str) -> bool:
    return session.get(GroupMember, (group_id, user_id)) is not None


def members(session: Session, group_id: str) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == group_id)
            .order_by(User.name)
        )
    )


def groups_of(session: Session, user_id: str) -> list[Group]:
    return list(
        session.scalars(
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user_id)
            .order_by(Group.name)
        )
    )
