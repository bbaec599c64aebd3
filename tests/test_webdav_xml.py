"""The PROPFIND reply parser: bounded memory on big listings, and a reply that is not
XML is a remote error (retried, then EIO or a failed poll), never an uncaught parse
error that stops the daemon."""

from __future__ import annotations

import pytest

from cloudgw.errors import TransientRemoteError
from cloudgw.remotes.webdav_xml import MultistatusParser, parse_multistatus

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
