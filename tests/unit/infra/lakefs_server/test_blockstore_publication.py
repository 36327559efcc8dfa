"""Block publication never replaces a block, by either of its two system calls (issue 14, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.lakefs_server import blockstore
from infra.lakefs_server.blockstore import AlreadyWritten, LocalBlockStore, move_no_clobber


@pytest.fixture(params=["renameat2", "link"])
def system_call(request, monkeypatch):
    if request.param == "link":
        monkeypatch.setattr(blockstore, "_RENAMEAT2", None)  # as on a system without renameat2
    elif blockstore._RENAMEAT2 is None:
        pytest.skip("this system has no renameat2; the link path is the one in use")
    return request.param


def test_a_move_onto_an_existing_name_changes_nothing(tmp_path: Path, system_call) -> None:
    first, second, target = tmp_path / "first", tmp_path / "second", tmp_path / "target"
    first.write_bytes(b"first")
    second.write_bytes(b"second")

    assert move_no_clobber(first, target)
    assert not move_no_clobber(second, target)
    assert target.read_bytes() == b"first"


def test_a_second_writer_to_one_address_is_refused_and_leaves_no_temporary_file(
    tmp_path: Path, system_call
) -> None:
    store = LocalBlockStore(tmp_path / "blocks", tmp_path / "tmp")
    address = "local://ns/data/abc"
    first, second = store.writer(address), store.writer(address)
    first.write(b"committed")
    second.write(b"attacker")

    first.finish()
    with pytest.raises(AlreadyWritten):
        second.finish()

    assert b"".join(store.read(address, 0, 9)) == b"committed"
    assert not list((tmp_path / "tmp").iterdir())
