"""`Sandbox.create` passes on what the daemon says about the new sandbox (its warnings)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from sbx import AsyncSandbox, Sandbox

from .conftest import Daemon, remove_state_dir, start_daemon


@pytest.fixture
def poolless_daemon() -> Iterator[Daemon]:
    """A daemon of the test's own without a warm pool: the session daemon's pool grows with the
    suite's bursts, and its sandboxes' caps are promises on the same disk, which would make a small
    cap's warning depend on what ran before."""
    d = start_daemon(("--warm-pool", "0"))
    try:
        yield d
    finally:
        d.stop()
        remove_state_dir(d.state_dir)


def test_a_disk_cap_beyond_the_free_space_is_created_with_a_warning(poolless_daemon: Daemon) -> None:
    url, token = poolless_daemon.url, poolless_daemon.token
    free = shutil.disk_usage(poolless_daemon.state_dir).free
    # Twice the free space: within the default overcommit (10x), but not covered by what is free.
    with Sandbox.create(disk=2 * free, timeout="1m", url=url, token=token) as sb:
        assert len(sb.warnings) == 1
        assert sb.warnings[0].startswith("disk: ") and "cap is not reserved" in sb.warnings[0]
    with Sandbox.create(disk="64MiB", timeout="1m", url=url, token=token) as sb:
        assert sb.warnings == ()


async def test_the_async_flavour_has_them_too(daemon: Daemon) -> None:
    free = shutil.disk_usage(daemon.state_dir).free
    async with await AsyncSandbox.create(disk=2 * free, timeout="1m") as sb:
        assert "cap is not reserved" in sb.warnings[0]
    async with await AsyncSandbox.create(timeout="1m") as created:
        attached = await AsyncSandbox.connect(created.id)
        assert attached.warnings == ()
        await attached.close()
