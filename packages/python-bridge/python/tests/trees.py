"""Local directory trees for the tar and upload/download tests, and a way to compare them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["make_tree", "snapshot", "TREE_ENTRIES", "TREE_BYTES"]

#: Entries and file bytes of the tree ``make_tree`` builds.
TREE_ENTRIES = 15
TREE_BYTES = 8 + 20 + 1_300_000 + 6


def snapshot(top: Path) -> dict[str, str]:
    """Everything below ``top``: type, permission bits, owner, link count, contents or link target."""
    out: dict[str, str] = {}

    def visit(path: Path) -> None:
        st = path.lstat()
        rel = os.path.relpath(path, top)
        meta = f"{st.st_mode & 0o7777:o} {st.st_uid}:{st.st_gid}"
        if path.is_symlink():
            out[rel] = f"symlink {meta} -> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = f"dir {meta}"
            for child in sorted(os.listdir(path)):
                visit(path / child)
        elif path.is_file():
            out[rel] = f"file {meta} n{st.st_nlink} {hashlib.sha256(path.read_bytes()).hexdigest()}"
        else:
            out[rel] = f"special {meta} {st.st_mode:o}"

    visit(top)
    return out


def make_tree(src: Path) -> None:
    """Nested and empty dirs, modes (executable, private), a 1.3 MB file, an empty file, and
    relative, upward, absolute-dangling and directory symlinks."""
    (src / "bin").mkdir(parents=True)
    (src / "deep" / "er" / "est").mkdir(parents=True)
    (src / "empty-dir").mkdir()
    (src / "private").mkdir()
    (src / "readme.md").write_text("# hello\n")
    (src / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (src / "bin" / "tool").chmod(0o755)
    (src / "deep" / "er" / "est" / "data.bin").write_bytes(os.urandom(1_300_000))
    (src / "private" / "key").write_text("secret")
    (src / "private" / "key").chmod(0o600)
    (src / "private").chmod(0o750)
    (src / "empty-file").write_bytes(b"")
    (src / "empty-file").chmod(0o640)
    (src / "link-rel").symlink_to("readme.md")
    (src / "deep" / "er" / "link-up").symlink_to("../../readme.md")
    (src / "link-abs-dangling").symlink_to("/nonexistent/absolute/target")
    (src / "link-dir").symlink_to("deep/er")
    os.utime(src / "readme.md", (1_580_608_922, 1_580_608_922))
