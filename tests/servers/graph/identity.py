"""The fake Microsoft identity platform: OIDC metadata, OAuth 2.0 device code
grant (RFC 8628) and refresh tokens, v2.0 endpoints, as msal 1.39 uses them.

Endpoints (``{tenant}`` = ``common``, ``organizations``, the fake tenant GUID or
the server's configured tenant; anything else -> 400):

* ``GET  /{tenant}/v2.0/.well-known/openid-configuration``
* ``POST /{tenant}/oauth2/v2.0/devicecode``  (form: client_id, scope)
* ``POST /{tenant}/oauth2/v2.0/token``       (form: grant_type device_code | refresh_token)
* ``GET/POST /devicelogin``                  (the human page; POST user_code=... approves)

Every error is HTTP 400 with AAD's body: error, error_description
("AADSTSnnnn: ..."), error_codes, timestamp, trace_id, correlation_id.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

FAKE_CLIENT_ID = "5f8c1c8e-3b1a-4c7e-9d0a-2f6b8e4c1d2a"
FAKE_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"
FAKE_USER_OID = "00000000-0000-0000-66f3-3332eca7ea81"
FAKE_USERNAME = "testuser@contoso.onmicrosoft.com"
FAKE_DISPLAY_NAME = "Test User"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
GRAPH_PERMISSIONS = frozenset({
    "Files.Read", "Files.Read.All", "Files.ReadWrite", "Files.ReadWrite.All", "Files.ReadWrite.AppFolder",
    "Files.Read.Selected", "Files.ReadWrite.Selected",
    "Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All", "Sites.Selected",
    "User.Read", "User.ReadBasic.All", ".default",
})
GRAPH_RESOURCE = "https://graph.microsoft.com/"
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # no vowels, like AAD's codes


class AadError(Exception):
    def __init__(self, error: str, code: int, description: str, **extra: str) -> None:
        super().__init__(f"{error}: AADSTS{code}: {description}")
        self.error, self.code, self.description, self.extra = error, code, description, extra


@dataclass
class DeviceCode:
    device_code: str
    user_code: str
    client_id: str
    scopes: list[str]
    expires_at: float
    interval: int
    state: str = "pending"  # pending | approved | denied | used
    last_poll: float | None = None


@dataclass
class Grant:
    client_id: str
    scopes: list[str]  # the resource scopes as requested (case kept)
    valid: bool = True
    issued: list[str] = field(default_factory=list)


class Identity:
    """Device codes, access tokens and refresh tokens; every method runs under the server lock."""

    def __init__(self, *, authority_url: str, client_id: str, tenant: str, token_lifetime: int,
                 counters, interval: int = 1, device_code_lifetime: int = 900) -> None:
        self.authority_url = authority_url
        self.client_id = client_id
        self.tenant = tenant
        self.token_lifetime = token_lifetime
        self.interval = interval
        self.device_code_lifetime = device_code_lifetime
        self.counters = counters
        self.known_tenants = {"common", "organizations", FAKE_TENANT_ID, tenant}
        self.device_codes: dict[str, DeviceCode] = {}
        self.user_codes: dict[str, str] = {}
        self.access_tokens: dict[str, float] = {}  # AT -> expiry (time.time()); expired ones removed
        self.refresh_tokens: dict[str, Grant] = {}

    # -- hooks ------------------------------------------------------------------------------
    def _pending(self, user_code: str) -> DeviceCode:
        dc = self.device_codes.get(self.user_codes.get(user_code.strip().upper(), ""))
        if dc is None or dc.state != "pending" or time.time() > dc.expires_at:
            raise KeyError(f"no pending device code with user code {user_code!r}")
        return dc

    def approve(self, user_code: str) -> None:
        self._pending(user_code).state = "approved"

    def deny(self, user_code: str) -> None:
        self._pending(user_code).state = "denied"

    def pending_user_codes(self) -> list[str]:
        now = time.time()
        return [d.user_code for d in self.device_codes.values() if d.state == "pending" and now <= d.expires_at]

    def expire_device_codes(self) -> None:
        for d in self.device_codes.values():
            d.expires_at = 0.0

    def revoke_refresh_tokens(self) -> None:
        for grant in self.refresh_tokens.values():
            grant.valid = False

    def expire_access_tokens(self) -> None:
        self.access_tokens.clear()

    def check_access_token(self, token: str) -> bool:
        exp = self.access_tokens.get(token)
        return exp is not None and time.time() < exp

    def issue_tokens(self, scopes: list[str] | None = None) -> dict:
        return self._token_response(self.client_id, scopes or ["Files.ReadWrite.All", "User.Read"], True)

    # -- token minting -----------------------------------------------------------------------
    def _token_response(self, client_id: str, scopes: list[str], with_rt: bool) -> dict:
        now = int(time.time())
        at = "fake-at-" + secrets.token_urlsafe(24)
        self.access_tokens[at] = now + self.token_lifetime
        claims = {"iss": f"{self.authority_url}/{FAKE_TENANT_ID}/v2.0", "aud": client_id,
                  "sub": "fake-sub-" + FAKE_USER_OID[-12:], "oid": FAKE_USER_OID, "tid": FAKE_TENANT_ID,
                  "preferred_username": FAKE_USERNAME, "name": FAKE_DISPLAY_NAME,
                  "iat": now, "nbf": now, "exp": now + self.token_lifetime, "ver": "2.0"}
        out = {"token_type": "Bearer", "scope": " ".join(scopes), "expires_in": self.token_lifetime,
               "ext_expires_in": self.token_lifetime, "access_token": at,
               "id_token": _b64(b'{"alg":"none","typ":"JWT"}') + "." + _b64(json.dumps(claims).encode()) + ".",
               "client_info": _b64(json.dumps({"uid": FAKE_USER_OID, "utid": FAKE_TENANT_ID}).encode())}
        if with_rt:
            rt = "fake-rt-" + secrets.token_urlsafe(32)
            self.refresh_tokens[rt] = Grant(client_id, list(scopes))
            out["refresh_token"] = rt
        return out

    # -- request parsing ---------------------------------------------------------------------
    def _check_tenant(self, tenant: str) -> None:
        if tenant not in self.known_tenants:
            raise AadError("invalid_tenant", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                           "have the correct tenant ID and are signing into the correct cloud.")

    def _form(self, request: Request) -> dict[str, str]:
        if request.method != "POST" or request.mimetype != "application/x-www-form-urlencoded":
            raise AadError("invalid_request", 900144, "The request body must contain the following "
                           "parameter: 'grant_type'. (Only application/x-www-form-urlencoded POSTs are accepted.)")
        return request.form.to_dict()

    def _check_client(self, form: dict[str, str]) -> str:
        cid = form.get("client_id", "")
        if cid != self.client_id:
            raise AadError("invalid_client", 700016, f"Application with identifier '{cid}' was not found "
                           "in the directory 'Fake Tenant'.")
        return cid

    def _scopes(self, raw: str, *, need_offline: bool) -> tuple[list[str], bool]:
        """(resource scopes as requested, offline_access present); invalid_scope on anything unknown."""
        parts = raw.split()
        resource: list[str] = []
        for s in parts:
            if s in OIDC_SCOPES:
                continue
            name = s[len(GRAPH_RESOURCE):] if s.startswith(GRAPH_RESOURCE) else s
            if name not in GRAPH_PERMISSIONS:
                raise AadError("invalid_scope", 70011, f"The provided value for the input parameter 'scope' "
                               f"is not valid. The scope '{s}' is not a Microsoft Graph permission.")
            resource.append(s)
        offline = "offline_access" in parts
        if not resource or (need_offline and not offline):
            raise AadError("invalid_scope", 70011, "The provided value for the input parameter 'scope' is "
                           "not valid: it needs offline_access and at least one Microsoft Graph scope.")
        return resource, offline

    # -- endpoints ---------------------------------------------------------------------------
    def handle(self, request: Request, parts: list[str]) -> Response:
        try:
            return self._dispatch(request, parts)
        except AadError as e:
            return self._error(request, e)

    def _dispatch(self, request: Request, parts: list[str]) -> Response:
        if parts == ["devicelogin"]:
            return self._devicelogin(request)
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            self._check_tenant(parts[0])
            self.counters.add("openid_configuration")
            return _json(self.metadata(parts[0]))
        if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"] and parts[3] in ("devicecode", "token"):
            self._check_tenant(parts[0])
            if parts[3] == "devicecode":
                self.counters.add("devicecode")
                return self._devicecode(request)
            self.counters.add("token")
            return self._token(request)
        return Response("Not Found", 404, mimetype="text/plain")

    def metadata(self, tenant: str) -> dict:
        base = f"{self.authority_url}/{tenant}/oauth2/v2.0"
        return {
            "issuer": f"{self.authority_url}/{FAKE_TENANT_ID}/v2.0",
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "device_authorization_endpoint": f"{base}/devicecode",
            "end_session_endpoint": f"{base}/logout",
            "jwks_uri": f"{self.authority_url}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt",
                                                      "client_secret_basic"],
            "tenant_region_scope": "EU",
        }

    def _devicecode(self, request: Request) -> Response:
        form = self._form(request)
        cid = self._check_client(form)
        scopes, _ = self._scopes(form.get("scope", ""), need_offline=True)
        device_code = "DAQABAAEAAA" + secrets.token_urlsafe(48)
        while True:
            user_code = "-".join("".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(4)) for _ in range(2))
            if user_code not in self.user_codes:
                break
        self.device_codes[device_code] = DeviceCode(device_code, user_code, cid, scopes,
                                                    time.time() + self.device_code_lifetime, self.interval)
        self.user_codes[user_code] = device_code
        uri = f"{self.authority_url}/devicelogin"
        return _json({"device_code": device_code, "user_code": user_code, "verification_uri": uri,
                      "expires_in": self.device_code_lifetime, "interval": self.interval,
                      "message": f"To sign in, use a web browser to open the page {uri} and enter the code "
                                 f"{user_code} to authenticate."})

    def _token(self, request: Request) -> Response:
        form = self._form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise AadError("invalid_request", 900144, "The request body must contain the following "
                           "parameter: 'grant_type'.")
        if grant_type == DEVICE_GRANT:
            cid = self._check_client(form)
            return _json(self._poll(cid, form.get("device_code", "")))
        if grant_type == "refresh_token":
            cid = self._check_client(form)
            return _json(self._refresh(cid, form))
        raise AadError("unsupported_grant_type", 70003, f"The app requested an unsupported grant type "
                       f"'{grant_type}'.")

    def _poll(self, client_id: str, device_code: str) -> dict:
        dc = self.device_codes.get(device_code)
        if dc is None or dc.client_id != client_id or dc.state == "used":
            raise AadError("bad_verification_code", 70000, "The provided value for the input parameter "
                           "'device_code' is not valid.")
        now = time.time()
        if now > dc.expires_at:
            raise AadError("expired_token", 70020, "The provided authorization code or refresh token has "
                           "expired due to inactivity. Send a new interactive authorization request.")
        too_fast = dc.last_poll is not None and now - dc.last_poll < 0.8 * dc.interval
        dc.last_poll = now
        if too_fast:
            dc.interval += 5  # RFC 8628 3.5: the interval grows by 5 s for this and later requests
            raise AadError("slow_down", 70016, "The client is polling too fast; slow down.")
        if dc.state == "denied":
            raise AadError("authorization_declined", 70000, "The end user denied the authorization request.")
        if dc.state == "pending":
            raise AadError("authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is "
                           "pending. Continue polling.")
        dc.state = "used"  # approved: single use from now on
        return self._token_response(client_id, dc.scopes, True)

    def _refresh(self, client_id: str, form: dict[str, str]) -> dict:
        grant = self.refresh_tokens.get(form.get("refresh_token", ""))
        if grant is None or not grant.valid or grant.client_id != client_id:
            raise AadError("invalid_grant", 50173, "The provided grant has expired due to it being revoked, "
                           "a fresh auth token is needed. The user might have changed or reset their password.",
                           suberror="bad_token")
        if form.get("scope"):
            scopes, offline = self._scopes(form["scope"], need_offline=False)
        else:
            scopes, offline = list(grant.scopes), True
        return self._token_response(client_id, scopes, offline)

    def _devicelogin(self, request: Request) -> Response:
        if request.method == "GET":
            return Response(_LOGIN_PAGE.format(message=""), mimetype="text/html")
        if request.method != "POST":
            return Response("Method Not Allowed", 405)
        code = request.form.get("user_code", "")
        try:
            self.approve(code)
        except KeyError:
            msg = f"<p>Unknown or expired code {html.escape(code)}.</p>"
            return Response(_LOGIN_PAGE.format(message=msg), 400, mimetype="text/html")
        return Response("<!doctype html><title>Signed in</title><p>signed in: you can close this window.</p>",
                        mimetype="text/html")

    def _error(self, request: Request, e: AadError) -> Response:
        now = datetime.datetime.now(datetime.timezone.utc)
        body = {"error": e.error, "error_description": f"AADSTS{e.code}: {e.description}\r\n"
                f"Trace ID: {uuid.uuid4()}\r\nTimestamp: {now:%Y-%m-%d %H:%M:%SZ}",
                "error_codes": [e.code], "timestamp": f"{now:%Y-%m-%d %H:%M:%SZ}",
                "trace_id": str(uuid.uuid4()),
                "correlation_id": request.headers.get("client-request-id") or str(uuid.uuid4()),
                **e.extra}
        if e.error == "invalid_grant":
            body["error_uri"] = f"{self.authority_url}/error?code={e.code}"
        return _json(body, 400)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _json(obj: dict, status: int = 200) -> Response:
    return Response(json.dumps(obj), status, mimetype="application/json",
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


_LOGIN_PAGE = """<!doctype html>
<html><head><title>Enter code</title></head><body>
<h1>Fake Microsoft sign-in</h1>{message}
<form method="post" action="/devicelogin">
<label>Code <input name="user_code" autofocus></label> <button type="submit">Next</button>
</form></body></html>
"""
