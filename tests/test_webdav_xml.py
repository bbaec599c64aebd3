"""The PROPFIND reply parser: bounded memory on big listings, and a reply that is not
XML is a remote error (retried, then EIO or a failed poll), never an uncaught parse
error that stops the daemon."""

from __future__ import annotations

import email.utils
import random
import urllib.parse

import pytest

from cloudgw.errors import TransientRemoteError
from cloudgw.remotes.webdav_xml import MultistatusParser, _href_path, _http_date_ns, parse_multistatus

_RESPONSE = ('<d:response><d:href>/dav/f{i}.txt</d:href><d:propstat><d:prop><d:getcontentlength>{i}'
             '</d:getcontentlength><d:getetag>"e{i}"</d:getetag><d:resourcetype/></d:prop>'
             '<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>')


def _reply(n: int) -> bytes:
    return ('<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">'
            + "".join(_RESPONSE.format(i=i) for i in range(n)) + "</d:multistatus>").encode()


def test_a_big_listing_keeps_no_element_per_entry():
    parser = MultistatusParser()
    data = _reply(5000)
    seen = 0
    for start in range(0, len(data), 4096):
        seen += sum(1 for _ in parser.feed(data[start:start + 4096]))
        assert parser._root is None or len(parser._root) <= 1  # only the <response> being read
    seen += sum(1 for _ in parser.close())
    assert seen == 5000


@pytest.mark.parametrize("body", [b"<html><body>502 Bad Gateway</body>", b"<d:multistatus xmlns:d='DAV:'><d:respo",
                                  b"\x00\xff not xml"])
def test_a_reply_that_is_not_xml_is_a_transient_remote_error(body):
    with pytest.raises(TransientRemoteError, match="not valid XML"):
        parse_multistatus(body)


_APACHE = b'''<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">
<D:response xmlns:lp1="DAV:" xmlns:g0="http://owncloud.org/ns">
<D:href>/dav/a%20dir/</D:href>
<D:propstat><D:prop><lp1:resourcetype><D:collection/></lp1:resourcetype>
<lp1:getlastmodified>Mon, 07 Dec 2026 05:00:09 GMT</lp1:getlastmodified></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat>
<D:propstat><D:prop><g0:fileid/><g0:checksums/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat>
</D:response>
<D:response xmlns:lp1="DAV:" xmlns:oc="http://owncloud.org/ns">
<D:href>http://server:8080/dav/a%20dir/f%C3%A9.txt</D:href>
<D:propstat><D:prop><lp1:resourcetype/><lp1:getcontentlength>1234</lp1:getcontentlength>
<lp1:getlastmodified>Tue, 01 Mar 2016 23:59:59 GMT</lp1:getlastmodified><lp1:getetag>W/"4d2-52d0a"</lp1:getetag>
<oc:fileid> 77 </oc:fileid><oc:checksums><oc:checksum>MD5:00 SHA1:ABCDEF0123456789ABCDEF0123456789ABCDEF01</oc:checksum>
</oc:checksums></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
</D:response>
<D:response><D:href>/dav/gone</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>
</D:multistatus>
'''


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_an_apache_style_reply_reads_the_same_however_it_arrives(chunk):
    parser = MultistatusParser()
    props = [p for start in range(0, len(_APACHE), chunk) for p in parser.feed(_APACHE[start:start + chunk])]
    props += parser.close()
    folder, file, gone = props
    assert (folder.href_path, folder.collection, folder.mtime_ns, folder.fileid, folder.sha1) == \
        ("/dav/a dir", True, 1796619609 * 10**9, None, None)
    assert (file.href_path, file.collection, file.size, file.mtime_ns, file.etag, file.fileid, file.sha1) == \
        ("/dav/a dir/fé.txt", False, 1234, 1456876799 * 10**9, "4d2-52d0a", "77",
         "abcdef0123456789abcdef0123456789abcdef01")
    assert (gone.href_path, gone.status) == ("/dav/gone", 404)


def _mutations(rnd: random.Random, text: str, alphabet: str) -> str:
    chars = list(text)
    for _ in range(rnd.randint(0, 3)):
        chars[rnd.randrange(len(chars))] = rnd.choice(alphabet)
    return "".join(chars)


def test_dates_read_as_the_email_package_reads_them():
    """The fast path for RFC 1123 dates agrees with ``email.utils`` on valid and mangled dates."""
    rnd = random.Random(4918)

    def reference(text: str) -> int:
        try:
            return int(email.utils.parsedate_to_datetime(text.strip()).timestamp()) * 10**9
        except (TypeError, ValueError):
            return 0

    for _ in range(30_000):
        text = _mutations(rnd, email.utils.formatdate(rnd.randint(-10**10, 10**10), usegmt=True),
                          "0123456789 :,+-.\tGMTUZJanDecMonSunéx")
        assert _http_date_ns(text) == reference(text), text


def test_hrefs_read_as_urlsplit_reads_them():
    """The fast path for plain ``/path`` hrefs agrees with ``urlsplit`` + ``unquote``."""
    rnd = random.Random(3986)
    pieces = ["/", "dav", "a b", "%20", "%2F", "%C3%A9", "%", "?", "#", "//", "\t", "\n", " ", "\x00", "\u00a0",
              "é", ";", "..", "http://h:1", "HTTPS://x"]
    for _ in range(30_000):
        href = "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 6)))
        path = urllib.parse.unquote(urllib.parse.urlsplit(href).path, errors="surrogateescape").rstrip("/") or "/"
        assert _href_path(href) == path, href
