"""Identity administration: roles as rows, system role assignments, user extras.

Revision ID: 0006_identity_admin
Revises: 0005_migrations
Create Date: 2026-11-27

Keystone's v3 API names roles by id and lets an admin make new ones, so roles
become rows. The three built-in roles keep their names as their ids, which is
what ``role_assignments.role`` already holds, so existing assignments stay
valid. ``system_role_assignments`` records roles given on the system (Keystone's
``/v3/system/users/{id}/roles``). ``users.extra`` keeps the free attributes
Keystone echoes back (``email``, ``description``, ...). Tokens may be unscoped
(no project: good only for listing one's projects and rescoping) or scoped to the
system (``tokens.system``), as Keystone issues them; the other services accept
project-scoped tokens only. ``tokens.methods`` remembers how a token was
proved, so a rescoped token lists ``password`` and ``token`` as Keystone's does.
Projects keep Keystone's tags. Servers keep Nova's ``accessIPv4``/``accessIPv6``.
``flavor_access`` lists the projects a private flavor is shared with (Nova's
os-flavor-access); images keep glance's ``os_hidden``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_identity_admin"
down_revision: str | None = "0005_migrations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILT_IN_ROLES = ("admin", "member", "reader")


def upgrade() -> None:
    roles = op.create_table(
        "roles",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roles")),
        sa.UniqueConstraint("name", name=op.f("uq_roles_name")),
    )
    op.bulk_insert(roles, [{"id": r, "name": r, "description": None} for r in BUILT_IN_ROLES])
    op.create_table(
        "system_role_assignments",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_system_role_assignments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role"],
            ["roles.id"],
            name=op.f("fk_system_role_assignments_role_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role", name=op.f("pk_system_role_assignments")),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("extra", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("tokens") as batch:
        batch.alter_column("project_id", existing_type=sa.String(36), nullable=True)
        batch.add_column(
            sa.Column("system", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("methods", sa.String(64), nullable=False, server_default="password")
        )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("tags", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("server_details") as batch:
        batch.add_column(sa.Column("access_ip_v4", sa.String(64), nullable=True))
        batch.add_column(sa.Column("access_ip_v6", sa.String(64), nullable=True))
    op.create_table(
        "flavor_access",
        sa.Column("flavor_id", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(
            ["flavor_id"],
            ["flavors.id"],
            name=op.f("fk_flavor_access_flavor_id_flavors"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_flavor_access_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("flavor_id", "project_id", name=op.f("pk_flavor_access")),
    )
    op.create_index(
        op.f("ix_flavor_access_project_id"), "flavor_access", ["project_id"], unique=False
    )
    with op.batch_alter_table("images") as batch:
        batch.add_column(
            sa.Column("os_hidden", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("os_hidden")
    op.drop_index(op.f("ix_flavor_access_project_id"), table_name="flavor_access")
    op.drop_table("flavor_access")
    with op.batch_alter_table("server_details") as batch:
        batch.drop_column("access_ip_v6")
        batch.drop_column("access_ip_v4")
    op.execute("DELETE FROM tokens WHERE project_id IS NULL")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("methods")
        batch.drop_column("system")
        batch.alter_column("project_id", existing_type=sa.String(36), nullable=False)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("extra")
    op.drop_table("system_role_assignments")
    op.drop_table("roles")
