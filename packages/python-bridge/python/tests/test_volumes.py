"""Volumes and snapshots from Python (issue 15): every call, and its refusals, against a real daemon."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from sbx import AsyncClient, AsyncSandbox, Client, InUseError, InvalidOptionError, Sandbox, UnsupportedError, VolumeNotFoundError

from .conftest import Daemon

MIB = 2**20


def _slug(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def test_volume_lifecycle_and_data_across_sandboxes(daemon: Daemon) -> None:
    client = Client()
    slug = _slug("py")
    vol = client.volumes.create(slug, "32MiB", region="ord")
    assert vol.id.startswith("vol_") and vol.slug == slug and vol.region == "ord"
    assert vol.capacity == 32 * MIB and vol.mounted_by is None and vol.base_snapshot is None

    with Sandbox.create(volumes={"/data": slug}) as sb:
        sb.sh("echo kept > /data/f")
        assert client.volumes.get(slug).mounted_by == sb.id  # type: ignore[union-attr]
        with pytest.raises(InUseError, match=f"cannot mount volume '{slug}': it is mounted by {sb.id}"):
            Sandbox.create(volumes={"/other": slug})
        with pytest.raises(InUseError, match=f"cannot delete volume '{slug}'"):
            client.volumes.delete(slug)
    with Sandbox.create(volumes={"/home/user/data": vol.id}) as sb:
        assert sb.sh("cat data/f").text() == "kept"

    grown = client.volumes.resize(slug, "64MiB")
    assert grown.capacity == 64 * MIB
    assert [v.id for v in client.volumes.list(search=slug).items] == [vol.id]
    client.volumes.delete(slug)
    assert client.volumes.get(slug) is None
    with pytest.raises(VolumeNotFoundError, match=f"no volume '{slug}'"):
        client.volumes.delete(slug)


def test_refusals(daemon: Daemon) -> None:
    client = Client()
    with pytest.raises(InvalidOptionError, match="slug"):
        client.volumes.create("Bad_Slug", "16MiB")
    with pytest.raises(InvalidOptionError, match="capacity"):
        client.volumes.create(_slug("tiny"), 1024)
    slug = _slug("paths")
    client.volumes.create(slug, "16MiB")
    for path in ("/etc", "/usr/local", "/proc/1", "/.sbx", "/data/../etc", "relative", "/home/user"):
        with pytest.raises(InvalidOptionError, match=r"params\.volumes\["):
            Sandbox.create(volumes={path: slug})
    with pytest.raises(VolumeNotFoundError, match="no volume or snapshot 'nope-nope'"):
        Sandbox.create(volumes={"/data": "nope-nope"})
    client.volumes.delete(slug)


def test_pages(daemon: Daemon) -> None:
    client = Client()
    stem = _slug("pg")
    made = [client.volumes.create(f"{stem}-{i}", "16MiB") for i in range(3)]
    page = client.volumes.list(search=stem, limit=2)
    assert page.has_more and [v.slug for v in page.items] == [f"{stem}-0", f"{stem}-1"]
    assert [v.id for v in page] == [v.id for v in made]
    nxt = page.get_next_page()
    assert nxt is not None and not nxt.has_more and nxt.get_next_page() is None
    for v in made:
        client.volumes.delete(v.id)


async def test_async_volume_and_snapshot_calls(daemon: Daemon) -> None:
    client = AsyncClient()
    slug = _slug("apy")
    await client.volumes.create(slug, "16MiB")
    async with await AsyncSandbox.create(volumes={"/data": slug}) as sb:
        await sb.sh("echo one > /data/f")
        await sb.kill()
    snap = await client.volumes.snapshot(slug, slug=_slug("snap"))
    assert snap.id.startswith("snap_") and snap.volume is not None and snap.volume.id == (await client.volumes.get(slug)).id  # type: ignore[union-attr]
    assert (await client.snapshots.get(snap.slug)).id == snap.id  # type: ignore[union-attr]
    assert [s.id async for s in await client.snapshots.list(search=snap.slug)] == [snap.id]
    await client.snapshots.delete(snap.id)
    assert await client.snapshots.get(snap.id) is None
    await client.volumes.delete(slug)


def test_sandbox_snapshot(daemon: Daemon) -> None:
    client = Client()
    with Sandbox.create() as sb:
        sb.sh("echo saved > /home/user/f")
        snap = sb.snapshot(slug=_slug("sbx"))
        assert snap.sandbox == sb.id and snap.volume is None
    vol = client.volumes.create(_slug("restored"), "256MiB", from_snapshot=snap.id)
    assert vol.base_snapshot is not None and vol.base_snapshot.id == snap.id
    with Sandbox.create(volumes={"/restored": vol.slug}) as sb:
        assert sb.sh("cat /restored/home/f").text() == "saved"
    client.volumes.delete(vol.id)
    client.snapshots.delete(snap.id)


def test_deno_entry_point_has_volumes(daemon: Daemon) -> None:
    from sbx import DenoDeploy

    sdk = DenoDeploy()
    slug = _slug("deno")
    sdk.volumes.create(slug, "16MiB")
    with sdk.sandbox.create(volumes={"/data": slug}) as sb:
        sb.sh("echo via-deno > /data/f")
    with Sandbox.create(volumes={"/data": slug}) as sb:
        assert sb.sh("cat /data/f").text() == "via-deno"
    sdk.volumes.delete(slug)
    assert sdk.snapshots.get("nope-nope") is None


T = TypeVar("T")
MINI_ROOT = (Path(__file__).parents[3] / "daemon" / "test" / "volumes" / "mini-root.sh").read_text()


def _retry_in_use(fn: Callable[[], T]) -> T:
    """Calls ``fn`` until the volume it needs is no longer held by a sandbox that is ending."""
    for _ in range(100):
        try:
            return fn()
        except InUseError:
            time.sleep(0.05)
    return fn()


def test_root_from_a_snapshot_and_a_volume(daemon: Daemon) -> None:
    client = Client()
    slug = _slug("pyroot")
    client.volumes.create(slug, "256MiB")
    with Sandbox.create(volumes={"/data": slug}) as sb:
        sb.spawn("bash", args=["-c", MINI_ROOT]).output()
    snap = _retry_in_use(lambda: client.volumes.snapshot(slug, slug=f"{slug}-s"))

    with Sandbox.create(root=snap.slug) as a, Sandbox.create(root=snap.id) as b:
        assert a.sh("cat /etc/os-release").text() == "ID=sbx-mini"
        a.sh("echo from-a > /var/scratch/seed")
        assert a.sh("cat /var/scratch/seed").text() == "from-a"
        assert b.sh("cat /var/scratch/seed").text() == "from-image"
        # sudo: uid 0 of the sandbox's own user namespace, only where it booted from an image.
        assert a.sh("id -u; echo $HOME", sudo=True).text() == "0\n/root"
        assert a.spawn("id", args=["-u"], sudo=True).output().stdout_text == "0\n"
        assert a.sh("id -u").text() == "1000"
    with Sandbox.create() as plain, pytest.raises(UnsupportedError, match="sudo: this sandbox has no root to run as"):
        plain.sh("id -u", sudo=True)

    with _retry_in_use(lambda: Sandbox.create(root=slug)) as sb:
        sb.sh("echo kept > /var/scratch/note")
        with pytest.raises(InUseError, match=f"cannot mount volume '{slug}': it is mounted by {sb.id}"):
            Sandbox.create(root=slug)
    with _retry_in_use(lambda: Sandbox.create(root=slug)) as sb:
        assert sb.sh("cat /var/scratch/note").text() == "kept"
    with pytest.raises(VolumeNotFoundError, match="no volume or snapshot 'no-such-root'"):
        Sandbox.create(root="no-such-root")
