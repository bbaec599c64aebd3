"""``cloudgw crypt init|passwd`` and ``cloudgw decrypt``: the commands around encryption.

Secrets come from files only (checked 0600 like ssh keys), never from argv;
the recovery private key is written once, locally, 0600, with O_EXCL (an
existing file is never overwritten) and never to the remote.  ``crypt init``
writes the key file before the vault: if the vault cannot be written the user
has a spare key, never a vault without a key.  ``crypt passwd`` replaces the
vault conditionally on the revision it read, so two concurrent changes cannot
lose each other silently.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable

from cloudgw.crypt import VAULT_NAME
from cloudgw.errors import IntegrityError, RemoteError, UserError
from cloudgw.remotes import specials
from cloudgw.remotes.symlinks import decode_target, is_link_object, link_name

MiB = 1 << 20


def add_parsers(sub: Any) -> None:
    c = sub.add_parser("crypt", help="set up or re-key client-side encryption of a remote",
                       description="Client-side encryption of a remote (docs/encryption.md).")
    csub = c.add_subparsers(dest="crypt_command", required=True, metavar="SUBCOMMAND")
    init = csub.add_parser("init", help="make an empty remote an encrypted one",
                           description="Write the vault (.cloudgw-vault.json) to an empty remote and the recovery "
                           "private key to a local file. Keep that file offline: with it, any file of the remote "
                           "decrypts without the password.")
    _remote_args(init)
    init.add_argument("--password-file", type=Path, required=True, help="file holding the password (mode 0600)")
    init.add_argument("--recovery-key-out", type=Path, required=True,
                      help="where to write the recovery private key (PEM; must not exist; written mode 0600)")
    init.add_argument("--encrypt-names", action="store_true", default=None,
                      help="also encrypt file and folder names (names then have at most 143 bytes)")
    init.add_argument("--compress", choices=("zstd", "lz4"), default=None,
                      help="compress files before encrypting them (zstd: smaller; lz4: faster); each 64 KiB "
                      "that does not shrink is stored as it is. Cannot be changed later")
    init.add_argument("--kdf-memory", type=int, default=64, metavar="MiB", help="Argon2id memory (default 64)")
    init.add_argument("--kdf-iterations", type=int, default=3, help="Argon2id passes (default 3)")
    pw = csub.add_parser("passwd", help="change the password (no file is re-encrypted or uploaded)",
                         description="Wrap the vault's master key for a new password. Gateways still mounted "
                         "with the old password keep working until they are restarted.")
    _remote_args(pw)
    pw.add_argument("--password-file", type=Path, required=True, help="file holding the current password")
    pw.add_argument("--new-password-file", type=Path, required=True, help="file holding the new password")

    d = sub.add_parser("decrypt", help="decrypt files copied out of an encrypted remote, without a gateway",
                       description="Decrypt SRC (a file, or a folder tree copied from the remote by any tool) to "
                       "DEST. Reads cloudgw's own format, Synology Cloud Sync files (__CLOUDSYNC_ENC__) and rclone "
                       "crypt files. With encrypted names, DEST gets the real names.")
    d.add_argument("src", help="a file, a folder, or the remote's URL (cloudgw's format only)")
    d.add_argument("dest", type=Path)
    key = d.add_mutually_exclusive_group(required=True)
    key.add_argument("--password-file", type=Path, help="file holding the password (mode 0600)")
    key.add_argument("--private-key", type=Path, help="the recovery private key (cloudgw, or Cloud Sync's RSA key)")
    d.add_argument("--vault", type=Path,
                   help=f"cloudgw's {VAULT_NAME} (default: looked for in SRC and its parents)")
    d.add_argument("--endpoint-url", help="with a URL: S3 endpoint (else AWS_ENDPOINT_URL / AWS)")
    d.add_argument("--region", help="with a URL: S3 region")
    d.add_argument("--path-style", action="store_true", default=None, help="with a URL: S3 path-style addressing")
    d.add_argument("--rclone-salt-file", type=Path, help="rclone crypt's password2 (salt), if one was set")
    d.add_argument("--rclone-filename-encryption", choices=["standard", "obfuscate", "off"], default="standard",
                   help="rclone crypt's filename_encryption (default standard)")


def _remote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("remote", nargs="?", help="the remote URL (or --config FILE NAME)")
    p.add_argument("--config", nargs=2, metavar=("FILE", "NAME"), help="the remote [remotes.NAME] of a config file")
    p.add_argument("--endpoint-url", help="S3 endpoint (else AWS_ENDPOINT_URL / AWS)")
    p.add_argument("--region", help="S3 region (else AWS_DEFAULT_REGION)")
    p.add_argument("--path-style", action="store_true", default=None, help="S3 path-style addressing")


def _secret(path: Path, what: str) -> bytes:
    from cloudgw.crypt import keep_secrets_out_of_core_dumps
    from cloudgw.remotes.registry import read_secret

    keep_secrets_out_of_core_dumps()
    return read_secret(path, what).encode()


def _open_plain(args: argparse.Namespace):  # noqa: ANN202  (a Remote)
    """The remote named on the command line, opened without encryption (the vault is its object)."""
    from cloudgw.config import load_toml, remotes_from_toml
    from cloudgw.remotes.registry import open_remote

    if args.config is not None:
        if args.remote is not None:
            raise UserError("give either REMOTE or --config FILE NAME, not both")
        path, name = Path(args.config[0]), args.config[1]
        specs = remotes_from_toml(load_toml(path), path)
        if name not in specs:
            raise UserError(f"config file {path} has no [remotes.{name}] (it has: {', '.join(sorted(specs))})")
        spec = specs[name]
        options = {k: v for k, v in spec.options.items() if k != "crypt_password_file"}
        url, where = spec.url, spec.where
    elif args.remote is not None:
        given = {"endpoint_url": args.endpoint_url, "region": args.region, "path_style": args.path_style}
        url, options, where = args.remote, {k: v for k, v in given.items() if v is not None}, "command line"
    else:
        raise UserError("missing REMOTE (or --config FILE NAME)")
    return open_remote(url, options, where=where, crypt=False)  # raw, unguarded: the vault is what we manage


def _write_new_secret_file(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(f"{path} already exists: choose a new file for the recovery key") from None
    except OSError as exc:
        raise UserError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    dir_fd = os.open(path.absolute().parent, os.O_RDONLY)  # the name, too, survives a crash
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def cmd_crypt(args: argparse.Namespace) -> int:
    import trio

    return trio.run(_crypt_init if args.crypt_command == "init" else _crypt_passwd, args)


async def _crypt_init(args: argparse.Namespace) -> int:
    import trio

    from cloudgw.crypt.vault import KdfParams, create_vault
    from cloudgw.remotes.base import BytesSource, Expect

    password = _secret(args.password_file, "--password-file")
    if args.kdf_memory < 19 or args.kdf_iterations < 2:
        raise UserError("--kdf-memory must be at least 19 (MiB) and --kdf-iterations at least 2")
    if args.recovery_key_out.exists():
        raise UserError(f"{args.recovery_key_out} already exists: choose a new file for the recovery key")
    remote = _open_plain(args)
    try:
        await remote.check()
        async for entry in remote.list(""):
            what = "a vault" if entry.path == VAULT_NAME else f"data ({entry.path})"
            raise UserError(f"the remote already holds {what}: crypt init needs an empty remote")
        kdf = KdfParams(memory_kib=args.kdf_memory * 1024, iterations=args.kdf_iterations)
        vault, pem = await trio.to_thread.run_sync(
            lambda: create_vault(password, encrypt_names=bool(args.encrypt_names), kdf=kdf, compress=args.compress))
        _write_new_secret_file(args.recovery_key_out, pem)
        await remote.write(VAULT_NAME, BytesSource(vault), expect=Expect.ABSENT)
    finally:
        await remote.aclose()
    names = "contents and names" if args.encrypt_names else "contents (names stay readable)"
    names += f", compressed with {args.compress}" if args.compress else ""
    print(f"encrypted remote ready: {names}. Keep {args.recovery_key_out} offline: it decrypts every file "
          "without the password.")
    return 0


async def _crypt_passwd(args: argparse.Namespace) -> int:
    import trio

    from cloudgw.crypt.vault import rewrap
    from cloudgw.errors import PreconditionFailed, RemoteNotFound
    from cloudgw.remotes.base import BytesSource

    old = _secret(args.password_file, "--password-file")
    new = _secret(args.new_password_file, "--new-password-file")
    remote = _open_plain(args)
    try:
        await remote.check()
        try:
            entry = await remote.stat(VAULT_NAME)
        except RemoteNotFound:
            raise UserError(f"the remote has no {VAULT_NAME}: it is not encrypted (cloudgw crypt init)") from None
        vault = await remote.read(VAULT_NAME, 0, entry.size, rev=entry.rev)
        updated = await trio.to_thread.run_sync(rewrap, vault, old, new)
        try:
            await remote.write(VAULT_NAME, BytesSource(updated), expect=entry.rev or "")
        except PreconditionFailed:
            raise UserError("the vault changed while the password was being changed: run it again") from None
    finally:
        await remote.aclose()
    print("password changed; no file was re-encrypted. Restart other gateways with the new password.")
    return 0


# -- cloudgw decrypt ------------------------------------------------------------------------

def _find_vault(start: Path) -> Path | None:
    for folder in [start if start.is_dir() else start.parent, *start.resolve().parents]:
        if (folder / VAULT_NAME).is_file():
            return folder / VAULT_NAME
    return None


class _Decryptor:
    """Decrypts one file by the format its first bytes name, with whatever key the user gave."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.password = _secret(args.password_file, "--password-file") if args.password_file else None
        self.private_key = None
        if args.private_key:
            from cloudgw.remotes.registry import check_secret_file

            from cloudgw.crypt import keep_secrets_out_of_core_dumps

            check_secret_file(args.private_key, "--private-key")
            keep_secrets_out_of_core_dumps()
            self.private_key = args.private_key.read_bytes()
        self._keys: Any = None
        self._keys_loaded = False
        self._rclone: Any = None
        self._synology_key: Any = None  # the parsed RSA key: parsing costs ~80 ms, so once per run

    def cloudgw_keys(self):  # noqa: ANN201
        """The vault's keys (password, or recovery key + vault), or None: recovery key alone."""
        if not self._keys_loaded:
            from cloudgw.crypt.vault import unlock, unlock_with_recovery

            vault_path = self.args.vault or _find_vault(self.args.src)
            if vault_path is None and self.password is not None:
                raise UserError(f"the password needs the vault ({VAULT_NAME}): copy it too, or give --vault")
            if vault_path is not None:
                vault = vault_path.read_bytes()
                self._keys = unlock(vault, self.password) if self.password is not None else \
                    unlock_with_recovery(vault, self.private_key or b"")
            self._keys_loaded = True
        return self._keys

    def rclone_keys(self):  # noqa: ANN201
        if self._rclone is None:
            from cloudgw.crypt.rclone_crypt import derive_keys

            if self.password is None:
                raise UserError("rclone crypt files need --password-file (rclone has no recovery key)")
            salt = _secret(self.args.rclone_salt_file, "--rclone-salt-file").decode() \
                if self.args.rclone_salt_file else ""
            self._rclone = derive_keys(self.password.decode(), salt)
        return self._rclone

    def name(self, relative: str, head: bytes) -> str:
        """The real relative path of ``relative``: names decrypted where they are encrypted
        (kept as they are where they do not decrypt, e.g. names that were never encrypted)."""
        from cloudgw.crypt import format as fmt
        from cloudgw.crypt import rclone_crypt

        if rclone_crypt.is_rclone(head):
            try:
                return rclone_crypt.decrypt_path(relative, self.rclone_keys(),
                                                 mode=self.args.rclone_filename_encryption)
            except UserError:
                return relative
        if head.startswith(fmt.MAGIC) and (self.args.vault or _find_vault(self.args.src)):
            keys = self.cloudgw_keys()
            if keys is not None and keys.encrypt_names:
                from cloudgw.crypt.names import NameCipher

                real = NameCipher(keys.names_key).decrypt_path(relative)
                return real if real is not None else relative
        return relative

    def file(self, src: BinaryIO, dst: BinaryIO, head: bytes, what: str) -> None:
        from cloudgw.crypt import format as fmt
        from cloudgw.crypt import rclone_crypt, synology

        if head.startswith(fmt.MAGIC):
            raw = fmt.read_header(src, what)
            keys = self.cloudgw_keys()
            if keys is not None:
                header = fmt.open_header(raw, keys, what)
            else:
                from cloudgw.crypt.vault import load_recovery_key

                header = fmt.open_header_recovery(raw, load_recovery_key(self.private_key or b""), what)
            fmt.decrypt_stream(src, dst, header, what)
        elif synology.is_synology(head):
            if self.private_key is not None and self._synology_key is None:
                self._synology_key = synology.load_private_key(self.private_key)
            synology.decrypt_synology(src, dst, password=self.password, private_key=self._synology_key)
        elif rclone_crypt.is_rclone(head):
            rclone_crypt.decrypt_rclone(src, dst, self.rclone_keys())
        else:
            raise IntegrityError(f"{what}: not an encrypted file (cloudgw, Cloud Sync or rclone crypt)")


def cmd_decrypt(args: argparse.Namespace) -> int:
    """Decrypt a file or a tree.  Output is private (files 0600, folders 0700: it is what the
    encryption protected); a file that fails leaves nothing in DEST and the others go on."""
    if "://" in args.src:
        import trio

        return trio.run(_decrypt_remote, args)
    src = args.src = Path(args.src)
    if not src.exists():
        raise UserError(f"{src} does not exist")
    dec = _Decryptor(args)
    if src.is_file():
        dest = args.dest / src.name if args.dest.is_dir() else args.dest
        pairs = [(src, dest, None)]
    else:
        pairs = []
        for folder, _dirs, files in os.walk(src):
            for name in sorted(files):
                path = Path(folder) / name
                relative = str(path.relative_to(src))
                if relative != VAULT_NAME:
                    pairs.append((path, args.dest, relative))
    done = failed = 0
    for path, dest, relative in pairs:
        try:
            if path.is_symlink():
                done += _make_symlink(os.readlink(path), dest, relative, dec)
                continue
            if (special := specials.of_stat(path.lstat())) is not None:  # file:// holds FIFOs, devices as such
                done += _make_symlink(special.marker(), dest, relative, dec)
                continue
            if relative is not None and is_link_object(path.name) and path.stat().st_size <= 65536 \
                    and not _is_encrypted(path):
                # S3 and WebDAV hold a symlink as a small object NAME.cloudgw-symlink with the target
                done += _make_symlink(decode_target(path.read_bytes()), dest, link_name(relative), dec)
                continue
            with open(path, "rb") as f:
                head = f.read(64)
                f.seek(0)
                target = dest if relative is None else dest / dec.name(relative, head)
                _decrypt_to(target, lambda out: dec.file(f, out, head, str(path)))
            done += 1
        except (IntegrityError, OSError) as exc:  # this file is damaged, not encrypted or unreadable: go on
            message = str(exc) if isinstance(exc, IntegrityError) else f"{exc.strerror}"
            print(f"cloudgw: error: {message if str(path) in message else f'{path}: {message}'}", file=sys.stderr)
            failed += 1
    print(f"{done} file{'' if done == 1 else 's'} decrypted to {args.dest}" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


def _is_encrypted(path: Path) -> bool:
    from cloudgw.crypt import format as fmt
    from cloudgw.crypt import rclone_crypt, synology

    with open(path, "rb") as f:
        head = f.read(64)
    return head.startswith(fmt.MAGIC) or synology.is_synology(head) or rclone_crypt.is_rclone(head)


def _make_symlink(link: str, dest: Path, relative: str | None, dec: _Decryptor) -> int:
    """A symlink of SRC (file:// remotes hold real ones, others ``NAME.cloudgw-symlink`` objects)
    is made again in DEST, its name and target decrypted where names are encrypted; never followed."""
    name = relative
    keys = dec.cloudgw_keys() if (dec.args.vault or _find_vault(dec.args.src)) else None
    if keys is not None and keys.encrypt_names:
        from cloudgw.crypt.names import NameCipher

        cipher = NameCipher(keys.names_key)
        link = cipher.decrypt_target(link) or link
        name = cipher.decrypt_path(relative) or relative if relative is not None else None
    target = dest / name if name is not None else dest
    target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    _make_link_or_special(link, target)
    return 1


def _make_link_or_special(link: str, target: Path) -> None:
    """A symlink to ``link``, or the FIFO, socket or device its special-file marker stands
    for (``cloudgw.remotes.specials``; devices need root: EPERM otherwise, reported)."""
    special = specials.parse(link)
    if special is None:
        os.symlink(link, target)
    else:
        os.mknod(target, special.st_mode, special.rdev)


async def _decrypt_remote(args: argparse.Namespace) -> int:
    """Decrypt a whole encrypted remote, read in place through ``CryptRemote`` (its vault unlocked
    with the password or the recovery key): DEST gets the tree as a mount would show it."""
    import trio

    from cloudgw.crypt.vault import unlock, unlock_with_recovery
    from cloudgw.remotes.base import Kind
    from cloudgw.remotes.crypt import CryptRemote
    from cloudgw.remotes.crypt_guard import read_vault

    args.remote, args.config = args.src, None
    dec = _Decryptor(args)
    remote = _open_plain(args)
    done = failed = 0
    try:
        await remote.check()
        vault = await read_vault(remote)
        if vault is None:
            raise UserError(f"{args.src} holds no {VAULT_NAME}: it is not a cloudgw encrypted remote")
        keys = await trio.to_thread.run_sync(
            lambda: unlock(vault, dec.password) if dec.password is not None else
            unlock_with_recovery(vault, dec.private_key or b""))
        crypt = CryptRemote(remote, b"")
        crypt.unlocked(keys)
        args.dest.mkdir(parents=True, mode=0o700, exist_ok=True)
        async for entry in crypt.list("", recursive=True):
            target = args.dest / entry.path
            try:
                if entry.kind is Kind.DIR:
                    target.mkdir(parents=True, mode=0o700, exist_ok=True)
                elif entry.kind is Kind.SYMLINK:
                    target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
                    _make_link_or_special(await crypt.readlink(entry.path), target)
                else:
                    await _download(crypt, entry, target)
                done += entry.kind is not Kind.DIR
            except (RemoteError, OSError) as exc:  # damaged (IntegrityError) or unreadable: go on
                message = str(exc) if isinstance(exc, RemoteError) else f"{entry.path}: {exc.strerror}"
                print(f"cloudgw: error: {message}", file=sys.stderr)
                failed += 1
    finally:
        await remote.aclose()
    print(f"{done} file{'' if done == 1 else 's'} decrypted to {args.dest}" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0


async def _download(crypt: Any, entry: Any, target: Path) -> None:
    """One file of the remote, decrypted, through a temp file (nothing left if it fails)."""
    from cloudgw.remotes.base import read_into

    target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    temp = target.with_name(f".{target.name}.cloudgw-decrypt")
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            offset, piece = 0, 32 * MiB
            while offset < max(entry.size, 1):
                await read_into(crypt, entry.path, offset, piece, out.write, rev=entry.rev)
                offset += piece
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _decrypt_to(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``target`` through a temp file renamed at the end: a file that fails leaves nothing."""
    target.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    temp = target.with_name(f".{target.name}.cloudgw-decrypt")
    try:
        with os.fdopen(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            write(out)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise

