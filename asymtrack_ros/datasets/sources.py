"""Read files of a repository from a work tree or from a git directory (bare or `.git`).

A snapshot of a repository that commits its images can be a plain clone or only its git
directory; both answer the same two questions: which files lie in a folder, and their bytes.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Union


def is_git_dir(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir()


class WorkTree:
    """Files of a checked-out repository."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def list_folder(self, folder: str) -> List[str]:
        base = self.root / folder
        if not base.is_dir():
            raise FileNotFoundError(f"{base}: no such folder")
        return sorted(p.name for p in base.iterdir() if p.is_file())

    def exists(self, path: str) -> bool:
        return (self.root / path).is_file()

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"WorkTree({self.root})"


class GitDir:
    """Files of HEAD in a git directory, read through one `git cat-file --batch` process."""

    def __init__(self, git_dir: Path, rev: str = "HEAD") -> None:
        self.git_dir = Path(git_dir)
        self.rev = rev
        self._blobs: Dict[str, str] = {}
        self._proc: Optional[subprocess.Popen] = None

    def _git(self, *args: str) -> str:
        cmd = ["git", f"--git-dir={self.git_dir}", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def _tree(self, folder: str) -> Dict[str, str]:
        folder = folder.strip("/")
        out = self._git("ls-tree", "-z", f"{self.rev}:{folder}" if folder else self.rev)
        entries = {}
        for record in filter(None, out.split("\0")):
            meta, name = record.split("\t", 1)
            _mode, kind, sha = meta.split()
            if kind == "blob":
                entries[name] = sha
                self._blobs[f"{folder}/{name}" if folder else name] = sha
        return entries

    def list_folder(self, folder: str) -> List[str]:
        try:
            return sorted(self._tree(folder))
        except subprocess.CalledProcessError:
            raise FileNotFoundError(f"{self.git_dir}: no folder {folder!r} at {self.rev}") from None

    def _sha(self, path: str) -> Optional[str]:
        path = path.strip("/")
        if path not in self._blobs:
            parent, _, name = path.rpartition("/")
            try:
                self._tree(parent)
            except subprocess.CalledProcessError:
                return None
        return self._blobs.get(path)

    def exists(self, path: str) -> bool:
        return self._sha(path) is not None

    def read(self, path: str) -> bytes:
        sha = self._sha(path)
        if sha is None:
            raise FileNotFoundError(f"{self.git_dir}: no file {path!r} at {self.rev}")
        if self._proc is None:
            cmd = ["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"]
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(sha.encode() + b"\n")
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().split()
        if len(header) != 3:
            raise OSError(f"git cat-file: unexpected answer {header!r} for {path}")
        data = self._proc.stdout.read(int(header[2]))
        self._proc.stdout.read(1)
        return data

    def close(self) -> None:
        if self._proc is not None:
            self._proc.stdin.close()  # type: ignore[union-attr]
            self._proc.wait()
            self._proc = None

    def __repr__(self) -> str:
        return f"GitDir({self.git_dir})"


Source = Union[WorkTree, GitDir]


def open_source(path: Union[str, Path]) -> Source:
    """A work tree when `path` holds checked-out files, else its git directory (bare or `.git`)."""
    path = Path(path)
    if is_git_dir(path):
        return GitDir(path)
    if (path / ".git").is_dir() and not any(p.name != ".git" for p in path.iterdir()):
        return GitDir(path / ".git")
    if path.is_dir():
        return WorkTree(path)
    raise FileNotFoundError(f"{path}: neither a work tree nor a git directory")


def find_repository(root: Union[str, Path], repository: str) -> Path:
    """Where `owner/name` lies under `root`: owner+name/repo, owner+name, owner/name or name."""
    owner, _, name = repository.partition("/")
    root = Path(root)
    for candidate in (root / f"{owner}+{name}" / "repo", root / f"{owner}+{name}", root / owner / name,
                      root / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"{repository}: not found under {root} (tried owner+name/repo, owner+name, "
                            "owner/name, name)")
