"""Client-side encryption: cloudgw's own format, and readers of other tools' formats.

Layering: this package knows bytes, keys and files; it imports nothing from
``cloudgw.remotes``, ``cloudgw.sync`` or ``cloudgw.fuse``.  The encrypting remote
(``cloudgw.remotes.crypt``) and the CLI (``cloudgw crypt``, ``cloudgw decrypt``)
build on it.  The format is specified in ``docs/encryption.md``.
"""

VAULT_NAME = ".cloudgw-vault.json"  # at an encrypted remote's root (here: no heavy imports for the guard)


def keep_secrets_out_of_core_dumps() -> None:
    """This process holds keys from now on: no core file (RLIMIT_CORE 0) and not dumpable
    (PR_SET_DUMPABLE 0: no core either way, and other processes of the same user cannot
    ptrace it or read its memory).  Best effort: a platform without prctl keeps the limit."""
    import ctypes
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass
