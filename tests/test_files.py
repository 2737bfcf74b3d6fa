"""Atomic writes: all or nothing, and ordinary permissions."""

import os
import stat

import pytest

from ganaug._files import atomic_path, atomic_write_text


def test_atomic_write_replaces_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="boom"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_written_file_gets_umask_permissions_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_guard_folder_claims_a_new_folder_and_accepts_the_same_settings(tmp_path):
    import json

    from ganaug._files import guard_folder

    folder = tmp_path / "out"
    assert guard_folder(folder, {"seed": 1, "n": 2}, name="s.json") is None
    assert json.loads((folder / "s.json").read_text()) == {"seed": 1, "n": 2}
    assert guard_folder(folder, {"seed": 1, "n": 3}, ["seed"], name="s.json") == {"seed": 1, "n": 2}
    (tmp_path / "empty").mkdir()
    assert guard_folder(tmp_path / "empty", {"a": 1}, write=False) is None
    assert not (tmp_path / "empty" / "settings.json").exists()


def test_guard_folder_refuses_other_settings_foreign_files_and_bad_json(tmp_path):
    from ganaug._files import guard_folder
    from ganaug.errors import GanaugConfigError

    guard_folder(tmp_path / "out", {"seed": 1, "n": 2})
    with pytest.raises(GanaugConfigError, match=r"out already holds ganaug output made with other "
                                                r"arguments \(seed: 1 there, 2 now\)\. Use a new "
                                                r"folder, or delete this one\.$"):
        guard_folder(tmp_path / "out", {"seed": 2, "n": 2})
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "me.jpg").write_bytes(b"x")
    with pytest.raises(GanaugConfigError, match=r"photos exists and is not an empty folder or a "
                                                r"cache \(no c\.json\)"):
        guard_folder(tmp_path / "photos", {"a": 1}, name="c.json", what="a cache")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "settings.json").write_text("{oops")
    with pytest.raises(GanaugConfigError, match=r"settings\.json is unreadable"):
        guard_folder(tmp_path / "bad", {"a": 1})
    # JSON that is no object (an edited export.json): a raw AttributeError ('list' has no 'get')
    for text, kind in [("[1, 2]", "array"), ("null", "null"), ('"x"', "string"), ("1", "number")]:
        (tmp_path / "bad" / "settings.json").write_text(text)
        with pytest.raises(GanaugConfigError, match=rf"settings\.json is unreadable \(it holds "
                                                    rf"a JSON {kind}, not the object ganaug "
                                                    r"writes\); delete"):
            guard_folder(tmp_path / "bad", {"a": 1})


def test_atomic_path_turns_os_errors_into_one_clear_error(tmp_path):
    import errno

    from ganaug._files import atomic_path
    from ganaug.errors import GanaugConfigError

    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(GanaugConfigError, match=r"Cannot write .*a_file/out.png: a file is in the way"), atomic_path(a_file / "out.png"):
        pass
    with pytest.raises(GanaugConfigError, match=r"Cannot write .*: it is a folder"), atomic_path(tmp_path):
        pass
    with pytest.raises(GanaugConfigError, match=r"no space left on device; free space"), atomic_path(tmp_path / "x.bin"):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(GanaugConfigError, match=r"permission denied"), atomic_path(tmp_path / "y.bin"):
        raise PermissionError(errno.EACCES, "Permission denied")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_temp_files_of_matches_the_temp_file_atomic_path_makes(tmp_path, monkeypatch):
    """RunDir and export delete only what temp_files_of finds: it must find atomic_path's own
    temp file (tempfile's naming), and nothing else."""
    from ganaug._files import temp_files_of

    seen = []
    with atomic_path(tmp_path / "last.pt") as tmp:
        tmp.write_bytes(b"half")
        seen = temp_files_of(tmp_path, "last\\.pt")
    assert seen == [tmp]
    (tmp_path / ".last.pt.tmp").write_bytes(b"the user's")
    (tmp_path / ".last.pt.abcdefghi.tmp").write_bytes(b"the user's")
    assert temp_files_of(tmp_path, "last\\.pt") == []
    assert temp_files_of(tmp_path / "missing", "last\\.pt") == []
