"""Errors of the scheduler."""

from __future__ import annotations

from collections.abc import Mapping

from pcifleet.pci import PciRequestsUnsatisfiable


class NoValidHost(PciRequestsUnsatisfiable):
    """Nothing fits; the message says which request and how many hosts failed what.

    A PciRequestsUnsatisfiable, so code that handles the model's "cannot meet
    these requests" (as a single-host claim raises it) handles this too.
    """

    code = "pcifleet.no_valid_host"

    def __init__(self, message: str, hosts: int, failures: Mapping[str, int]) -> None:
        super().__init__(message)
        self.hosts = hosts
        self.failures = dict(failures)
