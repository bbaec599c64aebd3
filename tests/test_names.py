"""Name rules per remote and their reversible mapping (cloudgw/remotes/names.py, mapped.py).

Tables say what each kind of remote stores for a local name; properties (hypothesis)
say the mapping is safe for every name: it round-trips, is injective, only stores
what the remote can hold, and names other tools made stay reachable.  The wrapper
and the refusals at create/rename time run on a real directory and the real
filesystem core (tests/inprocess/harness.py).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from cloudgw.errors import RemoteNameInvalid, RemoteNameTooLong, UserError
from cloudgw.filesystem import FsError
from cloudgw.remotes.base import BytesSource, Kind, check_path
from cloudgw.remotes.local import LocalRemote
from cloudgw.remotes.mapped import MappedNamesRemote
from cloudgw.remotes.names import (FILE, GOOGLE_DRIVE, ONEDRIVE, QUOTE, S3, WEBDAV, WINDOWS, NameCodec, NameRules,
                                   lookalike, named_on_linux)
from cloudgw.remotes.registry import open_remote, remote_type
from cloudgw.remotes.router import RouterRemote
from tests.inprocess.harness import running

ALL = {"file": FILE, "s3": S3, "webdav": WEBDAV, "google-drive": GOOGLE_DRIVE, "windows": WINDOWS,
       "onedrive": ONEDRIVE}
OD = NameCodec(ONEDRIVE)
LINUX_OD = named_on_linux("onedrive")
assert LINUX_OD is not None

# -- tables: local name -> stored name ------------------------------------------------------

IDENTITY_NAMES = ["a*b", 'q"<>|?:\\', "CON", "desktop.ini", "x.", " lead", "trail ", "~$tmp", "_vti_", "\x01",
                  "a＊b", QUOTE, "日本語.txt"]


@pytest.mark.parametrize("rules", [FILE, S3, WEBDAV, GOOGLE_DRIVE], ids=lambda r: r.label)
def test_remotes_with_few_rules_store_every_name_as_it_is(rules: NameRules):
    codec = NameCodec(rules)
    assert codec.identity and not rules.maps_names
    for name in IDENTITY_NAMES:
        assert codec.encode(name) == name and codec.decode(name) == name


ONEDRIVE_TABLE = [
    ("plain name.txt", "plain name.txt"),
    ("a*b", "a＊b"), ("a:b", "a：b"), ("a?b", "a？b"), ('a"b', "a＂b"), ("a<b>c", "a＜b＞c"), ("a|b", "a｜b"),
    ("a\\b", "a＼b"), ("tab\there", "tab␉here"), ("bell\x07", "bell␇"), ("del\x7f", "del␡"),
    ("dot.", "dot．"), ("space ", "space␠"), (" lead", "␠lead"), ("~tilde", "～tilde"), ("a.b", "a.b"),
    ("mid~dle", "mid~dle"), ("two..", "two.．"), ("..x", "..x"),
    ("CON", "ＣON"), ("con", "ｃon"), ("Con.txt", "Ｃon.txt"), ("nul.tar.gz", "ｎul.tar.gz"), ("COM0", "ＣOM0"),
    ("lpt9.x", "ｌpt9.x"), ("CONSOLE", "CONSOLE"), ("com10", "com10"), ("CON.", "CON．"),
    (".lock", "．lock"), (".LOCK", "．LOCK"), ("x.lock", "x.lock"), ("desktop.ini", "ｄesktop.ini"),
    ("Desktop.INI", "Ｄesktop.INI"), ("~$report.docx", "～$report.docx"),
    ("_vti_", "_ｖti_"), ("a_vti_b", "a_ｖti_b"), ("a_VTI_b", "a_ＶTI_b"), ("_vti_vti_", "_ｖti_ｖti_"),
    # literal lookalikes are quoted only where decoding would turn them back
    ("a＊b", f"a{QUOTE}＊b"), ("dot．", f"dot{QUOTE}．"), ("a．b", "a．b"), ("ＣON", f"{QUOTE}ＣON"),
    ("Ｃat", "Ｃat"), ("␠lead", f"{QUOTE}␠lead"), ("_ｖti_", f"_{QUOTE}ｖti_"),
    # the quote itself: doubled only before what it would quote
    (QUOTE, QUOTE), (f"{QUOTE}a", f"{QUOTE}a"), (f"{QUOTE}*", f"{QUOTE}{QUOTE}＊"),
    (f"{QUOTE}＊", f"{QUOTE}{QUOTE}{QUOTE}＊"),
    (f"{QUOTE}{QUOTE}", f"{QUOTE}{QUOTE}"),  # storable, and no mapping's output: stored as it is
]


@pytest.mark.parametrize("local, stored", ONEDRIVE_TABLE)
def test_onedrive_table(local: str, stored: str):
    assert OD.encode(local) == stored
    assert OD.decode(stored) == local
    assert ONEDRIVE.storable(stored)


WINDOWS_TABLE = [("a*b", "a＊b"), ("CON.txt", "ＣON.txt"), ("x.", "x．"), ("x ", "x␠"), (" x", " x"),
                 ("~$x", "~$x"), ("_vti_", "_vti_"), ("desktop.ini", "desktop.ini"), ("a＊b", f"a{QUOTE}＊b")]


@pytest.mark.parametrize("local, stored", WINDOWS_TABLE)
def test_windows_smb_table(local: str, stored: str):
    codec = NameCodec(WINDOWS)
    assert codec.encode(local) == stored and codec.decode(stored) == local


@pytest.mark.parametrize("remote, shown", [
    ("a＊b", "a*b"),  # made in the OneDrive web UI: shown as rclone shows it, maps back to it
    ("ＣON", "CON"), ("x．", "x."), ("a．b", "a．b"), ("Ｃat", "Ｃat"),
    (f"{QUOTE}a", f"{QUOTE}a"),  # a quote before an ordinary character
    (f"a{QUOTE}．b", f"a{QUOTE}．b"),  # a quoted lookalike where nothing needs quoting
    (f"{QUOTE}{QUOTE}a", f"{QUOTE}{QUOTE}a"), ("．", "．"),  # would decode to "." : not a local name
])
def test_names_other_tools_made_are_shown_and_reach_the_same_object(remote: str, shown: str):
    assert OD.decode(remote) == shown
    assert OD.encode(shown) == remote


def test_the_one_ambiguity_left_needs_a_quote_made_elsewhere():
    """``‛‛‛a`` is the strict mapping of ``‛‛a``, which is itself a storable name stored as is:
    the first shows as the second.  Only tools quoting with U+201B make such names."""
    assert OD.decode(f"{QUOTE}{QUOTE}{QUOTE}a") == f"{QUOTE}{QUOTE}a" == OD.encode(f"{QUOTE}{QUOTE}a")


def test_every_declared_remote_type_says_its_rules():
    assert remote_type("s3://b").names is S3
    assert remote_type("file:///x").names is not None


# -- properties -------------------------------------------------------------------------------

_SPECIAL = sorted({*'"*:<>?\\|. ~$_vtiVTICONnulLPTcomdesktop.ini', "\x01", "\x1f", "\x7f", QUOTE, "é", "İ",
                   "日", "\udcff", *(lookalike(c) for c in '"*:<>?\\|.~CcNnLlPpAaDdVv_ '), "␁", "␟", "␡"})
_chars = st.one_of(st.sampled_from(_SPECIAL), st.characters(blacklist_characters="/\0",
                                                           blacklist_categories=("Cs",)))
_pieces = st.one_of(_chars, st.sampled_from(["CON", "con.", "desktop.ini", ".lock", "~$", "_vti_", "_VtI_", "COM7",
                                              QUOTE * 2, "．", "Ｃ"]))
local_names = st.lists(_pieces, min_size=1, max_size=12).map("".join).filter(
    lambda n: n not in (".", "..") and len(n.encode("utf-8", "surrogateescape")) <= 255)
RULES = pytest.mark.parametrize("rules", [ONEDRIVE, WINDOWS, LINUX_OD], ids=["onedrive", "windows", "linux-od"])


@RULES
@settings(max_examples=400, deadline=None)
@given(name=local_names)
@example(name="CON.")
@example(name=f"{QUOTE}*")
@example(name="_vti_vti_")
def test_encode_round_trips_and_stores_only_what_the_remote_holds(rules: NameRules, name: str):
    codec = NameCodec(rules)
    stored = codec.encode(name)
    assert codec.decode(stored) == name
    if not (rules.unicode_only and "\udcff" in name):
        assert rules.storable(stored), stored


@RULES
@settings(max_examples=400, deadline=None)
@given(a=local_names, b=local_names)
def test_encode_is_injective(rules: NameRules, a: str, b: str):
    assume(a != b)
    codec = NameCodec(rules)
    assert codec.encode(a) != codec.encode(b)


@RULES
@settings(max_examples=400, deadline=None)
@given(remote=local_names)
def test_every_storable_remote_name_is_reachable_under_the_name_shown(rules: NameRules, remote: str):
    """Listing shows ``decode(r)``; every access encodes that again.  Apart from the one
    ambiguity above (needs a quote before a quote), that leads back to ``r``."""
    assume(rules.storable(remote))
    codec = NameCodec(rules)
    shown = codec.decode(remote)
    if codec.encode(shown) != remote:
        assert QUOTE in remote, (remote, shown)
        assert rules.storable(shown) and shown != remote


# -- limits ------------------------------------------------------------------------------------


def test_limits_count_the_stored_form_in_the_remotes_units():
    OD.check("x" * 255)
    OD.check("*" * 255)  # 255 fullwidth asterisks: 255 UTF-16 units
    with pytest.raises(RemoteNameTooLong) as info:
        OD.check("＊" * 128)  # 128 quoted lookalikes: 256 units
    assert info.value.errno == errno.ENAMETOOLONG
    OD.check("/".join(["d" * 99] * 4))  # 399 units
    with pytest.raises(RemoteNameTooLong, match="paths of 400 UTF-16 units"):
        OD.check("/".join(["d" * 99] * 4) + "xx")
    linux = NameCodec(LINUX_OD)
    linux.check("a" * 252 + "*")  # the stored name is 255 bytes
    with pytest.raises(RemoteNameTooLong, match="255 bytes"):
        linux.check("a" * 253 + "*")
    with pytest.raises(RemoteNameInvalid) as bad:
        OD.check("dir/caf\udce9.txt")  # Latin-1 bytes from the kernel: OneDrive names are Unicode
    assert bad.value.errno == errno.EINVAL
    NameCodec(FILE).check("caf\udce9.txt")


def test_the_file_remote_takes_name_rules_as_an_option(tmp_path: Path):
    plain = open_remote(f"file://{tmp_path}")
    assert isinstance(plain, LocalRemote)
    mapped = open_remote(f"file://{tmp_path}", {"name_rules": "onedrive"})
    assert isinstance(mapped, MappedNamesRemote) and mapped.codec.rules == LINUX_OD
    assert mapped.capabilities.case_sensitive is False
    with pytest.raises(UserError, match=r"name_rules must be one of none, windows, onedrive, not 'ntfs'"):
        open_remote(f"file://{tmp_path}", {"name_rules": "ntfs"})


# -- the wrapper on a real directory -------------------------------------------------------------


async def test_the_directory_holds_mapped_names_and_the_remote_shows_the_originals(tmp_path: Path):
    remote = MappedNamesRemote(LocalRemote(tmp_path), NameCodec(LINUX_OD))
    written = await remote.write("dir?/a*b", BytesSource(b"star"))
    assert written.path == "dir?/a*b"
    assert (tmp_path / "dir？" / "a＊b").read_bytes() == b"star"
    (tmp_path / "dir？" / "x＊y").write_bytes(b"made elsewhere")  # e.g. in the OneDrive web UI
    assert {e.path: e.kind for e in [e async for e in remote.list("", recursive=True)]} == {
        "dir?": Kind.DIR, "dir?/a*b": Kind.FILE, "dir?/x*y": Kind.FILE}
    assert await remote.read("dir?/x*y", 0, 100) == b"made elsewhere"
    moved = await remote.rename("dir?/x*y", "CON.")
    assert moved.path == "CON." and (tmp_path / "CON．").exists()
    await remote.symlink("l|nk", "dir?/a*b")  # the target is content, kept as it is
    assert os.readlink(tmp_path / "l｜nk") == "dir?/a*b"
    assert await remote.readlink("l|nk") == "dir?/a*b"
    assert (await remote.stat("l|nk")).kind is Kind.SYMLINK
    with pytest.raises(RemoteNameTooLong):
        check_path(RouterRemote({"od": remote}), "od/" + "a" * 253 + "*")
    check_path(RouterRemote({"od": remote}), "od/" + "a" * 252 + "*")
    await remote.aclose()


# -- refused at create and rename time, through the filesystem core -------------------------------


@pytest.fixture
def od_dirs(tmp_path: Path) -> tuple[Path, Path]:
    cloud = tmp_path / "cloud"
    cloud.mkdir()
    return cloud, tmp_path / "cache"


async def test_names_the_remote_cannot_hold_are_refused_at_create_and_rename(od_dirs):
    cloud, cache = od_dirs
    async with running(open_remote(f"file://{cloud}", {"name_rules": "onedrive"}), cache) as h:
        await h.write_file("ok*.txt", b"x")
        for bad, err in (("a" * 253 + "*", errno.ENAMETOOLONG), ("caf\udce9", errno.EINVAL)):
            with pytest.raises(FsError) as info:
                await h.write_file(bad, b"y")
            assert info.value.errno == err
            with pytest.raises(FsError) as info:
                await h.mkdir(bad)
            assert info.value.errno == err
            with pytest.raises(FsError) as info:
                await h.rename("ok*.txt", bad)
            assert info.value.errno == err
            with pytest.raises(FsError) as info:
                await h.fs.ns.symlink(1, bad, "target", 0, 0)
            assert info.value.errno == err
        await h.settle()
        assert sorted(os.listdir(cloud)) == ["ok＊.txt"]


async def test_a_case_only_twin_is_refused_on_a_case_insensitive_remote(od_dirs):
    cloud, cache = od_dirs
    async with running(open_remote(f"file://{cloud}", {"name_rules": "onedrive"}), cache) as h:
        await h.write_file("Report.doc", b"one")
        await h.write_file("other", b"two")
        for attempt in (h.write_file("report.DOC", b"twin"), h.mkdir("REPORT.doc"), h.rename("other", "rePort.doc")):
            with pytest.raises(FsError) as info:
                await attempt
            assert info.value.errno == errno.EEXIST
        await h.rename("Report.doc", "REPORT.DOC")  # a case-only rename of the file itself
        await h.rename("other", "REPORT.DOC")  # the exact name: replaces it, as always
        await h.settle()
        assert await h.listdir("") == ["REPORT.DOC"]
        assert os.listdir(cloud) == ["REPORT.DOC"]
    async with running(LocalRemote(cloud), cache.with_name("plain")) as h:
        await h.write_file("report.doc", b"a case-sensitive remote takes twins")
        assert await h.listdir("") == ["REPORT.DOC", "report.doc"]


async def test_twins_are_refused_only_on_the_case_insensitive_remote_of_a_router(od_dirs):
    cloud, cache = od_dirs
    (cloud / "od").mkdir()
    (cloud / "plain").mkdir()
    router = RouterRemote({"od": open_remote(f"file://{cloud}/od", {"name_rules": "onedrive"}),
                           "plain": LocalRemote(cloud / "plain")})
    async with running(router, cache) as h:
        for top in ("od", "plain"):
            await h.write_file(f"{top}/Report.doc", b"one")
        with pytest.raises(FsError) as info:
            await h.write_file("od/report.doc", b"twin")
        assert info.value.errno == errno.EEXIST
        await h.write_file("plain/report.doc", b"twin")
        await h.settle()
        assert sorted(os.listdir(cloud / "plain")) == ["Report.doc", "report.doc"]
        assert os.listdir(cloud / "od") == ["Report.doc"]
