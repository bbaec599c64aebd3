"""Store queries written for their index: ``children`` (the readdir page, from the index alone
when every child is in memory, read whole otherwise -- the same entries, order and objects
either way) and the paths below a folder (an index range, not a ``substr`` scan)."""

from __future__ import annotations

import gc
from pathlib import Path

from cloudgw.metadata.model import ROOT_INO
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import Kind


def test_a_page_is_the_same_whether_its_children_are_held_or_read(tmp_path: Path):
    store = MetadataStore(tmp_path / "metadata.db")
    folder = store.create(parent=ROOT_INO, name="d", kind=Kind.DIR, mode=0o755, uid=0, gid=0, listed=True)
    other = store.create(parent=ROOT_INO, name="e", kind=Kind.DIR, mode=0o755, uid=0, gid=0, listed=True)
    inos = []
    for i in range(2500):  # interleaved with another folder's children: the page is by parent, not by ino
        inos.append(store.create(parent=folder.ino, name=f"f{i}", kind=Kind.FILE, mode=0o644, uid=0, gid=0).ino)
        store.create(parent=other.ino, name=f"g{i}", kind=Kind.FILE, mode=0o644, uid=0, gid=0)
    gc.collect()

    def pages(limit: int) -> list[list]:
        out, after = [], 0
        while page := store.children(folder.ino, after, limit):
            out.append(page)
            after = page[-1].ino
        return out

    read = pages(1000)  # none held: each page read whole
    assert [c.ino for page in read for c in page] == inos and [len(p) for p in read] == [1000, 1000, 500]
    held = read  # now every child is held: the same objects, from the index alone
    again = pages(1000)
    assert all(a is b for pa, pb in zip(again, held) for a, b in zip(pa, pb))
    ahead = held[1][3]
    ahead.size = 99  # a held object is ahead of its row (a write not yet flushed): it wins
    mixed = [held[0][:500], held[1][::2]]  # some held, some not: still every child, in order
    del held, read, again
    gc.collect()
    after_gc = pages(700)
    assert [c.ino for page in after_gc for c in page] == inos
    assert [c.name for page in after_gc for c in page] == [f"f{i}" for i in range(2500)]
    by_ino = {c.ino: c for page in after_gc for c in page}
    assert all(by_ino[c.ino] is c for page in mixed for c in page) and by_ino[ahead.ino].size == 99
    assert store.children(folder.ino, inos[-1], 1000) == []
    store.close()


def test_the_paths_below_a_folder_are_exactly_those_under_it(tmp_path: Path):
    """Neighbours that sort next to ``a/`` (``a-b``, ``a.b``, ``a0``, ``ab``, ``a``) stay out;
    everything below ``a/``, at any depth and in any script, is in and moves along."""
    store = MetadataStore(tmp_path / "metadata.db")
    below = ["a/x", "a/y/z", "a/ü/ñ.txt", "a/0", "a/~"]
    beside = ["a", "a-b", "a.b", "a0", "ab", "a0/x", "b/a/x", "Ä/x"]
    for i, path in enumerate(below + beside):
        store.create(parent=ROOT_INO, name=f"n{i}", kind=Kind.FILE, mode=0o644, uid=0, gid=0, remote_path=path)
    store.add_tombstone("a/gone.txt", "r1", Kind.FILE)
    store.add_tombstone("a0/gone.txt", "r1", Kind.FILE)
    assert set(store.remote_paths_under("a")) == {"a", *below}
    in_memory = [store.by_remote_path(p) for p in ("a/y/z", "a-b")]  # held objects follow their rows
    store.move_placements("a", "moved")
    assert [i.remote_path for i in in_memory] == ["moved/y/z", "a-b"]
    placed = set(store.remote_paths_under(""))
    assert placed == {f"moved/{p[2:]}" for p in below} | set(beside)
    assert {path for path, _, _ in store.tombstones()} == {"moved/gone.txt", "a0/gone.txt"}
    store.close()


def test_a_folder_of_hard_links_pages_by_link_with_each_inode(tmp_path: Path):
    """rsnapshot's trees: every name in ``daily.1`` is a second name of a file in ``daily.0``."""
    store = MetadataStore(tmp_path / "metadata.db")
    first = store.create(parent=ROOT_INO, name="daily.0", kind=Kind.DIR, mode=0o755, uid=0, gid=0, listed=True)
    second = store.create(parent=ROOT_INO, name="daily.1", kind=Kind.DIR, mode=0o755, uid=0, gid=0, listed=True)
    files = [store.create(parent=first.ino, name=f"f{i}", kind=Kind.FILE, mode=0o644, uid=0, gid=0, size=i)
             for i in range(1500)]
    links = [store.add_link(f, second.ino, f"g{i}") for i, f in enumerate(files)]
    store.add_link(files[0], first.ino, "again")  # another folder's link stays out
    pages, after = [], 0
    while page := store.link_children(second.ino, after, 1000):
        pages.append(page)
        after = page[-1][0].id
    assert [len(p) for p in pages] == [1000, 500]
    assert [(link.id, link.name) for page in pages for link, _ in page] == [(k.id, k.name) for k in links]
    assert all(inode is f for page, start in zip(pages, (0, 1000)) for (_, inode), f in zip(page, files[start:]))
    store.close()


def test_a_database_from_before_the_partial_remote_path_index_gets_it_and_keeps_its_placements(tmp_path: Path):
    """The remote-path index leaves out the unplaced (every new file until its upload: one page
    less to write per create); a database made with the full index is moved over when opened."""
    path = tmp_path / "metadata.db"
    store = MetadataStore(path)
    placed = store.create(parent=ROOT_INO, name="a", kind=Kind.FILE, mode=0o644, uid=0, gid=0, remote_path="a")
    store.create(parent=ROOT_INO, name="new", kind=Kind.FILE, mode=0o644, uid=0, gid=0)
    store._exec("DROP INDEX inodes_remote_path")  # as cloudgw made it before
    store._exec("CREATE INDEX inodes_remote_path ON inodes (remote_path)")
    store.close()
    store = MetadataStore(path)
    (sql,) = store._exec("SELECT sql FROM sqlite_master WHERE name = 'inodes_remote_path'").fetchone()
    assert "WHERE remote_path IS NOT NULL" in sql
    plan = store._exec("EXPLAIN QUERY PLAN SELECT ino FROM inodes WHERE remote_path = ?", ("a",)).fetchall()
    assert "inodes_remote_path" in str(plan)
    assert store.by_remote_path("a").ino == placed.ino
    assert store.is_placed("a") and not store.is_placed("new")
    store.close()
