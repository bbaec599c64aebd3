"""The fake Google OAuth 2.0 + Drive v3 (tests/servers/gdrive) enforces its rules.

Driven with the real clients: google-auth (user and service-account credentials),
google-auth-oauthlib (InstalledAppFlow on a loopback redirect), google-api-python-client
(build("drive", "v3", static_discovery=True, client_options={"api_endpoint": api_url})) and
google-auth's AuthorizedSession for the raw resumable protocol."""

from __future__ import annotations

import hashlib
import io
import json
import queue
import threading
import urllib.parse

import pytest
import requests
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials
from google_auth_oauthlib.flow import InstalledAppFlow
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload, MediaIoBaseDownload, MediaIoBaseUpload

from tests.servers.gdrive import start_gdrive

DRIVE = "https://www.googleapis.com/auth/drive"
FOLDER = "application/vnd.google-apps.folder"
CHUNK = 262_144


@pytest.fixture
def g():
    with start_gdrive() as server:
        yield server


def creds(g) -> Credentials:
    t = g.issue_tokens()
    return Credentials(t["access_token"], refresh_token=t["refresh_token"], token_uri=g.token_url,
                       client_id=g.client_id, client_secret=g.client_secret, scopes=[DRIVE])


def drive(g, c=None):
    return build("drive", "v3", static_discovery=True, client_options={"api_endpoint": g.api_url},
                 credentials=c or creds(g))


def session(g) -> AuthorizedSession:
    s = AuthorizedSession(creds(g))
    s.trust_env = False
    return s


def reason(e: HttpError) -> tuple[int, str]:
    return e.resp.status, json.loads(e.content)["error"]["errors"][0]["reason"]


def upload(g, svc, data: bytes, **body):
    req = svc.files().create(body=body, media_body=MediaInMemoryUpload(data, mimetype="application/octet-stream"),
                             fields="id,name,parents,size,md5Checksum,headRevisionId,version")
    return g.fix_media_uri(req).execute()


# -- OAuth -----------------------------------------------------------------------------------------
def test_user_credentials_refresh_then_revoked_is_invalid_grant(g):
    c = creds(g)
    c.token = None
    c.refresh(Request())
    assert c.token.startswith("ya29.") and c.valid
    assert drive(g, c).files().list().execute()["kind"] == "drive#fileList"
    g.revoke()
    with pytest.raises(RefreshError, match="invalid_grant"):
        c.refresh(Request())


def test_expired_access_token_is_401_and_the_client_refreshes(g):
    svc = drive(g)
    svc.files().list().execute()
    g.expire_access_tokens()
    r = requests.get(g.api_url + "files", headers={"Authorization": "Bearer " + g.issue_tokens()["access_token"]})
    assert r.status_code == 200
    g.expire_access_tokens()
    before = g.counters["token"]
    svc.files().list().execute()  # 401 -> google-auth refreshes -> retried
    assert g.counters["token"] == before + 1
    r = requests.get(g.api_url + "files", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["errors"][0]["reason"] == "authError"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.get(g.api_url + "files").status_code == 401


def test_service_account_jwt_grant_with_and_without_sub(g, tmp_path):
    key = g.service_account_file(tmp_path / "sa.json")
    sa = service_account.Credentials.from_service_account_file(str(key), scopes=[DRIVE])
    sa.refresh(Request())
    about = drive(g, sa).about().get(fields="user(emailAddress)").execute()
    assert about["user"]["emailAddress"] == sa.service_account_email
    delegated = sa.with_subject(g.user)
    delegated.refresh(Request())
    assert drive(g, delegated).about().get(fields="user").execute()["user"]["emailAddress"] == g.user
    nodeleg = service_account.Credentials.from_service_account_file(
        str(g.service_account_file(tmp_path / "nd.json", delegation=False)), scopes=[DRIVE], subject=g.user)
    with pytest.raises(RefreshError, match="unauthorized_client"):
        nodeleg.refresh(Request())
    # the same client_email signed with another key: bad signature
    other = json.loads(g.service_account_file(tmp_path / "other.json").read_text())
    forged = dict(json.loads(key.read_text()), private_key=other["private_key"])
    bad = service_account.Credentials.from_service_account_info(forged, scopes=[DRIVE])
    with pytest.raises(RefreshError, match="Invalid JWT Signature"):
        bad.refresh(Request())


def test_installed_app_flow_with_loopback_redirect_and_pkce(g, tmp_path, monkeypatch):
    # oauthlib refuses http:// authorization and token URLs unless told otherwise (the fake is plain HTTP)
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    flow = InstalledAppFlow.from_client_secrets_file(str(g.client_secrets_file(tmp_path / "cs.json")), [DRIVE])
    urls: queue.Queue = queue.Queue()
    original = flow.authorization_url

    def capture(**kw):
        url, state = original(**kw)
        urls.put(url)
        return url, state

    flow.authorization_url = capture
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(
        c=flow.run_local_server(open_browser=False, port=0, authorization_prompt_message="")), daemon=True)
    t.start()
    url = urls.get(timeout=10)
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert q["code_challenge_method"] == "S256" and q["access_type"] == "offline"
    page = requests.get(url)  # the consent page: a form that POSTs to /auth
    assert page.status_code == 200 and 'action="/auth"' in page.text
    g.approve_next()
    assert requests.get(url).status_code == 200  # 302 to the loopback listener, which answers
    t.join(timeout=10)
    c = result["c"]
    assert c.token and c.refresh_token
    assert drive(g, c).about().get(fields="user(emailAddress)").execute()["user"]["emailAddress"] == g.user


def test_auth_and_token_endpoint_refusals(g):
    base = {"client_id": g.client_id, "redirect_uri": "http://127.0.0.1:5555/", "response_type": "code",
            "scope": DRIVE, "code_challenge": "x" * 43, "code_challenge_method": "S256", "state": "s1"}

    def auth(**over):
        return requests.get(g.auth_url, params={**base, **over}, allow_redirects=False)

    assert auth(client_id="nobody").status_code == 400
    r = auth(redirect_uri="urn:ietf:wg:oauth:2.0:oob")
    assert r.status_code == 400 and "invalid_request" in r.text
    assert auth(redirect_uri="https://evil.example/cb").status_code == 400
    g.approve_next()
    r = auth()
    assert r.status_code == 302
    loc = urllib.parse.urlsplit(r.headers["Location"])
    code = dict(urllib.parse.parse_qsl(loc.query))
    assert code["state"] == "s1" and loc.port == 5555
    form = {"grant_type": "authorization_code", "code": code["code"], "client_id": g.client_id,
            "client_secret": g.client_secret, "redirect_uri": base["redirect_uri"], "code_verifier": "y" * 43}
    r = requests.post(g.token_url, data=form)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"  # verifier does not match
    r = requests.post(g.token_url, data={**form, "client_secret": "wrong"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.post(g.token_url, data={**form, "grant_type": "password"})
    assert r.json()["error"] == "unsupported_grant_type"


# -- files -----------------------------------------------------------------------------------------
def test_files_create_get_fields_and_duplicate_names(g):
    svc = drive(g)
    folder = svc.files().create(body={"name": "d", "mimeType": FOLDER}, fields="id,parents").execute()
    assert folder["parents"] == [g.root_id]
    a = upload(g, svc, b"one", name="same.txt", parents=[folder["id"]])
    b = upload(g, svc, b"two", name="same.txt", parents=[folder["id"]])
    assert a["id"] != b["id"] and len(a["id"]) == 33
    assert a["size"] == "3" and a["md5Checksum"] == hashlib.md5(b"one").hexdigest()
    assert {x["id"] for x in g.backdoor.find(folder["id"], "same.txt")} == {a["id"], b["id"]}
    assert set(svc.files().get(fileId=a["id"]).execute()) == {"kind", "id", "name", "mimeType"}
    got = svc.files().get(fileId=a["id"], fields="id,size,sha256Checksum,capabilities/canEdit").execute()
    assert got == {"id": a["id"], "size": "3", "sha256Checksum": hashlib.sha256(b"one").hexdigest(),
                   "capabilities": {"canEdit": True}}
    f = svc.files().get(fileId=folder["id"], fields="*").execute()
    assert "size" not in f and "md5Checksum" not in f and f["mimeType"] == FOLDER
    with pytest.raises(HttpError) as e:
        svc.files().get(fileId=a["id"], fields="id,nmae").execute()
    assert reason(e.value) == (400, "invalidParameter")
    with pytest.raises(HttpError) as e:
        svc.files().get(fileId="1" + "x" * 32).execute()
    assert reason(e.value) == (404, "notFound") and "File not found: 1xxx" in str(e.value)
    with pytest.raises(HttpError) as e:
        svc.files().create(body={"name": "x", "parents": [a["id"]]}).execute()
    assert e.value.resp.status == 400  # parent is not a folder
    with pytest.raises(HttpError) as e:
        svc.files().create(body={"name": "x", "size": "3"}).execute()
    assert reason(e.value) == (403, "fieldNotWritable")


def test_list_q_forms_paging_and_refusals(g):
    svc = drive(g)
    d = g.backdoor.create_folder("root", "q")
    g.backdoor.create_file(d["id"], "O'Brien \\ 1", b"x", mime="text/plain")
    for i in range(4):
        g.backdoor.create_file(d["id"], f"f{i}", b"y")
    sub = g.backdoor.create_folder(d["id"], "sub")
    g.backdoor.trash(g.backdoor.create_file(d["id"], "gone", b"z")["id"])

    def names(q, **kw):
        return sorted(f["name"] for f in svc.files().list(q=q, fields="files(name)", **kw).execute()["files"])

    inq = f"'{d['id']}' in parents"
    assert names(f"{inq} and name = 'O\\'Brien \\\\ 1'") == ["O'Brien \\ 1"]
    assert names(f"{inq} and mimeType = '{FOLDER}'") == ["sub"]
    assert len(names(f"{inq} and mimeType != '{FOLDER}' and trashed = false")) == 5
    assert names(f"{inq} and trashed = true") == ["gone"]
    assert "gone" in names(inq)  # without trashed = false, trashed files are listed too
    assert names(f"'{sub['id']}' in parents") == []
    pages, token = [], None
    while True:
        r = svc.files().list(q=f"{inq} and trashed = false", pageSize=2, pageToken=token,
                             fields="nextPageToken,files(id)").execute()
        pages.append(len(r["files"]))
        token = r.get("nextPageToken")
        if not token:
            break
    assert pages == [2, 2, 2]
    for bad in (f"{inq} or trashed = false", "name contains 'f'", "fullText contains 'x'", "name = 'unterminated"):
        with pytest.raises(HttpError) as e:
            svc.files().list(q=bad).execute()
        assert reason(e.value) == (400, "invalid"), bad
    with pytest.raises(HttpError) as e:
        svc.files().list(pageToken="forged").execute()
    assert reason(e.value) == (400, "invalid")
    with pytest.raises(HttpError) as e:
        svc.files().list(pageSize=1001).execute()
    assert reason(e.value) == (400, "invalid")


def test_update_metadata_move_content_and_single_parent(g):
    svc = drive(g)
    a = g.backdoor.create_folder("root", "a")
    b = g.backdoor.create_folder("root", "b")
    f = g.backdoor.create_file(a["id"], "x.bin", b"v1")
    r = svc.files().update(fileId=f["id"], body={"name": "y.bin", "modifiedTime": "2020-01-02T03:04:05.678Z"},
                           addParents=b["id"], removeParents=a["id"],
                           fields="name,parents,modifiedTime,version,headRevisionId").execute()
    assert r["name"] == "y.bin" and r["parents"] == [b["id"]] and r["modifiedTime"] == "2020-01-02T03:04:05.678Z"
    assert int(r["version"]) > int(f["version"]) and r["headRevisionId"] == f["headRevisionId"]
    req = svc.files().update(fileId=f["id"], media_body=MediaInMemoryUpload(b"v2", mimetype="application/octet-stream"),
                             fields="md5Checksum,headRevisionId,version,size")
    r2 = g.fix_media_uri(req).execute()
    assert r2["md5Checksum"] == hashlib.md5(b"v2").hexdigest() and r2["headRevisionId"] != f["headRevisionId"]
    assert int(r2["version"]) > int(r["version"])
    with pytest.raises(HttpError) as e:
        svc.files().update(fileId=f["id"], addParents=a["id"]).execute()
    assert reason(e.value) == (403, "cannotAddParent")
    with pytest.raises(HttpError) as e:
        svc.files().update(fileId=f["id"], body={"parents": [a["id"]]}).execute()
    assert reason(e.value) == (403, "fieldNotWritable")


def test_trash_marks_subtree_and_delete_removes_it(g):
    svc = drive(g)
    d = g.backdoor.create_folder("root", "d")
    child = g.backdoor.create_file(d["id"], "c", b"c")
    svc.files().update(fileId=d["id"], body={"trashed": True}).execute()
    got = svc.files().get(fileId=child["id"], fields="trashed,explicitlyTrashed").execute()
    assert got == {"trashed": True, "explicitlyTrashed": False}
    svc.files().delete(fileId=d["id"]).execute()
    with pytest.raises(HttpError) as e:
        svc.files().get(fileId=child["id"]).execute()
    assert reason(e.value) == (404, "notFound")


# -- uploads ---------------------------------------------------------------------------------------
def test_resumable_upload_protocol_rules(g):
    s = session(g)
    r = s.post(g.upload_url + "?uploadType=resumable", json={"name": "big.bin"},
               headers={"X-Upload-Content-Type": "application/octet-stream"})
    assert r.status_code == 200
    uri = r.headers["Location"]
    data = bytes(range(256)) * (3 * CHUNK // 256) + b"tail"
    total = len(data)

    def put(first, last, body=None):
        body = data[first:last + 1] if body is None else body
        return requests.put(uri, data=body, headers={"Content-Range": f"bytes {first}-{last}/{total}"})

    assert put(0, 1000).status_code == 400  # not a multiple of 256 KiB
    r = requests.put(uri, headers={"Content-Range": f"bytes */{total}"})
    assert r.status_code == 308 and "Range" not in r.headers
    r = put(0, CHUNK - 1)
    assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{CHUNK - 1}"
    assert put(2 * CHUNK, 3 * CHUNK - 1).status_code == 400  # not at the next byte
    g.fail_upload_chunks(1)
    with pytest.raises(requests.ConnectionError):
        put(CHUNK, 2 * CHUNK - 1)
    r = requests.put(uri, headers={"Content-Range": f"bytes */{total}"})
    assert r.status_code == 308 and r.headers["Range"] == f"bytes=0-{CHUNK - 1}"  # the dropped chunk is gone
    assert put(CHUNK, 3 * CHUNK - 1).status_code == 308
    r = put(3 * CHUNK, total - 1)
    assert r.status_code == 200
    f = r.json()
    assert f["name"] == "big.bin" and g.backdoor.read(f["id"]) == data
    assert g.counters["dropped_chunk"] == 1


def test_googleapiclient_resumable_and_multipart_limit(g):
    svc = drive(g)
    data = b"\x01" * (2 * CHUNK + 7)
    media = MediaIoBaseUpload(io.BytesIO(data), mimetype="application/octet-stream", chunksize=CHUNK,
                              resumable=True)
    req = g.fix_media_uri(svc.files().create(body={"name": "r.bin"}, media_body=media, fields="id,size"))
    resp = None
    while resp is None:
        _, resp = req.next_chunk()
    assert resp["size"] == str(len(data)) and g.counters["upload_chunk"] == 3
    with pytest.raises(HttpError) as e:
        upload(g, svc, b"\0" * (5 * 1024 * 1024 + 1), name="too-big")
    assert e.value.resp.status == 400  # multipart is for <= 5 MB


# -- downloads, export -----------------------------------------------------------------------------
def test_alt_media_with_range_and_docs_not_downloadable(g):
    svc = drive(g)
    f = g.backdoor.create_file("root", "r.bin", b"0123456789")
    s = session(g)
    url = f"{g.api_url}files/{f['id']}?alt=media"
    r = s.get(url, headers={"Range": "bytes=2-5"})
    assert r.status_code == 206 and r.content == b"2345" and r.headers["Content-Range"] == "bytes 2-5/10"
    r = s.get(url, headers={"Range": "bytes=10-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */10"
    buf = io.BytesIO()
    dl = MediaIoBaseDownload(buf, svc.files().get_media(fileId=f["id"]), chunksize=4)
    done = False
    while not done:
        _, done = dl.next_chunk()
    assert buf.getvalue() == b"0123456789"
    doc = g.backdoor.create_doc("root", "Notes", text="hi")
    with pytest.raises(HttpError) as e:
        svc.files().get_media(fileId=doc["id"]).execute()
    assert reason(e.value) == (403, "fileNotDownloadable")


def test_docs_export_limit_and_export_links(g):
    svc = drive(g)
    doc = g.backdoor.create_doc("root", "Notes", text="hello")
    assert "size" not in doc and "md5Checksum" not in doc
    txt = svc.files().export(fileId=doc["id"], mimeType="text/plain").execute()
    assert txt.endswith(b"hello")
    assert svc.files().export(fileId=doc["id"], mimeType="text/plain").execute() == txt  # deterministic
    g.backdoor.edit_doc(doc["id"], "hello again")
    assert svc.files().export(fileId=doc["id"], mimeType="text/plain").execute() != txt
    with pytest.raises(HttpError) as e:
        svc.files().export(fileId=doc["id"], mimeType="image/png").execute()
    assert e.value.resp.status == 400
    big = g.backdoor.create_doc("root", "Big", text="x" * (10 * 1024 * 1024 + 1))
    with pytest.raises(HttpError) as e:
        svc.files().export(fileId=big["id"], mimeType="text/plain").execute()
    assert reason(e.value) == (403, "exportSizeLimitExceeded")
    links = svc.files().get(fileId=big["id"], fields="exportLinks").execute()["exportLinks"]
    docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert requests.get(links[docx]).status_code == 401
    r = session(g).get(links[docx])
    assert r.status_code == 200 and len(r.content) > 10 * 1024 * 1024  # exportLinks have no 10 MB limit



@pytest.mark.parametrize("kind,mime,main", [
    ("document", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", "word/document.xml"),
    ("spreadsheet", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xl/worksheets/sheet1.xml"),
    ("presentation", "application/vnd.openxmlformats-officedocument.presentationml.presentation",
     "ppt/slides/slide1.xml"),
])
def test_office_exports_are_ooxml_packages_with_the_text(g, kind, mime, main):
    import xml.dom.minidom
    import zipfile

    svc = drive(g)
    doc = g.backdoor.create_doc("root", "Plan", kind=kind, text="first line\nsecond <&> line")
    data = svc.files().export(fileId=doc["id"], mimeType=mime).execute()
    z = zipfile.ZipFile(io.BytesIO(data))
    assert z.testzip() is None and {"[Content_Types].xml", "_rels/.rels", main} <= set(z.namelist())
    for name in z.namelist():
        xml.dom.minidom.parseString(z.read(name))  # well-formed
    text = z.read(main).decode()
    assert "first line" in text and "second &lt;&amp;&gt; line" in text
    assert svc.files().export(fileId=doc["id"], mimeType=mime).execute() == data  # deterministic
    g.backdoor.edit_doc(doc["id"], "changed")
    assert svc.files().export(fileId=doc["id"], mimeType=mime).execute() != data

# -- changes, shared drives ------------------------------------------------------------------------
def test_changes_collapse_trash_remove_and_paging(g):
    svc = drive(g)
    start = svc.changes().getStartPageToken().execute()["startPageToken"]
    assert isinstance(start, str)
    f = g.backdoor.create_file("root", "c.txt", b"1")
    g.backdoor.update(f["id"], b"2")
    g.backdoor.rename(f["id"], "c2.txt")
    t = g.backdoor.create_file("root", "t.txt", b"t")
    g.backdoor.trash(t["id"])
    gone = g.backdoor.create_file("root", "gone.txt", b"g")
    g.backdoor.delete(gone["id"])
    fields = "nextPageToken,newStartPageToken,changes(fileId,removed,file(name,trashed))"
    r = svc.changes().list(pageToken=start, fields=fields).execute()
    by_id = {c["fileId"]: c for c in r["changes"]}
    assert len(r["changes"]) == 3  # one entry per file, in its latest state
    assert by_id[f["id"]]["file"]["name"] == "c2.txt"
    assert by_id[t["id"]]["file"]["trashed"] is True
    assert by_id[gone["id"]]["removed"] is True and "file" not in by_id[gone["id"]]
    assert "nextPageToken" not in r
    seen, token = [], start
    while True:
        r = svc.changes().list(pageToken=token, pageSize=1, fields=fields).execute()
        seen += [c["fileId"] for c in r["changes"]]
        if "newStartPageToken" in r:
            break
        token = r["nextPageToken"]
    assert sorted(seen) == sorted(by_id)
    assert svc.changes().list(pageToken=r["newStartPageToken"]).execute()["changes"] == []
    with pytest.raises(HttpError) as e:
        svc.changes().list(pageToken="bogus").execute()
    assert reason(e.value) == (400, "invalid")


def test_shared_drive_needs_all_drives_parameters(g):
    svc = drive(g)
    start = svc.changes().getStartPageToken().execute()["startPageToken"]
    did = g.backdoor.create_shared_drive("Team")
    f = g.backdoor.create_file("root", "s.txt", b"s", drive=did)
    assert f["driveId"] == did and f["parents"] == [did]
    assert [d["id"] for d in svc.drives().list().execute()["drives"]] == [did]
    with pytest.raises(HttpError) as e:
        svc.files().get(fileId=f["id"]).execute()
    assert reason(e.value) == (404, "notFound")
    assert svc.files().get(fileId=f["id"], supportsAllDrives=True, fields="driveId").execute()["driveId"] == did
    with pytest.raises(HttpError) as e:
        svc.files().list(corpora="drive", driveId=did, supportsAllDrives=True).execute()
    assert reason(e.value) == (400, "invalid")
    listed = svc.files().list(corpora="drive", driveId=did, supportsAllDrives=True,
                              includeItemsFromAllDrives=True).execute()["files"]
    assert [x["id"] for x in listed] == [f["id"]]
    assert svc.files().list().execute()["files"] == []  # corpora=user: My Drive only
    assert svc.changes().list(pageToken=start).execute()["changes"] == []
    r = svc.changes().list(pageToken=start, supportsAllDrives=True, includeItemsFromAllDrives=True).execute()
    assert [c["fileId"] for c in r["changes"]] == [f["id"]]


# -- limits ----------------------------------------------------------------------------------------
def test_rate_limits_and_upload_quota(g):
    svc = drive(g)
    g.rate_limit(1)
    with pytest.raises(HttpError) as e:
        svc.files().list().execute()
    assert reason(e.value) == (403, "userRateLimitExceeded") and "retry-after" not in e.value.resp
    g.rate_limit(1, reason="rateLimitExceeded", status=429, retry_after=3)
    r = session(g).get(g.api_url + "files")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["error"]["errors"][0]["domain"] == "usageLimits"
    assert svc.files().list().execute()["files"] == []
    g.upload_quota_exceeded(True)
    with pytest.raises(HttpError) as e:
        upload(g, svc, b"x", name="q")
    assert reason(e.value) == (403, "userRateLimitExceeded") and "User rate limit exceeded." in str(e.value)
    g.upload_quota_exceeded(False)
    assert upload(g, svc, b"x", name="q")["size"] == "1"


def test_parameters_and_required_fields_are_checked(g):
    s = session(g)
    r = s.get(g.api_url + "files", params={"includeTeamDriveItems": "yes"})
    assert r.status_code == 400
    r = s.get(g.api_url + "files", params={"nosuchparam": "1"})
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["reason"] == "invalidParameter"
    r = s.get(g.api_url + "about")
    assert r.status_code == 400 and r.json()["error"]["errors"][0]["reason"] == "required"
    assert s.get(g.root_url + "files").status_code == 404  # the API lives under /drive/v3/
