"""The fake Microsoft identity platform + Graph drive API (tests/servers/graph) enforces its rules.

Identity is driven with the real msal (PublicClientApplication, instance_discovery=False, an
http_client session that trusts only the test CA); Graph with plain httpx/requests."""

from __future__ import annotations

import json
import ssl
import threading
import urllib.parse

import httpx
import msal
import pytest
import requests

from cloudgw.remotes.quickxor import quickxor_b64
from tests.servers.graph import start_graph

SCOPES = ["Files.ReadWrite.All"]
FRAG = 327_680  # 320 KiB


@pytest.fixture
def graph():
    with start_graph() as g:
        yield g


def session(g) -> requests.Session:
    s = requests.Session()
    s.verify = str(g.ca_file)
    s.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise override verify
    return s


def msal_app(g, tenant: str = "common") -> msal.PublicClientApplication:
    return msal.PublicClientApplication(g.client_id, authority=f"{g.authority_url}/{tenant}",
                                        http_client=session(g), instance_discovery=False)


def client(g, token: str | None = None, *, auth: bool = True) -> httpx.Client:
    """An httpx client for Graph (absolute or graph_url-relative URLs), with a fresh bearer token."""
    ctx = ssl.create_default_context(cafile=str(g.ca_file))
    headers = {}
    if auth:
        headers["Authorization"] = "Bearer " + (token or g.issue_tokens()["access_token"])
    return httpx.Client(base_url=g.graph_url, verify=ctx, trust_env=False, headers=headers, timeout=30)


def code(r: httpx.Response) -> tuple[int, str | None, str | None]:
    """(status, error.code, error.innerError.code)."""
    try:
        err = r.json().get("error", {})
    except ValueError:
        return r.status_code, None, None
    return r.status_code, err.get("code"), (err.get("innerError") or {}).get("code")


def token_post(g, **form) -> dict:
    r = session(g).post(f"{g.authority_url}/common/oauth2/v2.0/token", data=form)
    assert r.status_code in (200, 400), r.text
    return r.json()


# -- identity ------------------------------------------------------------------------------------

def test_device_flow_pending_then_approved_on_the_devicelogin_page(graph):
    app = msal_app(graph)
    flow = app.initiate_device_flow(scopes=SCOPES)
    assert flow["verification_uri"] == f"{graph.authority_url}/devicelogin"
    assert flow["interval"] == 1 and flow["expires_in"] == 900
    assert flow["user_code"] in flow["message"] and flow["verification_uri"] in flow["message"]
    assert graph.pending_user_codes() == [flow["user_code"]]
    s = session(graph)
    assert s.post(f"{graph.authority_url}/devicelogin", data={"user_code": "NOPE-NOPE"}).status_code == 400

    def approve():
        assert s.post(f"{graph.authority_url}/devicelogin", data={"user_code": flow["user_code"]}).status_code == 200

    timer = threading.Timer(0.2, approve)  # the first poll sees authorization_pending
    timer.start()
    result = app.acquire_token_by_device_flow(flow)
    timer.join()
    assert "access_token" in result, result
    assert result["scope"] == "Files.ReadWrite.All" and result["token_type"] == "Bearer"
    assert graph.counters["token"] == 2
    (account,) = app.get_accounts()
    assert account["username"] == "testuser@contoso.onmicrosoft.com"
    # the device code is single use
    again = token_post(graph, client_id=graph.client_id, device_code=flow["device_code"],
                       grant_type="urn:ietf:params:oauth:grant-type:device_code")
    assert again["error"] == "bad_verification_code"
    assert again["error_description"].startswith("AADSTS") and again["error_codes"]
    with client(graph, result["access_token"]) as c:
        assert c.get("/me/drive").json()["id"] == graph.drive_id


def test_device_flow_terminal_errors_and_slow_down(graph):
    app = msal_app(graph)
    denied = app.initiate_device_flow(scopes=SCOPES)
    graph.deny(denied["user_code"])
    assert app.acquire_token_by_device_flow(denied)["error"] == "authorization_declined"
    expired = app.initiate_device_flow(scopes=SCOPES)
    graph.expire_device_codes()
    assert app.acquire_token_by_device_flow(expired)["error"] == "expired_token"

    flow = app.initiate_device_flow(scopes=SCOPES)
    with graph.lock:  # white-box: a long interval, so that "too fast" does not depend on timing
        graph.identity.device_codes[flow["device_code"]].interval = 60
    poll = dict(client_id=graph.client_id, device_code=flow["device_code"],
                grant_type="urn:ietf:params:oauth:grant-type:device_code")
    assert token_post(graph, **poll)["error"] == "authorization_pending"
    assert token_post(graph, **poll)["error"] == "slow_down"


def test_identity_rejects_bad_requests(graph):
    s = session(graph)
    base = f"{graph.authority_url}/common/oauth2/v2.0"
    bad_client = s.post(base + "/devicecode", data={"client_id": "someone-else",
                                                    "scope": "Files.ReadWrite.All offline_access"})
    assert bad_client.status_code == 400 and bad_client.json()["error"] == "invalid_client"
    no_offline = s.post(base + "/devicecode", data={"client_id": graph.client_id, "scope": "Files.ReadWrite.All"})
    assert no_offline.json()["error"] == "invalid_scope"
    assert token_post(graph, client_id=graph.client_id, grant_type="password")["error"] == "unsupported_grant_type"
    as_json = s.post(base + "/token", json={"client_id": graph.client_id, "grant_type": "refresh_token"})
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
    with pytest.raises(ValueError):
        msal_app(graph, tenant="contoso.example")  # unknown tenant: the OIDC document is a 400


def test_refresh_rotates_and_revoked_refresh_token_makes_silent_fail(graph):
    app = msal_app(graph)
    first = app.acquire_token_by_refresh_token(graph.issue_tokens()["refresh_token"], SCOPES)
    assert "access_token" in first, first
    (account,) = app.get_accounts()
    old_rt = first["refresh_token"]
    again = app.acquire_token_silent(SCOPES, account, force_refresh=True)
    assert again and again["refresh_token"] != old_rt and again["access_token"] != first["access_token"]
    # rotation does not revoke the previous refresh token
    assert "access_token" in token_post(graph, client_id=graph.client_id, grant_type="refresh_token",
                                        refresh_token=old_rt, scope="Files.ReadWrite.All offline_access")
    graph.revoke_refresh_tokens()
    assert app.acquire_token_silent(SCOPES, account, force_refresh=True) is None
    err = token_post(graph, client_id=graph.client_id, grant_type="refresh_token", refresh_token=old_rt)
    assert err["error"] == "invalid_grant" and err["suberror"] == "bad_token" and err["error_codes"] == [50173]


def test_graph_needs_a_valid_access_token(graph):
    with client(graph, auth=False) as c:
        assert code(c.get("/me/drive")) == (401, "InvalidAuthenticationToken", None)
        assert code(c.get("/me/drive", headers={"Authorization": "Bearer forged"}))[0] == 401
    with client(graph) as c:
        assert c.get("/me/drive/root").status_code == 200
        graph.expire_access_tokens()
        r = c.get("/me/drive/root")
        assert code(r)[:2] == (401, "InvalidAuthenticationToken") and "WWW-Authenticate" in r.headers


# -- items, names, simple uploads ---------------------------------------------------------------------

def test_simple_upload_limits_conflicts_and_preconditions(graph):
    with client(graph) as c:
        r = c.put("/me/drive/root:/Report.txt:/content", content=b"hello world")
        assert r.status_code == 201
        item = r.json()
        assert item["file"]["hashes"]["quickXorHash"] == quickxor_b64(b"hello world") == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
        assert item["parentReference"]["path"] == "/drive/root:" and item["size"] == 11
        # names are case-insensitive: replace (the default) keeps the id and the stored case
        r = c.put("/me/drive/root:/REPORT.TXT:/content", content=b"v2")
        assert r.status_code == 200
        v2 = r.json()
        assert (v2["id"], v2["name"]) == (item["id"], "Report.txt")
        assert v2["eTag"] != item["eTag"] and v2["cTag"] != item["cTag"]
        fail = c.put("/me/drive/root:/report.TXT:/content", content=b"x",
                     params={"@microsoft.graph.conflictBehavior": "fail"})
        assert code(fail)[:2] == (409, "nameAlreadyExists")
        renamed = c.put("/me/drive/root:/report.txt:/content", content=b"x",
                        params={"@microsoft.graph.conflictBehavior": "rename"})
        assert renamed.status_code == 201 and renamed.json()["name"] == "report 1.txt"
        # If-Match: a stale tag or a missing item -> 412; the cTag is accepted as well as the eTag
        stale = c.put(f"/me/drive/items/{item['id']}/content", content=b"x", headers={"If-Match": item["eTag"]})
        assert code(stale)[:2] == (412, "preconditionFailed")
        missing = c.put("/me/drive/root:/nothing.txt:/content", content=b"x", headers={"If-Match": item["eTag"]})
        assert missing.status_code == 412
        ok = c.put(f"/me/drive/items/{item['id']}/content", content=b"v3", headers={"If-Match": v2["cTag"]})
        assert ok.status_code == 200
        # 4 MiB is the limit of a simple upload
        assert c.put("/me/drive/root:/big.bin:/content", content=bytes(4 * 1024 * 1024)).status_code == 201
        too_big = c.put("/me/drive/root:/bigger.bin:/content", content=bytes(4 * 1024 * 1024 + 1))
        assert code(too_big)[:2] == (413, "requestTooLarge")
        assert code(c.put("/me/drive/root:/no/such/dir/f.txt:/content", content=b"x"))[:2] == (404, "itemNotFound")
    assert graph.backdoor.read("report.txt") == b"v3"
    assert graph.counters.bytes_uploaded == 11 + 2 + 1 + 2 + 4 * 1024 * 1024


def test_forbidden_names_and_long_paths(graph):
    bad = ['a"b', "a*b", "a<b", "a>b", "a?b", "a\\b", "a|b", " lead", "trail ", "dot.", "CON", "con.txt",
           "LPT3.doc", "COM0", "AUX", "NUL.x", "PRN", ".lock", "desktop.ini", "~$draft.docx", "x_vti_y"]
    with client(graph) as c:
        for name in bad:
            r = c.put(f"/me/drive/root:/{urllib.parse.quote(name)}:/content", content=b"x")
            assert code(r) == (400, "invalidRequest", "invalidPath"), name
            r = c.post("/me/drive/root/children", json={"name": name, "folder": {}})
            assert code(r)[0] == 400, name
        colon = c.put("/me/drive/root:/a%3Ab:/content", content=b"x")  # an encoded ':' stays in the name
        assert code(colon)[2] == "invalidPath"
        graph.backdoor.mkdir("d" * 100)
        long_path = "d" * 100 + "/" + "n" * 300  # 401 characters
        assert code(c.put(f"/me/drive/root:/{long_path}:/content", content=b"x"))[2] == "pathIsTooLong"
        assert c.put(f"/me/drive/root:/{long_path[:-1]}:/content", content=b"x").status_code == 201


def test_paths_are_percent_decoded_once_and_parent_paths_are_encoded(graph):
    with client(graph) as c:
        folder = c.post("/me/drive/root/children", json={"name": "a b#%", "folder": {},
                                                         "@microsoft.graph.conflictBehavior": "fail"})
        assert folder.status_code == 201 and "cTag" not in folder.json()  # business: no cTag on folders
        r = c.put("/me/drive/root:/a%20b%23%25/x%2520y.txt:/content", content=b"1")
        assert r.status_code == 201 and r.json()["name"] == "x%20y.txt"
        assert r.json()["parentReference"]["path"] == "/drive/root:/a%20b%23%25"
        by_drive = c.get(f"/drives/{graph.drive_id}/items/{r.json()['id']}").json()
        assert by_drive["parentReference"]["path"] == f"/drives/{graph.drive_id}/root:/a%20b%23%25"
        assert c.get(f"/me/drive/items/{folder.json()['id']}:/X%2520Y.TXT").json()["id"] == r.json()["id"]
    assert graph.backdoor.list("a b#%") == ["x%20y.txt"]


def test_mkdir_patch_and_delete_rules(graph):
    with client(graph) as c:
        root_id = c.get("/me/drive/root").json()["id"]
        docs = c.post("/me/drive/root/children", json={"name": "Docs", "folder": {},
                                                       "@microsoft.graph.conflictBehavior": "fail"}).json()
        clash = c.post(f"/me/drive/items/{root_id}/children", json={"name": "DOCS", "folder": {},
                                                                     "@microsoft.graph.conflictBehavior": "fail"})
        assert code(clash)[:2] == (409, "nameAlreadyExists")
        sub = c.post(f"/me/drive/items/{docs['id']}/children", json={"name": "sub", "folder": {}}).json()
        f = c.put("/me/drive/root:/Docs/f.txt:/content", content=b"data").json()
        c.put("/me/drive/root:/g.txt:/content", content=b"other")
        # rename + fileSystemInfo: eTag changes, cTag does not; the client's mtime is kept as given
        mtime = "2021-03-04T05:06:07.1234567Z"
        r = c.patch(f"/me/drive/items/{f['id']}", json={"name": "F2.txt",
                                                        "fileSystemInfo": {"lastModifiedDateTime": mtime}})
        assert r.status_code == 200
        f2 = r.json()
        assert f2["eTag"] != f["eTag"] and f2["cTag"] == f["cTag"]
        assert f2["fileSystemInfo"]["lastModifiedDateTime"] == mtime
        stale = c.patch(f"/me/drive/items/{f['id']}", json={"name": "x.txt"}, headers={"If-Match": f["eTag"]})
        assert code(stale)[0] == 412
        # move into the root where g.txt exists (any case): 409 unless replace
        move = {"parentReference": {"id": root_id}, "name": "G.TXT"}
        assert code(c.patch(f"/me/drive/items/{f['id']}", json=move))[:2] == (409, "nameAlreadyExists")
        r = c.patch(f"/me/drive/items/{f['id']}", json={**move, "@microsoft.graph.conflictBehavior": "replace"})
        assert r.status_code == 200 and r.json()["parentReference"]["id"] == root_id
        assert graph.backdoor.list() == ["Docs", "G.TXT"] and graph.backdoor.read("G.TXT") == b"data"
        assert c.patch(f"/me/drive/items/{f['id']}", json={"parentReference": {"id": "root"}}).status_code == 400
        into_self = c.patch(f"/me/drive/items/{docs['id']}", json={"parentReference": {"id": sub["id"]}})
        assert code(into_self)[:2] == (400, "invalidRequest")
        # delete: If-Match, the root is protected, folders go recursively
        assert c.delete(f"/me/drive/items/{docs['id']}", headers={"If-Match": '"{0},1"'}).status_code == 412
        assert code(c.delete(f"/me/drive/items/{root_id}"))[0] == 403
        assert c.delete(f"/me/drive/items/{docs['id']}").status_code == 204
        assert code(c.get(f"/me/drive/items/{sub['id']}"))[:2] == (404, "itemNotFound")
        assert code(c.get("/me/drive/root:/docs/sub"))[0] == 404


def test_children_paging(graph):
    with start_graph(page_size=2) as g, client(g) as c:
        for i in range(5):
            g.backdoor.put(f"d/f{i}.txt", b"x")
        names, url, pages = [], "/me/drive/root:/d:/children", 0
        while url:
            body = c.get(url).json()
            names += [v["name"] for v in body["value"]]
            url = body.get("@odata.nextLink")
            pages += 1
            assert url is None or url.startswith(g.graph_url + "/")
        assert (names, pages) == ([f"f{i}.txt" for i in range(5)], 3)
        assert len(c.get("/me/drive/root:/d:/children", params={"$top": 4}).json()["value"]) == 4
        assert code(c.get("/me/drive/root:/d:/children", params={"$skiptoken": "forged"}))[0] == 400


# -- upload sessions --------------------------------------------------------------------------

def test_upload_session_fragment_rules(graph):
    data = bytes(range(256)) * (FRAG * 3 // 256) + b"tail"  # 3 x 320 KiB + 4 bytes
    total = len(data)
    mtime = "2020-01-02T03:04:05Z"
    with client(graph) as c, httpx.Client(verify=ssl.create_default_context(cafile=str(graph.ca_file)),
                                          trust_env=False) as up:
        r = c.post("/me/drive/root:/big.bin:/createUploadSession",
                   json={"item": {"@microsoft.graph.conflictBehavior": "fail",
                                  "fileSystemInfo": {"lastModifiedDateTime": mtime}}})
        assert r.status_code == 200 and r.json()["nextExpectedRanges"] == ["0-"]
        url = r.json()["uploadUrl"]
        assert url.startswith(graph.authority_url + "/_pre/upload/")

        def put(a, b, body=None, total=total, **headers):
            body = data[a:b + 1] if body is None else body
            return up.put(url, content=body, headers={"Content-Range": f"bytes {a}-{b}/{total}", **headers})

        assert code(put(0, FRAG - 1, Authorization=c.headers["Authorization"]))[0] == 401
        assert code(put(0, 1000)) == (400, "invalidRequest", "invalidFragmentLength")  # not a 320 KiB multiple
        assert code(put(0, FRAG - 1, total=total + 1))[0] == 202  # the first fragment fixes the total ...
        assert code(put(FRAG, 2 * FRAG - 1, total=total))[2] == "fragmentLengthMismatch"  # ... for good
        up.delete(url)
        url = c.post("/me/drive/root:/big.bin:/createUploadSession",
                     json={"item": {"@microsoft.graph.conflictBehavior": "fail",
                                    "fileSystemInfo": {"lastModifiedDateTime": mtime}}}).json()["uploadUrl"]
        gap = put(FRAG, 2 * FRAG - 1)
        assert code(gap) == (416, "invalidRange", "fragmentOutOfOrder")
        assert gap.json()["error"]["nextExpectedRanges"] == ["0-"]
        r = put(0, 2 * FRAG - 1)
        assert r.status_code == 202 and r.json()["nextExpectedRanges"] == [f"{2 * FRAG}-"]
        assert code(put(FRAG, 3 * FRAG - 1))[2] == "fragmentOverlap"
        # a dropped connection stores nothing; GET uploadUrl tells where to resume
        graph.fail_upload_fragments(1)
        with pytest.raises(httpx.TransportError):
            put(2 * FRAG, 3 * FRAG - 1)
        assert up.get(url).json()["nextExpectedRanges"] == [f"{2 * FRAG}-"]
        assert put(2 * FRAG, 3 * FRAG - 1).status_code == 202
        # commit-time conflict (the name appeared meanwhile): 409, the final fragment may be resent
        graph.backdoor.put("BIG.bin", b"someone else")
        assert code(put(3 * FRAG, total - 1))[:2] == (409, "nameAlreadyExists")
        graph.backdoor.delete("BIG.bin")
        done = put(3 * FRAG, total - 1)
        assert done.status_code == 201
        item = done.json()
        assert item["size"] == total and item["file"]["hashes"]["quickXorHash"] == quickxor_b64(data)
        assert item["fileSystemInfo"]["lastModifiedDateTime"] == mtime
        assert code(up.get(url))[:2] == (404, "itemNotFound")  # a completed session is gone
        assert graph.backdoor.read("big.bin") == data

        # If-Match is checked at creation and again at the last fragment; DELETE cancels
        assert c.post("/me/drive/root:/big.bin:/createUploadSession", json={},
                      headers={"If-Match": '"{x},1"'}).status_code == 412
        url = c.post("/me/drive/root:/big.bin:/createUploadSession",
                     json={"item": {"@microsoft.graph.conflictBehavior": "replace"}},
                     headers={"If-Match": item["eTag"]}).json()["uploadUrl"]
        graph.backdoor.put("big.bin", b"changed elsewhere")
        assert code(up.put(url, content=b"abc", headers={"Content-Range": "bytes 0-2/3"}))[0] == 412
        assert up.delete(url).status_code == 204
        assert code(up.get(url))[0] == 404


# -- downloads ----------------------------------------------------------------------------------

def test_content_redirect_range_and_preconditions(graph):
    payload = bytes(range(256)) * 4
    item = graph.backdoor.put("dl/file.bin", payload)
    with client(graph) as c:
        r = c.get("/me/drive/root:/dl/file.bin:/content")
        assert r.status_code == 302
        loc = r.headers["Location"]
        assert loc.startswith(graph.authority_url + "/_pre/download/")
        assert code(c.get("/me/drive/root:/dl:/content"))[0] == 400  # a folder has no content
        assert code(c.get(f"/me/drive/items/{item['id']}/content", headers={"If-Match": '"{0},9"'}))[0] == 412
        assert c.get(f"/me/drive/items/{item['id']}/content", headers={"If-Match": item["cTag"]}).status_code == 302
    graph.backdoor.put("dl/file.bin", b"new version")
    s = requests.Session()
    s.trust_env = False
    whole = s.get(loc, verify=str(graph.ca_file))  # no Authorization needed; the issued version is served
    assert whole.status_code == 200 and whole.content == payload
    part = s.get(loc, headers={"Range": "bytes=10-19"}, verify=str(graph.ca_file))
    assert part.status_code == 206 and part.content == payload[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(payload)}"
    tail = s.get(loc, headers={"Range": "bytes=1000-"}, verify=str(graph.ca_file))
    assert tail.status_code == 206 and tail.content == payload[1000:]
    assert s.get(loc, headers={"Range": "bytes=1024-"}, verify=str(graph.ca_file)).status_code == 416


# -- delta ------------------------------------------------------------------------------------------

def _delta_pages(c, url):
    """All items of a delta round, the number of pages, and the final deltaLink."""
    items, pages = [], 0
    while True:
        body = c.get(url).json()
        items += body["value"]
        pages += 1
        if "@odata.deltaLink" in body:
            return items, pages, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_delta_paging_duplicates_deletes_and_resync():
    with start_graph(delta_page_size=2) as g, client(g) as c:
        for i in range(3):
            g.backdoor.put(f"dir/f{i}.txt", b"x")
        items, pages, link = _delta_pages(c, "/me/drive/root/delta")
        assert "root" in items[0] and len(items) == 5 and pages == 3
        assert all("path" not in v["parentReference"] for v in items)
        assert "token=" in link and link.startswith(g.graph_url + "/me/drive/root/delta")
        latest = c.get("/me/drive/root/delta", params={"token": "latest"}).json()
        assert latest["value"] == [] and "@odata.deltaLink" in latest

        f0 = g.backdoor.item("dir/f0.txt")["id"]
        c.put(f"/me/drive/items/{f0}/content", content=b"one")
        c.put(f"/me/drive/items/{f0}/content", content=b"two")
        gone = g.backdoor.item("dir/f1.txt")["id"]
        c.delete(f"/me/drive/items/{gone}")
        g.backdoor.put("elsewhere.txt", b"from another PC")
        changes, _, link2 = _delta_pages(c, link)
        ids = [v["id"] for v in changes]
        assert ids.count(f0) == 2  # the same item appears once per change
        assert [v for v in changes if v["id"] == f0][-1]["size"] == 3
        deleted = [v for v in changes if v["id"] == gone]
        assert deleted and deleted[-1]["deleted"] == {"state": "deleted"}
        assert any(v.get("name") == "elsewhere.txt" for v in changes)
        assert all("path" not in v["parentReference"] and "cTag" not in v for v in changes)

        assert c.get(link2).json()["value"] == []
        g.expire_delta_tokens()
        r = c.get(link2)
        assert code(r)[:2] == (410, "resyncRequired") and "Location" in r.headers


# -- throttling, SharePoint ---------------------------------------------------------------------------

def test_throttling_answers_retry_after(graph):
    url = graph.backdoor.put("t.txt", b"x")
    with client(graph) as c:
        loc = c.get(f"/me/drive/items/{url['id']}/content").headers["Location"]
        graph.throttle(2, retry_after=3)
        for _ in range(2):
            r = c.get("/me/drive/root")
            assert code(r)[:2] == (429, "activityLimitReached") and r.headers["Retry-After"] == "3"
        assert c.get(loc).status_code == 200  # throttle() leaves the pre-authenticated URLs alone
        assert c.get("/me/drive/root").status_code == 200
        graph.throttle(1, retry_after=1, status=503)
        assert code(c.get("/me/drive/root"))[:2] == (503, "serviceNotAvailable")
        graph.throttle_pre(1)
        assert c.get(loc).status_code == 429
        assert c.get(loc).status_code == 200
    assert graph.counters["throttled"] == 4


def test_sharepoint_site_and_libraries(graph):
    graph.backdoor.put("Old/report.docx", b"archived", drive="Archive")
    with client(graph) as c:
        site = c.get(f"/sites/{graph.site_host}:{graph.site_path.lower()}")
        assert site.status_code == 200
        site_id = site.json()["id"]
        assert site_id.count(",") == 2 and site_id.startswith(graph.site_host + ",")
        libs = c.get(f"/sites/{site_id}/drives").json()["value"]
        assert {d["name"]: d["id"] for d in libs} == graph.library_drive_ids
        assert all(d["driveType"] == "documentLibrary" for d in libs)
        assert c.get(f"/sites/{site_id}/drive").json()["id"] == graph.library_drive_ids["Documents"]
        archive = graph.library_drive_ids["Archive"]
        kids = c.get(f"/drives/{archive}/root:/Old:/children").json()["value"]
        assert [k["name"] for k in kids] == ["report.docx"]
        assert kids[0]["parentReference"]["path"] == f"/drives/{archive}/root:/Old"
        assert code(c.get(f"/sites/{graph.site_host}:/sites/Nope"))[0] == 404


def test_personal_drive_folder_ctag_follows_descendants():
    with start_graph(drive_type="personal") as g, client(g) as c:
        folder = g.backdoor.mkdir("a/b")
        assert "cTag" in folder and c.get("/me/drive").json()["driveType"] == "personal"
        before = c.get("/me/drive/root:/a").json()
        g.backdoor.put("a/b/f.txt", b"x")
        after = c.get("/me/drive/root:/a").json()
        assert after["cTag"] != before["cTag"] and after["eTag"] == before["eTag"]
        assert json.loads(json.dumps(after))["parentReference"]["driveType"] == "personal"
