"""The dashboard in a real browser: Debian's chromium driven headless by
Selenium through Debian's chromedriver (nothing downloaded). Logs in as the
admin and as a member, finds a booted server's VF on its host's page, watches
the page refresh by itself, and saves screenshots of the main pages (the path
is printed; CI keeps the directory as an artifact)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import COMPUTE, NET
from tests.api.live import (
    ADMIN_PASSWORD,
    DEMO_PASSWORD,
    AgentThread,
    Live,
    live_server,
    token_at,
)
from tests.system import need_command, unavailable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with live_server(tmp_path_factory.mktemp("dashboard")) as server:
        agent = AgentThread(server, "compute1")
        agent.start()
        yield server
        agent.stop.set()
        agent.join(timeout=5)


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dashboard-screenshots")
    print(f"\ndashboard screenshots: {path}")
    return path


@pytest.fixture
def browser() -> Iterator[Any]:
    chromium = need_command("chromium", "chromium")
    driver_path = need_command("chromedriver", "chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        unavailable("selenium is not installed (the dev extra)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--disable-gpu"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def boot_on_a_vf(live: Live) -> dict[str, str]:
    """As the admin: a physnet1 network, a flavor, an image; as demo: a direct
    port and a server on it, waited for until ACTIVE."""
    admin = {"X-Auth-Token": live.token()}
    demo = {"X-Auth-Token": token_at(live.url, "demo", DEMO_PASSWORD, "demo")}
    with httpx.Client(base_url=live.url, timeout=30) as c:
        network = {"name": "sriov", "shared": True, "provider:network_type": "vlan",
                   "provider:physical_network": "physnet1",
                   "provider:segmentation_id": 100}  # fmt: skip
        net = c.post(f"{NET}/networks", headers=admin, json={"network": network}).json()["network"]
        subnet = {"network_id": net["id"], "cidr": "10.7.0.0/24", "ip_version": 4}
        assert c.post(f"{NET}/subnets", headers=admin, json={"subnet": subnet}).status_code == 201
        flavor = {"name": "dash.small", "ram": 512, "vcpus": 1, "disk": 1}
        flavor_id = c.post(f"{COMPUTE}/flavors", headers=admin, json={"flavor": flavor}).json()[
            "flavor"
        ]["id"]
        image = {"name": "img", "visibility": "public", "disk_format": "raw",
                 "container_format": "bare"}  # fmt: skip
        image_id = c.post("/image/v2/images", headers=admin, json=image).json()["id"]
        c.put(f"/image/v2/images/{image_id}/file", headers=admin, content=b"disk")
        port = {"network_id": net["id"], "name": "dash-vf", "binding:vnic_type": "direct"}
        port_id = c.post(f"{NET}/ports", headers=demo, json={"port": port}).json()["port"]["id"]
        server = {"name": "dash-vm", "flavorRef": flavor_id, "imageRef": image_id,
                  "networks": [{"port": port_id}]}  # fmt: skip
        resp = c.post(f"{COMPUTE}/servers", headers=demo, json={"server": server})
        assert resp.status_code == 202, resp.text
        uuid = resp.json()["server"]["id"]
        for _ in range(200):
            shown = c.get(f"{COMPUTE}/servers/{uuid}", headers=demo).json()["server"]
            if shown["status"] in ("ACTIVE", "ERROR"):
                break
            time.sleep(0.1)
        assert shown["status"] == "ACTIVE", shown
        bound = c.get(f"{NET}/ports/{port_id}", headers=admin).json()["port"]
    return {
        "uuid": uuid,
        "host": bound["binding:host_id"],
        "vf": bound["binding:profile"]["pci_slot"],
    }


def log_in(driver: Any, live: Live, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{live.url}/dashboard")
    assert driver.current_url.endswith("/dashboard/login")
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()


def test_admin_sees_the_servers_vf_on_its_host_page(live: Live, browser: Any, shots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    booted = boot_on_a_vf(live)
    log_in(browser, live, "admin", ADMIN_PASSWORD)
    # the click only starts the form's POST: wait for the page it leads to
    WebDriverWait(browser, 30).until(lambda d: not d.current_url.endswith("/login"))
    assert browser.current_url.endswith("/dashboard")
    hosts = browser.find_element(By.ID, "hosts").text
    assert booted["host"] in hosts
    assert "dash-vm" in browser.find_element(By.ID, f"server-{booted['uuid']}").text
    assert "dash.small" in browser.find_element(By.ID, "capacity").text
    browser.save_screenshot(str(shots / "fleet.png"))

    browser.find_element(By.LINK_TEXT, booted["host"]).click()
    row = browser.find_element(By.ID, f"device-{booted['vf']}")
    assert "dash-vm" in row.text and booted["uuid"] in row.text
    assert "type-VF" in row.text and "physnet1" in row.text
    browser.save_screenshot(str(shots / "host.png"))

    # the page refreshes by itself: a server deleted elsewhere frees its VF here
    stamp = browser.find_element(By.ID, "updated").text
    demo = {"X-Auth-Token": token_at(live.url, "demo", DEMO_PASSWORD, "demo")}
    gone = httpx.delete(f"{live.url}{COMPUTE}/servers/{booted['uuid']}", headers=demo)
    assert gone.status_code == 204
    WebDriverWait(browser, 30).until(
        lambda d: "dash-vm" not in d.find_element(By.ID, f"device-{booted['vf']}").text
    )
    WebDriverWait(browser, 30).until(lambda d: d.find_element(By.ID, "updated").text != stamp)
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "logout")))
    browser.find_element(By.ID, "logout").click()
    assert browser.current_url.endswith("/dashboard/login")
    browser.get(f"{live.url}/dashboard/hosts/{booted['host']}")
    assert browser.current_url.endswith("/dashboard/login")


def test_a_member_sees_only_their_servers_and_no_fleet(
    live: Live, browser: Any, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    log_in(browser, live, "demo", "wrong password")
    assert "Log in failed" in browser.find_element(By.ID, "login-error").text
    browser.save_screenshot(str(shots / "login-failed.png"))
    log_in(browser, live, "demo", DEMO_PASSWORD)
    WebDriverWait(browser, 30).until(lambda d: not d.current_url.endswith("/login"))
    assert browser.current_url.endswith("/dashboard")
    assert "Servers of project demo" in browser.page_source
    assert not browser.find_elements(By.ID, "hosts")
    browser.save_screenshot(str(shots / "member.png"))
    browser.get(f"{live.url}/dashboard/hosts/compute1")
    assert "for admins only" in browser.page_source
