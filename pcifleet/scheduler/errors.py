"""Errors of the scheduler."""

from __future__ import annotations

from collections.abc import Mapping


class NoValidHost(Exception):
    """Nothing fits; the message says which request and how many hosts failed what."""

    code = "pcifleet.no_valid_host"

    def __init__(self, message: str, hosts: int, failures: Mapping[str, int]) -> None:
        super().__init__(message)
        self.hosts = hosts
        self.failures = dict(failures)
