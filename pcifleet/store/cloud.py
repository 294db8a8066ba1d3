"""Tables of the OpenStack-compatible resources the API serves.

Identity (projects, users, role assignments, tokens), networking (networks,
subnets, ports and their fixed IPs), compute flavors with extra specs, and image
records. Hosts, PCI devices and instances live in ``pcifleet.store.models``.

Secrets are never stored: users keep an argon2 hash of their password, tokens
are kept as the SHA-256 of a random value (the value itself only goes to the
client). Timestamps are timezone-aware UTC, as in ``models.py``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pcifleet.store.base import Base
from pcifleet.store.models import UtcDateTime

# Column sizes: UUIDs as text, names as OpenStack allows them (255).
ID = 36
NAME = 255


class Project(Base):
    """A project, or a domain (``is_domain``), as Keystone keeps both in one table.

    A project's ``parent_id`` is its parent project, or its domain at the top;
    a domain has no ``domain_id`` and no ``parent_id``.
    """

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    domain_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_domain: Mapped[bool] = mapped_column(Boolean, default=False)
    parent_id: Mapped[str | None] = mapped_column(String(ID), nullable=True, index=True)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    domain_id: Mapped[str] = mapped_column(String(64), default="default")
    password_hash: Mapped[str] = mapped_column(String(NAME))
    default_project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="SET NULL"), nullable=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Keystone keeps attributes it does not model (email, description...) and
    # shows them back; so do we
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Group(Base):
    """A named set of users of a domain; its role assignments count for each member."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    domain_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(NAME))
    description: Mapped[str] = mapped_column(Text, default="")
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Role(Base):
    """A role an admin may assign. The built-in ``admin``, ``member`` and
    ``reader`` have their names as ids; policy checks those ids. A role with a
    ``domain_id`` is domain-specific: it only implies other roles and never
    shows in a token itself."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("domain_id", "name"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    domain_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ImpliedRole(Base):
    """A role inference rule: whoever holds the prior role holds the implied one."""

    __tablename__ = "implied_roles"

    prior_role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )
    implied_role_id: Mapped[str] = mapped_column(
        ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True
    )


class SystemRoleAssignment(Base):
    """A user's role on the system rather than a project."""

    __tablename__ = "system_role_assignments"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class SystemGroupRoleAssignment(Base):
    """A group's role on the system."""

    __tablename__ = "system_group_role_assignments"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(ForeignKey("roles.id", ondelete="CASCADE"), primary_key=True)


class RoleAssignment(Base):
    """A user's or a group's role (its id: ``admin``, ``member``, ``reader`` or a
    made one) on a project or a domain (a project row with ``is_domain``)."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        UniqueConstraint("user_id", "project_id", "role"),
        UniqueConstraint("group_id", "project_id", "role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=True
    )
    group_id: Mapped[str | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True, nullable=True
    )
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(64))


class Token(Base):
    """An issued token, keyed by the SHA-256 hex digest of its secret value."""

    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # None: an unscoped token, or one scoped to the system when ``system``
    project_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    system: Mapped[bool] = mapped_column(Boolean, default=False)
    # a domain-scoped token: the domain (a project row with is_domain)
    domain_id: Mapped[str | None] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), nullable=True
    )
    # how the token was proved, comma-separated: "password", "password,token"
    methods: Mapped[str] = mapped_column(String(64), default="password")
    audit_id: Mapped[str] = mapped_column(String(32))
    # the audit id of the token this one was issued from: it dies with that one
    parent_audit_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)


class LoginFailure(Base):
    """Failed password logins counted for one key (``user:<name>`` or
    ``addr:<client address>``) since ``window_start``."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime())


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(ID), index=True)
    name: Mapped[str] = mapped_column(String(NAME), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    external: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="ACTIVE")
    mtu: Mapped[int] = mapped_column(Integer, default=1500)
    # provider attributes: flat or vlan on a physical network (SR-IOV needs one)
    network_type: Mapped[str] = mapped_column(String(16), default="flat")
    physical_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    segmentation_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Subnet(Base):
    __tablename__ = "subnets"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(ID), index=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    ip_version: Mapped[int] = mapped_column(Integer, default=4)
    cidr: Mapped[str] = mapped_column(String(64))
    gateway_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # [{"start": ip, "end": ip}, ...]
    allocation_pools: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    dns_nameservers: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{"destination": cidr, "nexthop": ip}, ...] in the order given
    host_routes: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    enable_dhcp: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Port(Base):
    __tablename__ = "ports"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(ID), index=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(NAME), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    mac_address: Mapped[str] = mapped_column(String(17), unique=True)
    admin_state_up: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(16), default="DOWN")
    device_id: Mapped[str] = mapped_column(String(NAME), default="", index=True)
    device_owner: Mapped[str] = mapped_column(String(NAME), default="")
    vnic_type: Mapped[str] = mapped_column(String(32), default="normal")
    binding_host_id: Mapped[str] = mapped_column(String(NAME), default="")
    binding_profile: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    vif_type: Mapped[str] = mapped_column(String(32), default="unbound")
    vif_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Neutron's port-numa-affinity-policy: overrides the flavor's policy for
    # this port's PCI request; null leaves it to the flavor or image.
    numa_affinity_policy: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # The PCI request made for this port by the boot flow; the agent finds the
    # port's VF through it.
    pci_request_id: Mapped[str | None] = mapped_column(String(ID), nullable=True, index=True)
    # True when the boot flow created the port for a network request: it is
    # deleted with its server, a port the user made is only unbound.
    created_by_server: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())

    fixed_ips: Mapped[list[IpAllocation]] = relationship(
        cascade="all, delete-orphan", order_by="IpAllocation.ip_address", lazy="selectin"
    )


class IpAllocation(Base):
    """A fixed IP of a port; unique per subnet so no address is handed out twice."""

    __tablename__ = "ip_allocations"
    __table_args__ = (UniqueConstraint("subnet_id", "ip_address"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    port_id: Mapped[str] = mapped_column(ForeignKey("ports.id", ondelete="CASCADE"), index=True)
    subnet_id: Mapped[str] = mapped_column(ForeignKey("subnets.id", ondelete="CASCADE"))
    ip_address: Mapped[str] = mapped_column(String(64))


class Flavor(Base):
    __tablename__ = "flavors"

    id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME), unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    ram: Mapped[int] = mapped_column(Integer)
    disk: Mapped[int] = mapped_column(Integer, default=0)
    ephemeral: Mapped[int] = mapped_column(Integer, default=0)
    swap: Mapped[int] = mapped_column(Integer, default=0)
    rxtx_factor: Mapped[float] = mapped_column(Float, default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())

    extra_specs: Mapped[list[FlavorExtraSpec]] = relationship(
        cascade="all, delete-orphan", order_by="FlavorExtraSpec.key", lazy="selectin"
    )
    access: Mapped[list[FlavorAccess]] = relationship(
        cascade="all, delete-orphan", order_by="FlavorAccess.project_id", lazy="selectin"
    )


class FlavorExtraSpec(Base):
    __tablename__ = "flavor_extra_specs"

    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    value: Mapped[str] = mapped_column(String(NAME))


class FlavorAccess(Base):
    """A project allowed to see and boot a private flavor (Nova's os-flavor-access);
    goes with the flavor or the project."""

    __tablename__ = "flavor_access"

    flavor_id: Mapped[str] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class Image(Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(ID), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(NAME), nullable=True)
    owner: Mapped[str] = mapped_column(String(ID), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    visibility: Mapped[str] = mapped_column(String(16), default="shared")
    disk_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    container_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    min_disk: Mapped[int] = mapped_column(Integer, default=0)
    min_ram: Mapped[int] = mapped_column(Integer, default=0)
    protected: Mapped[bool] = mapped_column(Boolean, default=False)
    # glance's os_hidden: left out of image lists unless asked for, still usable by id
    os_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_hash_algo: Mapped[str | None] = mapped_column(String(16), nullable=True)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # free-form string properties (glance's "additional properties") and tags
    properties: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ServerDetails(Base):
    """What the compute API keeps about a server beyond ``instances``: the request
    as made (for show) and the flavor as it was at boot (Nova embeds it)."""

    __tablename__ = "server_details"

    instance_uuid: Mapped[str] = mapped_column(
        ForeignKey("instances.uuid", ondelete="CASCADE"), primary_key=True
    )
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    availability_zone: Mapped[str] = mapped_column(String(NAME), default="nova")
    # [{"port": id} | {"uuid": id}] as the client asked, or "none"
    requested_networks: Mapped[Any] = mapped_column(JSON, default=list)
    flavor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    launched_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # Nova's user-given addresses a server is reached at (stored, never acted on)
    access_ip_v4: Mapped[str | None] = mapped_column(String(64), nullable=True)
    access_ip_v6: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # the keypair named at boot, and its public key as it was then (Nova keeps
    # both: deleting the keypair later does not change the server)
    key_name: Mapped[str | None] = mapped_column(String(NAME), nullable=True)
    key_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    # the user_data given at boot or at the latest rebuild (base64, as sent)
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)


class KeyPair(Base):
    """A user's keypair (Nova's os-keypairs): the public half only; a generated
    key's private half goes to the client once and is never stored."""

    __tablename__ = "key_pairs"
    __table_args__ = (UniqueConstraint("user_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(NAME))
    type: Mapped[str] = mapped_column(String(8), default="ssh")
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
