"""A value read from a file is used again only while the file is the same one and the tag
is the same; the least recently used go first beyond the budget."""

from __future__ import annotations

import os
from pathlib import Path

from hounsfield.archive.file_cache import FileCache, identity


def _kept(cache: FileCache[str], path: Path, value: str, tag: object = 1, size: int = 10) -> None:
    cache.put(path, identity(os.stat(path)), tag, value, size)


def test_a_value_is_used_while_its_file_and_tag_are_the_same(tmp_path: Path) -> None:
    cache: FileCache[str] = FileCache(1000)
    path = tmp_path / "doc"
    path.write_bytes(b"one")
    _kept(cache, path, "one")
    assert cache.get(path, 1) == "one"
    assert cache.get(path, 2) is None  # another version of the index
    replacement = tmp_path / "doc.new"
    replacement.write_bytes(b"two")
    os.replace(replacement, path)  # an atomic rewrite, as another process makes it
    assert cache.get(path, 1) is None
    _kept(cache, path, "two")
    assert cache.get(path, 1) == "two"
    path.unlink()
    assert cache.get(path, 1) is None


def test_a_value_read_from_a_file_replaced_since_is_not_used(tmp_path: Path) -> None:
    cache: FileCache[str] = FileCache(1000)
    path = tmp_path / "doc"
    path.write_bytes(b"one")
    before = identity(os.stat(path))
    path.write_bytes(b"changed, longer")  # written in place while the value was read
    cache.put(path, before, 1, "one", 10)
    assert cache.get(path, 1) is None


def test_the_least_recently_used_go_first(tmp_path: Path) -> None:
    cache: FileCache[str] = FileCache(25)
    paths = [tmp_path / f"f{n}" for n in range(3)]
    for n, path in enumerate(paths):
        path.write_bytes(bytes([n]))
    _kept(cache, paths[0], "a")
    _kept(cache, paths[1], "b")
    assert cache.get(paths[0], 1) == "a"  # now the most recently used
    _kept(cache, paths[2], "c")  # 30 bytes: the least recently used (b) goes
    assert [cache.get(p, 1) for p in paths] == ["a", None, "c"]
    _kept(cache, paths[1], "huge", size=26)  # larger than the whole budget: not kept
    assert cache.get(paths[1], 1) is None
    assert cache.get(paths[0], 1) == "a"
