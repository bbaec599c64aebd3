"""The scratch table a full listing goes into (``cloudgw.metadata.listing``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cloudgw.metadata.model import ROOT_INO
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import FileAttrs, Kind, RemoteEntry


def test_every_field_of_a_listed_entry_comes_back(tmp_path: Path):
    """A field added to ``RemoteEntry`` or ``FileAttrs`` must be spilled too, or a poll would
    drop it: this fails until ``listing._row``/``_entry`` carry it."""
    entry = RemoteEntry("a/b/c.txt", Kind.SYMLINK, size=7, mtime_ns=11, rev="r1",
                        attrs=FileAttrs(mode=0o640, uid=5, gid=6, mtime_ns=12), symlink_target="../t",
                        id="item-9", hash="abc123")
    for obj in (entry, entry.attrs):
        unset = [f.name for f in dataclasses.fields(obj) if getattr(obj, f.name) == f.default]
        assert not unset, f"give {unset} a value here so the round trip checks them"
    store = MetadataStore(tmp_path / "metadata.db")
    with store.listing_spill() as spill:
        spill.add(entry)
        spill.flush()
        assert "a/b/c.txt" in spill and "a/b" not in spill
        assert spill.entry_with_id("item-9") == entry
        assert spill.has_id("item-9") and not spill.has_id("item-8")
        assert list(spill.depths()) == [2]
    store.close()


def test_the_scratch_file_is_emptied_after_each_poll_and_replaced_after_a_crash(tmp_path: Path):
    scratch = tmp_path / "metadata.db-listing"
    scratch.write_bytes(b"left behind by a crash, not a database")
    store = MetadataStore(tmp_path / "metadata.db")
    for _ in range(2):
        with store.listing_spill() as spill:
            for i in range(5000):
                spill.add(RemoteEntry(f"d/f{i:05}", Kind.FILE, size=i, rev=f"r{i}"))
            spill.flush()
            full = scratch.stat().st_size
            assert len(spill.worth_applying(1)) == 0  # below a folder not listed here: nothing to apply
        assert scratch.stat().st_size < full / 4  # the table is dropped and its pages given back
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir() if "listing" in p.name) == []  # nothing left at close


def test_new_entries_count_only_below_a_folder_listed_here(tmp_path: Path):
    """A poll before the first ``ls`` of a flat bucket builds none of its objects; once the root
    is listed, new objects in it are what the poll adopts."""
    store = MetadataStore(tmp_path / "metadata.db")
    with store.listing_spill() as spill:
        for i in range(3000):
            spill.add(RemoteEntry(f"f{i:05}", Kind.FILE, size=i, rev=f"r{i}"))
        spill.flush()
        assert spill.worth_applying(0) == []
        store.update(store.get(ROOT_INO), listed=True)
        assert [e.path for e in spill.worth_applying(0)] == [f"f{i:05}" for i in range(3000)]
    store.close()
