"""Builds the sbx package like pyproject.toml says, and records the sbx checkout it is built
from: with no daemon running and no SBX_DAEMON_BIN, the SDK starts that checkout's CLI
(packages/daemon/dist/cli.js) instead of failing because `sbx` is not on PATH."""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PACKAGES = Path(__file__).resolve().parents[2]


class BuildPyRecordingCheckout(build_py):
    def run(self) -> None:
        super().run()
        # pip builds a local directory in place, so this file sits in the checkout; a build from
        # an sdist or a copy elsewhere has no checkout above it and records nothing.
        cli = PACKAGES / "daemon" / "dist" / "cli.js"
        in_checkout = (PACKAGES / "daemon" / "package.json").is_file()
        target = Path(self.build_lib) / "sbx" / "_checkout.py"
        target.write_text(
            "# written by setup.py when this package was built: the sbx CLI of the checkout it came from\n"
            f"CLI = {str(cli) if in_checkout else None!r}\n"
        )


setup(cmdclass={"build_py": BuildPyRecordingCheckout})
