"""Root images from Python (issue 15 item 3, ``client.images``): one real build, its progress and
what it records, and refusals (a bad name before anything runs, an unknown package after
mmdebstrap ran: nothing kept)."""

from __future__ import annotations

import os
import urllib.request
import uuid

import pytest

from sbx import AsyncClient, Client, InvalidOptionError

from .conftest import Daemon, mounts_under


def _cannot_build() -> str | None:
    """Why no image can be built on this host (the tests skip, saying so), or None."""
    if not any(os.path.exists(p) for p in ("/usr/bin/mmdebstrap", "/usr/local/bin/mmdebstrap")):
        return "mmdebstrap is missing (scripts/install.sh installs it)"
    try:
        urllib.request.urlopen(urllib.request.Request("http://deb.debian.org/debian/dists/bookworm/Release", method="HEAD"), timeout=10)
    except OSError:
        return "the Debian mirror deb.debian.org is unreachable from this host"
    return None


CANNOT_BUILD = _cannot_build()
pytestmark = pytest.mark.skipif(CANNOT_BUILD is not None, reason=CANNOT_BUILD or "")


def _slug(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def _images(daemon: Daemon) -> list[str]:
    return sorted(n for n in os.listdir(os.path.join(daemon.state_dir, "volumes")) if n.endswith(".img"))


def test_build_list_and_delete(daemon: Daemon) -> None:
    client = Client()
    slug = _slug("pyimg")
    lines: list[str] = []
    img = client.images.build(slug, packages=["jq"], capacity="1GiB", on_progress=lines.append)
    assert img.id.startswith("snap_") and img.slug == slug and img.is_bootable
    assert img.build is not None and img.build.suite == "bookworm" and img.build.packages == ["jq"]
    assert img.build.mirror == "http://deb.debian.org/debian"
    assert img.flattened_size > 100 * 2**20
    assert "I: downloading packages with apt..." in lines
    assert [s.id for s in client.images.list(search=slug)] == [img.id]
    got = client.snapshots.get(slug)
    assert got is not None and got.is_bootable
    # A volume made from it is bootable too.
    vol = client.volumes.create(_slug("pyroot"), "1GiB", from_snapshot=slug)
    assert vol.is_bootable
    client.volumes.delete(vol.id)
    client.snapshots.delete(img.id)
    assert client.images.list(search=slug) == []


async def test_refusals_leave_nothing(daemon: Daemon) -> None:
    client = AsyncClient()
    with pytest.raises(InvalidOptionError, match=r"params\.packages.*must be a Debian package name"):
        await client.images.build(_slug("bad"), packages=["../x.deb"])
    before = _images(daemon)
    slug = _slug("unknown")
    with pytest.raises(InvalidOptionError, match="Debian bookworm has no package 'sbx-no-such-package'"):
        await client.images.build(slug, packages=["sbx-no-such-package"], capacity="1GiB")
    assert await client.snapshots.get(slug) is None
    assert _images(daemon) == before
    assert mounts_under(os.path.join(daemon.state_dir, "volumes")) == []
