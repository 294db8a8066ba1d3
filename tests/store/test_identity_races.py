"""Identity writes that race: the check before an insert can be stale, and the
unique keys then decide. A name another writer took is ``NameInUse`` (a 409,
never a 500); a row an idempotent PUT asks for that another writer added is
simply there. Each test plays the other writer by skipping the check."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from pcifleet.store import groups, identity
from pcifleet.store.assignments import Actor, add_once, assign, effective_roles
from pcifleet.store.cloud import Group, GroupMember, RoleAssignment


def test_a_name_taken_since_the_check_is_name_in_use(engine: Engine) -> None:
    with Session(engine) as session:
        groups.create_group(session, "ops", "default", "", {})
        session.commit()
        twin = Group(id="twin", name="ops", domain_id="default", description="", extra={})
        with pytest.raises(identity.NameInUse):
            identity.insert_named(session, twin, "group")
        session.rollback()
        # the same name in another domain is another group
        other = identity.create_project(session, "other", is_domain=True)
        groups.create_group(session, "ops", other.id, "", {})
        session.commit()
        assert session.scalar(select(func.count()).select_from(Group)) == 2


def test_a_grant_added_since_the_check_is_kept_once(engine: Engine) -> None:
    with Session(engine) as session:
        project = identity.create_project(session, "p")
        user = identity.create_user(
            session, "u", "!", enabled=True, default_project_id=None, extra={}
        )
        team = groups.create_group(session, "team", "default", "", {})
        session.commit()
        ids = (project.id, user.id, team.id)
        assign(session, Actor(group_id=team.id), project.id, "member")
        groups.add_member(session, team.id, user.id)
        session.commit()
        add_once(session, RoleAssignment(group_id=ids[2], project_id=ids[0], role="member"))
        add_once(session, GroupMember(group_id=ids[2], user_id=ids[1]))
        session.commit()  # the session is usable after the refused rows
        assert session.scalar(select(func.count()).select_from(RoleAssignment)) == 1
        # the group's role counts for its member, with what it implies
        assert effective_roles(session, ids[1], ids[0]) == {"member", "reader"}
