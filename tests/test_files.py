import os
import stat

import pytest

from pyro_vae.files import atomic_path, save_text


def test_atomic_write_replaces_whole_and_keeps_an_ordinary_mode(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    save_text("first", target)
    save_text("second", target)
    assert target.read_text() == "second"
    mask = os.umask(0o022)
    try:
        save_text("third", target)
    finally:
        os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
