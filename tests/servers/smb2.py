"""A raw SMB2 client (the ``smbprotocol`` package) for what smbclient cannot send:
an SMB2 FLUSH on an open handle, as Windows sends for FlushFileBuffers and when
an application asks for durability.  Used by the Samba tests and benchmarks."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

from smbprotocol.connection import Connection
from smbprotocol.file_info import FileRenameInformation
from smbprotocol.open import (CreateDisposition, CreateOptions, FileAttributes, FilePipePrinterAccessMask,
                              ImpersonationLevel, Open, ShareAccess, SMB2SetInfoRequest, SMB2SetInfoResponse)
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
    """Create (or overwrite) ``name`` for reading, writing and renaming (DELETE access, the
    share modes Office uses for its temporary files); closed on exit."""
    f = Open(tree, name.replace("/", "\\"))
    f.create(ImpersonationLevel.Impersonation,
             FilePipePrinterAccessMask.GENERIC_READ | FilePipePrinterAccessMask.GENERIC_WRITE
             | FilePipePrinterAccessMask.DELETE,
             FileAttributes.FILE_ATTRIBUTE_NORMAL,
             ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_WRITE | ShareAccess.FILE_SHARE_DELETE,
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


def rename_open(f: Open, new_name: str, *, replace: bool = False) -> None:
    """SET_INFO FileRenameInformation on the open handle ``f``: what Windows does to rename
    a file it holds open (Office saving through a temporary file)."""
    info = FileRenameInformation()
    info["replace_if_exists"] = replace
    info["file_name"] = new_name.replace("/", "\\")
    req = SMB2SetInfoRequest()
    req["info_type"] = info.INFO_TYPE
    req["file_info_class"] = info.INFO_CLASS
    req["file_id"] = f.file_id
    req["buffer"] = info
    tree = f.tree_connect
    request = f.connection.send(req, tree.session.session_id, tree.tree_connect_id)
    SMB2SetInfoResponse().unpack(f.connection.receive(request)["data"].get_value())
