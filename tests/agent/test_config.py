from pathlib import Path

import pytest

from pcifleet.agent.config import AgentConfigError, agent_config


def test_config_from_toml_section_and_overrides(tmp_path: Path) -> None:
    cred = tmp_path / "credential"
    cred.write_text("s3cret\n")
    raw = {
        "agent": {
            "controller": "http://c:8774",
            "host": "h1",
            "credential_file": str(cred),
            "driver": "xml",
            "state_dir": str(tmp_path),
            "report_interval": 10,
        }
    }
    cfg = agent_config(raw, host="h2")
    assert (cfg.controller, cfg.host, cfg.credential, cfg.report_interval) == (
        "http://c:8774",
        "h2",
        "s3cret",
        10.0,
    )
    assert cfg.driver_options() == {"state_dir": tmp_path}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"agent": {"credential": "x"}}, "controller URL is not set"),
        ({"agent": {"controller": "http://c"}}, "no host credential"),
        ({"agent": {"controller": "http://c", "credential": "x", "driver": "vmware"}}, "driver"),
        (
            {"agent": {"controller": "http://c", "credential": "x", "report_interval": "often"}},
            "report_interval",
        ),
        (
            {"agent": {"controller": "http://c", "credential": "x", "report_interval": 0}},
            "positive",
        ),
        (
            {"agent": {"controller": "http://c", "credential_file": "/nonexistent/x"}},
            "credential_file",
        ),
        ({"agent": "yes"}, "must be a table"),
    ],
)
def test_bad_config_names_the_setting(
    raw: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PCIFLEET_AGENT_CREDENTIAL", raising=False)
    with pytest.raises(AgentConfigError, match=message):
        agent_config(raw)


def test_sweep_interval_and_console_dir(tmp_path: Path) -> None:
    base = {"controller": "http://c", "credential": "x", "state_dir": str(tmp_path)}
    cfg = agent_config({"agent": base})
    assert (cfg.sweep_interval, cfg.console_dir) == (300.0, tmp_path / "console")
    cfg = agent_config({"agent": {**base, "sweep_interval": 0, "console_dir": "/var/log/pf"}})
    assert (cfg.sweep_interval, cfg.console_dir) == (0.0, Path("/var/log/pf"))
    for bad, message in (
        ({"sweep_interval": -1}, "sweep_interval must be 0"),
        ({"sweep_interval": "daily"}, "sweep_interval must be a float"),
        ({"console_dir": "logs"}, "console_dir must be an absolute path"),
    ):
        with pytest.raises(AgentConfigError, match=message):
            agent_config({"agent": {**base, **bad}})


def test_bridges_are_plugged_by_default_only_on_a_real_libvirt_host() -> None:
    base = {"controller": "http://c", "credential": "x"}
    assert agent_config({"agent": {**base, "driver": "libvirt"}}).plug_bridges is True
    assert agent_config({"agent": {**base, "driver": "xml"}}).plug_bridges is False
    test_driver = {**base, "driver": "libvirt", "libvirt_uri": "test:///default"}
    assert agent_config({"agent": test_driver}).plug_bridges is False
    cfg = agent_config(
        {
            "agent": {
                **base,
                "driver": "xml",
                "plug_bridges": True,
                "physical_interface_mappings": ["physnet1:eth1", "physnet2:bond0"],
            }
        }
    )
    assert cfg.plug_bridges is True
    assert dict(cfg.physical_interface_mappings) == {"physnet1": "eth1", "physnet2": "bond0"}
    for bad, message in (
        ({"plug_bridges": "yes"}, "plug_bridges must be true or false"),
        ({"physical_interface_mappings": "physnet1:eth1"}, "must be a list of strings"),
        ({"physical_interface_mappings": ["physnet1"]}, "is not physical_network:interface"),
    ):
        with pytest.raises(AgentConfigError, match=message):
            agent_config({"agent": {**base, **bad}})


def test_the_agent_plugs_bridges_only_when_configured(tmp_path: Path) -> None:
    from pcifleet.agent.agent import Agent
    from pcifleet.agent.bridges import LinuxBridges, NoHostNetworking
    from pcifleet.virt import get_driver

    base = {"controller": "http://c", "credential": "x", "driver": "xml"}
    driver = get_driver("xml", state_dir=tmp_path)
    off = Agent(agent_config({"agent": base}), [], client=object(), driver=driver)  # type: ignore[arg-type]
    assert isinstance(off.networking, NoHostNetworking)
    raw = {"agent": {**base, "plug_bridges": True, "physical_interface_mappings": ["p:eth1"]}}
    on = Agent(agent_config(raw), [], client=object(), driver=driver)  # type: ignore[arg-type]
    assert isinstance(on.networking, LinuxBridges) and on.networking.mappings == {"p": "eth1"}
