"""The filesystem: namespace operations (lookup, mkdir, rename, unlink, xattrs...).

Kernel-free and testable in-process; ``cloudgw.fuse`` is a thin adapter over it.
Data operations (open/read/write/release) live in ``cloudgw.filesystem.data``.

Concurrency: every method runs in the trio thread.  Methods that await (first
listing of a directory, fetching data) re-read what they need after the await;
everything between awaits is atomic with respect to other requests and to the
sync engine, and each metadata change is one SQLite transaction.

Crash behaviour: a namespace change is committed (row + tombstone in one
transaction) before the kernel gets its reply; the remote follows later via
the sync engine.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections import Counter
from typing import Any

from cloudgw.cache.files import CacheFiles
from cloudgw.errors import RemoteError
from cloudgw.filesystem import acl
from cloudgw.filesystem.ports import FsError, SyncPort, name_too_long
from cloudgw.metadata.model import ROOT_INO, FileState, Inode, Link
from cloudgw.metadata.store import MetadataStore
from cloudgw.remotes.base import READ_ONLY_REV, Kind

log = logging.getLogger(__name__)

STATE_XATTR = "user.cloudgw.state"
SELINUX_XATTR = "security.selinux"  # kept; its absence answers EOPNOTSUPP: see Namespace._none_errno
CAPABILITY_XATTR = "security.capability"  # a file capability (setcap); a write removes it, as on every Linux fs
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
LINK_OFFSET = 1 << 62  # readdir offsets of hard links: LINK_OFFSET + link id (first names: their ino)
MAX_LINKS = 65000  # EMLINK beyond, as ext4


def _check_name(name: str) -> None:
    if name_too_long(name):
        raise FsError(errno.ENAMETOOLONG)
    if "/" in name or name in ("", ".", ".."):
        raise FsError(errno.EINVAL)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 (os.fsdecode'd): the metadata store holds UTF-8 names
        raise FsError(errno.EINVAL) from None


class Namespace:
    """Names, attributes and extended attributes."""

    def __init__(self, store: MetadataStore, cache: CacheFiles, sync: SyncPort, *, read_only: bool = False,
                 fixed_root: bool = False, acls: bool = False) -> None:
        self.store = store
        self.cache = cache
        self.sync = sync
        self.read_only = read_only
        self.fixed_root = fixed_root  # several remotes as top-level folders: the root is not ours to change
        self.acls = acls  # POSIX ACLs honoured (mount --acl: the kernel then checks access with them)
        self.lookups: Counter[int] = Counter()  # kernel lookup counts
        self.open_count: Counter[int] = Counter()  # open file handles per inode
        self._read_only_said: set[int] = set()
        self._rare: set[int] | None = None  # see _rare_inos
        self._capable: set[int] | None = None  # see holds_capability

    # -- helpers ----------------------------------------------------------------------

    def inode(self, ino: int) -> Inode:
        inode = self.store.get(ino)
        if inode is None:
            raise FsError(errno.ENOENT)
        return inode

    def _writable(self, *parents: int) -> None:
        if self.read_only:
            raise FsError(errno.EROFS)
        if self.fixed_root and ROOT_INO in parents:
            raise FsError(errno.EPERM)

    def content_writable(self, inode: Inode) -> None:
        """EACCES for content the remote cannot replace (``READ_ONLY_REV``: exported Google
        Docs); said once per file in the log, since the program that tried may not say why."""
        if inode.remote_rev is not None and inode.remote_rev.startswith(READ_ONLY_REV):
            if inode.ino not in self._read_only_said:
                self._read_only_said.add(inode.ino)
                log.warning("%s: read-only (an exported document: edit it in its cloud, or save a copy under "
                            "another name)", inode.remote_path or inode.name)
            raise FsError(errno.EACCES)

    async def _listed_dir(self, ino: int) -> Inode:
        directory = self.inode(ino)
        if not directory.is_dir:
            raise FsError(errno.ENOTDIR)
        if not directory.listed:
            await self.sync.ensure_listed(directory)
        return directory

    def remember(self, ino: int, count: int = 1) -> None:
        """The kernel was handed ``ino`` (``count`` more times): its object stays in memory
        until the matching FORGETs."""
        lookups = self.lookups
        known = lookups.get(ino, 0)
        lookups[ino] = known + count  # not +=: Counter.__missing__ is a Python call per new ino
        if not known:
            self.store.pin(ino)

    def forget(self, ino: int, count: int) -> None:
        left = self.lookups[ino] - count
        if left > 0:
            self.lookups[ino] = left
            return
        self.lookups.pop(ino, None)
        self.reap_if_unused(ino)
        self.store.forget(ino)  # an open handle still holds the object

    def reap_if_unused(self, ino: int) -> None:
        """Delete an unlinked inode once nobody references it any more."""
        inode = self.store.get(ino)
        if inode is None or inode.parent is not None or ino == ROOT_INO:
            return
        if self.lookups.get(ino) or self.open_count.get(ino):
            return
        self.cache.remove(ino)
        self.store.delete(inode)

    def _touch_dir(self, directory: Inode) -> None:
        now = time.time_ns()
        self.store.update(directory, mtime_ns=now, ctime_ns=now)

    # -- lookup / attributes -----------------------------------------------------------

    async def lookup(self, parent: int, name: str) -> Inode:
        if name in (".", ".."):
            return self._dot_lookup(parent, name)
        if name_too_long(name):
            raise FsError(errno.ENAMETOOLONG)  # as local filesystems answer stat/open of such a name
        directory = self.store.get(parent)
        if directory is None or not directory.listed or not directory.is_dir:
            directory = await self._listed_dir(parent)  # the rare path: errors, or a first listing
        try:
            child = self.store.lookup(directory.ino, name)
        except UnicodeEncodeError:  # not UTF-8: nothing by that name can exist (see _check_name)
            raise FsError(errno.ENOENT) from None
        if child is None:
            raise FsError(errno.ENOENT)
        self.remember(child.ino)
        return child

    def _dot_lookup(self, ino: int, name: str) -> Inode:
        """LOOKUP of "." or "..": the kernel's export code sends them (NFS re-export,
        open_by_handle_at), never a path walk.  "." in an inode of any kind turns a file
        handle's inode number back into that inode after the kernel forgot it (a remount);
        ".." in a directory reconnects it to its parent (the root is its own parent).

        An inode out of the tree (deleted, or unlinked and only still open) answers ENOENT,
        which the kernel turns into ESTALE for the handle.  Nothing is listed.  As every
        entry returned to the kernel, the answer counts one lookup (a FORGET releases it).
        """
        inode = self.store.get(ino)
        if inode is None or (inode.parent is None and ino != ROOT_INO):
            raise FsError(errno.ENOENT)
        if name == "..":
            if not inode.is_dir:
                raise FsError(errno.ENOTDIR)
            if inode.parent is not None:
                inode = self.inode(inode.parent)
        self.remember(inode.ino)
        return inode

    def getattr(self, ino: int) -> Inode:
        return self.inode(ino)

    def setattr(
        self,
        ino: int,
        *,
        mode: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        atime_ns: int | None = None,
        mtime_ns: int | None = None,
    ) -> Inode:
        """Attribute changes other than size (see ``DataOps.truncate``)."""
        self._writable()
        inode = self.inode(ino)
        changes: dict = {"ctime_ns": time.time_ns()}
        if mode is not None:
            changes["mode"] = mode & 0o7777
        if uid is not None:
            changes["uid"] = uid
        if gid is not None:
            changes["gid"] = gid
        if atime_ns is not None:
            changes["atime_ns"] = atime_ns
        if mtime_ns is not None:
            changes["mtime_ns"] = mtime_ns
        follow = self._remote_follows(inode, changes)
        with self.store.transaction():
            if mode is not None:
                self._chmod_acl(inode, mode)
            self.store.update(inode, **changes)
        self._tell_sync(inode, follow)
        return inode

    @staticmethod
    def _remote_follows(inode: Inode, changes: dict) -> str | None:
        """How the remote follows a change of attributes (``changes``, amended to be committed
        with it, so a crash cannot lose it):

        * "marker": a special file's marker carries its mode and owner: DIRTY, rewritten
          (``Uploader._sync_special``);
        * "attrs": a file or directory already on the remote (not the root: the mount's own)
          follows without its content, where the remote keeps attributes
          (``Uploader._sync_attrs``);
        * "upload": not on the remote yet: its upload or mkdir carries them -- one under way
          carries the old ones, so it is run again after (``_commit_upload`` finds them changed).
        """
        if inode.kind.is_special:
            if changes.keys() & {"mode", "uid", "gid"}:
                changes.update(state=FileState.DIRTY, needs_sync=True)
                return "marker"
            return None
        if inode.kind not in (Kind.FILE, Kind.DIR) or not any(
                key in changes and changes[key] != getattr(inode, key) for key in ("mode", "uid", "gid", "mtime_ns")):
            return None
        if inode.remote_path:
            changes["needs_sync"] = True
            return "attrs"
        return "upload"

    def _tell_sync(self, inode: Inode, follow: str | None) -> None:
        if follow == "marker":
            self.sync.content_changed(inode)
            self.sync.closed(inode)
        elif follow == "attrs":
            self.sync.placement_changed([inode])
        elif follow == "upload":
            self.sync.content_changed(inode)  # (re-arms an upload or mkdir queued or under way only)

    async def readdir(self, ino: int, after: int, limit: int = 1000) -> list[tuple[int, str, Inode]]:
        """(offset, name, inode) of the entries after offset ``after``: first names in inode
        order (offset: the ino), then hard links in link order (``LINK_OFFSET`` + id), so two
        names of one inode in one directory keep distinct, stable offsets."""
        directory = await self._listed_dir(ino)
        entries: list[tuple[int, str, Inode]] = []
        if after < LINK_OFFSET:
            entries = [(c.ino, c.name, c) for c in self.store.children(directory.ino, after, limit)]
            if len(entries) == limit:
                return entries
            after = LINK_OFFSET
        entries += [(LINK_OFFSET + link.id, link.name, inode)
                    for link, inode in self.store.link_children(directory.ino, after - LINK_OFFSET, limit - len(entries))]
        return entries

    async def opendir(self, ino: int) -> None:
        await self._listed_dir(ino)

    # -- creation ------------------------------------------------------------------------

    async def _new_child_dir(self, parent: int, name: str) -> Inode:
        self._writable(parent)
        _check_name(name)
        directory = await self._listed_dir(parent)
        if self.store.lookup(directory.ino, name) is not None:
            raise FsError(errno.EEXIST)
        self._check_remote_name(directory, name)
        return directory

    @staticmethod
    def _new_owner(directory: Inode, kind: Kind, mode: int, gid: int) -> tuple[int, int]:
        """Mode and group of a new entry, as Linux's ``inode_init_owner``: in a set-group-ID
        directory it takes the directory's group, and a new directory keeps the bit."""
        if directory.mode & stat.S_ISGID:
            gid = directory.gid
            if kind is Kind.DIR:
                mode |= stat.S_ISGID
        return mode, gid

    def _check_remote_name(self, directory: Inode, name: str, moving: Inode | None = None) -> None:
        """Refuse now a name the remote cannot hold even mapped (EINVAL, ENAMETOOLONG) or a
        case-only twin on a case-insensitive remote (EEXIST): never a doomed upload."""
        try:
            self.sync.check_name(directory, name, moving)
        except RemoteError as exc:
            raise FsError(exc.errno, str(exc)) from None

    async def _create(self, parent: int, name: str, kind: Kind, mode: int, gid: int, **row: Any) -> Inode:
        """A new entry in one transaction: its row (``row``: the store's ``create`` arguments),
        the group and ACL it inherits, and the directory's times."""
        directory = await self._new_child_dir(parent, name)
        mode, gid = self._new_owner(directory, kind, mode, gid)
        with self.store.transaction():
            child = self.store.create(parent=directory.ino, name=name, kind=kind, mode=mode, gid=gid, **row)
            self._inherit_acl(directory, child)
            self._touch_dir(directory)
        return child

    def _send_new(self, child: Inode) -> None:
        """A new symlink or special file goes to the remote like a closed new file."""
        self.sync.content_changed(child)
        self.sync.closed(child)
        self.remember(child.ino)

    async def mkdir(self, parent: int, name: str, mode: int, uid: int, gid: int) -> Inode:
        child = await self._create(parent, name, Kind.DIR, mode, gid, uid=uid, state=FileState.CLEAN, listed=True,
                                   needs_sync=True)
        self.sync.placement_changed([child])
        self.remember(child.ino)
        return child

    async def symlink(self, parent: int, name: str, target: str, uid: int, gid: int) -> Inode:
        child = await self._create(parent, name, Kind.SYMLINK, 0o777, gid, uid=uid,
                                   size=len(target.encode("utf-8", "surrogateescape")), target=target,
                                   state=FileState.DIRTY, needs_sync=True)
        self._send_new(child)
        return child

    async def mknod(self, parent: int, name: str, kind: Kind, mode: int, rdev: int, uid: int, gid: int) -> Inode:
        """A FIFO, socket or device node (the kernel checked who may make devices).  The
        kernel serves its opens itself; here it is a name with attributes, sent to the
        remote as its marker (``cloudgw.remotes.specials``) like a new symlink."""
        child = await self._create(parent, name, kind, mode, gid, uid=uid,
                                   rdev=rdev if kind in (Kind.CHAR_DEVICE, Kind.BLOCK_DEVICE) else 0,
                                   state=FileState.DIRTY, needs_sync=True)
        self._send_new(child)
        return child

    async def create_file(self, parent: int, name: str, mode: int, uid: int, gid: int) -> Inode:
        child = await self._create(parent, name, Kind.FILE, mode, gid, uid=uid, state=FileState.DIRTY,
                                   needs_sync=True)
        self.cache.new_local(child.ino)
        self.sync.content_changed(child)
        self.remember(child.ino)
        return child

    def readlink(self, ino: int) -> str:
        inode = self.inode(ino)
        if inode.kind is not Kind.SYMLINK or inode.target is None:
            raise FsError(errno.EINVAL)
        return inode.target

    # -- removal ---------------------------------------------------------------------------

    def _detach(self, inode: Inode) -> None:
        """Take ``inode`` out of the tree (inside a transaction); reap it if unreferenced.
        Its ctime moves (its link count did), as an open handle's fstat shows."""
        self.sync.removed(inode)
        self.store.update(inode, parent=None, name=f".deleted-{inode.ino}", needs_sync=False, ctime_ns=time.time_ns(),
                          nlink=0)
        self.reap_if_unused(inode.ino)

    def _dentry(self, parent: int, name: str) -> tuple[Inode, Link | None] | None:
        """What ``name`` in ``parent`` names: the inode, and the hard link if it is not the
        inode's first name."""
        child = self.store.lookup(parent, name)
        if child is None:
            return None
        if child.parent == parent and child.name == name:
            return child, None
        return child, self.store.link_named(parent, name)

    def _remove_name(self, inode: Inode, link: Link | None) -> None:
        """Remove one name of ``inode`` (inside a transaction): its last takes it out of the
        tree (``_detach``).  A hard link's object on the remote is tombstoned at its revision.

        The first name while others remain: the oldest other name takes its place (the inode
        row holds the first name).  If that name's object holds the inode's bytes as they are
        on the remote (``Link.current``), the inode takes that placement and the first name's
        object is tombstoned; otherwise the inode keeps its placement, the other name's object
        is tombstoned and the sync engine moves the inode's object onto that name (the
        rename-over path).  Either way the only object holding the current bytes is never
        the one tombstoned.
        """
        now = time.time_ns()
        if link is None:
            links = self.store.links_of(inode.ino) if inode.nlink > 1 else []
            if not links:
                self._detach(inode)
                return
            link = links[0]
            if link.current(inode):
                if inode.remote_path is not None:
                    self.sync.name_removed(inode.remote_path, inode.remote_rev, inode.kind)
                if (entry := self.cache.get(inode.ino)) is not None:  # the same bytes, under the name's revision
                    self.cache.relabel(entry, old_rev=inode.remote_rev, rev=link.remote_rev)
                self.store.promote(inode, link)
            else:
                if link.remote_path is not None:
                    self.sync.name_removed(link.remote_path, link.remote_rev, inode.kind)
                self.store.remove_link(link)
                self.store.update(inode, parent=link.parent, name=link.name, nlink=inode.nlink - 1)
            self.store.update(inode, ctime_ns=now, needs_sync=True)
            self.sync.placement_changed([inode])
            return
        self.store.remove_link(link)
        self.store.update(inode, nlink=inode.nlink - 1, ctime_ns=now)
        if link.remote_path is not None:
            self.sync.name_removed(link.remote_path, link.remote_rev, inode.kind)

    async def unlink(self, parent: int, name: str) -> None:
        self._writable(parent)
        directory = await self._listed_dir(parent)
        found = self._dentry(directory.ino, name)
        if found is None:
            raise FsError(errno.ENOENT)
        child, link = found
        if child.is_dir:
            raise FsError(errno.EISDIR)
        with self.store.transaction():
            self._remove_name(child, link)
            self._touch_dir(directory)

    async def link(self, ino: int, new_parent: int, new_name: str) -> Inode:
        """A hard link: ``new_name`` in ``new_parent`` becomes another name of ``ino``.

        One transaction (the link row, the link count, the times); the remote follows
        through the sync engine, which places the name as an object of its own
        (``Uploader._sync_links``)."""
        inode = self.inode(ino)
        if inode.is_dir:
            raise FsError(errno.EPERM)
        if inode.parent is None:
            raise FsError(errno.ENOENT)  # unlinked, only still open (as linkat of such a file)
        if inode.remote_rev is not None and inode.remote_rev.startswith(READ_ONLY_REV):
            raise FsError(errno.EPERM)  # an exported document has no second name in its cloud
        if inode.nlink >= MAX_LINKS:
            raise FsError(errno.EMLINK)
        directory = await self._new_child_dir(new_parent, new_name)
        if self.fixed_root and self._top_level(directory) != self._top_level(inode):
            raise FsError(errno.EXDEV)  # two remotes: one object cannot have names in both
        if self.store.get(ino) is not inode or inode.parent is None:  # removed while the directory was listed
            raise FsError(errno.ENOENT)
        with self.store.transaction():
            self.store.add_link(inode, directory.ino, new_name)
            self.store.update(inode, nlink=inode.nlink + 1, ctime_ns=time.time_ns())
            self._touch_dir(directory)
        self.sync.placement_changed([inode])
        self.remember(inode.ino)
        return inode

    async def rmdir(self, parent: int, name: str) -> None:
        self._writable(parent)
        directory = await self._listed_dir(parent)
        child = self.store.lookup(directory.ino, name)
        if child is None:
            raise FsError(errno.ENOENT)
        if not child.is_dir:
            raise FsError(errno.ENOTDIR)
        if not child.listed:
            await self.sync.ensure_listed(child)
        if self.store.has_children(child.ino):
            raise FsError(errno.ENOTEMPTY)
        with self.store.transaction():
            self._detach(child)
            self._touch_dir(directory)

    # -- rename -------------------------------------------------------------------------------

    async def rename(self, parent: int, name: str, new_parent: int, new_name: str, flags: int = 0) -> None:
        self._writable(parent, new_parent)
        _check_name(new_name)
        if flags & RENAME_EXCHANGE:
            raise FsError(errno.EINVAL)
        src_dir = await self._listed_dir(parent)
        dst_dir = await self._listed_dir(new_parent)
        found = self._dentry(src_dir.ino, name)
        if found is None:
            raise FsError(errno.ENOENT)
        moving, moving_link = found
        if moving.is_dir and self._is_ancestor(moving.ino, dst_dir.ino):
            raise FsError(errno.EINVAL)
        if self.fixed_root and self._top_level(src_dir) != self._top_level(dst_dir):
            raise FsError(errno.EXDEV)  # between two remotes: mv falls back to copy + delete
        if moving.is_dir:
            await self.sync.prepare_dir_move(moving)
            if self.store.lookup(src_dir.ino, name) is not moving:  # moved or removed meanwhile
                raise FsError(errno.ENOENT)
        found = self._dentry(dst_dir.ino, new_name)
        target, target_link = found if found is not None else (None, None)
        if target is not None and target.ino == moving.ino:
            return  # two names of one inode (or the name itself): POSIX says do nothing
        self._check_remote_name(dst_dir, new_name, moving)
        if target is not None:
            if flags & RENAME_NOREPLACE:
                raise FsError(errno.EEXIST)
            if target.is_dir:
                if not moving.is_dir:
                    raise FsError(errno.EISDIR)
                if not target.listed:
                    await self.sync.ensure_listed(target)
                if self.store.has_children(target.ino):
                    raise FsError(errno.ENOTEMPTY)
            elif moving.is_dir:
                raise FsError(errno.ENOTDIR)
        with self.store.transaction():
            if target is not None:
                self._remove_name(target, target_link)
            now = time.time_ns()
            if moving_link is not None:  # a hard link renamed: its own object follows
                self.store.update_link(moving_link, parent=dst_dir.ino, name=new_name, needs_sync=True)
                self.store.update(moving, ctime_ns=now)
            else:
                self.store.update(moving, parent=dst_dir.ino, name=new_name, ctime_ns=now, needs_sync=True)
            self._touch_dir(src_dir)
            if dst_dir.ino != src_dir.ino:
                self._touch_dir(dst_dir)
            moved = [moving]
            if moving.is_dir:
                moved += [i for ino in self.store.descendants(moving.ino) if (i := self.store.get(ino))]
                for inode in moved[1:]:
                    if not inode.needs_sync:
                        self.store.update(inode, needs_sync=True)
                # hard links below it: their remote paths changed too
                for link in self.store.links_in([i.ino for i in moved if i.is_dir]):
                    self.store.update_link(link, needs_sync=True)
                    moved += [i for i in (self.store.get(link.ino),) if i is not None]
        self.sync.placement_changed(moved)

    def _top_level(self, inode: Inode) -> int:
        """The top-level folder ``inode`` lies in (with a fixed root: which remote it is on)."""
        while inode.parent not in (None, ROOT_INO):
            parent = self.store.get(inode.parent)
            if parent is None:
                break
            inode = parent
        return inode.ino

    def _is_ancestor(self, ancestor: int, ino: int) -> bool:
        cur: Inode | None = self.store.get(ino)
        while cur is not None:
            if cur.ino == ancestor:
                return True
            if cur.parent is None:
                return False
            cur = self.store.get(cur.parent)
        return False

    # -- extended attributes ------------------------------------------------------------------

    # Namespaces kept (in the metadata store, on this gateway; no remote holds them):
    # ``user.*`` for everyone, ``security.*`` and ``trusted.*`` for root (the kernel checks
    # who may set them) -- Samba's ``acl_xattr`` keeps Windows ACLs in ``security.NTACL`` --
    # and, with ``acls`` (mount --acl), the POSIX ACLs (``acl``: the kernel validates them and checks
    # access with them).  Without it they are refused (EOPNOTSUPP) and stored ones are hidden: an ACL
    # the kernel would not enforce must not look as if it were.
    KEPT_NAMESPACES = ("user.", "security.", "trusted.")
    RARE = ("security.", "trusted.", "system.posix_acl_")  # answered "none" from memory: see _rare_inos

    def _acl_refused(self, name: str) -> bool:
        """An ACL name on a mount without ``--acl``: get, set and remove answer EOPNOTSUPP and
        listings hide stored ones, as on ext4 mounted ``noacl`` (an ACL the kernel would not
        enforce must not look as if it were)."""
        return not self.acls and name in acl.NAMES

    @staticmethod
    def _none_errno(name: str) -> int:
        """The answer for an attribute a file does not have: ENODATA, but EOPNOTSUPP for the
        names ``ls -l`` asks of every entry.  FUSE caches neither answer, so "none" costs a
        GETXATTR round trip per entry and name, while coreutils stops asking for the whole
        filesystem after the first "not supported" (two round trips per ``ls``, not two per
        entry).  ``security.selinux`` is still kept when set (``rsync -aX`` from an SELinux
        host, and back for a restore); SELinux itself never reads it here: it labels a FUSE
        mount from its policy and answers the name in the kernel.  The ACL names reach this
        only with ``--acl``, where "none" must stay ENODATA (getfacl then shows the mode)."""
        return errno.EOPNOTSUPP if name == SELINUX_XATTR else errno.ENODATA

    def _rare_inos(self) -> set[int]:
        """Inodes holding a ``security.*``/``trusted.*`` attribute or an ACL (loaded once): the
        kernel asks for ``security.capability`` before every write and for the access ACL on
        permission checks, and almost always the answer is "none" -- given here without a query."""
        if self._rare is None:
            self._rare = set()
            for prefix in self.RARE:
                self._rare |= self.store.inos_with_xattrs(prefix)
        return self._rare

    def holds_capability(self, ino: int) -> bool:
        """Whether ``ino`` may hold a file capability (``security.capability``), which any write
        takes away: asked on every write through a handle the kernel leaves that to us
        (``DataOps._drop_privileges``), so answered from memory (a superset, loaded once)."""
        if self._capable is None:
            self._capable = self.store.inos_with_xattrs(CAPABILITY_XATTR)
        return ino in self._capable

    def getxattr(self, ino: int, name: str) -> bytes:
        if not name.startswith("user."):
            if self._acl_refused(name):
                raise FsError(errno.EOPNOTSUPP)
            if not name.startswith(self.RARE) or ino not in self._rare_inos():
                raise FsError(self._none_errno(name))
        inode = self.inode(ino)
        if name == STATE_XATTR:
            return self.state_of(inode).encode()
        value = self.store.get_xattr(ino, name)
        if value is None:
            raise FsError(self._none_errno(name))
        return value

    def state_of(self, inode: Inode) -> str:
        if inode.is_dir:
            return "dirty" if inode.needs_sync else "clean"
        if inode.state is FileState.CLEAN and inode.needs_sync:
            return "dirty"  # moved locally, remote not yet following
        return inode.state.value

    def listxattr(self, ino: int) -> list[str]:
        """The file's own attributes only.  ``user.cloudgw.state`` is virtual: readable by
        name, never listed, so ``cp -a``/``rsync -aX`` do not copy a stale "dirty" label into
        every backup made from the mount.  Symlinks and special files list no ``user.*``:
        Linux refuses them there (a listed name that then reads ENODATA made ``rsync -aX``
        fail with exit code 23)."""
        inode = self.inode(ino)
        names = self.store.list_xattrs(ino)
        if inode.kind not in (Kind.FILE, Kind.DIR):
            names = [n for n in names if not n.startswith("user.")]
        return [n for n in names if not self._acl_refused(n)]

    def setxattr(self, ino: int, name: str, value: bytes) -> None:
        self._writable()
        inode = self.inode(ino)
        if name == STATE_XATTR:
            raise FsError(errno.EPERM)
        if self._acl_refused(name):
            raise FsError(errno.EOPNOTSUPP)
        changes: dict = {"ctime_ns": time.time_ns()}
        follow = None
        if name in acl.NAMES:
            try:
                entries = acl.parse(value)
            except acl.BadAcl:
                raise FsError(errno.EINVAL) from None
            if name == acl.ACCESS:  # the mode follows; an ACL the mode says alone is not kept (as ext4)
                changes["mode"] = acl.mode_with(inode.mode, entries)
                follow = self._remote_follows(inode, changes)
                if acl.is_minimal(entries):
                    with self.store.transaction():
                        self.store.remove_xattr(ino, name)
                        self.store.update(inode, **changes)
                    self._tell_sync(inode, follow)
                    return
        elif not name.startswith(self.KEPT_NAMESPACES):
            raise FsError(errno.EOPNOTSUPP)
        with self.store.transaction():
            self.store.set_xattr(ino, name, value)
            self.store.update(inode, **changes)
        self._tell_sync(inode, follow)
        if name.startswith(self.RARE):
            self._rare_inos().add(ino)
        if name == CAPABILITY_XATTR and self._capable is not None:
            self._capable.add(ino)

    def removexattr(self, ino: int, name: str) -> None:
        self._writable()
        if name == STATE_XATTR:
            raise FsError(errno.EPERM)
        if self._acl_refused(name):
            raise FsError(errno.EOPNOTSUPP)  # (hidden: not removable either)
        inode = self.inode(ino)
        with self.store.transaction():
            removed = self.store.remove_xattr(ino, name)
            if removed:
                self.store.update(inode, ctime_ns=time.time_ns())
        if name == CAPABILITY_XATTR and self._capable is not None:
            self._capable.discard(ino)
        if not removed:
            raise FsError(self._none_errno(name))

    def _chmod_acl(self, inode: Inode, mode: int) -> None:
        """chmod of an entry with an access ACL: its owner, mask and other entries follow (with or
        without --acl: a mount with it later must not find a mask wider than the mode)."""
        if inode.ino in self._rare_inos() and (value := self.store.get_xattr(inode.ino, acl.ACCESS)):
            self.store.set_xattr(inode.ino, acl.ACCESS, acl.encode(acl.chmod(acl.parse(value), mode)))

    def _inherit_acl(self, directory: Inode, child: Inode) -> None:
        """A new entry in a directory with a default ACL gets it (inside the create's transaction)."""
        if not self.acls or directory.ino not in self._rare_inos() or child.kind is Kind.SYMLINK:
            return
        default = self.store.get_xattr(directory.ino, acl.DEFAULT)
        if default is None:
            return
        entries, mode = acl.inherited(acl.parse(default), child.mode)
        self.store.update(child, mode=mode)
        if not acl.is_minimal(entries):
            self.store.set_xattr(child.ino, acl.ACCESS, acl.encode(entries))
        if child.is_dir:
            self.store.set_xattr(child.ino, acl.DEFAULT, default)
        self._rare_inos().add(child.ino)

    def fsyncdir(self) -> None:
        """fsync of a directory (after a create or rename, to make it durable): the names
        live in the metadata store, which then survives a power loss too."""
        self.store.sync_to_disk()

    def statfs(self) -> os.statvfs_result:
        """The cache disk's figures: what can be written right now without waiting."""
        return os.statvfs(self.cache.root)
