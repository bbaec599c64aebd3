"""A raw SMB2 client (the ``smbprotocol`` package) for what smbclient cannot send:
an SMB2 FLUSH on an open handle, as Windows sends for FlushFileBuffers and when
an application asks for durability.  Used by the Samba tests and benchmarks."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from smbprotocol.connection import Connection
from smbprotocol.open import (CreateDisposition, CreateOptions, FileAttributes, FilePipePrinterAccessMask,
                              ImpersonationLevel, Open, ShareAccess)
from smbprotocol.session import Session
from smbprotocol.tree import TreeConnect


def _credentials(auth_file) -> tuple[str, str]:  # noqa: ANN001
    fields = dict(line.split(" = ", 1) for line in auth_file.read_text().splitlines() if " = " in line)
    return fields["username"], fields["password"]


@contextlib.contextmanager
def smb2_tree(server) -> Iterator[TreeConnect]:  # noqa: ANN001  (tests.servers.samba.SambaServer)
    """A connected tree of ``server``'s share (credentials from its 0600 auth file)."""
    user, password = _credentials(server.auth_file)
    conn = Connection(uuid.uuid4(), "127.0.0.1", server.port)
    conn.connect(timeout=30)
    try:
        session = Session(conn, user, password, require_encryption=False, auth_protocol="ntlm")
        session.connect()
        tree = TreeConnect(session, rf"\\127.0.0.1\{server.share}")
        tree.connect()
        try:
            yield tree
        finally:
            tree.disconnect()
            session.disconnect()
    finally:
        conn.disconnect(True)


@contextlib.contextmanager
def smb2_create(tree: TreeConnect, name: str) -> Iterator[Open]:
    """Create (or overwrite) ``name`` for reading and writing; closed on exit."""
    f = Open(tree, name.replace("/", "\\"))
    f.create(ImpersonationLevel.Impersonation,
             FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE,
             FileAttributes.FILE_ATTRIBUTE_NORMAL, ShareAccess.FILE_SHARE_READ,
             CreateDisposition.FILE_OVERWRITE_IF, CreateOptions.FILE_NON_DIRECTORY_FILE)
    try:
        yield f
    finally:
        f.close()


def write_all(f: Open, data: bytes, offset: int = 0) -> None:
    """Write ``data`` at ``offset`` in chunks the server accepts."""
    step = min(f.connection.max_write_size, 1 << 20)
    for pos in range(0, len(data), step):
        f.write(data[pos:pos + step], offset + pos)
