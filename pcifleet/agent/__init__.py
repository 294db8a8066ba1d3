"""Layer 7: the per-host agent.

It reports its host's inventory to the controller, long-polls its task feed and
runs build and delete tasks with the configured virt driver.
"""

from pcifleet.agent.agent import Agent
from pcifleet.agent.client import ControllerClient, ControllerError
from pcifleet.agent.config import AgentConfig

__all__ = ["Agent", "AgentConfig", "ControllerClient", "ControllerError"]
