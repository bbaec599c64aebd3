"""Minimal Office Open XML packages (ECMA-376 part 2, OPC) for the fake's Docs exports:
a ``.docx`` with one paragraph per line of text, an ``.xlsx`` with one cell per line (column
A, inline strings), a ``.pptx`` with one slide holding the text.  Deterministic (fixed zip
timestamps, a fixed part order) and stored uncompressed, so an export is never smaller
than the doc's text (the 10 MB export limit keeps its meaning).

Real enough for what reads a package: the zip, ``[Content_Types].xml``, the package
relationships and the main part with its text.  Not modelled: styles, themes, shared
strings, slide masters and layouts.  python-docx, openpyxl and python-pptx open them (checked
by hand; none of them is a dependency); Office itself may want the parts left out."""

from __future__ import annotations

import io
import re
import zipfile
from xml.sax.saxutils import escape

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_PKG_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_OFFICE_DOCUMENT = _DOC_RELS + "/officeDocument"
_CT = "http://schemas.openxmlformats.org/package/2006/content-types"
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_MAIN = "application/vnd.openxmlformats-officedocument"


_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: str) -> str:
    """XML character data: escaped, without the characters XML 1.0 cannot hold."""
    return escape(_NOT_XML.sub("", value))


def _content_types(overrides: dict[str, str]) -> str:
    parts = "".join(f'<Override PartName="/{name}" ContentType="{kind}"/>' for name, kind in overrides.items())
    return (f'{_XML}<Types xmlns="{_CT}">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            f'<Default Extension="xml" ContentType="application/xml"/>{parts}</Types>')


def _rels(targets: list[tuple[str, str]]) -> str:
    rels = "".join(f'<Relationship Id="rId{i}" Type="{kind}" Target="{target}"/>'
                   for i, (kind, target) in enumerate(targets, 1))
    return f'{_XML}<Relationships xmlns="{_PKG_RELS}">{rels}</Relationships>'


def _zip(parts: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for name, body in parts.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, body.encode("utf-8"))
    return out.getvalue()


def docx(lines: list[str]) -> bytes:
    paragraphs = "".join(f'<w:p><w:r><w:t xml:space="preserve">{_text(line)}</w:t></w:r></w:p>' for line in lines)
    return _zip({
        "[Content_Types].xml": _content_types({"word/document.xml": f"{_MAIN}.wordprocessingml.document.main+xml"}),
        "_rels/.rels": _rels([(_OFFICE_DOCUMENT, "word/document.xml")]),
        "word/document.xml": f'{_XML}<w:document xmlns:w="{_W}"><w:body>{paragraphs}</w:body></w:document>',
    })


def xlsx(lines: list[str]) -> bytes:
    rows = "".join(f'<row r="{i}"><c r="A{i}" t="inlineStr"><is><t xml:space="preserve">{_text(line)}</t></is></c>'
                   f'</row>' for i, line in enumerate(lines, 1))
    return _zip({
        "[Content_Types].xml": _content_types({
            "xl/workbook.xml": f"{_MAIN}.spreadsheetml.sheet.main+xml",
            "xl/worksheets/sheet1.xml": f"{_MAIN}.spreadsheetml.worksheet+xml"}),
        "_rels/.rels": _rels([(_OFFICE_DOCUMENT, "xl/workbook.xml")]),
        "xl/workbook.xml": (f'{_XML}<workbook xmlns="{_S}" xmlns:r="{_DOC_RELS}"><sheets>'
                            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'),
        "xl/_rels/workbook.xml.rels": _rels([(_DOC_RELS + "/worksheet", "worksheets/sheet1.xml")]),
        "xl/worksheets/sheet1.xml": f'{_XML}<worksheet xmlns="{_S}"><sheetData>{rows}</sheetData></worksheet>',
    })


def pptx(lines: list[str]) -> bytes:
    paragraphs = "".join(f"<a:p><a:r><a:t>{_text(line)}</a:t></a:r></a:p>" for line in lines) or "<a:p/>"
    shape = ('<p:sp><p:nvSpPr><p:cNvPr id="2" name="Text"/><p:cNvSpPr txBox="1"/><p:nvPr/></p:nvSpPr>'
             f'<p:spPr/><p:txBody><a:bodyPr/>{paragraphs}</p:txBody></p:sp>')
    tree = ('<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>' + shape)
    return _zip({
        "[Content_Types].xml": _content_types({
            "ppt/presentation.xml": f"{_MAIN}.presentationml.presentation.main+xml",
            "ppt/slides/slide1.xml": f"{_MAIN}.presentationml.slide+xml"}),
        "_rels/.rels": _rels([(_OFFICE_DOCUMENT, "ppt/presentation.xml")]),
        "ppt/presentation.xml": (f'{_XML}<p:presentation xmlns:p="{_P}" xmlns:r="{_DOC_RELS}">'
                                 '<p:sldIdLst><p:sldId id="256" r:id="rId1"/></p:sldIdLst>'
                                 '<p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" cy="9144000"/>'
                                 '</p:presentation>'),
        "ppt/_rels/presentation.xml.rels": _rels([(_DOC_RELS + "/slide", "slides/slide1.xml")]),
        "ppt/slides/slide1.xml": (f'{_XML}<p:sld xmlns:p="{_P}" xmlns:a="{_A}" xmlns:r="{_DOC_RELS}">'
                                  f'<p:cSld><p:spTree>{tree}</p:spTree></p:cSld></p:sld>'),
    })


BUILDERS = {DOCX: docx, XLSX: xlsx, PPTX: pptx}
