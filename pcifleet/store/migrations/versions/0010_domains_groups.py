"""Identity: domains, nested projects, groups, group and domain role
assignments, implied roles, domain-specific roles, domain-scoped tokens.

Revision ID: 0010_domains_groups
Revises: 0009_hardening
Create Date: 2026-11-27

A domain is a project row with ``is_domain`` set, as Keystone stores it: one
table gives ``/v3/projects?is_domain=true`` and ``/v3/domains`` the same
entities, and a role assignment on a domain is one on that row. ``Default``
(id ``default``) becomes such a row. A project's ``parent_id`` is its parent
project, or its domain at the top of the tree; a domain has neither parent nor
domain. Names are unique per domain (projects, users, groups, roles; domain
names and global role names among themselves, checked by the store because a
unique constraint does not hold across NULLs).

``admin`` implies ``member`` implies ``reader`` become rows of
``implied_roles`` instead of code, so they show as Keystone's role inference
rules and work like any made by an admin.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_domains_groups"
down_revision: str | None = "0009_hardening"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("is_domain", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("parent_id", sa.String(36), nullable=True))
        batch.alter_column("domain_id", existing_type=sa.String(64), nullable=True)
        batch.drop_constraint("uq_projects_name", type_="unique")
        batch.create_unique_constraint("uq_projects_domain_id_name", ["domain_id", "name"])
        batch.create_index("ix_projects_parent_id", ["parent_id"])
    op.execute("UPDATE projects SET parent_id = domain_id")
    projects = sa.table(
        "projects",
        sa.column("id", sa.String),
        sa.column("name", sa.String),
        sa.column("domain_id", sa.String),
        sa.column("description", sa.Text),
        sa.column("enabled", sa.Boolean),
        sa.column("tags", sa.JSON),
        sa.column("is_domain", sa.Boolean),
        sa.column("parent_id", sa.String),
    )
    op.bulk_insert(
        projects,
        [
            {
                "id": "default",
                "name": "Default",
                "domain_id": None,
                "description": "The default domain",
                "enabled": True,
                "tags": [],
                "is_domain": True,
                "parent_id": None,
            }
        ],
    )
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_name", type_="unique")
        batch.create_unique_constraint("uq_users_domain_id_name", ["domain_id", "name"])
    with op.batch_alter_table("roles") as batch:
        batch.add_column(sa.Column("domain_id", sa.String(64), nullable=True))
        batch.drop_constraint("uq_roles_name", type_="unique")
        batch.create_unique_constraint("uq_roles_domain_id_name", ["domain_id", "name"])
    op.create_table(
        "groups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("domain_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_groups")),
        sa.UniqueConstraint("domain_id", "name", name=op.f("uq_groups_domain_id_name")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_group_members_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_group_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f("pk_group_members")),
    )
    op.create_index(op.f("ix_group_members_user_id"), "group_members", ["user_id"])
    with op.batch_alter_table("role_assignments") as batch:
        batch.alter_column("user_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(sa.Column("group_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            "fk_role_assignments_group_id_groups",
            "groups",
            ["group_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_unique_constraint(
            "uq_role_assignments_group_id_project_id_role", ["group_id", "project_id", "role"]
        )
        batch.create_index("ix_role_assignments_group_id", ["group_id"])
    op.create_table(
        "system_group_role_assignments",
        sa.Column("group_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["groups.id"],
            name=op.f("fk_system_group_role_assignments_group_id_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role"],
            ["roles.id"],
            name=op.f("fk_system_group_role_assignments_role_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "role", name=op.f("pk_system_group_role_assignments")),
    )
    implied = op.create_table(
        "implied_roles",
        sa.Column("prior_role_id", sa.String(64), nullable=False),
        sa.Column("implied_role_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["prior_role_id"],
            ["roles.id"],
            name=op.f("fk_implied_roles_prior_role_id_roles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["implied_role_id"],
            ["roles.id"],
            name=op.f("fk_implied_roles_implied_role_id_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("prior_role_id", "implied_role_id", name=op.f("pk_implied_roles")),
    )
    op.bulk_insert(
        implied,
        [
            {"prior_role_id": "admin", "implied_role_id": "member"},
            {"prior_role_id": "member", "implied_role_id": "reader"},
        ],
    )
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("domain_id", sa.String(36), nullable=True))
        batch.create_foreign_key(
            "fk_tokens_domain_id_projects", "projects", ["domain_id"], ["id"], ondelete="CASCADE"
        )


def downgrade() -> None:
    # what the older schema cannot hold goes: other domains and what is in
    # them, groups, domain tokens and assignments
    op.execute("DELETE FROM tokens WHERE domain_id IS NOT NULL")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_constraint("fk_tokens_domain_id_projects", type_="foreignkey")
        batch.drop_column("domain_id")
    op.drop_table("implied_roles")
    op.drop_table("system_group_role_assignments")
    op.execute("DELETE FROM role_assignments WHERE group_id IS NOT NULL")
    op.execute(
        "DELETE FROM role_assignments WHERE project_id IN (SELECT id FROM projects WHERE is_domain)"
    )
    with op.batch_alter_table("role_assignments") as batch:
        batch.drop_index("ix_role_assignments_group_id")
        batch.drop_constraint("uq_role_assignments_group_id_project_id_role", type_="unique")
        batch.drop_constraint("fk_role_assignments_group_id_groups", type_="foreignkey")
        batch.drop_column("group_id")
        batch.alter_column("user_id", existing_type=sa.String(36), nullable=False)
    op.drop_index(op.f("ix_group_members_user_id"), table_name="group_members")
    op.drop_table("group_members")
    op.drop_table("groups")
    op.execute("DELETE FROM roles WHERE domain_id IS NOT NULL")
    with op.batch_alter_table("roles") as batch:
        batch.drop_constraint("uq_roles_domain_id_name", type_="unique")
        batch.create_unique_constraint("uq_roles_name", ["name"])
        batch.drop_column("domain_id")
    op.execute("DELETE FROM users WHERE domain_id <> 'default'")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_domain_id_name", type_="unique")
        batch.create_unique_constraint("uq_users_name", ["name"])
    op.execute("DELETE FROM projects WHERE domain_id IS NULL OR domain_id <> 'default'")
    with op.batch_alter_table("projects") as batch:
        batch.drop_index("ix_projects_parent_id")
        batch.drop_constraint("uq_projects_domain_id_name", type_="unique")
        batch.create_unique_constraint("uq_projects_name", ["name"])
        batch.alter_column("domain_id", existing_type=sa.String(64), nullable=False)
        batch.drop_column("parent_id")
        batch.drop_column("is_domain")
