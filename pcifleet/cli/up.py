"""``pcifleet up``: the whole system on one machine, ready for the openstack CLI."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from pcifleet.cli.errors import CliError

log = logging.getLogger("pcifleet.up")
WORKER_HEALTHCHECK_SECONDS = 60
PHYSNET_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def _physnet(value: str) -> str:
    if not PHYSNET_RE.match(value):
        raise click.BadParameter(
            f"{value[:80]!r} is not a physical network name (1 to 64 of letters, digits, '_.:-')"
        )
    return value


@click.command()
@click.option("--port", default=8774, show_default=True, help="TCP port of the API.")
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the database, images, clouds.yaml and simulated hosts live "
    "[default: the user's data directory, ~/.local/share/pcifleet].",
)
@click.option(
    "--database",
    metavar="URL",
    default=None,
    help="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@db/pcifleet "
    "[default: SQLite in --data-dir].",
)
@click.option(
    "--hosts",
    "host_count",
    type=click.IntRange(0, 64),
    default=3,
    show_default=True,
    help="Simulated compute hosts to run (0: the API only).",
)
@click.option(
    "--layout",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Host layout (TOML) of the simulated hosts [default: the sample host].",
)
@click.option(
    "--build-timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds a server may stay building before it goes to ERROR (0: never).",
)
@click.option(
    "--reconcile-interval",
    type=click.FloatRange(min=0),
    default=15.0,
    show_default=True,
    help="Seconds between reconciler passes (0: no reconciler).",
)
@click.option(
    "--virt",
    type=click.Choice(["xml", "libvirt"]),
    default="xml",
    show_default=True,
    help="What the simulated hosts run: xml (domain files, nothing runs) or libvirt (real "
    "QEMU domains on this machine's libvirtd; VF netdevs made as veths, needs root).",
)
@click.option(
    "--libvirt-uri",
    "libvirt_uris",
    metavar="[HOST=]URI",
    multiple=True,
    help="libvirt of --virt libvirt and --local [default: qemu:///system]. Repeat as "
    "HOST=URI to give a simulated host its own libvirtd: hosts whose URIs name an "
    "address (qemu+tcp://127.0.0.3/system) live-migrate between them.",
)
@click.option(
    "--local",
    is_flag=True,
    help="No simulated hosts: one agent for this machine (its real /sys, libvirt), "
    "like DevStack's all-in-one. Device specs and aliases come from --config.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="pcifleet.toml ([pci] device_spec and alias, [agent]) or a nova.conf with a "
    "[pci] section. With --local it describes this machine; for simulated hosts its "
    "device specs and aliases replace the layout's ([agent] applies to --local only).",
)
@click.option(
    "--qbh-physical-network",
    "qbh_physical_networks",
    metavar="PHYSNET",
    multiple=True,
    callback=lambda _ctx, _param, value: tuple(_physnet(v) for v in value),
    help="A physical network whose VFs sit behind an 802.1Qbh switch: its direct and "
    "macvtap ports bind as vif_type 802.1qbh with the binding:profile profileid an admin "
    "sets. Repeat for several.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="API processes sharing the port and the job queue (more than 1 needs "
    "PostgreSQL); the agents stay in this process.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log requests and agent activity.")
def up(
    port: int,
    bind: str,
    data_dir: Path | None,
    database: str | None,
    host_count: int,
    layout: Path | None,
    build_timeout: float,
    reconcile_interval: float,
    virt: str,
    libvirt_uris: tuple[str, ...],
    local: bool,
    config_path: Path | None,
    qbh_physical_networks: tuple[str, ...],
    workers: int,
    verbose: bool,
) -> None:
    """Start the API, the store and simulated hosts; print how to use them.

    Everything stays in --data-dir: a second `pcifleet up` on the same directory
    keeps the servers, ports and images the first one stored. With --virt
    libvirt or --local the servers are real QEMU domains: they keep running
    when pcifleet stops, and the next `pcifleet up` takes them back.
    """
    # Imported here, not at the top, so `pcifleet --help` and `up --help` stay fast.
    import uvicorn
    from rich.console import Console

    from pcifleet.api.app import create_app
    from pcifleet.api.bootstrap import bootstrap
    from pcifleet.api.settings import ApiSettings
    from pcifleet.cli.clouds import write_clouds_yaml
    from pcifleet.cli.database import open_store
    from pcifleet.cli.libvirt_check import check_libvirt, check_state_dir, kvm_warning
    from pcifleet.cli.libvirt_uris import parse_libvirt_uris
    from pcifleet.cli.rundir import DomainRecord, hold_lock, record_domains
    from pcifleet.cli.secrets import read_or_create_secret
    from pcifleet.cli.shutdown import AgentsFirstServer
    from pcifleet.cli.simhosts import (
        AgentThreads,
        local_agent_config,
        make_vf_netdevs,
        prepare_hosts,
        sim_agent_configs,
    )
    from pcifleet.cli.up_config import up_pci
    from pcifleet.host import HostConfigError
    from pcifleet.logcontext import configure_logging
    from pcifleet.pci import InvalidAlias, InvalidDeviceSpec
    from pcifleet.store.db import default_data_dir, default_database_url
    from pcifleet.store.private import private_dir

    if workers > 1 and not (database or "").startswith("postgresql"):
        raise CliError(
            f"--workers {workers} needs PostgreSQL (--database postgresql+psycopg://...): "
            "SQLite lets one process write at a time, so more API processes would only "
            "queue behind each other's writes"
        )
    configure_logging(verbose)
    console = Console(stderr=True)
    data_dir = (data_dir or default_data_dir()).resolve()
    real = local or virt == "libvirt"
    if not data_dir.exists():
        # owner-only; QEMU must still pass through it to the disks under hosts/
        private_dir(data_dir, traversable=real)
    lock = hold_lock(data_dir, "up")  # held while this process runs
    # released however the command ends (an in-process caller may run `up` again)
    click.get_current_context().call_on_close(lock.close)
    url = database or default_database_url(data_dir)
    ctx = click.get_current_context()
    given = ctx.get_parameter_source("host_count") is ParameterSource.COMMANDLINE
    if local and given and host_count:
        raise CliError("--local runs no simulated hosts: leave out --hosts")
    try:
        pci = up_pci(layout, config_path, local)
    except (HostConfigError, InvalidAlias, InvalidDeviceSpec) as exc:
        raise CliError(str(exc)) from None
    try:
        uris = parse_libvirt_uris(libvirt_uris)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    libvirt_uri = uris.default
    host_config, host_layout, specs = pci.host_config, pci.layout, pci.specs
    for note in pci.notes:
        console.print(f"note: {note}")
    domain_type = ""
    if real:
        for each in dict.fromkeys([uris.default, *uris.per_host.values()]):
            with console.status(f"connecting to {each}"):
                domain_type = check_libvirt(each)
        # Before anything is written: QEMU must reach the disks made under here.
        agent_section = host_config.raw.get("agent", {}) if host_config and local else {}
        state_root = (agent_section if isinstance(agent_section, dict) else {}).get("state_dir")
        check_state_dir(libvirt_uri, Path(state_root) if state_root else data_dir / "hosts")
        warning = kvm_warning()
        if warning:
            console.print(f"[yellow]warning:[/yellow] {warning}")
    base_url = f"http://{bind}:{port}"
    with console.status("preparing the store"):
        engine = open_store(url)
        admin_password, _ = read_or_create_secret(data_dir / "admin-password")
        demo_password, _ = read_or_create_secret(data_dir / "demo-password")
        creds = bootstrap(engine, admin_password, demo_password)
    if local:
        configs = [local_agent_config(engine, base_url, data_dir, host_config, libvirt_uri)]
        if not specs:
            console.print(
                "[yellow]warning:[/yellow] no device specs (--config \\[pci] device_spec): "
                "this host offers no PCI devices, only plain servers"
            )
        where = f"this machine as host {configs[0].host}"
    else:
        with console.status(f"preparing {host_count} simulated host(s)"):
            hosts = prepare_hosts(engine, data_dir, host_layout, host_count, virt)
            if virt == "libvirt":
                made = make_vf_netdevs(hosts)
                if made:
                    console.print(f"made {made} VF netdevs as veth interfaces")
        unknown = sorted(set(uris.per_host) - {h.name for h in hosts})
        if unknown:
            raise CliError(f"--libvirt-uri names no simulated host: {', '.join(unknown)}")
        configs = sim_agent_configs(base_url, hosts, virt, uris, data_dir)
        where = f"{len(hosts)} simulated host(s), {virt}"
    if real:
        for config in configs:
            check_state_dir(config.libvirt_uri, config.state_dir)
            # what `pcifleet down` will need to find this host's domains
            record_domains(
                data_dir / "hosts" / config.host,
                DomainRecord(config.libvirt_uri, config.owner, config.state_dir / "disks"),
            )
        shown = ", ".join(sorted({c.libvirt_uri for c in configs})) or libvirt_uri
        where += f"; QEMU domains ({domain_type}) on {shown}"
    settings = ApiSettings(
        database_url=url,
        data_dir=data_dir,
        public_base_url=base_url,
        aliases=pci.aliases,
        alias_source=pci.alias_source,
        build_timeout_seconds=build_timeout,
        reconcile_interval_seconds=reconcile_interval,
        qbh_physical_networks=frozenset(qbh_physical_networks),
    )
    agents = AgentThreads(configs, specs)
    clouds = write_clouds_yaml(data_dir / "clouds.yaml", base_url, creds)

    def served(app: Any, workers: int = 1) -> uvicorn.Config:
        return uvicorn.Config(
            app,
            host=bind,
            port=port,
            log_level="info" if verbose else "warning",
            log_config=None,  # uvicorn's lines go through our handler: one format
            timeout_graceful_shutdown=1,
            factory=workers > 1,
            workers=workers,
            # a worker answers the supervisor's pings only once it has imported
            # the service: seconds on a busy machine, so do not kill it for that
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        )

    def announce() -> None:
        try:
            agents.start()
        except Exception as exc:  # the API still serves; say why the hosts are missing
            console.print(f"[red]the hosts' agents could not report: {exc}[/red]")
        console.print(
            f"[bold green]pcifleet is up[/bold green] at {base_url}  "
            f"({where}; database {url.split('://')[0]})\n"
            f"  admin:     {creds.admin.username} / {creds.admin.password} (project admin)\n"
            f"  demo:      {creds.demo.username} / {creds.demo.password} (project demo)\n"
            f"  clouds:    {clouds}\n"
            f"  try:       export OS_CLIENT_CONFIG_FILE={clouds}\n"
            f"             openstack --os-cloud pcifleet hypervisor list\n"
            f"  stop with Ctrl-C"
        )

    if workers > 1:
        from functools import partial

        from pcifleet.cli.up_workers import serve_workers, worker_app

        where += f"; {workers} API processes"
        factory = partial(worker_app, settings, verbose)
        try:
            serve_workers(
                served(factory, workers),
                base_url,
                agents,
                announce,
            )
        finally:
            engine.dispose()
            lock.close()
        return
    app = create_app(settings)
    server = AgentsFirstServer(served(app), agents, app.state.draining)

    def after_start() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        announce()

    threading.Thread(target=after_start, name="pcifleet-up-start", daemon=True).start()
    try:
        server.run()
    finally:
        agents.stop()
        engine.dispose()
        lock.close()
    if not server.started:
        raise CliError(f"the API could not listen on {bind}:{port} (is the port in use?)")
