from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from agent.volumes.atomic_writer import AtomicWriter, FileProjection
from agent.volumes.errors import SourceError


def files(**contents: str) -> dict[str, FileProjection]:
    return {name.replace("__", "/"): FileProjection(text.encode(), 0o644)
            for name, text in contents.items()}


def ts_dirs(target: Path) -> list[str]:
    return sorted(e.name for e in target.iterdir()
                  if e.name.startswith("..") and e.name not in ("..data", "..data_tmp"))


def test_layout_is_a_timestamped_dir_a_data_link_and_one_link_per_top_level_name(
        tmp_path: Path) -> None:
    assert AtomicWriter(tmp_path).write(files(a="1", sub__deep__b="2"))
    [ts] = ts_dirs(tmp_path)
    assert ts.startswith("..20") and len(ts.split(".")) == 4
    assert os.readlink(tmp_path / "..data") == ts
    assert os.readlink(tmp_path / "a") == "..data/a"
    assert os.readlink(tmp_path / "sub") == "..data/sub"
    assert (tmp_path / "a").read_text() == "1"
    assert (tmp_path / "sub" / "deep" / "b").read_text() == "2"
    assert (tmp_path / ts).stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["..data", ts, "a", "sub"])


def test_an_update_swaps_data_and_removes_the_old_version_and_vanished_names(
        tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(files(a="1", b="2", dir__x="3"))
    [old] = ts_dirs(tmp_path)
    assert writer.write(files(a="changed", c="new"))
    [new] = ts_dirs(tmp_path)
    assert new != old and not (tmp_path / old).exists()
    assert os.readlink(tmp_path / "..data") == new
    assert (tmp_path / "a").read_text() == "changed"
    assert (tmp_path / "c").read_text() == "new"
    assert not os.path.lexists(tmp_path / "b") and not os.path.lexists(tmp_path / "dir")


def test_nothing_is_written_when_nothing_changed(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(files(a="1", b="2"))
    before = ts_dirs(tmp_path)
    assert not writer.write(files(a="1", b="2"))
    assert ts_dirs(tmp_path) == before


def test_missing_visible_links_are_recreated_without_a_rewrite(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(files(a="1"))
    before = ts_dirs(tmp_path)
    (tmp_path / "a").unlink()
    assert writer.write(files(a="1"))
    assert ts_dirs(tmp_path) == before and (tmp_path / "a").read_text() == "1"


def test_modes_are_exact_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        AtomicWriter(tmp_path).write({"x": FileProjection(b"x", 0o644),
                                      "y": FileProjection(b"y", 0o400),
                                      "z": FileProjection(b"z", 0o755)})
    finally:
        os.umask(old)
    modes = {n: (tmp_path / n).stat().st_mode & 0o7777 for n in "xyz"}
    assert modes == {"x": 0o644, "y": 0o400, "z": 0o755}


def test_leftovers_of_an_interrupted_write_are_cleaned(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    writer.write(files(a="1"))
    (tmp_path / "..2020_01_01_00_00_00.123").mkdir()
    os.symlink("..2020_01_01_00_00_00.123", tmp_path / "..data_tmp")
    writer.write(files(a="2"))
    assert len(ts_dirs(tmp_path)) == 1 and (tmp_path / "a").read_text() == "2"


@pytest.mark.parametrize(("path", "message"), [
    ("", 'invalid path: must not be empty: ""'),
    ("/etc/passwd", "invalid path: must be relative path: /etc/passwd"),
    ("a/../../x", "invalid path: must not contain '..': a/../../x"),
    ("..data", "invalid path: must not start with '..': ..data"),
    ("x" * 256, "invalid path: filenames must be less than or equal to 255 characters"),
])
def test_paths_that_could_escape_or_collide_are_refused(tmp_path: Path, path: str,
                                                        message: str) -> None:
    with pytest.raises(SourceError) as info:
        AtomicWriter(tmp_path).write({path: FileProjection(b"", 0o644)})
    assert str(info.value) == message
    assert list(tmp_path.iterdir()) == []


def test_a_reader_never_sees_a_half_written_file(tmp_path: Path) -> None:
    writer = AtomicWriter(tmp_path)
    size = 256 * 1024
    versions = [bytes([ord("a") + i % 26]) * size for i in range(40)]
    writer.write({"big": FileProjection(versions[0], 0o644),
                  "pair": FileProjection(b"0", 0o644)})
    seen: set[bytes] = set()
    bad: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                data = (tmp_path / "big").read_bytes()
            except FileNotFoundError:  # the old version was removed mid-lookup; retry
                continue
            if data not in versions:
                bad.append(data[:16] + b"... len=%d" % len(data))
            seen.add(data[:1])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for index, version in enumerate(versions[1:], 1):
            writer.write({"big": FileProjection(version, 0o644),
                          "pair": FileProjection(str(index).encode(), 0o644)})
    finally:
        done.set()
        thread.join()
    assert bad == []
    assert len(seen) > 1  # the reader really overlapped the updates
    assert (tmp_path / "big").read_bytes() == versions[-1]
    assert len(ts_dirs(tmp_path)) == 1
