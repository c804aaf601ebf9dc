"""Prints an access token with `openid profile email` for run.sh, got the way a web app gets
one: the authorization code flow with PKCE, signing in and approving on the server's pages.

Usage: access_token.py BASE CLIENT_ID CLIENT_SECRET REDIRECT_URI EMAIL PASSWORD
"""

import base64
import hashlib
import html
import http.cookiejar
import json
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def main() -> None:
    base, client_id, client_secret, redirect_uri, email, password = sys.argv[1:7]
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirects)

    def call(path, form=None, headers=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(base + path, data=data, headers=headers or {})
        try:
            with opener.open(request) as response:
                return response.status, response.headers, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read().decode()

    def hidden(page, name):
        match = re.search(r'name="%s" value="([^"]*)"' % name, page)
        if not match:
            sys.exit(f"no hidden input {name!r} in: {page[:500]}")
        return html.unescape(match.group(1))

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid profile email",
            "state": "st",
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
    )
    status, _, page = call(f"/oauth/authorize?{query}")
    assert status == 200, (status, page[:500])
    status, headers, page = call(
        "/login",
        {
            "email": email,
            "password": password,
            "csrf_token": hidden(page, "csrf_token"),
            "return_to": hidden(page, "return_to"),
        },
    )
    assert status == 303, (status, page[:500])
    status, _, page = call(headers["Location"])
    assert status == 200, (status, page[:500])
    status, headers, page = call(
        "/oauth/authorize",
        {
            "csrf_token": hidden(page, "csrf_token"),
            "request": hidden(page, "request"),
            "decision": "approve",
        },
    )
    assert status == 303, (status, page[:500])
    code = urllib.parse.parse_qs(urllib.parse.urlparse(headers["Location"]).query)["code"][0]
    basic = base64.b64encode(
        f"{urllib.parse.quote(client_id)}:{urllib.parse.quote(client_secret)}".encode()
    ).decode()
    status, _, body = call(
        "/oauth/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        },
        {"Authorization": f"Basic {basic}"},
    )
    assert status == 200, (status, body)
    print(json.loads(body)["access_token"])


if __name__ == "__main__":
    main()
