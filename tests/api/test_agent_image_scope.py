"""An agent's credential reads only the images its host needs: those of live
servers on it; any other image, private or public, is unknown to it."""

from __future__ import annotations

from typing import Any

from tests.api.agent import FakeAgent
from tests.api.conftest import Tokens
from tests.api.helpers import COMPUTE, Api
from tests.api.test_servers import MV, boot, boot_env

V1 = "/pcifleet/v1"


def private_image(api: Api, token: str) -> str:
    body = {"name": "secret", "disk_format": "raw", "container_format": "bare"}
    image: dict[str, Any] = api.post("/image/v2/images", token=token, json=body).json()
    resp = api.put(f"/image/v2/images/{image['id']}/file", token=token, content=b"secret")
    assert resp.status_code == 204, resp.text
    return str(image["id"])


def read(api: Api, agent: FakeAgent, image_id: str) -> int:
    url = f"{V1}/hosts/{agent.host}/images/{image_id}/file"
    status: int = api.get(url, headers=agent.headers).status_code
    return status


def test_an_agent_reads_the_images_of_its_hosts_servers_only(api: Api, tokens: Tokens) -> None:
    env = boot_env(api, tokens)
    secret = private_image(api, tokens.alice)
    first = FakeAgent(api, tokens.admin, "compute1")
    first.report()
    # before any server, even the public boot image is none of its business
    assert read(api, first, env["image"]) == 404
    resp = boot(api, tokens.demo, env, [{"uuid": env["net"]["id"]}])
    assert resp.status_code == 202, resp.text
    server_id = resp.json()["server"]["id"]
    first.run_all()
    second = FakeAgent(api, tokens.admin, "compute2")
    second.report()
    assert read(api, first, env["image"]) == 200
    assert read(api, second, env["image"]) == 404
    assert read(api, first, secret) == 404
    assert read(api, second, secret) == 404
    # the admin's token reads any image for any host, as before
    url = f"{V1}/hosts/compute2/images/{secret}/file"
    assert api.get(url, token=tokens.admin).status_code == 200
    # once the server is gone, so is its host's reason to read the image
    assert (
        api.delete(f"{COMPUTE}/servers/{server_id}", token=tokens.demo, headers=MV).status_code
        == 204
    )
    first.run_all()
    assert read(api, first, env["image"]) == 404
