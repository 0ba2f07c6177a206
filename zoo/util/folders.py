"""Folders walked the one way zoo walks them: no directory symlink is followed (a link out of
the tree, or back into it, would add images that are not the folder's, or the same image to
both splits: a loop turned 20 images into 420), only regular files are kept (a FIFO would hang
the first read), and a file reached twice (a hard link, a symlink to a file listed already) is
kept once. What was left out is counted, for a warning."""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Walk:
    """The regular files found (sorted) and what was left out."""

    files: list[Path] = field(default_factory=list)
    linked_folders: int = 0  # directory symlinks, not followed
    not_regular: int = 0  # FIFOs, sockets, devices, dangling links
    repeated: int = 0  # files reached a second time

    def left_out(self) -> str | None:
        """What was left out, in words, or None."""
        counts = (
            (self.linked_folders, "folder symlink(s), not followed"),
            (self.not_regular, "entries that are not regular files"),
            (self.repeated, "file(s) reached twice, kept once"),
        )
        parts = [f"{count} {words}" for count, words in counts if count]
        return "; ".join(parts) or None


def walk(root: Path, suffixes: Collection[str], seen: set | None = None) -> Walk:
    """The regular files under `root` whose lower-case suffix is one of `suffixes`, in sorted
    order, walked without following directory symlinks; a file already in `seen` (device and
    inode, shared by the walks of one dataset) counts as reached twice."""
    found = Walk()
    seen = set() if seen is None else seen
    for folder, subfolders, names in os.walk(root):  # followlinks=False: links not entered
        subfolders.sort()
        found.linked_folders += sum(os.path.islink(os.path.join(folder, d)) for d in subfolders)
        for name in sorted(names):
            path = Path(folder, name)
            if path.suffix.lower() not in suffixes:
                continue
            try:
                info = path.stat()  # a symlink to a file counts as that file
            except OSError:
                info = None
            if info is None or not stat.S_ISREG(info.st_mode):
                found.not_regular += 1
            elif (info.st_dev, info.st_ino) in seen:
                found.repeated += 1
            else:
                seen.add((info.st_dev, info.st_ino))
                found.files.append(path)
    return found


def subfolders(folder: Path) -> tuple[list[str], int]:
    """The names of `folder`'s real subfolders (not symlinks, not hidden), sorted, and how many
    folder symlinks were passed over."""
    names, links = [], 0
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
            names.append(entry.name)
        elif entry.is_symlink() and entry.is_dir():
            links += 1
    return sorted(names), links
