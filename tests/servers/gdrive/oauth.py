"""Google's OAuth 2.0 endpoints: ``/auth`` (authorization, loopback redirect + PKCE) and ``/token``
(authorization_code, refresh_token, jwt-bearer for service accounts).

Sources: developers.google.com/identity/protocols/oauth2/native-app (installed apps, loopback,
PKCE, OOB blocked), /oauth2/service-account (the JWT assertion), /oauth2 (token errors)."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from werkzeug.wrappers import Request, Response

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_AUDIENCE = "https://oauth2.googleapis.com/token"
CODE_LIFETIME = 600
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error, self.description, self.status = error, description, status

    def response(self) -> Response:
        return Response(json.dumps({"error": self.error, "error_description": self.description}), self.status,
                        content_type="application/json; charset=utf-8")


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _is_loopback(uri: str) -> bool:
    try:
        u = urllib.parse.urlsplit(uri)
        u.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return u.scheme == "http" and u.hostname in ("localhost", "127.0.0.1", "::1") and not u.fragment


@dataclass
class ServiceAccount:
    email: str
    key_id: str
    public_key: rsa.RSAPublicKey
    delegation: bool


@dataclass
class OAuth:
    token_url: str
    auth_url: str
    user: str
    token_lifetime: int
    counters: object
    client_id: str = field(default_factory=lambda: f"{secrets.randbelow(10**12):012d}-"
                           f"{secrets.token_hex(16)}.apps.googleusercontent.com")
    client_secret: str = field(default_factory=lambda: "GOCSPX-" + secrets.token_urlsafe(21))
    approve_next: bool = False
    codes: dict = field(default_factory=dict)  # code -> dict
    refresh_tokens: dict = field(default_factory=dict)  # rt -> dict(client_id, scope, subject, revoked)
    access_tokens: dict = field(default_factory=dict)  # at -> dict(expires, subject, scope, expired)
    service_accounts: dict = field(default_factory=dict)  # email -> ServiceAccount
    _basic: tuple | None = None  # HTTP Basic client credentials of the current /token request

    # -- tokens ------------------------------------------------------------------------------
    def _access_token(self, subject: str, scope: str) -> dict:
        at = "ya29." + secrets.token_urlsafe(48)
        self.access_tokens[at] = {"expires": time.time() + self.token_lifetime, "subject": subject,
                                  "scope": scope, "expired": False}
        return {"access_token": at, "expires_in": self.token_lifetime, "scope": scope, "token_type": "Bearer"}

    def check_access_token(self, token: str) -> dict | None:
        info = self.access_tokens.get(token)
        if info is None or info["expired"] or info["expires"] <= time.time():
            return None
        return info

    def issue_tokens(self, scope: str = DRIVE_SCOPE) -> dict:
        out = self._access_token(self.user, scope)
        rt = "1//" + secrets.token_urlsafe(64)
        self.refresh_tokens[rt] = {"client_id": self.client_id, "scope": scope, "subject": self.user,
                                   "revoked": False}
        return {"access_token": out["access_token"], "refresh_token": rt, "expires_in": out["expires_in"]}

    def revoke(self) -> None:
        for info in self.refresh_tokens.values():
            info["revoked"] = True

    def expire_access_tokens(self) -> None:
        for info in self.access_tokens.values():
            info["expired"] = True

    def service_account_key(self, *, delegation: bool, project: str = "fake-project") -> dict:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        email = f"sa-{secrets.token_hex(4)}@{project}.iam.gserviceaccount.com"
        key_id = secrets.token_hex(20)
        self.service_accounts[email] = ServiceAccount(email, key_id, key.public_key(), delegation)
        return {"type": "service_account", "project_id": project, "private_key_id": key_id, "private_key": pem,
                "client_email": email, "client_id": str(secrets.randbelow(10**21)),
                "auth_uri": self.auth_url, "token_uri": self.token_url,
                "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
                "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + email}

    # -- HTTP --------------------------------------------------------------------------------
    def handle(self, request: Request, path: str) -> Response:
        try:
            if path == "/auth":
                self.counters.add("auth")
                if request.method == "GET":
                    return self._authorize(request.args, approved=False)
                if request.method == "POST":
                    return self._authorize(request.form, approved=request.form.get("approve") == "Allow")
                return Response("method not allowed", 405)
            if path == "/token":
                self.counters.add("token")
                if request.method != "POST":
                    return Response("method not allowed", 405, headers={"Allow": "POST"})
                return self._token(request)
        except OAuthError as e:
            return e.response()
        return Response("not found", 404)

    def _page(self, status: int, error: str, description: str) -> Response:
        body = (f"<!doctype html><title>Error {status}: {html.escape(error)}</title>"
                f"<h1>Access blocked: authorization error</h1><p>Error 400: {html.escape(error)}</p>"
                f"<p>{html.escape(description)}</p>")
        return Response(body, status, content_type="text/html; charset=utf-8")

    def _authorize(self, params, *, approved: bool) -> Response:
        client_id = params.get("client_id", "")
        if client_id != self.client_id:
            return self._page(400, "invalid_client", "The OAuth client was not found.")
        redirect_uri = params.get("redirect_uri", "")
        if redirect_uri.startswith("urn:ietf:wg:oauth:2.0:oob"):
            return self._page(400, "invalid_request", "The out-of-band (OOB) flow has been blocked in order to "
                              "keep users secure. (deprecated October 2022; use a loopback redirect)")
        if not _is_loopback(redirect_uri):
            return self._page(400, "redirect_uri_mismatch",
                              f"redirect_uri {redirect_uri!r} is not a loopback address registered for this "
                              "installed-app client (http://localhost[:port], http://127.0.0.1:port)")
        if params.get("response_type") != "code":
            return self._page(400, "unsupported_response_type", "response_type must be 'code'.")
        scope = params.get("scope", "").strip()
        if not scope:
            return self._page(400, "invalid_request", "Missing required parameter: scope")
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method", "plain" if challenge else None)
        if method is not None and (method not in ("S256", "plain") or not challenge):
            return self._page(400, "invalid_request", "Invalid code_challenge / code_challenge_method.")
        if not approved and not self.approve_next:
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                             for k, v in params.items(multi=True) if k != "approve")
            body = (f"<!doctype html><title>Sign in - Google Accounts</title><h1>cloudgw-test wants to access "
                    f"your Google Account</h1><p>{html.escape(self.user)}</p><p>Scopes: {html.escape(scope)}</p>"
                    f'<form method="post" action="/auth">{hidden}<input type="submit" name="approve" '
                    f'value="Allow"></form>')
            return Response(body, 200, content_type="text/html; charset=utf-8")
        self.approve_next = False
        code = "4/0A" + secrets.token_urlsafe(40)
        self.codes[code] = {"client_id": client_id, "redirect_uri": redirect_uri, "challenge": challenge,
                            "method": method, "scope": scope, "offline": params.get("access_type") == "offline",
                            "expires": time.time() + CODE_LIFETIME, "used": False}
        query = {"code": code, "scope": scope}
        if params.get("state") is not None:
            query = {"state": params["state"], **query}
        sep = "&" if "?" in redirect_uri else "?"
        return Response("", 302, headers={"Location": redirect_uri + sep + urllib.parse.urlencode(query)})

    def _client(self, form) -> None:
        cid, secret = form.get("client_id"), form.get("client_secret")
        basic = self._basic
        if basic is not None:  # client_secret_basic (RFC 6749 2.3.1), as requests-oauthlib sends it
            if cid and cid != basic[0]:
                raise OAuthError("invalid_request", "client_id in the body and in Authorization differ.")
            cid, secret = basic
        if not cid:
            raise OAuthError("invalid_request", "Could not determine client ID from request.")
        if cid != self.client_id:
            raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
        if not secret:
            raise OAuthError("invalid_request", "client_secret is missing.")
        if secret != self.client_secret:
            raise OAuthError("invalid_client", "Unauthorized", 401)

    def _token(self, request: Request) -> Response:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise OAuthError("invalid_request", "Content-Type must be application/x-www-form-urlencoded.")
        form = request.form
        auth = request.authorization
        self._basic = (auth.username, auth.password) if auth is not None and auth.type == "basic" else None
        grant = form.get("grant_type")
        if grant == "authorization_code":
            out = self._code_grant(form)
        elif grant == "refresh_token":
            out = self._refresh_grant(form)
        elif grant == JWT_BEARER:
            out = self._jwt_grant(form)
        elif not grant:
            raise OAuthError("unsupported_grant_type", "Invalid grant_type: ")
        else:
            raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant}")
        return Response(json.dumps(out), 200, content_type="application/json; charset=utf-8",
                        headers={"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate"})

    def _code_grant(self, form) -> dict:
        self._client(form)
        code = form.get("code", "")
        info = self.codes.get(code)
        if info is None or info["used"] or info["expires"] < time.time() or info["client_id"] != self.client_id:
            raise OAuthError("invalid_grant", "Bad Request")
        if form.get("redirect_uri") != info["redirect_uri"]:
            raise OAuthError("redirect_uri_mismatch", "Bad Request")
        if info["challenge"]:
            verifier = form.get("code_verifier")
            if not verifier:
                raise OAuthError("invalid_grant", "Missing code verifier.")
            if info["method"] == "S256":
                computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            else:
                computed = verifier
            if computed != info["challenge"]:
                raise OAuthError("invalid_grant", "Invalid code verifier.")
        info["used"] = True
        out = self._access_token(self.user, info["scope"])
        if info["offline"]:
            rt = "1//" + secrets.token_urlsafe(64)
            self.refresh_tokens[rt] = {"client_id": self.client_id, "scope": info["scope"], "subject": self.user,
                                       "revoked": False}
            out["refresh_token"] = rt
        return out

    def _refresh_grant(self, form) -> dict:
        self._client(form)
        info = self.refresh_tokens.get(form.get("refresh_token", ""))
        if info is None or info["revoked"] or info["client_id"] != self.client_id:
            raise OAuthError("invalid_grant", "Token has been expired or revoked.")
        scope = form.get("scope") or info["scope"]
        if not set(scope.split()) <= set(info["scope"].split()):
            raise OAuthError("invalid_scope", "Some requested scopes were invalid.")
        return self._access_token(info["subject"], scope)

    def _jwt_grant(self, form) -> dict:
        assertion = form.get("assertion", "")
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
                             "a reasonable timeframe.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise OAuthError("invalid_grant", "Invalid JWT: malformed.") from None
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT: alg must be RS256.")
        sa = self.service_accounts.get(claims.get("iss", ""))
        if sa is None:
            raise OAuthError("invalid_grant", "Invalid grant: account not found")
        try:
            sa.public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise OAuthError("invalid_grant", "Invalid JWT Signature.") from None
        # "When making an access token request this value is always https://oauth2.googleapis.com/token"
        # (service-account doc); google-auth sends exactly that, whatever token_uri is.
        if claims.get("aud") != JWT_AUDIENCE:
            raise OAuthError("invalid_grant", f"Invalid JWT: aud must be {JWT_AUDIENCE}.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) or exp - iat > 3600 \
                or exp <= now or iat > now + 300:
            raise OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in "
                             "a reasonable timeframe. Check your iat and exp values in the JWT claim.")
        scope = (claims.get("scope") or "").strip()
        if not scope:
            raise OAuthError("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        sub = claims.get("sub")
        if sub and not sa.delegation:
            raise OAuthError("unauthorized_client", "Client is unauthorized to retrieve access tokens using this "
                             "method, or client not authorized for any of the scopes requested.", 401)
        if sub and sub != self.user:
            raise OAuthError("invalid_grant", "Invalid email or User ID")
        return self._access_token(sub or sa.email, scope)
