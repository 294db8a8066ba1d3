"""First users of a fresh store: the admin and a demo tenant.

``bootstrap`` is idempotent: run again it finds what exists, sets the given
passwords again (so a rewritten clouds.yaml stays right) and adds what is
missing. There is one domain, ``Default`` (id ``default``), as keystone has.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from pcifleet.api.deps import ADMIN, MEMBER
from pcifleet.api.security import hash_password, new_password
from pcifleet.store.cloud import Project, RoleAssignment, User

DEFAULT_DOMAIN_ID = "default"
DEFAULT_DOMAIN_NAME = "Default"
SERVICE_PROJECT = "service"


@dataclass(frozen=True)
class Credentials:
    """What a clouds.yaml entry needs."""

    username: str
    password: str
    project_name: str
    user_domain_name: str = DEFAULT_DOMAIN_NAME
    project_domain_name: str = DEFAULT_DOMAIN_NAME


@dataclass(frozen=True)
class BootstrapResult:
    admin: Credentials
    demo: Credentials


def ensure_project(session: Session, name: str, description: str = "") -> Project:
    project = session.scalar(
        select(Project).where(Project.name == name, Project.domain_id == DEFAULT_DOMAIN_ID)
    )
    if project is None:
        project = Project(
            id=uuid.uuid4().hex,
            name=name,
            description=description,
            domain_id=DEFAULT_DOMAIN_ID,
            parent_id=DEFAULT_DOMAIN_ID,
        )
        session.add(project)
        session.flush()
    return project


def ensure_user(session: Session, name: str, password: str, project: Project, role: str) -> User:
    """A user with ``password`` and ``role`` on ``project``, created or updated."""
    user = session.scalar(
        select(User).where(User.name == name, User.domain_id == DEFAULT_DOMAIN_ID)
    )
    if user is None:
        user = User(id=uuid.uuid4().hex, name=name, password_hash=hash_password(password))
        user.default_project_id = project.id
        session.add(user)
        session.flush()
    else:
        user.password_hash = hash_password(password)
        user.enabled = True
    exists = session.scalar(
        select(RoleAssignment).where(
            RoleAssignment.user_id == user.id,
            RoleAssignment.project_id == project.id,
            RoleAssignment.role == role,
        )
    )
    if exists is None:
        session.add(RoleAssignment(user_id=user.id, project_id=project.id, role=role))
    return user


def bootstrap(
    engine: Engine,
    admin_password: str,
    demo_password: str | None = None,
    *,
    admin_user: str = "admin",
    admin_project: str = "admin",
    demo_user: str = "demo",
    demo_project: str = "demo",
) -> BootstrapResult:
    """Create (or refresh) the admin and the demo member; returns their credentials.

    ``demo_password`` None makes a new random password, which replaces the old one.
    """
    demo_password = demo_password or new_password()
    with Session(engine) as session, session.begin():
        admin_p = ensure_project(session, admin_project, "Bootstrap project for the admin")
        ensure_user(session, admin_user, admin_password, admin_p, ADMIN)
        demo_p = ensure_project(session, demo_project, "A tenant for trying pcifleet")
        ensure_user(session, demo_user, demo_password, demo_p, MEMBER)
        # keystone deployments have one; agents use host credentials, not users
        ensure_project(session, SERVICE_PROJECT, "Project for service users")
    return BootstrapResult(
        admin=Credentials(admin_user, admin_password, admin_project),
        demo=Credentials(demo_user, demo_password, demo_project),
    )


def clouds_yaml(url: str, result: BootstrapResult, *, region: str = "RegionOne") -> dict[str, Any]:
    """A clouds.yaml document with clouds ``pcifleet`` (the admin) and
    ``pcifleet-demo`` (the demo member) for the API at ``url``."""

    def cloud(creds: Credentials) -> dict[str, Any]:
        return {
            "auth": {
                "auth_url": url,
                "username": creds.username,
                "password": creds.password,
                "project_name": creds.project_name,
                "user_domain_name": creds.user_domain_name,
                "project_domain_name": creds.project_domain_name,
            },
            "region_name": region,
            "identity_api_version": 3,
        }

    return {"clouds": {"pcifleet": cloud(result.admin), "pcifleet-demo": cloud(result.demo)}}
