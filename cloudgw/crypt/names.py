"""Deterministic name encryption (``encrypt_names = true``): AES-256-SIV, base32.

Each path component on its own (docs/encryption.md, "Names"): the same name
always gives the same stored name, so a lookup or a rename needs no listing;
lower-case base32 stays one name on case-insensitive clouds.  Equal names in
different folders are equal on the remote too (as with rclone crypt): the tree
shape and repeated names are visible, the names are not.
"""

from __future__ import annotations

import base64

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESSIV

SIV_TAG = 16
SYMLINK_AD = b"symlink"


def stored_length(name_bytes: int) -> int:
    """Characters of the stored form of a name of ``name_bytes`` UTF-8 bytes."""
    return -(-(name_bytes + SIV_TAG) * 8 // 5)


def longest_name(max_stored: int) -> int:
    """The longest name (bytes) whose stored form fits ``max_stored`` characters."""
    return max_stored * 5 // 8 - SIV_TAG


class NameCipher:
    """Names in and out of their stored form under the vault's names key."""

    def __init__(self, names_key: bytes) -> None:
        self._siv = AESSIV(names_key)

    def _encode(self, data: bytes, ad: list[bytes] | None) -> str:
        return base64.b32encode(self._siv.encrypt(data, ad)).decode().rstrip("=").lower()

    def _decode(self, text: str, ad: list[bytes] | None) -> bytes | None:
        if not text or text != text.lower():
            return None
        try:
            raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
        except ValueError:
            return None
        if base64.b32encode(raw).decode().rstrip("=").lower() != text:
            return None  # only the canonical spelling: no second object listing under one name
        try:
            return self._siv.decrypt(raw, ad)
        except InvalidTag:
            return None

    def encrypt(self, name: str) -> str:
        return self._encode(name.encode("utf-8", "surrogateescape"), None)

    def decrypt(self, stored: str) -> str | None:
        """The name, or None for a stored name that is not ours (it is then not shown)."""
        data = self._decode(stored, None)
        return None if data is None else data.decode("utf-8", "surrogateescape")

    def encrypt_path(self, path: str) -> str:
        return "/".join(self.encrypt(part) for part in path.split("/")) if path else ""

    def decrypt_path(self, stored: str) -> str | None:
        parts = [self.decrypt(part) for part in stored.split("/")] if stored else []
        return None if any(p is None for p in parts) else "/".join(parts)  # type: ignore[arg-type]

    def encrypt_target(self, target: str) -> str:
        return self._encode(target.encode("utf-8", "surrogateescape"), [SYMLINK_AD])

    def decrypt_target(self, stored: str) -> str | None:
        data = self._decode(stored, [SYMLINK_AD])
        return None if data is None else data.decode("utf-8", "surrogateescape")
