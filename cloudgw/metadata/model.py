"""The persisted per-file state model and its transition table.

A file's *content state* says how its local copy relates to the remote:

    state         local data             remote                     evictable
    ----------    -------------------    -----------------------    ---------
    REMOTE_ONLY   none cached            holds the content (rev)    -
    CLEAN         some or all cached     same content (rev)         yes
    DIRTY         complete, newer        older or nothing           never
    UPLOADING     complete, being sent   older or nothing           never
    CONFLICT      complete, newer        changed by someone else    never

Transitions (who causes them; ``TRANSITIONS`` below is this table as data, and
``MetadataStore.update`` refuses any other change of state):

    REMOTE_ONLY --fetch (read)-------------------> CLEAN         sync (engine.fetch)
    CLEAN       --eviction---------------------> REMOTE_ONLY   filesystem.eviction
    REMOTE_ONLY --write/truncate---------------> DIRTY         filesystem
    CLEAN       --write/truncate---------------> DIRTY         filesystem
    CLEAN       --remote changed---------------> REMOTE_ONLY   poller, fetch (cache dropped, new rev)
    CLEAN       --moved, other content found---> REMOTE_ONLY   sync (uploader._move)
    CLEAN       --nested rename (a -> a/b)-----> DIRTY         sync (uploader: uploaded anew)
    REMOTE_ONLY --nested rename (a -> a/b)-----> DIRTY         sync (uploader: uploaded anew)
    DIRTY       --upload starts----------------> UPLOADING     sync
    CLEAN       --remote copy lost, re-upload--> UPLOADING     sync (placement gone, data cached)
    REMOTE_ONLY --remote copy lost, re-upload--> UPLOADING     sync (an empty file: nothing to fetch)
    UPLOADING   --remote acked + committed-----> CLEAN         sync
    UPLOADING   --write during upload----------> DIRTY         filesystem (upload aborts)
    UPLOADING   --upload failed----------------> DIRTY         sync (retried with backoff)
    UPLOADING   --remote rev not ours----------> CONFLICT      sync (theirs is copied aside next)
    CONFLICT    --remote copy saved aside------> UPLOADING     sync (ours is written next)
    CONFLICT    --write------------------------> DIRTY         filesystem (the next upload meets theirs again)
    CONFLICT    --restart----------------------> DIRTY         recovery

A file stays CONFLICT while the copy of the other version cannot be saved (remote
down): ``getfattr -n user.cloudgw.state`` says so.  Staying in a state (DIRTY on
every write) is not a transition.

Crash behaviour: states are committed to SQLite (WAL) before the step they
guard.  On startup UPLOADING and CONFLICT become DIRTY again (the upload is
redone; conditional writes make a redo safe), and every DIRTY file is queued.

Placement is a second, independent fact: ``remote_path`` is where the remote
holds this inode's object now (None: nowhere yet), and on remotes with stable
item ids (``Capabilities.stable_ids``) ``remote_id`` is that object's id, so a
rename or move made elsewhere is recognised as a move (same inode, cache kept).  When it differs from the
inode's local path (after a rename) the sync engine moves the remote object.
"""

from __future__ import annotations

import enum
import stat as stat_mod
from dataclasses import dataclass

from cloudgw.remotes.base import Kind

ROOT_INO = 1


class FileState(enum.Enum):
    REMOTE_ONLY = "remote_only"
    CLEAN = "clean"
    DIRTY = "dirty"
    UPLOADING = "uploading"
    CONFLICT = "conflict"

    @property
    def has_unsynced_data(self) -> bool:
        return self in (FileState.DIRTY, FileState.UPLOADING, FileState.CONFLICT)


_S = FileState
TRANSITIONS: dict[FileState, frozenset[FileState]] = {
    _S.REMOTE_ONLY: frozenset({_S.CLEAN, _S.DIRTY, _S.UPLOADING}),
    _S.CLEAN: frozenset({_S.REMOTE_ONLY, _S.DIRTY, _S.UPLOADING}),
    _S.DIRTY: frozenset({_S.UPLOADING}),
    _S.UPLOADING: frozenset({_S.CLEAN, _S.DIRTY, _S.CONFLICT}),
    _S.CONFLICT: frozenset({_S.UPLOADING, _S.DIRTY}),
}


class IllegalTransition(RuntimeError):
    """A change of file state the table does not allow: a bug.  Raised before anything
    is written, so the state (and the data it protects) stays as it was."""


def check_transition(ino: int, old: FileState, new: FileState) -> None:
    if new is not old and new not in TRANSITIONS[old]:
        raise IllegalTransition(f"inode {ino}: {old.name} -> {new.name} is not in the state table")


KIND_TYPE_BITS = {Kind.FILE: stat_mod.S_IFREG, Kind.DIR: stat_mod.S_IFDIR, Kind.SYMLINK: stat_mod.S_IFLNK,
                  Kind.FIFO: stat_mod.S_IFIFO, Kind.SOCKET: stat_mod.S_IFSOCK, Kind.CHAR_DEVICE: stat_mod.S_IFCHR,
                  Kind.BLOCK_DEVICE: stat_mod.S_IFBLK}


@dataclass(slots=True, weakref_slot=True)
class Inode:
    """One row of the ``inodes`` table.  Mutate only through ``MetadataStore.update``."""

    ino: int
    parent: int | None  # None: root, or unlinked while still open
    name: str
    kind: Kind
    mode: int  # permission bits only; type bits come from kind
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    target: str | None  # symlink target
    state: FileState
    remote_path: str | None  # where the remote holds this object now
    remote_rev: str | None  # the remote revision our local copy is based on
    listed: bool  # directories: children loaded from the remote
    data_version: int  # bumped by every write/truncate: detects changes during upload
    needs_sync: bool  # something (content, placement, existence) awaits the sync engine
    remote_id: str | None = None  # the remote's stable item id where it has ids: a move made elsewhere stays a move
    rdev: int = 0  # device number of a character or block device
    nlink: int = 1  # names: 1 + its rows in ``links`` (hard links); 0 once unlinked (only still open)

    @property
    def st_mode(self) -> int:
        return KIND_TYPE_BITS[self.kind] | (self.mode & 0o7777)

    @property
    def is_dir(self) -> bool:
        return self.kind is Kind.DIR


@dataclass(slots=True)
class Link:
    """One extra name of an inode (a hard link): a row of the ``links`` table.

    The inode row keeps its first name; each further name lives here with its own
    placement on the remote, since every remote holds each name as an ordinary object
    (a server-side copy, a real hard link on file://, an upload elsewhere).  A name's
    content is its inode's: it follows the inode's state.  ``based_on`` is the inode's
    ``remote_rev`` whose bytes the name's object holds: the object is current while the
    two agree.  Not in the identity map: read afresh where needed (rows are few).
    """

    id: int  # also its readdir offset (``LINK_OFFSET + id``)
    ino: int
    parent: int
    name: str
    remote_path: str | None = None
    remote_rev: str | None = None
    remote_id: str | None = None
    based_on: str | None = None
    needs_sync: bool = True

    def current(self, inode: Inode) -> bool:
        """Placed, settled, and holding the inode's bytes as the remote has them now."""
        return (self.remote_path is not None and not self.needs_sync and inode.remote_rev is not None
                and self.based_on == inode.remote_rev)
