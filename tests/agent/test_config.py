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
