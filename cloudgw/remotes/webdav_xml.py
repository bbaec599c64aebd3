"""WebDAV XML: the PROPFIND request body and a streaming parser of multistatus replies.

A reply is parsed as it arrives (``ElementTree.XMLPullParser``), one ``<response>``
at a time, so a Depth infinity listing of a large tree never sits in memory whole.
Only the properties cloudgw uses are asked for: resourcetype, getcontentlength,
getlastmodified, getetag and ownCloud/Nextcloud's ``oc:fileid`` and ``oc:checksums``
(servers answer 404 for the ones they lack; those are simply absent).  Of
``oc:checksums`` (``<oc:checksum>SHA1:… MD5:… ADLER32:…</oc:checksum>``, what a client
sent as ``OC-Checksum``) only the SHA1 is kept, in lower-case hex.

ETags become revisions through ``rev_of``: without quotes and without the weak
marker.  Apache's mod_dav_fs answers ``W/"<size>-<mtime µs>"`` (hex) while the file's
mtime is within a second of the request and ``"<size>-<mtime µs>"`` afterwards: the
same value, so the same content keeps the same revision.
"""

from __future__ import annotations

import datetime
import email.utils
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterator

from cloudgw.errors import TransientRemoteError

DAV = "{DAV:}"
OC_FILEID = "{http://owncloud.org/ns}fileid"
OC_CHECKSUMS = "{http://owncloud.org/ns}checksums"
OC_CHECKSUM = "{http://owncloud.org/ns}checksum"

PROPFIND_BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>\n'
    b'<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns"><d:prop>'
    b"<d:resourcetype/><d:getcontentlength/><d:getlastmodified/><d:getetag/><oc:fileid/><oc:checksums/>"
    b"</d:prop></d:propfind>"
)

PROPFIND_HEADERS = {"Content-Type": "application/xml; charset=utf-8"}

PROPPATCH_MTIME = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop>'
    "<d:getlastmodified>{}</d:getlastmodified>"
    "</d:prop></d:set></d:propertyupdate>"
)


def rev_of(etag: str | None) -> str | None:
    """An ETag as a revision: no weak marker, no quotes (``W/"a-b"`` == ``"a-b"`` == ``a-b``)."""
    if etag is None:
        return None
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"') or None


@dataclass(frozen=True)
class Prop:
    """One ``<response>`` of a multistatus reply."""

    href_path: str  # the URL path, unquoted, without a trailing slash
    collection: bool
    size: int
    mtime_ns: int
    etag: str | None  # normalised (rev_of)
    fileid: str | None
    status: int  # of the response as a whole (200 unless the server said otherwise)
    sha1: str | None = None  # from oc:checksums (lower-case hex), where the server has one


def sha1_of_checksums(element: ET.Element | None) -> str | None:
    """The SHA1 of an ``oc:checksums`` element (None: none there)."""
    if element is None:
        return None
    for checksum in element.iter(OC_CHECKSUM):
        for item in (checksum.text or "").split():
            kind, _, value = item.partition(":")
            value = value.strip().lower()
            if kind.upper() == "SHA1" and len(value) == 40 and all(c in "0123456789abcdef" for c in value):
                return value
    return None


def _href_path(href: str) -> str:
    """The unquoted path of an href, absolute URL or absolute path alike.  A plain
    ``/path`` (what servers send) skips ``urlsplit`` (~4 µs an entry of a listing); the
    rest (a URL, ``//host``, a query or fragment, whitespace or control characters that
    ``urlsplit`` strips) takes it."""
    if href[:1] == "/" and href[1:2] != "/" and "?" not in href and "#" not in href and href.isprintable():
        path = href
    else:
        path = urllib.parse.urlsplit(href).path
    return urllib.parse.unquote(path, errors="surrogateescape").rstrip("/") or "/"


def _status(text: str | None) -> int:
    try:
        return int((text or "").split()[1])
    except (IndexError, ValueError):
        return 0


_MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def _http_date_ns(text: str | None) -> int:
    """``getlastmodified`` in ns (0: none or unreadable).  RFC 4918 asks for RFC 1123
    dates (``Sun, 06 Nov 1994 08:49:37 GMT``); those are read directly, ~1 µs against
    ~9 for ``email.utils``, which reads every other form."""
    if not text:
        return 0
    text = text.strip()
    if len(text) == 29 and text[:3].isalpha() and text[3:5] == ", " and text[7] + text[11] + text[16] + text[19] + text[22] == "   ::" \
            and text[25:] == " GMT" and text[5:7].isdigit() and text[12:16].isdigit() \
            and (text[17:19] + text[20:22] + text[23:25]).isdigit():
        try:
            if text[12:14] == "00":  # email.utils reads years below 100 as 19xx/20xx
                raise ValueError
            moment = datetime.datetime(int(text[12:16]), _MONTHS[text[8:11]], int(text[5:7]), int(text[17:19]),
                                       int(text[20:22]), int(text[23:25]), tzinfo=datetime.timezone.utc)
            return int(moment.timestamp()) * 1_000_000_000
        except (KeyError, ValueError):
            pass  # not quite that form: email.utils decides
    try:
        return int(email.utils.parsedate_to_datetime(text).timestamp()) * 1_000_000_000
    except (TypeError, ValueError):
        return 0


def http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _prop(response: ET.Element) -> Prop | None:
    href = response.findtext(f"{DAV}href")
    if href is None:
        return None
    found: dict[str, ET.Element] = {}
    for propstat in response.findall(f"{DAV}propstat"):
        if _status(propstat.findtext(f"{DAV}status")) != 200:
            continue
        prop = propstat.find(f"{DAV}prop")
        for child in prop if prop is not None else ():
            found[child.tag] = child
    whole = _status(response.findtext(f"{DAV}status")) or 200
    rtype = found.get(f"{DAV}resourcetype")
    collection = rtype is not None and rtype.find(f"{DAV}collection") is not None
    try:
        size = int((found[f"{DAV}getcontentlength"].text or "0").strip()) if f"{DAV}getcontentlength" in found else 0
    except ValueError:
        size = 0
    etag_el = found.get(f"{DAV}getetag")
    id_el = found.get(OC_FILEID)
    return Prop(
        _href_path(href),
        collection,
        size,
        _http_date_ns(found[f"{DAV}getlastmodified"].text) if f"{DAV}getlastmodified" in found else 0,
        rev_of(etag_el.text) if etag_el is not None else None,
        (id_el.text or "").strip() or None if id_el is not None else None,
        whole,
        sha1_of_checksums(found.get(OC_CHECKSUMS)),
    )


class MultistatusParser:
    """Feed reply bytes, take finished ``Prop``s: memory is one ``<response>`` at a time
    (each is removed from the tree once read, so a Depth-infinity listing of a big tree
    does not keep one element per entry).  A reply that is not XML (an error page from a
    proxy, a cut body) raises ``TransientRemoteError``: the request is worth another try,
    and the caller's error handling applies -- never a parse error that nothing catches."""

    def __init__(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self._root: ET.Element | None = None

    def feed(self, data: bytes) -> Iterator[Prop]:
        try:
            self._parser.feed(data)
        except ET.ParseError as exc:
            raise TransientRemoteError(f"the server's PROPFIND reply is not valid XML ({exc})") from None
        return self._drain()

    def close(self) -> Iterator[Prop]:
        try:
            self._parser.close()
        except ET.ParseError as exc:
            raise TransientRemoteError(f"the server's PROPFIND reply is not valid XML ({exc})") from None
        return self._drain()

    def _drain(self) -> Iterator[Prop]:
        try:
            events = list(self._parser.read_events())
        except ET.ParseError as exc:
            raise TransientRemoteError(f"the server's PROPFIND reply is not valid XML ({exc})") from None
        for event, elem in events:
            if event == "start":
                self._depth += 1
                if self._depth == 1:
                    self._root = elem
                continue
            self._depth -= 1
            if elem.tag == f"{DAV}response" and self._depth == 1:
                prop = _prop(elem)
                if self._root is not None:
                    self._root.remove(elem)
                if prop is not None:
                    yield prop


def parse_multistatus(data: bytes) -> list[Prop]:
    parser = MultistatusParser()
    return [*parser.feed(data), *parser.close()]


def proppatch_ok(data: bytes) -> bool:
    """Whether a PROPPATCH multistatus reply set every property (all propstats 2xx)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return False
    statuses = [_status(s.text) for s in root.iter(f"{DAV}status")]
    return bool(statuses) and all(200 <= s < 300 for s in statuses)
