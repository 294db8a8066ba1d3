"""Identity in the store: writes that race, and a store from before domains.

Writes that race: the check before an insert can be stale, and the
unique keys then decide. A name another writer took is ``NameInUse`` (a 409,
never a 500); a row an idempotent PUT asks for that another writer added is
simply there. Each test plays the other writer by skipping the check."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from pcifleet.store import groups, identity
from pcifleet.store.assignments import Actor, add_once, assign, effective_roles
from pcifleet.store.cloud import Group, GroupMember, Project, RoleAssignment
from pcifleet.store.db import upgrade


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


def test_a_store_from_before_domains_keeps_its_tenants(blank_engine: Engine) -> None:
    """0010_domains_groups on a 0006 store: projects land under Default, which
    becomes a domain row, and a member keeps member and reader (now rules)."""
    upgrade(blank_engine, "0006_identity_admin")
    with blank_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO projects (id, name, domain_id, description, enabled, tags)"
                " VALUES ('p1', 'lab', 'default', '', :t, '[]')"
            ),
            {"t": True},
        )
        conn.execute(
            text(
                "INSERT INTO users (id, name, domain_id, password_hash, enabled, extra)"
                " VALUES ('u1', 'ann', 'default', '!', :t, '{}')"
            ),
            {"t": True},
        )
        conn.execute(
            text(
                "INSERT INTO role_assignments (user_id, project_id, role)"
                " VALUES ('u1', 'p1', 'member')"
            )
        )
    upgrade(blank_engine)
    with Session(blank_engine) as session:
        lab = session.get(Project, "p1")
        default = session.get(Project, "default")
        assert lab is not None and (lab.domain_id, lab.parent_id) == ("default", "default")
        assert default is not None and default.is_domain and default.name == "Default"
        assert effective_roles(session, "u1", "p1") == {"member", "reader"}
