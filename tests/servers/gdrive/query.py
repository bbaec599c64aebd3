"""The ``q`` subset of files.list and the ``fields`` partial-response syntax.

q (developers.google.com/drive/api/guides/search-files): clauses joined by ``and``, each one of
``'ID' in parents``, ``trashed = true|false`` (also ``!=``), ``name = '...'`` / ``name != '...'``,
``mimeType = '...'`` / ``mimeType != '...'``; strings in single quotes with ``\\'`` and ``\\\\``
escapes.  Everything else (``or``, ``not``, parentheses, ``contains``, other fields) -> 400
invalid (location q): the real service supports more, this fake refuses what it doesn't model.

fields (developers.google.com/drive/api/guides/fields-parameter): ``a,b(c,d),e/f,*``; every
name is checked against the discovery document's schemas (400 invalidParameter "Invalid field
selection X", as Drive answers)."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from .errors import DriveError, invalid

Tree = dict  # name -> Tree | None (None: the whole value)


# -- q -------------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:\\.|[^'\\])*')|(?P<op>!=|=)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<other>\S))")


def _tokens(q: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    q = q.rstrip()
    while pos < len(q):
        m = _TOKEN.match(q, pos)
        if not m:
            raise invalid("q", hint=f"cannot tokenize q at {pos}")
        pos = m.end()
        kind = m.lastgroup
        val = m.group(kind)
        if kind == "str":
            body = val[1:-1]
            if any(m.group(1) not in "'\\" for m in re.finditer(r"\\(.)", body)):
                raise invalid("q", hint="only \\' and \\\\ escapes are allowed in q strings")
            val = re.sub(r"\\(.)", r"\1", body)
        out.append((kind, val))
    return out


def parse_q(q: str, resolve_id: Callable[[str], str]) -> list[Callable]:
    """Predicates ``p(store, file) -> bool`` (all must hold); 400 invalid for anything else."""
    toks = _tokens(q)
    if not toks:
        raise invalid("q", hint="empty q")
    preds: list[Callable] = []
    i = 0

    def refuse(why: str):
        return invalid("q", hint=f"q form not supported by the fake ({why}); supported: 'ID' in parents, "
                                 "trashed =/!= true|false, name =/!= '...', mimeType =/!= '...', joined by and")

    while True:
        clause = toks[i:i + 3]
        if len(clause) < 3:
            raise refuse("incomplete clause")
        (k1, v1), (k2, v2), (k3, v3) = clause
        if k1 == "str" and k2 == "word" and v2 == "in" and k3 == "word" and v3 == "parents":
            pid = resolve_id(v1)
            preds.append(lambda s, f, pid=pid: f.parent == pid)
        elif k1 == "word" and v1 == "trashed" and k2 == "op" and k3 == "word" and v3 in ("true", "false"):
            want = (v3 == "true") == (v2 == "=")
            preds.append(lambda s, f, want=want: s.is_trashed(f) == want)
        elif k1 == "word" and v1 in ("name", "mimeType") and k2 == "op" and k3 == "str":
            attr = "name" if v1 == "name" else "mime"
            eq = v2 == "="
            preds.append(lambda s, f, attr=attr, v=v3, eq=eq: (getattr(f, attr) == v) == eq)
        else:
            raise refuse(f"clause {' '.join(v for _, v in clause)!r}")
        i += 3
        if i == len(toks):
            return preds
        if toks[i] != ("word", "and"):
            raise refuse(f"{toks[i][1]!r} (only 'and' joins clauses)")
        i += 1


# -- fields --------------------------------------------------------------------------------------
def parse_fields(spec: str) -> Tree:
    """``nextPageToken,files(id,name,parents)`` -> {"nextPageToken": None, "files": {...}}."""
    pos = 0
    s = spec.replace(" ", "")

    def bad(why: str) -> DriveError:
        return DriveError(400, "invalidParameter", f"Invalid field selection {spec}", location="fields",
                          hint=why)

    def parse_list(depth: int) -> Tree:
        nonlocal pos
        tree: Tree = {}
        while True:
            m = re.compile(r"[A-Za-z0-9_*]+(?:/[A-Za-z0-9_*]+)*").match(s, pos)
            if not m:
                raise bad(f"expected a field name at {pos}")
            path = m.group(0).split("/")
            pos = m.end()
            sub = None
            if pos < len(s) and s[pos] == "(":
                pos += 1
                sub = parse_list(depth + 1)
                if pos >= len(s) or s[pos] != ")":
                    raise bad("unbalanced parentheses")
                pos += 1
            node = tree
            for name in path[:-1]:
                nxt = node.get(name, {})
                if nxt is None:  # already selected whole
                    break
                node[name] = nxt
                node = nxt
            else:
                _merge(node, path[-1], sub)
            if pos < len(s) and s[pos] == ",":
                pos += 1
                continue
            if depth and pos < len(s) and s[pos] == ")":
                return tree
            if pos == len(s) and not depth:
                return tree
            raise bad(f"unexpected {s[pos:pos + 1]!r} at {pos}")

    if not s:
        raise bad("empty fields")
    return parse_list(0)


def _merge(node: Tree, name: str, sub: Tree | None) -> None:
    if name in node and node[name] is None:
        return
    if sub is None or name not in node:
        node[name] = sub if sub is None else dict(sub)
        return
    for k, v in sub.items():
        _merge(node[name], k, v)


def apply_fields(tree: Tree | None, obj):
    if tree is None:
        return obj
    if isinstance(obj, list):
        return [apply_fields(tree, x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "*" in tree:
        out = dict(obj)
        for k, v in tree.items():
            if k != "*" and k in obj:
                out[k] = apply_fields(v, obj[k])
        return out
    return {k: apply_fields(v, obj[k]) for k, v in tree.items() if k in obj}


@lru_cache(maxsize=1)
def discovery() -> dict:
    import googleapiclient

    path = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "drive.v3.json"
    return json.loads(path.read_text())


def validate_fields(tree: Tree, schema: str, spec: str) -> None:
    """Every selected name must be a property of the schema (400 invalidParameter otherwise)."""
    schemas = discovery()["schemas"]

    def check(node: Tree, sch: dict) -> None:
        props = sch.get("properties")
        for name, sub in node.items():
            if name == "*":
                continue
            if props is None:
                if "additionalProperties" in sch:
                    prop = sch["additionalProperties"]
                else:
                    raise DriveError(400, "invalidParameter", f"Invalid field selection {name}",
                                     location="fields", hint=f"in {spec!r}")
            elif name not in props:
                raise DriveError(400, "invalidParameter", f"Invalid field selection {name}",
                                 location="fields", hint=f"in {spec!r}")
            else:
                prop = props[name]
            if sub is None:
                continue
            while prop.get("type") == "array":
                prop = prop["items"]
            if "$ref" in prop:
                prop = schemas[prop["$ref"]]
            if "properties" not in prop and "additionalProperties" not in prop:
                raise DriveError(400, "invalidParameter", f"Invalid field selection {name}",
                                 location="fields", hint=f"{name} has no sub-fields")
            check(sub, prop)

    check(tree, schemas[schema])


def select(fields: str | None, default: Tree, schema: str, obj: dict) -> dict:
    """``obj`` reduced to ``fields`` (or the v3 default selection when absent)."""
    if fields is None:
        return apply_fields(default, obj)
    if fields == "":
        return {}
    tree = parse_fields(fields)
    validate_fields(tree, schema, fields)
    return apply_fields(tree, obj)


FILE_DEFAULT: Tree = {"kind": None, "id": None, "name": None, "mimeType": None}
LIST_DEFAULT: Tree = {"kind": None, "incompleteSearch": None, "nextPageToken": None, "files": FILE_DEFAULT}
CHANGES_DEFAULT: Tree = {"kind": None, "nextPageToken": None, "newStartPageToken": None,
                         "changes": {"kind": None, "changeType": None, "time": None, "removed": None,
                                     "fileId": None, "driveId": None, "file": FILE_DEFAULT}}
DRIVE_DEFAULT: Tree = {"kind": None, "id": None, "name": None}
DRIVES_DEFAULT: Tree = {"kind": None, "nextPageToken": None, "drives": DRIVE_DEFAULT}
