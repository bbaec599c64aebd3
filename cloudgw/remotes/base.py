"""The Remote contract: the one narrow, async, path-addressed interface to a cloud.

Paths are relative to the remote's root, use ``/`` as separator, have no leading
or trailing slash, and ``""`` is the root itself.  Every method is async; an
implementation runs blocking client calls (boto3, os, HTTP) in
``trio.to_thread.run_sync`` with its own ``CapacityLimiter``, retries transient
failures itself (see ``cloudgw.remotes.retry``) and raises only the errors of
``cloudgw.errors``.

Revisions (``rev``) are opaque strings that change whenever a file's content
changes (S3: the ETag; file://: inode+size+mtime+ctime).  They may also change when
only attributes do (file://'s ctime, a multipart object's ETag after ``set_attrs``):
whoever changes them takes the new revision from the call's answer.  Two different strings
may still name one version where the remote says so (``same_version``: file://'s files
with several names).  They are what makes
"never overwrite a remote change silently" possible: writes, reads and deletes
can be made conditional on the revision the caller last saw.

A revision starting with ``READ_ONLY_REV`` marks content the remote shows but cannot
replace (a Google Doc shown as its exported .docx): the filesystem refuses to open such
a file for writing or to truncate it (EACCES), so no edit is accepted that could never
be uploaded.  Renaming and deleting it stay possible.

Concurrency: every method may be called concurrently from many trio tasks.
Crash behaviour: ``write`` either leaves the old object in place or the new one,
never a torn mix (single PUT, multipart completed only after ``source.check()``,
or temp file + rename); an interrupted multipart upload leaves an incomplete
upload that ``abort_incomplete_uploads`` removes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Collection, Protocol, runtime_checkable

from cloudgw.errors import RemoteUnsupported


READ_ONLY_REV = "ro:"  # prefix of the revisions of read-only content (see the module docstring)


class Kind(enum.Enum):
    """What an entry is.  The special kinds (FIFO ... BLOCK_DEVICE) exist in the local tree
    only: at this contract a special file is a symlink to a marker target (see
    ``cloudgw.remotes.specials``), so every remote holds one the way it holds symlinks."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    CHAR_DEVICE = "chardev"
    BLOCK_DEVICE = "blockdev"

    @property
    def is_special(self) -> bool:
        return self in _SPECIAL_KINDS


_SPECIAL_KINDS = frozenset({Kind.FIFO, Kind.SOCKET, Kind.CHAR_DEVICE, Kind.BLOCK_DEVICE})


@dataclass(frozen=True)
class FileAttrs:
    """POSIX attributes a remote keeps next to the content where it can."""

    mode: int | None = None  # permission bits only (0o7777 mask)
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int | None = None


@dataclass(frozen=True)
class RemoteEntry:
    """What a remote knows about one path."""

    path: str
    kind: Kind
    size: int = 0
    mtime_ns: int = 0
    rev: str | None = None  # None for directories
    attrs: FileAttrs = field(default_factory=FileAttrs)
    symlink_target: str | None = None  # set for SYMLINK when known without a read
    id: str | None = None  # the remote's stable item id (e.g. Nextcloud oc:fileid), where it has one
    hash: str | None = None  # content hash of ``Capabilities.hash_kind`` (lower-case hex), where known

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class Expect(enum.Enum):
    """Special expectations for a conditional ``write`` (and ``copy``'s destination)."""

    ANY = "any"  # unconditional overwrite
    ABSENT = "absent"  # fail with PreconditionFailed if something is already there


@dataclass(frozen=True)
class Capabilities:
    """What a remote can do.  Who reads each flag: the sync engine (``sync``), the
    filesystem (``fs``), the remote's own code and the contract suite (``contract``:
    what a test may expect of a round trip)."""

    hash_kind: str | None = None  # "md5" / "sha1" in RemoteEntry.hash: sync compares content without a download
    conditional_write: bool = False  # server enforces If-Match/If-None-Match itself (contract)
    server_side_copy: bool = False  # copy() without moving the bytes (sync: conflict copies)
    delta_writes: bool = False  # a write of a DeltaSource is sent only the changed parts (contract)
    streaming_reads: bool = False  # ``read_into`` streams (StreamingRemote): long read-ahead runs (sync)
    native_symlinks: bool = False  # False: symlinks are emulated (see the remote's docs) (contract)
    case_sensitive: bool = True  # False: case-only twins are refused at create/rename (fs)
    max_name_length: int = 255  # bytes of one name as stored (fs, through the remote's name rules)
    keeps_mode: bool = False  # mode/uid/gid survive a round trip (contract)
    keeps_mtime: bool = False  # mtime survives a round trip (natively or as metadata) (contract)
    change_feed: bool = False  # a ChangeFeedRemote: the poller asks for changes since a cursor (sync)
    fixed_root: bool = False  # the root's entries are fixed: several remotes as folders (fs)
    dir_rename: bool = False  # rename() moves a whole directory in one call (sync)
    dir_revs_propagate: bool = False  # a directory's rev changes when anything below it changes (sync: pruned poll)
    stable_ids: bool = False  # entries carry an ``id`` that survives renames and moves (sync: moves stay moves)
    hard_links: bool = False  # ``link()`` gives an object a second name, one object (sync: link names; contract)


@runtime_checkable
class UploadSource(Protocol):
    """A consistent view of a local file for an upload.

    ``read`` is called from worker threads (possibly several at once, for parallel
    multipart parts) and must be thread-safe.  ``check`` is called right before the
    upload is committed (PUT sent / multipart completed / temp file renamed) and
    raises ``SourceChanged`` if the file was modified since the snapshot was taken;
    the remote then abandons the upload, leaving the old object untouched.
    """

    size: int

    def read(self, offset: int, length: int) -> bytes: ...

    def check(self) -> None: ...


@runtime_checkable
class DeltaSource(UploadSource, Protocol):
    """An upload source that knows which of its byte ranges still equal an existing
    remote revision, so a remote with server-side part copies sends only the rest
    (a 4 KiB edit of a 1 GiB file uploads one part, not the file).

    ``unchanged`` answers from a snapshot taken with the source: a later local write
    makes ``check`` fail, and the upload is abandoned before it commits.  ``copied``
    is told (from a worker thread) each range the remote took from ``base_rev``
    instead of reading it, so the source can account for those bytes as sent.
    ``base_offset`` says where an unchanged range is found in ``base_rev``: the same
    offset, unless the source moves bytes (a compressed encrypted file's chunks move
    when an edited chunk before them changed length).
    """

    base_rev: str | None  # the revision the unchanged ranges equal; None: nothing known

    def unchanged(self, offset: int, length: int) -> bool: ...

    def base_offset(self, offset: int) -> int: ...

    def copied(self, offset: int, length: int) -> None: ...


def delta_base(source: UploadSource, expect: Expect | str) -> DeltaSource | None:
    """``source`` as a ``DeltaSource`` when the write replaces exactly the revision its
    unchanged ranges are based on (``expect``); otherwise None: send every byte."""
    if isinstance(expect, str) and isinstance(source, DeltaSource) and source.base_rev == expect:
        return source
    return None


@runtime_checkable
class StreamingRemote(Protocol):
    """A remote that hands a long ranged read over piece by piece as it arrives.

    One request can then serve a whole sequential read-ahead run without holding it
    in memory: fewer, longer GETs (per-request cost dominates on S3, and some servers
    read the whole object for every range), and the reader waits only for the first
    block of the run, not for all of it.
    """

    async def read_into(self, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                        rev: str | None = None) -> None:
        """``read``, with the bytes handed to ``sink`` in order as they arrive (pieces of
        any size, called in the trio thread): short only at end of file.  A stream that
        breaks is resumed where it broke (conditional on ``rev`` like the first request),
        so ``sink`` never sees a byte twice or a gap."""


class StreamedReads:
    """``read`` for a ``StreamingRemote``: its ``read_into`` gathered (a base class, so the
    remotes that stream define only that)."""

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        pieces: list[bytes] = []
        await self.read_into(path, offset, length, pieces.append, rev=rev)  # type: ignore[attr-defined]
        return b"".join(pieces)


async def read_into(remote: Remote, path: str, offset: int, length: int, sink: Callable[[bytes], None], *,
                    rev: str | None = None) -> None:
    """``remote.read_into`` where the remote streams; one ``read`` handed over whole otherwise."""
    if isinstance(remote, StreamingRemote):
        await remote.read_into(path, offset, length, sink, rev=rev)
    else:
        sink(await remote.read(path, offset, length, rev=rev))


@dataclass(frozen=True)
class Change:
    """One item of a change feed (``ChangeFeedRemote.changes``).

    Feeds of path-addressed remotes say ``path``; feeds of id-addressed clouds (Graph
    ``delta``, Drive ``changes``) say ``id`` and ``parent_id`` and no path: the sync
    engine places the item under the local directory that holds ``parent_id`` (a
    remote keeps no path->id cache of its own); ``parent_id`` None means the remote's
    root (the mounted folder), and an unknown ``parent_id`` means outside of what is
    shown (such items are ignored, or leave the tree if they were in it).  ``entry`` is what is there now
    (with only the name in ``entry.path`` when ``path`` is None); None: removed.
    """

    entry: RemoteEntry | None
    path: str | None = None
    id: str | None = None
    parent_id: str | None = None


@runtime_checkable
class ChangeFeedRemote(Protocol):
    """A remote that says what changed since a cursor (``Capabilities.change_feed``)."""

    async def change_cursor(self) -> str:
        """A cursor for "now": take it *before* a full listing, so nothing between the two is missed."""

    async def changes(self, cursor: str) -> tuple[list[Change], str]:
        """Everything changed since ``cursor`` (all pages, in feed order; an item may appear
        more than once: the last one wins) and the cursor to ask with next time.  Raises
        ``CursorExpired`` when the remote no longer knows ``cursor``: list everything again."""


def capabilities_at(remote: Remote, path: str) -> Capabilities:
    """What the remote can do at ``path``: a router of several remotes answers for the one
    ``path`` lies on (``capabilities_for``); any other remote is the same everywhere."""
    per_path = getattr(remote, "capabilities_for", None)
    return per_path(path) if per_path is not None else remote.capabilities


def check_path(remote: Remote, path: str) -> None:
    """Raise ``RemoteNameInvalid``/``RemoteNameTooLong`` if ``remote`` cannot hold ``path``
    (a local path, before anything is queued for it) -- where the remote says so with a
    ``check_path`` of its own (``MappedNamesRemote``, the router).  Other remotes take any
    name the filesystem accepts (255 bytes, no '/' or NUL)."""
    checker = getattr(remote, "check_path", None)
    if checker is not None:
        checker(path)


async def forward_set_attrs(inner: Remote, path: str, attrs: FileAttrs, *, expect: str | None) -> RemoteEntry:
    """A wrapper's ``set_attrs``: ``inner``'s own, or ``RemoteUnsupported`` where it has none
    (a wrapper has the method whatever it wraps; a router's remotes differ per path)."""
    setter = getattr(inner, "set_attrs", None)
    if setter is None:
        raise RemoteUnsupported(f"set_attrs {path!r}: {inner!r} keeps no attributes it could change alone")
    return await setter(path, attrs, expect=expect)


async def set_attrs(remote: Remote, path: str, attrs: FileAttrs, *, expect: str | None = None) -> RemoteEntry | None:
    """``remote.set_attrs`` where the remote has it; None where it says the attributes are not
    kept there (no ``set_attrs``, or ``RemoteUnsupported``): nothing to send, the caller is done.
    Other errors (``PreconditionFailed``, ``RemoteNotFound``, transient ones) propagate."""
    try:
        return await forward_set_attrs(remote, path, attrs, expect=expect)
    except RemoteUnsupported:
        return None


async def link(remote: Remote, src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry:
    """``remote.link`` (the optional method below) where the remote has hard links at ``src``
    (``capabilities_at(...).hard_links``); ``RemoteUnsupported`` where it has none -- also from a
    wrapper whose inner remote has none, and from a router for two paths on different remotes
    (errno EXDEV): the caller then places the name as a copy or a write instead."""
    linker = getattr(remote, "link", None)
    if linker is None or not capabilities_at(remote, src).hard_links:
        raise RemoteUnsupported(f"link {src!r} -> {dst!r}: {remote!r} has no hard links")
    return await linker(src, dst, rev=rev, expect=expect)


def same_version(remote: Remote, a: str, b: str, *, path: str | None = None) -> bool:
    """Whether revisions ``a`` and ``b`` (of ``path``, where known) name the same version:
    ``remote.same_version`` where it has one (file://: a file with several names), ``a == b``
    otherwise.  ``path`` lets a router ask the remote it lies on; without it, any of its remotes."""
    judge = getattr(remote, "same_version", None)
    return judge(a, b, path=path) if judge is not None else a == b


class BytesSource:
    """An UploadSource over bytes in memory (tests, symlink bodies, small blobs)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.size = len(data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]

    def check(self) -> None:
        return None


class Remote(Protocol):
    """What every remote implements.  See the module docstring for the rules."""

    capabilities: Capabilities

    async def check(self) -> None:
        """Fail early: raise ``UserError`` if the remote is unusable (missing bucket,
        bad credentials, missing directory)."""

    async def stat(self, path: str) -> RemoteEntry:
        """Raise ``RemoteNotFound`` if nothing is at ``path``."""

    def list(self, path: str, *, recursive: bool = False) -> AsyncIterator[RemoteEntry]:
        """Entries below directory ``path`` (not ``path`` itself), paged internally.

        Recursive listings include every directory, also ones only implied by a
        deeper object (S3 prefixes).  Raises ``RemoteNotFound`` if ``path`` is not
        a directory (the root always is).
        """

    async def read(self, path: str, offset: int, length: int, *, rev: str | None = None) -> bytes:
        """Up to ``length`` bytes at ``offset`` (short only at end of file).

        With ``rev``: raise ``PreconditionFailed`` if the object is at another revision.
        """

    async def write(
        self,
        path: str,
        source: UploadSource,
        *,
        expect: Expect | str = Expect.ANY,
        attrs: FileAttrs = FileAttrs(),
    ) -> RemoteEntry:
        """Store ``source`` at ``path`` (parents are created as needed).

        ``expect`` is ``Expect.ANY``, ``Expect.ABSENT`` or the revision that must be
        there now; otherwise ``PreconditionFailed`` and nothing is written.  Remotes
        without server-side conditions check-then-write (document the window).
        Never holds the whole file in memory.
        """

    async def mkdir(self, path: str, attrs: FileAttrs = FileAttrs()) -> RemoteEntry:
        """Create a directory (and parents); succeeds if it already exists."""

    async def rmdir(self, path: str) -> None:
        """Remove an empty directory; ``RemoteNotEmpty`` if it has entries; idempotent."""

    async def delete(self, path: str, *, expect: str | None = None) -> None:
        """Delete a file or symlink; idempotent (absent is fine).

        With ``expect``: raise ``PreconditionFailed`` if the object is at another
        revision (it was changed by someone else and must not be lost).
        """

    async def rename(self, src: str, dst: str, *, expect: str | None = None) -> RemoteEntry:
        """Move a file/symlink to ``dst`` (replacing it); S3 does copy + delete."""

    async def copy(self, src: str, dst: str, *, rev: str | None = None,
                   expect: Expect | str = Expect.ANY) -> RemoteEntry:
        """Copy a file (or symlink) to ``dst`` (server-side where possible); the entry of ``dst``.

        Conditional, so a copy never replaces a version it did not expect (a hard link's
        extra name, a conflict copy): ``rev`` is the revision ``src`` must be at, ``expect``
        the condition on ``dst`` exactly as in ``write``; otherwise ``PreconditionFailed``
        and nothing is written.  Remotes that cannot enforce a condition on the server
        check-then-copy under their path lock (document the window, as for ``write``).
        """

    async def symlink(self, path: str, target: str) -> RemoteEntry:
        """Create a symlink (emulated where the remote has none)."""

    async def readlink(self, path: str) -> str: ...

    # Optional (see ``check_path`` below): ``def check_path(self, path: str) -> None`` raises
    # ``RemoteNameInvalid``/``RemoteNameTooLong`` for a path this remote cannot hold even with
    # its names mapped (``cloudgw.remotes.names``); no network, called at create/rename time.

    # Optional (see ``set_attrs`` below): ``async def set_attrs(self, path: str, attrs: FileAttrs, *,
    # expect: str | None) -> RemoteEntry`` changes the attributes of the file or directory at
    # ``path`` without touching its content (a chmod, chown or touch of something already on the
    # remote; a write carries them with the content).  Fields of ``attrs`` that are None stay as
    # they are.  ``expect``: the revision the caller last saw; ``PreconditionFailed`` if the object
    # is at another one (or gone), and nothing is changed -- someone else's version is never
    # re-labelled, its content change is the poll's business.  ``RemoteNotFound`` if nothing is
    # there (without ``expect``).  Idempotent: attributes already as asked change nothing, not even
    # the revision.  The answer is the entry afterwards, with its revision, which may be new
    # (file://'s ctime; S3's ETag of a multipart object copied onto itself).  ``RemoteUnsupported``:
    # not kept here (a symlink, a wrapped remote without it).  Remotes that keep no attributes
    # (``keeps_mode``/``keeps_mtime`` False) or keep them only with the content (WebDAV, OneDrive,
    # Google Drive) do not have it.

    # Optional (see ``link`` above; only where ``Capabilities.hard_links``): ``async def link(self,
    # src: str, dst: str, *, rev: str | None, expect: Expect | str) -> RemoteEntry`` makes ``dst``
    # another name of the object at ``src`` (a file, symlink or special file; parents are created as
    # needed): one object, so a later change through either name shows under both.  ``rev``: ``src``
    # must be at that revision (``same_version``), else ``PreconditionFailed`` and nothing is done.
    # ``expect``: what must be at ``dst``, as in ``write`` (``ANY``, ``ABSENT`` or a revision), else
    # ``PreconditionFailed`` and nothing is done; a replaced ``dst`` is replaced atomically.  A ``dst``
    # that already is a name of that object is answered as it is, whatever ``expect`` says (a redo
    # after a lost reply).  The answer is ``dst``'s entry; its revision is the one ``src`` has now.

    # Optional (see ``same_version`` above): ``def same_version(self, a: str, b: str, *, path: str |
    # None = None) -> bool``, where two different revision strings can name one version (file://:
    # a link or unlink of another name changes the string, not the content).  No network.

    async def abort_incomplete_uploads(self, paths: Collection[str] = ()) -> int:
        """Remove leftovers of interrupted uploads; return how many.

        Leftovers older than the remote's stale age go (younger ones may belong to
        another client writing right now); so do, whatever their age, leftovers of
        uploads to ``paths``: the caller's own uploads that a crash interrupted.
        """

    async def aclose(self) -> None: ...
