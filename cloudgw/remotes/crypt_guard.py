"""Which remotes are encrypted, decided before anything is mounted.

A remote with a crypt password is opened through ``CryptRemote`` (imported
only then: ``cryptography`` stays out of plain mounts; ``registry.open_remote``).
A mounted remote without one is wrapped in ``PlainGuard`` (``open.open_remotes``), which refuses in ``check()`` a remote that holds
a vault: mounted as plain, it would show ciphertext and take plaintext.
"""

from __future__ import annotations

import os
from pathlib import Path

from cloudgw.crypt import VAULT_NAME
from cloudgw.errors import RemoteNotFound, UserError
from cloudgw.remotes.base import Kind, Remote

ENV_PASSWORD = "CLOUDGW_CRYPT_PASSWORD"
VAULT_MAX = 1 << 16
_env_password: list[bytes | None] = []


def env_password() -> bytes | None:
    """``CLOUDGW_CRYPT_PASSWORD`` (for systemd), taken out of the environment on first use so
    no child process inherits it."""
    if not _env_password:
        value = os.environ.pop(ENV_PASSWORD, None)
        _env_password.append(value.encode() if value else None)
    return _env_password[0]


async def read_vault(remote: Remote) -> bytes | None:
    """The vault object's bytes, or None where ``remote`` has none."""
    try:
        entry = await remote.stat(VAULT_NAME)
    except RemoteNotFound:
        return None
    if entry.kind is not Kind.FILE or entry.size > VAULT_MAX:
        raise UserError(f"{VAULT_NAME} on this remote is not a cloudgw vault")
    return await remote.read(VAULT_NAME, 0, entry.size, rev=entry.rev)


def with_crypt(remote: Remote, password: bytes | None, label: str, state_dir: Path | None = None) -> Remote:
    """``remote`` encrypted with ``password``; as it is without one."""
    if password is None:
        return remote
    from cloudgw.remotes.crypt import CryptRemote

    return CryptRemote(remote, password, label=label, state_dir=state_dir)


def guard_plain(remote: Remote, label: str) -> Remote:
    """``remote`` guarded against mounting an encrypted remote as if it were plain (ciphertext
    shown, plaintext written into it), unless it is the encrypting remote itself."""
    return remote if getattr(remote, "encrypted", False) else PlainGuard(remote, label)


class PlainGuard:
    """A remote mounted without a crypt password: refuses, in ``check``, one that holds a vault.
    Everything else is the inner remote's (attribute access passes through)."""

    def __init__(self, inner: Remote, label: str) -> None:
        self._inner, self._label = inner, label

    def __getattr__(self, name: str):  # noqa: ANN204
        return getattr(self._inner, name)

    def __repr__(self) -> str:
        return repr(self._inner)

    async def check(self) -> None:
        await self._inner.check()
        if await read_vault(self._inner) is not None:
            raise UserError(f"{self._label} is an encrypted remote: give its password with --crypt-password-file "
                            "(or crypt_password_file in its config section, or CLOUDGW_CRYPT_PASSWORD)")
