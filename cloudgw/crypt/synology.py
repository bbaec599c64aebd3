"""Reader for Synology Cloud Sync's client-side encryption, so users can leave Cloud Sync.

The format is undocumented by Synology; it was worked out publicly by marnix/synology-decrypt
and written up in maxlaverse/synocrypto's ENCRYPTION.md.  As implemented here:

* Header: ``__CLOUDSYNC_ENC__`` followed by the lowercase hex MD5 of those 17 bytes.
* Then tagged objects up to EOF, every top-level one a dict.  Tags: ``0x42`` dict (pairs of a
  string key and any value, closed by ``0x40``), ``0x10`` UTF-8 string and ``0x11`` bytes (2-byte
  big-endian length), ``0x01`` int (1-byte length, then big-endian value).
* The first dict has ``type=metadata``: ``enc_key1``, ``enc_key2``, ``key1_hash``, ``key2_hash``,
  ``session_key_hash``, ``salt`` (absent in format 1.0), ``version`` {major, minor}, ``compress``,
  ``digest``, ``file_name``.  Then ``type=data`` dicts whose ``data`` bytes (8 KiB chunks) are
  consecutive pieces of ONE AES-256-CBC stream, PKCS#7-padded only at its very end.  Last, a
  ``type=metadata`` dict holding ``file_md5``: the hex MD5 of the plaintext.
* The session key is ASCII text.  By password: AES-256-CBC-decrypt base64(``enc_key1``) with the
  key/IV from OpenSSL's EVP_BytesToKey(MD5, password, salt), 1000 rounds with a salt, 1 without.
  By RSA key: RSA-OAEP (SHA-1, MGF1-SHA-1) over base64(``enc_key2``).
* Checks: a hash ``h`` of a secret is ``h[:10] + md5hex(h[:10] + secret)``.  ``key1_hash`` hashes
  the password, ``key2_hash`` the PKCS#1 "RSA PUBLIC KEY" PEM of the key pair, and
  ``session_key_hash`` the session key text.
* Data key/IV: EVP_BytesToKey(MD5, 1 round, no salt) of the session key, unhexlified for format
  major >= 2, the raw text for 1.x.  The decrypted stream is one LZ4 frame (``compress=1``).

Verified against 7 real files (formats 1.0, 3.0 and 3.1, 1 to 34 chunks, both secrets each): see
tests/crypt/test_synology.py.  Not seen in any sample, so unverified: ``compress=0`` (taken to
mean the plaintext is stored as is) and format major 2.  ``encrypt=0`` files, other digests and
other major versions are refused rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import BinaryIO, Union

import lz4.frame
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from cloudgw.errors import IntegrityError, UserError

MAGIC = b"__CLOUDSYNC_ENC__"
_HEADER = MAGIC + hashlib.md5(MAGIC).hexdigest().encode()
_DICT, _END, _STR, _BYTES, _INT = 0x42, 0x40, 0x10, 0x11, 0x01
_MAX_DEPTH = 3  # only ``version`` nests; deeper means corruption (and bounds recursion)
_MAX_OBJECT = 1 << 20  # largest top-level dict read into memory (data dicts are < 64 KiB)
_OUT_STEP = 1 << 20  # most plaintext bytes produced per LZ4 call, however compressible
_WRONG_PASSWORD = "wrong password for this Cloud Sync file"
_WRONG_KEY = "wrong private key for this Cloud Sync file"

_Value = Union[int, str, bytes, "dict[str, _Value]"]


def is_synology(head: bytes) -> bool:
    """True if ``head`` (a file's first bytes) starts a Cloud Sync file, so that
    ``cloudgw decrypt`` can pick this reader."""
    return head.startswith(MAGIC)


def decrypt_synology(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    password: bytes | None = None,
    private_key_pem: bytes | None = None,
    private_key: rsa.RSAPrivateKey | None = None,
) -> None:
    """Write the plaintext of the Cloud Sync file ``src`` to ``dst``, streaming.

    The secret is exactly one of ``password``, ``private_key_pem`` or ``private_key`` (a key
    from :func:`load_private_key`: parsing a PEM costs ~80 ms, so callers decrypting many files
    load it once).  Memory is bounded (one <64 KiB data object and 1 MiB of output at a time)
    because files can be many GB.  The password or key is checked before any output.  The
    plaintext MD5 is only known at the end: after an IntegrityError ``dst`` holds partial
    output to discard.
    """
    if sum(s is not None for s in (password, private_key_pem, private_key)) != 1:
        raise UserError("give either the Cloud Sync password or the private key (exactly one)")
    if private_key_pem is not None:
        private_key = load_private_key(private_key_pem)
    elif private_key is not None and not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError(f"private_key must be an RSAPrivateKey (see load_private_key), not {type(private_key)}")
    reader = _Reader(src)
    head = reader.upto(len(_HEADER))
    if not MAGIC.startswith(head[: len(MAGIC)]):
        raise UserError("not a Synology Cloud Sync file (no __CLOUDSYNC_ENC__ header)")
    if len(head) < len(_HEADER):
        raise IntegrityError("truncated Cloud Sync file")
    if head != _HEADER:
        raise _corrupt("header")
    meta = reader.next_dict()
    if meta is None:
        raise IntegrityError("truncated Cloud Sync file")
    if meta.get("type") != "metadata":
        raise _corrupt("no metadata")
    major, compress = _check_supported(meta)
    session = _session_key(meta, password, private_key, major)

    key, iv = _evp_bytes_to_key(session, b"", 1)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    sink = _Sink(dst, compressed=compress == 1)
    file_md5: str | None = None
    while (obj := reader.next_dict()) is not None:
        kind = obj.get("type")
        if kind == "data" and isinstance(obj.get("data"), bytes):
            sink.write(unpadder.update(decryptor.update(obj["data"])))  # type: ignore[arg-type]
        elif kind == "metadata":
            md5 = obj.get("file_md5", file_md5)
            if not isinstance(md5, (str, type(None))):
                raise _corrupt("bad file_md5")
            file_md5 = md5
        else:
            raise _corrupt("bad data object")
    if file_md5 is None:
        raise IntegrityError("truncated Cloud Sync file (no file_md5 at the end)")
    try:
        sink.write(unpadder.update(decryptor.finalize()) + unpadder.finalize())
    except ValueError:
        raise _corrupt("bad padding at the end of the data") from None
    sink.close()
    if not hmac.compare_digest(sink.md5.hexdigest(), file_md5.lower()):
        raise IntegrityError("Cloud Sync file fails its MD5 check: the content is damaged")


class _Reader:
    """Reads tagged objects, at most ``_MAX_OBJECT`` bytes per top-level one, so a damaged
    length or endless dict cannot make memory grow with the file."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._budget = _MAX_OBJECT

    def upto(self, n: int) -> bytes:
        """``n`` bytes, fewer only at EOF (``read`` may return short counts on pipes)."""
        buf = b""
        while len(buf) < n and (got := self._src.read(n - len(buf))):
            buf += got
        return buf

    def exact(self, n: int) -> bytes:
        self._budget -= n
        if self._budget < 0:
            raise _corrupt("oversized object")
        buf = self.upto(n)
        if len(buf) < n:
            raise IntegrityError("truncated Cloud Sync file")
        return buf

    def next_dict(self) -> dict[str, _Value] | None:
        """The next top-level dict, or None at a clean EOF."""
        tag = self.upto(1)
        if not tag:
            return None
        self._budget = _MAX_OBJECT
        obj = self._value(tag[0], 0)
        if not isinstance(obj, dict):
            raise _corrupt("top-level object is not a dict")
        return obj

    def _value(self, tag: int, depth: int) -> _Value:
        if tag == _INT:
            size = self.exact(1)[0]
            if size > 8:
                raise _corrupt("oversized integer")
            return int.from_bytes(self.exact(size), "big")
        if tag in (_STR, _BYTES):
            raw = self.exact(int.from_bytes(self.exact(2), "big"))
            return raw.decode("utf-8", "surrogateescape") if tag == _STR else raw
        if tag == _DICT and depth < _MAX_DEPTH:
            out: dict[str, _Value] = {}
            while (key_tag := self.exact(1)[0]) != _END:
                key = self._value(key_tag, depth + 1)
                if not isinstance(key, str):
                    raise _corrupt("dict key is not a string")
                out[key] = self._value(self.exact(1)[0], depth + 1)
            return out
        raise _corrupt(f"unexpected object type 0x{tag:02x}")


class _Sink:
    """LZ4-decompresses (if the file says so), hashes and writes the plaintext."""

    def __init__(self, dst: BinaryIO, *, compressed: bool) -> None:
        self._dst = dst
        self._lz4 = lz4.frame.LZ4FrameDecompressor() if compressed else None
        self._frame_done = False
        self.md5 = hashlib.md5()

    def _emit(self, data: bytes) -> None:
        self.md5.update(data)
        self._dst.write(data)

    def write(self, data: bytes) -> None:
        if self._lz4 is None:
            self._emit(data)
            return
        if not data:
            return
        if self._frame_done:
            raise _corrupt("data after the end of the LZ4 frame")
        try:
            self._emit(self._lz4.decompress(data, max_length=_OUT_STEP))
            while not self._lz4.eof and not self._lz4.needs_input:
                self._emit(self._lz4.decompress(b"", max_length=_OUT_STEP))
        except RuntimeError as exc:  # lz4 reports bad frames and checksums this way
            raise _corrupt("the decrypted data is not a valid LZ4 frame") from exc
        if self._lz4.eof:
            self._frame_done = True
            if self._lz4.unused_data:
                raise _corrupt("data after the end of the LZ4 frame")

    def close(self) -> None:
        if self._lz4 is not None and not self._frame_done:
            raise IntegrityError("truncated Cloud Sync file (LZ4 frame incomplete)")


def _corrupt(what: str) -> IntegrityError:
    return IntegrityError(f"corrupt Cloud Sync file: {what}")


def _check_supported(meta: dict[str, _Value]) -> tuple[int, int]:
    """(format major, compress flag); refuses what the samples never showed rather than
    producing garbage."""
    version = meta.get("version")
    if not isinstance(version, dict) or not isinstance(version.get("major"), int):
        raise _corrupt("no format version")
    major = version["major"]
    if not 1 <= major <= 3:  # type: ignore[operator]
        raise UserError(f"unsupported Cloud Sync format version {major}.{version.get('minor')}")
    if meta.get("encrypt", 1) != 1:
        raise UserError("this Cloud Sync file is not encrypted (encrypt=0): not supported")
    compress = meta.get("compress", 1)
    if compress not in (0, 1):
        raise UserError(f"unsupported Cloud Sync compression {compress!r}")
    if meta.get("digest", "md5") != "md5":
        raise UserError(f"unsupported Cloud Sync digest {meta.get('digest')!r}")
    return major, compress  # type: ignore[return-value]


def _session_key(
    meta: dict[str, _Value], password: bytes | None, private_key: rsa.RSAPrivateKey | None, major: int
) -> bytes:
    """The secret the data key derives from.  key1_hash/key2_hash tell a wrong password or key
    (UserError) from a damaged header (IntegrityError) when unwrapping then fails."""
    if password is not None:
        wrong, field, hash_field, secret = _WRONG_PASSWORD, "enc_key1", "key1_hash", password
    else:
        assert private_key is not None
        wrong, field, hash_field = _WRONG_KEY, "enc_key2", "key2_hash"
        secret = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
        )
    expected = meta.get(hash_field)
    checked = isinstance(expected, str)
    if checked and not _hash_ok(expected, secret):  # type: ignore[arg-type]
        raise UserError(wrong)
    failure = _corrupt(f"{field} does not decrypt") if checked else UserError(wrong)
    wrapped, salt = meta.get(field), meta.get("salt", "")
    if not isinstance(wrapped, str) or not isinstance(salt, str):
        raise _corrupt(f"no {field}")
    try:
        blob = base64.b64decode(wrapped, validate=True)
        if private_key is not None:
            oaep = asym_padding.OAEP(asym_padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
            session = private_key.decrypt(blob, oaep)
        else:
            key, iv = _evp_bytes_to_key(secret, salt.encode(), 1000 if salt else 1)
            dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
            unpad = padding.PKCS7(128).unpadder()
            session = unpad.update(dec.update(blob) + dec.finalize()) + unpad.finalize()
        session_hash = meta.get("session_key_hash")
        if isinstance(session_hash, str) and not _hash_ok(session_hash, session):
            raise failure
        return binascii.unhexlify(session) if major >= 2 else session
    except ValueError:  # bad base64, padding, OAEP or hex (binascii.Error is a ValueError)
        raise failure from None


def _hash_ok(salted_hash: str, secret: bytes) -> bool:
    """Cloud Sync's check value: 10 salt characters, then md5hex(salt + secret)."""
    want = salted_hash.encode("utf-8", "surrogateescape")
    salt = want[:10]
    return hmac.compare_digest(salt + hashlib.md5(salt + secret).hexdigest().encode(), want)


def _evp_bytes_to_key(secret: bytes, salt: bytes, rounds: int) -> tuple[bytes, bytes]:
    """OpenSSL's EVP_BytesToKey with MD5: AES-256 key and CBC IV from a secret."""
    out = block = b""
    while len(out) < 48:
        block = hashlib.md5(block + secret + salt).digest()
        for _ in range(rounds - 1):
            block = hashlib.md5(block).digest()
        out += block
    return out[:32], out[32:48]


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """The RSA key in ``pem`` (unencrypted PKCS#1 or PKCS#8), for ``decrypt_synology(private_key=
    ...)``; UserError otherwise.  A ``private_key_pem`` is parsed before the file is read, so a bad
    key file fails early with its own message."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UserError(
            "cannot read the private key: expected an unencrypted RSA key in PEM form (PKCS#1 or PKCS#8)"
        )
    return key
