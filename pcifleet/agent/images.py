"""Checking a downloaded image against what Glance recorded for it.

The build task carries the image's ``size``, md5 ``checksum`` and, when the
controller has one, its ``os_hash_algo``/``os_hash_value`` (sha512 in Glance's
default). The digests are fed chunk by chunk while the download streams, so a
multi-GB image is read once; each recorded value that is present must match.
"""

from __future__ import annotations

import hashlib

from pcifleet.virt.tasks import TaskImage


class ImageCorrupt(Exception):
    """The downloaded bytes are not the image the controller described."""


class ImageDigests:
    """Running size and digests of one download, checked against ``expect``."""

    def __init__(self, expect: TaskImage | None) -> None:
        self.expect = expect
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        algo = None if expect is None else expect.os_hash_algo
        want_hash = expect is not None and expect.os_hash_value is not None
        # Glance's default algorithm when a value comes without its name.
        self._algo = (algo or "sha512") if want_hash else None
        self._hash = None if self._algo is None else hashlib.new(self._algo)

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._md5.update(chunk)
        if self._hash is not None:
            self._hash.update(chunk)

    def check(self, image_id: str) -> None:
        """Raise ``ImageCorrupt`` naming the first value that does not match."""
        expect = self.expect
        if expect is None:
            return
        if expect.size is not None and self.size != expect.size:
            raise ImageCorrupt(
                f"image {image_id}: downloaded {self.size} bytes, the image has {expect.size}"
            )
        if expect.checksum is not None and self._md5.hexdigest() != expect.checksum:
            raise ImageCorrupt(
                f"image {image_id}: md5 {self._md5.hexdigest()} does not match "
                f"the image's checksum {expect.checksum}"
            )
        if self._hash is not None and self._hash.hexdigest() != expect.os_hash_value:
            raise ImageCorrupt(
                f"image {image_id}: {self._algo} {self._hash.hexdigest()[:16]}... does not "
                f"match the image's os_hash_value {str(expect.os_hash_value)[:16]}..."
            )
