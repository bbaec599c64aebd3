"""Reader of rclone crypt files and names, so users can leave rclone crypt for cloudgw.

Format (rclone ``backend/crypt``, learned from its docs and source, written anew):

* Keys: ``scrypt(password, salt, N=16384, r=8, p=1)`` gives 80 bytes = 32-byte data
  key | 32-byte name key | 16-byte name tweak.  The salt is ``password2`` (UTF-8) if
  set, else a fixed 16-byte default.  rclone.conf stores both passwords "obscured":
  AES-256-CTR under a key published in rclone's source, ``base64url(iv16 | ct)``
  without padding; :func:`reveal` undoes it.
* File: ``RCLONE\\0\\0`` | 24-byte random nonce | blocks.  Each block is up to 64 KiB
  of plaintext sealed with NaCl secretbox (XSalsa20-Poly1305, 16-byte tag first), so
  a full block is 65552 bytes and only the last may be shorter.  Block *i* uses the
  nonce plus *i*, the nonce read as a 192-bit little-endian integer.  An empty file
  is the 32-byte header alone.  Because each block's nonce is its index, reordered,
  swapped or altered blocks fail authentication, but nothing marks the last block:
  a file cut at a block boundary (including down to the bare header) decrypts
  cleanly to a shorter file.  rclone has the same blind spot; we cannot fix it.
* Names (``filename_encryption``): ``standard`` encrypts each path component with
  EME (a wide-block mode, Halevi-Rogaway) over AES-256 with the name key and tweak,
  after PKCS#7 padding to 16 bytes, then encodes it (``filename_encoding``): base32
  with the RFC 4648 "extended hex" alphabet, lowercase, no ``=`` (default); base64
  URL-safe without padding; or base32768 (qntm's: 15 bits per BMP character).
  ``obfuscate`` rotates characters by an amount from the name and the name key
  (``"<n>.<rotated>"``; ``!`` quotes).  ``off`` keeps names and adds a suffix
  (default ``.bin``) to file names only.  ``directory_name_encryption=false`` leaves
  directory components as they are.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from functools import reduce
from operator import xor
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from nacl.bindings import crypto_secretbox_open_easy
from nacl.exceptions import CryptoError

from cloudgw.errors import IntegrityError, UserError

MAGIC = b"RCLONE\x00\x00"
NONCE_SIZE = 24
HEADER_SIZE = len(MAGIC) + NONCE_SIZE
BLOCK_DATA = 64 * 1024
BLOCK_TAG = 16
BLOCK_SIZE = BLOCK_DATA + BLOCK_TAG

# Public constants of the format (in rclone's source, not secrets).
_DEFAULT_SALT = bytes.fromhex("a80df43a8fbd0308a7cab83e581f86b1")
_OBSCURE_KEY = bytes.fromhex("9c935b48730a554d6bfd7c63c886a92bd390198eb8128afbf4de162b8b95f638")

# base32768 repertoires as inclusive code point ranges; each holds whole blocks of 32.
_B32768_15 = (
    (0x04A0, 0x04BF), (0x0500, 0x051F), (0x0680, 0x06BF), (0x0760, 0x079F), (0x07C0, 0x07DF),
    (0x1000, 0x101F), (0x10A0, 0x10BF), (0x1100, 0x115F), (0x1180, 0x119F), (0x11E0, 0x123F),
    (0x1260, 0x127F), (0x12E0, 0x12FF), (0x1320, 0x133F), (0x13A0, 0x13DF), (0x1420, 0x165F),
    (0x16A0, 0x16DF), (0x1780, 0x179F), (0x1820, 0x185F), (0x18C0, 0x18DF), (0x1980, 0x199F),
    (0x19E0, 0x19FF), (0x1A20, 0x1A3F), (0x1BC0, 0x1BDF), (0x1C00, 0x1C1F), (0x1D00, 0x1D1F),
    (0x21E0, 0x21FF), (0x22C0, 0x22DF), (0x2340, 0x23DF), (0x2400, 0x241F), (0x2500, 0x275F),
    (0x2780, 0x27BF), (0x2800, 0x297F), (0x29A0, 0x29BF), (0x2A20, 0x2A5F), (0x2A80, 0x2ABF),
    (0x2AE0, 0x2B5F), (0x2C00, 0x2C1F), (0x2C80, 0x2CDF), (0x2D00, 0x2D1F), (0x2D40, 0x2D5F),
    (0x2EA0, 0x2EDF), (0x31C0, 0x31DF), (0x3400, 0x4D9F), (0x4DC0, 0x9FBF), (0xA000, 0xA47F),
    (0xA4A0, 0xA4BF), (0xA500, 0xA5FF), (0xA640, 0xA65F), (0xA6A0, 0xA6DF), (0xA700, 0xA75F),
    (0xA780, 0xA79F), (0xA840, 0xA85F),
)
_B32768_7 = ((0x0180, 0x019F), (0x0240, 0x029F))


def _block_index(ranges: tuple[tuple[int, int], ...]) -> dict[int, int]:
    """Map each 32-code-point block's start to its digit (the high bits of the value)."""
    starts = [s for lo, hi in ranges for s in range(lo, hi + 1, 32)]
    return {s: i for i, s in enumerate(starts)}


_B32768_DIGIT15 = _block_index(_B32768_15)
_B32768_DIGIT7 = _block_index(_B32768_7)
assert len(_B32768_DIGIT15) == 1024 and len(_B32768_DIGIT7) == 4
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")
ENCODINGS = ("base32", "base64", "base32768")
MODES = ("standard", "obfuscate", "off")


@dataclass(frozen=True)
class RcloneKeys:
    """The three keys rclone derives from the password(s); repr hides them."""

    data_key: bytes = field(repr=False)
    name_key: bytes = field(repr=False)
    name_tweak: bytes = field(repr=False)


def derive_keys(password: str, password2: str = "") -> RcloneKeys:
    """Run rclone's scrypt once; reuse the result for every file and name (it costs ~16 MiB, ~50 ms)."""
    if not password:
        raise UserError("rclone crypt needs its password: pass the plain one, or reveal rclone.conf's value")
    salt = password2.encode() if password2 else _DEFAULT_SALT
    key = Scrypt(salt=salt, length=80, n=16384, r=8, p=1).derive(password.encode())
    return RcloneKeys(key[:32], key[32:64], key[64:])


def reveal(obscured: str) -> str:
    """Undo ``rclone obscure``, so users can paste the password value from rclone.conf."""
    try:
        raw = base64.urlsafe_b64decode(obscured + "=" * (-len(obscured) % 4))
        if not _BASE64URL.fullmatch(obscured) or len(raw) < 16:
            raise ValueError
        dec = Cipher(algorithms.AES(_OBSCURE_KEY), modes.CTR(raw[:16])).decryptor()
        return (dec.update(raw[16:]) + dec.finalize()).decode()
    except (ValueError, binascii.Error):  # UnicodeDecodeError is a ValueError
        raise UserError("not an rclone obscured password (copy the value from rclone.conf as is)") from None


def is_rclone(head: bytes) -> bool:
    """Whether a file's first bytes (at least 8) are rclone crypt's magic."""
    return head[: len(MAGIC)] == MAGIC


def _read_full(src: BinaryIO, n: int) -> bytes:
    """Read n bytes unless EOF comes first: pipes and sockets return short reads."""
    parts: list[bytes] = []
    while n > 0:
        chunk = src.read(n)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def decrypt_rclone(src: BinaryIO, dst: BinaryIO, keys: RcloneKeys) -> None:
    """Decrypt one rclone crypt file, one 64 KiB block in memory at a time.

    Only authenticated plaintext is written, but a failure in block *i* leaves
    blocks before it in ``dst``: write to a temporary file and rename on success.
    """
    header = _read_full(src, HEADER_SIZE)
    if header[: len(MAGIC)] != MAGIC[: len(header)]:
        raise IntegrityError("not an rclone crypt file (no RCLONE header)")
    if len(header) < HEADER_SIZE:
        raise IntegrityError("rclone crypt file too short: truncated inside its header")
    counter = int.from_bytes(header[len(MAGIC):], "little")
    index = 0
    while block := _read_full(src, BLOCK_SIZE):
        if len(block) <= BLOCK_TAG:
            raise IntegrityError(f"rclone crypt file truncated in block {index}")
        nonce = ((counter + index) % (1 << 192)).to_bytes(NONCE_SIZE, "little")
        try:
            dst.write(crypto_secretbox_open_easy(block, nonce, keys.data_key))
        except CryptoError:
            if index == 0:
                raise IntegrityError("rclone crypt file does not decrypt: wrong password or damaged file") from None
            raise IntegrityError(f"rclone crypt block {index} fails authentication: "
                                 "file damaged or truncated") from None
        index += 1


# --- names -----------------------------------------------------------------------


def _times2(block: int) -> int:
    """Double in GF(2^128) as EME does (little-endian, x^128 = x^7 + x^2 + x + 1)."""
    block <<= 1
    return (block ^ 0x87) & ((1 << 128) - 1) if block >> 128 else block


def _split(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 16], "little") for i in range(0, len(data), 16)]


def _join(blocks: list[int]) -> bytes:
    return b"".join(b.to_bytes(16, "little") for b in blocks)


def _eme_decrypt(key: bytes, tweak: bytes, data: bytes) -> bytes:
    """EME-AES decryption of 1..128 blocks: masked ECB layer, one-block mix, masked ECB layer."""
    aes = Cipher(algorithms.AES(key), modes.ECB())
    enc, dec = aes.encryptor(), aes.decryptor()
    masks = [_times2(_split(enc.update(bytes(16)))[0])]
    while len(masks) < len(data) // 16:
        masks.append(_times2(masks[-1]))
    ppp = _split(dec.update(_join([c ^ m for c, m in zip(_split(data), masks)])))
    t = _split(tweak)[0]
    mp = reduce(xor, ppp, t)
    mc = _split(dec.update(_join([mp])))[0]
    mix = mp ^ mc
    for j in range(1, len(ppp)):
        mix = _times2(mix)
        ppp[j] ^= mix
    ppp[0] = reduce(xor, ppp[1:], mc ^ t)
    return _join([p ^ m for p, m in zip(_split(dec.update(_join(ppp))), masks)])


def _decode_base32768(text: str) -> bytes:
    """15 bits per character, big-endian bit order; a 7-bit character may end the string."""
    acc = nbits = 0
    for pos, ch in enumerate(text):
        cp = ord(ch)
        if (digit := _B32768_DIGIT15.get(cp & ~31)) is not None:
            acc, nbits = (acc << 15) | (digit << 5) | (cp & 31), nbits + 15
        elif (digit := _B32768_DIGIT7.get(cp & ~31)) is not None and pos == len(text) - 1:
            acc, nbits = (acc << 7) | (digit << 5) | (cp & 31), nbits + 7
        else:
            raise ValueError("not base32768")
    extra = nbits % 8  # padding bits (1s) at the end
    return (acc >> extra).to_bytes(nbits // 8, "big")


def _decode_name(text: str, encoding: str) -> bytes:
    if encoding == "base32":
        if "=" in text:
            raise ValueError("padding")
        return base64.b32hexdecode(text + "=" * (-len(text) % 8), casefold=True)
    if encoding == "base64":
        if not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
            raise ValueError("not base64url")
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return _decode_base32768(text)


def _check(encoding: str, mode: str) -> None:
    if encoding not in ENCODINGS:
        raise UserError(f"unknown rclone filename_encoding {encoding!r}: use one of {', '.join(ENCODINGS)}")
    if mode not in MODES:
        raise UserError(f"unknown rclone filename_encryption {mode!r}: use one of {', '.join(MODES)}")


def _deobfuscate(name: str, keys: RcloneKeys) -> str:
    """Undo rclone's ``obfuscate`` rotation: ``"<n>.<rotated>"``, ``!`` quotes the next character."""
    num, dot, rest = name.partition(".")
    if not dot or not (num == "!" or num.isascii() and num.isdigit()):
        raise ValueError("not obfuscated")
    if num == "!":  # rclone left a non-UTF-8 name unrotated
        return rest
    shift = int(num) + sum(keys.name_key)
    out: list[str] = []
    quoted = False
    for ch in rest:
        cp = ord(ch)
        if quoted:
            out.append(ch)
            quoted = False
        elif ch == "!":
            quoted = True
        elif "0" <= ch <= "9":
            out.append(chr(48 + (cp - 48 - (shift % 9 + 1)) % 10))
        elif "A" <= ch <= "Z" or "a" <= ch <= "z":
            pos = cp - 65 if cp <= 90 else cp - 71  # A-Z then a-z as 0..51
            pos = (pos - (shift % 25 + 1)) % 52
            out.append(chr(pos + 65 if pos < 26 else pos + 71))
        elif 0xA0 <= cp <= 0xFF:
            out.append(chr(0xA0 + (cp - 0xA0 - (shift % 95 + 1)) % 96))
        elif cp >= 0x100:
            out.append(chr((cp & ~0xFF) + ((cp & 0xFF) - (shift % 127 + 1)) % 256))
        else:
            out.append(ch)
    return "".join(out)


def decrypt_name(name: str, keys: RcloneKeys, *, encoding: str = "base32", mode: str = "standard",
                 suffix: str = ".bin") -> str:
    """Decrypt one path component as rclone stored it; in mode ``off`` only file names change.

    A name that is not ciphertext under these keys and settings raises UserError:
    it usually means a wrong password or the wrong filename_encoding/encryption.
    """
    _check(encoding, mode)
    bad = UserError(f"not an rclone crypt name under these settings (filename_encryption={mode}, "
                    f"filename_encoding={encoding}) or the password is wrong")
    if mode == "off":
        suffix = "" if suffix.lower() == "none" else suffix
        if not name.endswith(suffix) or len(name) == len(suffix):
            raise bad
        return name[: len(name) - len(suffix)]
    try:
        if mode == "obfuscate":
            plain = _deobfuscate(name, keys)
        else:
            raw = _decode_name(name, encoding)
            if not raw or len(raw) % 16 or len(raw) > 2048:
                raise ValueError("length")
            padded = _eme_decrypt(keys.name_key, keys.name_tweak, raw)
            pad = padded[-1]
            if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
                raise ValueError("padding")
            plain = padded[:-pad].decode()
    except ValueError:  # binascii.Error and UnicodeDecodeError included
        raise bad from None
    if not plain or "/" in plain or "\x00" in plain:
        raise bad
    return plain


def decrypt_path(path: str, keys: RcloneKeys, *, encoding: str = "base32", mode: str = "standard",
                 suffix: str = ".bin", is_dir: bool = False, dir_names: bool = True) -> str:
    """Decrypt a ``/``-separated path relative to the crypt remote's root.

    The last component is a file name unless ``is_dir``; directory components are
    decrypted only if names are encrypted and ``dir_names`` (rclone's
    ``directory_name_encryption``, default true).
    """
    _check(encoding, mode)
    parts = path.split("/")
    dirs_change = mode != "off" and dir_names
    for i, part in enumerate(parts):
        as_dir = is_dir or i < len(parts) - 1
        if part and (dirs_change or not as_dir):
            parts[i] = decrypt_name(part, keys, encoding=encoding, mode=mode, suffix=suffix)
    return "/".join(parts)
