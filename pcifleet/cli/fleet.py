"""Operator questions about the running fleet, asked of the API: ``pools``,
``capacity`` and ``explain-boot``.

They log in with a cloud of the clouds.yaml ``pcifleet up`` writes (see
``pcifleet.cli.client``) and print rich tables, or the API's JSON with
``--json``. The API does the work (``/pcifleet/v1/capacity``,
``/capacity/servers``, ``/explain/servers``), so a script gets the same answers
over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pcifleet.cli.client import FleetClient, api_options
from pcifleet.cli.errors import CliError

F = TypeVar("F", bound=Callable[..., Any])
port_option = click.option(
    "--port", "ports", metavar="PORT", multiple=True, help="An existing port (name or id)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
flavor_option = click.option("--flavor", metavar="FLAVOR", help="Flavor name or id.")
port_type_option = click.option(
    "--port-type",
    "port_types",
    metavar="VNIC_TYPE:PHYSNET",
    multiple=True,
    help="An SR-IOV port not made yet, e.g. direct:physnet1, macvtap:physnet2 or "
    "direct-physical:physnet1 (repeat for several ports).",
)


def shape_options(command: F) -> F:
    """The options that describe a server's shape (a flavor, existing and
    described SR-IOV ports), the API's and --json."""
    for option in (json_option, port_type_option, port_option, flavor_option, api_options):
        command = option(command)
    return command


def _shape_params(
    flavor: str | None, ports: tuple[str, ...], port_types: tuple[str, ...], what: str
) -> dict[str, Any]:
    """The API's query for a server shape; an error when nothing describes it."""
    if not flavor and not ports and not port_types:
        raise CliError(f"give --flavor, --port or --port-type: {what}")
    params: dict[str, Any] = {"sriov_ports": _sriov_ports(port_types), "ports": list(ports)}
    if flavor:
        params["flavor"] = flavor
    return params


def _sriov_ports(port_types: tuple[str, ...]) -> list[str]:
    """``direct:physnet1`` as the API's ``physnet1:direct``."""
    out = []
    for item in port_types:
        vnic_type, sep, physnet = item.partition(":")
        if not sep or not vnic_type or not physnet:
            raise CliError(f"--port-type {item!r} must be VNIC_TYPE:PHYSNET, e.g. direct:physnet1")
        out.append(f"{physnet}:{vnic_type}")
    return out


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _tags(tags: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items()) if k != "physical_network")


@click.command()
@api_options
@click.option("--physical-network", metavar="PHYSNET", help="Only pools on this network.")
@json_option
def pools(
    cloud: str, clouds_yaml: Path | None, physical_network: str | None, as_json: bool
) -> None:
    """Show the fleet's PCI pools: free and total devices per host and pool.

    A pool is one PF's VFs, or one PF or device, with the tags its device spec
    gave it. Hosts that are down are listed too (their status says so).
    Needs an admin cloud (default `pcifleet` of the clouds.yaml `pcifleet up`
    writes).
    """
    params: dict[str, Any] = {"include_down": "true"}
    if physical_network:
        params["physical_network"] = physical_network
    data = FleetClient(cloud, clouds_yaml).get("/pcifleet/v1/capacity", params)
    if as_json:
        _echo_json(data)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="PCI pools")
    for name in ("Host", "Status", "PF / device", "Vendor:Product", "Type", "NUMA",
                 "Physical network", "Other tags"):  # fmt: skip
        table.add_column(name)
    table.add_column("Free", justify="right")
    table.add_column("Total", justify="right")
    for host in data["hosts"]:
        status = host["status"] if host["state"] == "enabled" else f"{host['status']}, disabled"
        if not host["pools"]:
            table.add_row(host["host"], status, "(no pools)", *[""] * 7)
        for pool in host["pools"]:
            tags = pool.get("tags") or {}
            numa = pool.get("numa_node")
            table.add_row(
                host["host"],
                status,
                pool.get("parent_addr", ""),
                f"{pool['vendor_id']}:{pool['product_id']}",
                pool["dev_type"],
                "" if numa is None else str(numa),
                str(tags.get("physical_network") or ""),
                _tags(tags),
                str(pool.get("count", 0)),
                str(pool.get("total", pool.get("count", 0))),
            )
    Console().print(table)
    click.echo(f"{len(data['hosts'])} host(s); {data['free']} of {data['total']} devices free")


@click.command()
@shape_options
def capacity(
    cloud: str,
    clouds_yaml: Path | None,
    flavor: str | None,
    ports: tuple[str, ...],
    port_types: tuple[str, ...],
    as_json: bool,
) -> None:
    """How many more servers of this shape fit now, and on which hosts.

    The shape is a flavor (vCPUs, RAM, its pci_passthrough:alias devices) and
    SR-IOV ports, existing (--port) or described (--port-type). Each host is
    filled in memory until the next server no longer fits; nothing is claimed.

    \b
    Example:
      pcifleet capacity --flavor gpu.small --port-type direct:physnet1
    """
    params = _shape_params(flavor, ports, port_types, "the shape of the servers to count")
    data = FleetClient(cloud, clouds_yaml).get("/pcifleet/v1/capacity/servers", params)
    if as_json:
        _echo_json(data)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Servers that still fit")
    table.add_column("Host")
    table.add_column("More servers", justify="right")
    for host, n in sorted(data["per_host"].items(), key=lambda kv: (-kv[1], kv[0])):
        table.add_row(host, str(n))
    Console().print(table)
    click.echo(
        f"{data['servers']} more fit on {len(data['per_host'])} host(s) "
        f"({data['hosts_considered']} of {data['hosts_total']} host(s) up and with such devices)"
    )


@click.command("explain-boot")
@shape_options
def explain_boot(
    cloud: str,
    clouds_yaml: Path | None,
    flavor: str | None,
    ports: tuple[str, ...],
    port_types: tuple[str, ...],
    as_json: bool,
) -> None:
    """Dry-run a boot: for each host, which request fails which filter.

    The scheduler's own filters (host up, vCPU, RAM, PCI with NUMA) run over
    every host for a server of --flavor with these ports; nothing is claimed.
    A PCI failure names the request: the flavor's alias, or the port by name
    and id. Exits 1 when no host would take the server.

    \b
    Example:
      pcifleet explain-boot --flavor gpu.small --port vf-port
    """
    params = _shape_params(flavor, ports, port_types, "the server to explain")
    data = FleetClient(cloud, clouds_yaml).get("/pcifleet/v1/explain/servers", params)
    if as_json:
        _echo_json(data)
    else:
        _print_explain(data)
    if not data["fits"]:
        raise SystemExit(1)


def _print_explain(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    wanted = ", ".join(data["requests"]) or "no PCI devices"
    sizes = f"vcpus={data['vcpus']}, memory_mb={data['memory_mb']}"
    table = Table(title=f"Boot of {wanted} ({sizes})")
    for name in ("Host", "Verdict", "Filter", "Request", "Why"):
        table.add_column(name)
    for host in data["hosts"]:
        if host["fits"]:
            table.add_row(host["host"], "[green]fits[/green]", "", "", "")
        for i, f in enumerate(host["failures"]):
            first = i == 0
            table.add_row(
                host["host"] if first else "",
                "[red]no[/red]" if first else "",
                f["filter"],
                f["request"] or "",
                f["reason"],
            )
    Console().print(table)
    click.echo(f"{data['fits']} of {len(data['hosts'])} host(s) would take this server")
