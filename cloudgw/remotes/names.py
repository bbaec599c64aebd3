"""Name rules per remote, and the reversible mapping of names a remote cannot store.

A local name is any string without ``/`` and NUL of up to 255 bytes; clouds are
stricter (OneDrive refuses ``a*b``, ``CON``, ``x.``; SMB shares the same).  Such a
name is never dropped or refused late by an upload that fails forever: it is
*stored under a mapped name* and *shown under the original one*, the way rclone
does it -- every character the remote cannot hold becomes a Unicode lookalike:

    forbidden printable ASCII   ``*`` -> ``＊`` (its fullwidth form, U+FF01..U+FF5E)
    control characters          U+0001..U+001F -> U+2401..U+241F, DEL -> ``␡``
    forbidden first/last char   ``.`` -> ``．``, `` `` -> ``␠``, ``~`` -> ``～``
    reserved names              first character -> fullwidth: ``CON.txt`` -> ``ＣON.txt``,
                                ``.lock`` -> ``．lock``, ``desktop.ini`` -> ``ｄesktop.ini``
    forbidden infixes           second character -> fullwidth: ``a_vti_b`` -> ``a_ｖti_b``
                                (the second, so overlapping ``_vti_vti_`` maps cleanly)

A local name that already holds such a lookalike *where decoding would turn it
back* gets it quoted with ``‛`` (U+201B, rclone's quote): local ``a＊b`` is stored
as ``a‛＊b``; a quote directly before a lookalike or another quote is doubled.
So ``encode`` is injective and ``decode(encode(x)) == x`` for every local name.

Names other tools made (``decode`` never fails):

- ``a＊b`` made in the OneDrive web UI shows locally as ``a*b``, and ``a*b`` maps back
  to that same object (rclone behaves the same).  A lookalike is only turned back
  where encode would have put it: ``a．b`` stays ``a．b`` (a period is only mapped at
  the end), ``Ｃat`` stays ``Ｃat`` (``Cat`` is not reserved).
- A name that ``encode`` never produces -- a quote before an ordinary character
  (``‛a``), a quoted lookalike where none needs quoting (``a‛．b``), a doubled quote
  before an ordinary character, ``．`` (which would decode to ``.``) -- is shown
  *exactly as it is*, and ``encode`` maps that shown name back to the same object
  (encode leaves a name alone that is storable and not an output of the mapping).
- Left over: a name that *is* an output of the mapping but of a local name of the
  kind just described (``‛‛‛a``, the mapping of ``‛‛a``) shows as that local name,
  which leads to the other object (``‛‛a``).  Only tools that quote with U+201B
  themselves (rclone) could have made it.
- Names that break the rules (``a*b`` in a directory used with OneDrive rules, made
  behind our back) are shown as they are but cannot be reached (they encode to
  ``a＊b``).  A real OneDrive cannot hold them.

Limits (``max_name_*``, ``max_path_*``) apply to the *mapped* name/path, counted in
UTF-8 bytes or UTF-16 code units as the remote counts; ``check`` says whether a
path fits.  Case-insensitive remotes cannot hold twins (``Report.doc`` next to
``report.doc``); the sync engine refuses the second (EEXIST, ``sync/engine.py``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cloudgw.errors import RemoteNameInvalid, RemoteNameTooLong, UserError

QUOTE = "\u201b"  # ‛ SINGLE HIGH-REVERSED-9 QUOTATION MARK, rclone's QuoteRune
_CONTROLS = frozenset(chr(c) for c in (*range(1, 0x20), 0x7F))  # NUL never occurs in a local name
_DEVICES = frozenset({"con", "prn", "aux", "nul", *(f"{p}{d}" for p in ("com", "lpt") for d in range(10))})


def lookalike(c: str) -> str:
    """rclone's lookalike of a character: fullwidth form, or a control picture."""
    o = ord(c)
    if 0x21 <= o <= 0x7E:
        return chr(o + 0xFEE0)
    if c == " ":
        return "\u2420"  # ␠ SYMBOL FOR SPACE
    if c == "\x7f":
        return "\u2421"  # ␡ SYMBOL FOR DELETE
    if o < 0x20:
        return chr(0x2400 + o)  # ␁... SYMBOL FOR START OF HEADING...
    raise ValueError(f"no lookalike for {c!r}")


def utf8_bytes(s: str) -> int:
    return len(s.encode("utf-8", "surrogateescape"))


def utf16_units(s: str) -> int:
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


@dataclass(frozen=True)
class NameRules:
    """What one kind of remote cannot store, and its length limits.

    Reserved names are matched case-insensitively; ``reserved_stems`` also with any
    extension (``CON`` and ``CON.txt``, as Windows reserves device names).  Limits
    are None where the remote has none that a local name could reach.
    """

    label: str
    source: str = ""  # where the rules come from
    forbidden: frozenset[str] = frozenset()  # anywhere (never "/" or NUL: no local name has them)
    forbid_controls: bool = False  # U+0001..U+001F and DEL
    forbidden_first: frozenset[str] = frozenset()
    forbidden_last: frozenset[str] = frozenset()
    reserved: frozenset[str] = frozenset()  # whole names, lower case
    reserved_stems: frozenset[str] = frozenset()  # also with an extension, lower case
    reserved_prefixes: tuple[str, ...] = ()  # lower case
    forbidden_infixes: tuple[str, ...] = ()  # anywhere in a name, lower case, 3+ characters
    unicode_only: bool = False  # names must be valid Unicode (no undecodable bytes from the kernel)
    case_insensitive: bool = False  # "A" and "a" are one name
    max_name_bytes: int | None = None  # UTF-8 bytes of one mapped name
    max_name_units: int | None = None  # UTF-16 code units of one mapped name
    max_path_bytes: int | None = None  # UTF-8 bytes of the mapped path below the remote's root
    max_path_units: int | None = None  # UTF-16 code units of the mapped path below the remote's root

    def __post_init__(self) -> None:
        assert not {"/", "\0"} & (self.forbidden | self.forbidden_first | self.forbidden_last)
        assert all(len(i) >= 3 for i in self.forbidden_infixes)

    @property
    def maps_names(self) -> bool:
        """Whether some local name is stored under another name (else the codec is the identity)."""
        return bool(self.forbidden or self.forbid_controls or self.forbidden_first or self.forbidden_last
                    or self.reserved or self.reserved_stems or self.reserved_prefixes or self.forbidden_infixes)

    def is_reserved(self, name: str) -> bool:
        low = _ascii_lower(name)
        return (low in self.reserved or low.split(".", 1)[0] in self.reserved_stems
                or any(low.startswith(p) for p in self.reserved_prefixes))

    def storable(self, name: str) -> bool:
        """Whether the remote accepts ``name`` as it is (limits aside)."""
        if not name:
            return False
        if any(c in self.forbidden or (self.forbid_controls and c in _CONTROLS) for c in name):
            return False
        if name[0] in self.forbidden_first or name[-1] in self.forbidden_last or self.is_reserved(name):
            return False
        low = _ascii_lower(name)
        if any(i in low for i in self.forbidden_infixes):
            return False
        return not (self.unicode_only and _undecodable(name))


_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _ascii_lower(s: str) -> str:
    """Reserved names and infixes are ASCII and matched without case: lower ASCII only
    (length-preserving, unlike ``str.lower`` on e.g. 'İ')."""
    return s.translate(_LOWER)


def _undecodable(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _valid_local(name: str) -> bool:
    return name not in ("", ".", "..") and "/" not in name and "\0" not in name


@dataclass(frozen=True)
class NameCodec:
    """Local name <-> remote name under ``rules`` (see the module docstring)."""

    rules: NameRules
    # lookalike -> the character it stands for; what a quote may quote; characters that make
    # a name anything but its own mapping (with reserved names and infixes)
    _originals: dict[str, str] = field(init=False, repr=False, compare=False)
    _escapable: frozenset[str] = field(init=False, repr=False, compare=False)
    _specials: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        r = self.rules
        originals = set(r.forbidden | r.forbidden_first | r.forbidden_last)
        if r.forbid_controls:
            originals |= _CONTROLS
        for name in (*r.reserved, *r.reserved_stems, *r.reserved_prefixes):
            originals |= {name[0], name[0].upper()}
        for infix in r.forbidden_infixes:
            originals |= {infix[1], infix[1].upper()}
        lookalikes = {lookalike(c) for c in originals}
        object.__setattr__(self, "_originals", {lookalike(c): c for c in originals})
        object.__setattr__(self, "_escapable", frozenset(lookalikes | {QUOTE}))
        object.__setattr__(self, "_specials", frozenset(originals | lookalikes | {QUOTE}))

    @property
    def identity(self) -> bool:
        return not self.rules.maps_names

    # -- the mapping ----------------------------------------------------------------

    def encode(self, name: str) -> str:
        """The remote name for local ``name`` (injective; storable unless ``unicode_only``
        is broken, which ``check`` refuses)."""
        if self.identity:
            return name
        remote = self._encode(name)
        if remote != name and self.rules.storable(name) and not self._canonical(name):
            return name  # another tool's name, shown as it is (see the module docstring)
        return remote

    def decode(self, remote: str) -> str:
        """The local name shown for ``remote``; never fails (see the module docstring)."""
        if self.identity or not any(c in self._specials for c in remote):
            return remote
        local = self._decode(remote)
        if local != remote and (not _valid_local(local) or self._encode(local) != remote):
            return remote
        return local

    def encode_path(self, path: str) -> str:
        return "/".join(self.encode(p) for p in path.split("/")) if path and not self.identity else path

    def decode_path(self, path: str) -> str:
        return "/".join(self.decode(p) for p in path.split("/")) if path and not self.identity else path

    def check(self, path: str) -> None:
        """Raise ``RemoteNameInvalid`` (EINVAL) or ``RemoteNameTooLong`` (ENAMETOOLONG) if
        the remote cannot hold local ``path`` even mapped."""
        r = self.rules
        parts = path.split("/") if path else []
        if r.unicode_only:
            for part in parts:
                if _undecodable(part):
                    raise RemoteNameInvalid(f"{part!r}: {r.label} names must be valid UTF-8 (undecodable bytes)")
        mapped = [self.encode(p) for p in parts]
        for part, m in zip(parts, mapped):
            for limit, size, unit in ((r.max_name_bytes, utf8_bytes, "bytes"), (r.max_name_units, utf16_units,
                                                                                "UTF-16 units")):
                if limit is not None and size(m) > limit:
                    raise RemoteNameTooLong(f"{part[:40]!r}...: {r.label} allows {limit} {unit} per name, "
                                            f"this one is {size(m)} as stored ({m[:40]!r}...)")
        full = "/".join(mapped)
        for limit, size, unit in ((r.max_path_bytes, utf8_bytes, "bytes"), (r.max_path_units, utf16_units,
                                                                           "UTF-16 units")):
            if limit is not None and size(full) > limit:
                raise RemoteNameTooLong(f"{path[:40]!r}...: {r.label} allows paths of {limit} {unit}, "
                                        f"this one is {size(full)} as stored")

    # -- strict mapping and its inverse ----------------------------------------------

    def _encode(self, name: str) -> str:
        r = self.rules
        if (not any(c in self._specials for c in name) and not r.is_reserved(name)
                and not any(i in _ascii_lower(name) for i in r.forbidden_infixes)):
            return name  # the common case: nothing to map or quote
        s, mapped = list(name), [False] * len(name)

        def put(k: int) -> None:
            s[k], mapped[k] = lookalike(s[k]), True

        for k, c in enumerate(name):
            if c in r.forbidden or (r.forbid_controls and c in _CONTROLS):
                put(k)
        if s and not mapped[0] and s[0] in r.forbidden_first:
            put(0)
        if s and not mapped[-1] and s[-1] in r.forbidden_last:
            put(len(s) - 1)
        for infix in r.forbidden_infixes:
            while (at := _ascii_lower("".join(s)).find(infix)) >= 0:
                put(at + 1)
        if s and not mapped[0] and r.is_reserved("".join(s)):
            put(0)
        out: list[str] = []
        for k, c in enumerate(s):
            if not mapped[k]:
                if c == QUOTE and k + 1 < len(s) and s[k + 1] in self._escapable:
                    out.append(QUOTE)  # would read as the quote of what follows: double it
                elif c in self._originals and self._turns_back(s, k):
                    out.append(QUOTE)  # a literal lookalike that decode would turn back
            out.append(c)
        return "".join(out)

    def _decode(self, remote: str) -> str:
        chars, quoted, i = [], [], 0
        while i < len(remote):
            if remote[i] == QUOTE and i + 1 < len(remote) and remote[i + 1] in self._escapable:
                chars.append(remote[i + 1])
                quoted.append(True)
                i += 2
            else:
                chars.append(remote[i])
                quoted.append(False)
                i += 1
        return "".join(self._originals[c] if not q and c in self._originals and self._turns_back(chars, k) else c
                       for k, (c, q) in enumerate(zip(chars, quoted)))

    def _turns_back(self, s: list[str], k: int) -> bool:
        """Whether lookalike ``s[k]`` stands for its original at position k of stored name ``s``
        (quotes removed): exactly where ``_encode`` puts lookalikes."""
        r = self.rules
        c = self._originals[s[k]]
        if c in r.forbidden or (r.forbid_controls and c in _CONTROLS):
            return True
        if (k == 0 and c in r.forbidden_first) or (k == len(s) - 1 and c in r.forbidden_last):
            return True
        for infix in r.forbidden_infixes:  # mapped at its second character
            end = k - 1 + len(infix)
            if 1 <= k and end <= len(s) and _ascii_lower(s[k - 1] + c + "".join(s[k + 1: end])) == infix:
                return True
        return k == 0 and r.is_reserved(c + "".join(s[1:]))

    def _canonical(self, remote: str) -> bool:
        """Whether ``remote`` is what ``_encode`` makes of some local name."""
        local = self._decode(remote)
        return _valid_local(local) and self._encode(local) == remote


# -- the rules of each kind of remote ------------------------------------------------------

IDENTITY = NameRules("this remote")

FILE = NameRules("a Linux directory", source="Linux: any byte but '/' and NUL; NAME_MAX 255 bytes",
                 max_name_bytes=255)

S3 = NameRules("S3", source="AWS S3 'Object key naming': keys are UTF-8, up to 1024 bytes (s3.py checks that "
               "with the prefix); every character is allowed", unicode_only=True, max_path_bytes=1024)

WEBDAV = NameRules("WebDAV", source="RFC 4918 names are URL-encoded on the wire (the remote's business); Apache "
                   "mod_dav_fs on Linux stores them as files: UTF-8, 255 bytes per name", unicode_only=True,
                   max_name_bytes=255)

GOOGLE_DRIVE = NameRules("Google Drive", source="Drive API: a name is any Unicode string (even with '/'); no "
                         "documented length limit a 255-byte local name reaches", unicode_only=True)

_WINDOWS_CHARS = frozenset('"*:<>?\\|')

WINDOWS = NameRules(
    "Windows/SMB", source="Microsoft 'Naming Files, Paths, and Namespaces': <>:\"/\\|?* and controls; no "
    "trailing period or space; device names also with an extension; 255 UTF-16 units per name",
    forbidden=_WINDOWS_CHARS, forbid_controls=True, forbidden_last=frozenset(". "), reserved_stems=_DEVICES,
    unicode_only=True, case_insensitive=True, max_name_units=255)

ONEDRIVE = NameRules(
    "OneDrive", source="Microsoft 'Restrictions and limitations in OneDrive and SharePoint': \" * : < > ? / \\ |, "
    "no leading or trailing space, no trailing period; .lock, CON, PRN, AUX, NUL, COM0-9, LPT0-9, desktop.ini, "
    "names starting with ~$, _vti_ anywhere; 400 characters per decoded path.  As rclone: controls and a "
    "leading ~ too (SharePoint folders), device names also with an extension (Windows)",
    forbidden=_WINDOWS_CHARS, forbid_controls=True, forbidden_first=frozenset(" ~"), forbidden_last=frozenset(". "),
    reserved=frozenset({".lock", "desktop.ini"}), reserved_stems=_DEVICES, reserved_prefixes=("~$",),
    forbidden_infixes=("_vti_",), unicode_only=True, case_insensitive=True, max_name_units=255,
    max_path_units=400)

NAMED = {"none": None, "windows": WINDOWS, "onedrive": ONEDRIVE}  # the file:// remote's name_rules option


def named_on_linux(value: str | None) -> NameRules | None:
    """The rules called ``value`` (``NAMED``) for a directory on a Linux filesystem (file://
    with ``name_rules``): the mapped names must also fit its 255 bytes."""
    if value is None or value == "none":
        return None
    rules = NAMED.get(value)
    if rules is None:
        raise UserError(f"name_rules must be one of {', '.join(NAMED)}, not {value!r}")
    return dataclasses.replace(rules, max_name_bytes=255)
