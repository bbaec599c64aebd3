"""Client-side encryption: cloudgw's own format, and readers of other tools' formats.

Layering: this package knows bytes, keys and files; it imports nothing from
``cloudgw.remotes``, ``cloudgw.sync`` or ``cloudgw.fuse``.  The encrypting remote
(``cloudgw.remotes.crypt``) and the CLI (``cloudgw crypt``, ``cloudgw decrypt``)
build on it.  The format is specified in ``docs/encryption.md``.
"""

VAULT_NAME = ".cloudgw-vault.json"  # at an encrypted remote's root (here: no heavy imports for the guard)
