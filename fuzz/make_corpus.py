#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*).

Run from anywhere: `python3 fuzz/make_corpus.py` (needs the `cryptography` package for the
Ed25519 tokens). The output is committed; rerun only to change the seeds. Secrets are made
here the way netapi_core::secret makes them (prefix, 32 base62, base62 CRC-32), and tokens
are signed with the fixed, public key of fuzz_targets/jwt_verify.rs (seed 32 x 0x07, kid
`fuzz-fixed`).
"""

import base64
import json
import os
import random
import struct
import zlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIXES = ["napi_", "naprt_", "napcs_", "napac_", "napss_"]
rng = random.Random(7)


def base62(value, width):
    digits = []
    for _ in range(width):
        digits.append(BASE62[value % 62])
        value //= 62
    return "".join(reversed(digits))


def secret(prefix):
    body = prefix + "".join(rng.choice(BASE62) for _ in range(32))
    return body + base62(zlib.crc32(body.encode()), 6)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(value):
    return json.dumps(value, separators=(",", ":")).encode()


KEY = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))


def jwt(header, claims):
    signing_input = b64url(header) + "." + b64url(claims)
    return signing_input + "." + b64url(KEY.sign(signing_input.encode()))


def write(target, seeds):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    # Seeds are rewritten; inputs that once failed (regression-*) are kept.
    for name in os.listdir(folder):
        if name.startswith("seed-"):
            os.remove(os.path.join(folder, name))
    for n, seed in enumerate(seeds):
        if isinstance(seed, str):
            seed = seed.encode()
        with open(os.path.join(folder, f"seed-{n:02}"), "wb") as out:
            out.write(seed)


def api_key_format():
    seeds = []
    for kind, prefix in enumerate(PREFIXES):
        real = secret(prefix)
        seeds.append(bytes([kind]) + real.encode())  # valid
        seeds.append(bytes([kind]) + (real[:-1] + ("A" if real[-1] != "A" else "B")).encode())
        seeds.append(bytes([0x80 | kind, 12, ord("x")]))  # one change to a generated secret
    seeds.append(b"\x00napi_short")
    seeds.append(b"\x00" + ("napi_" + "a" * 38).encode())
    seeds.append(b"\x01" + secret("napi_").encode())  # an API key offered as a refresh token
    seeds.append(b"\x00" + ("napi_" + "\u00e9" * 19).encode())  # right length in bytes, not ASCII
    return seeds


def jwt_verify():
    header = compact({"alg": "EdDSA", "typ": "at+jwt", "kid": "fuzz-fixed"})
    claims = {
        "iss": "http://127.0.0.1:8080",
        "sub": "usr_0000000000000000000a",
        "aud": "http://127.0.0.1:8080",
        "client_id": "cli_0000000000000000000b",
        "scope": "keys:read openid",
        "iat": 1767323045,
        "exp": 1767323945,
        "jti": "tok_0000000000000000000c",
    }
    valid = jwt(header, compact(claims))
    h, p, s = valid.split(".")
    return [
        b"\x00" + valid.encode(),
        b"\x00" + jwt(compact({"alg": "EdDSA", "typ": "application/AT+JWT", "kid": "fuzz-fixed"}),
                      compact({"sub": "u", "n": [1, 2.5, -0.0, 1e300, None, True]})).encode(),
        b"\x00" + f"{b64url(compact({'alg': 'none', 'typ': 'at+jwt', 'kid': 'fuzz-fixed'}))}.{p}.".encode(),
        b"\x00" + f"{b64url(compact({'alg': 'ES256', 'typ': 'at+jwt', 'kid': 'fuzz-fixed'}))}.{p}.{s}".encode(),
        b"\x00" + f"{b64url(compact({'alg': 'HS256', 'typ': 'JWT', 'kid': 'fuzz-random-es'}))}.{p}.{s}".encode(),
        b"\x00" + f"{h}.{p}.{s}.extra".encode(),
        b"\x01" + compact(claims),
        b"\x01" + b'{"sub":"a","sub":"b","nested":{"deep":[[[[{}]]]]},"s":"\\ud83d\\ude00"}',
        b"\x01" + b"[1,2,3]",
        b"\x02" + header,
        b"\x02" + compact({"alg": "EdDSA", "typ": "at+jwt", "kid": "fuzz-random-ed"}),
        b"\x02" + compact({"alg": "none", "typ": "at+jwt", "kid": "fuzz-fixed", "crit": ["b64"]}),
        b"\x03" + b64url(compact({**claims, "scope": "admin"})).encode(),
        b"\x03" + p.encode(),
    ]


def basic_value(id_, secret_, scheme="Basic"):
    return f"{scheme} {base64.b64encode(f'{id_}:{secret_}'.encode()).decode()}"


def basic_auth():
    client = "cli_0000000000000000000b"
    cs = secret("napcs_")
    return [
        b"\x00" + basic_value(client, cs).encode(),
        b"\x00" + basic_value("my%20client", "p%25ss%2Bword+with+spaces", scheme="basic").encode(),
        b"\x00" + basic_value("client%3Awith%3Acolons", "secret:with:colons").encode(),
        b"\x00" + b"Basic   " + base64.b64encode(b"a:b") + b"  ",
        b"\x00" + b"Basic " + base64.b64encode(b"no-colon"),
        b"\x00" + b"Basic " + base64.b64encode(b"\xff\xfe:x"),
        b"\x00" + b"Basic not*base64",
        b"\x00" + b"Bearer " + cs.encode(),
        b"\x00" + b"Basic",
        b"\x01" + b"client id\x00s\xc3\xa9cret&x=y+z%",
        b"\x02" + client.encode() + b"\x00" + cs.encode(),
        b"\x02" + b"a=b\x00c=d;e",
        b"\x02" + client.encode() + b"\x00" + cs.encode() + b"&x",  # `&` is data (found by fuzzing)
    ]


def form_body():
    return [
        b"grant_type=client_credentials&scope=keys%3Aread+openid",
        b"grant_type=authorization_code&code=" + secret("napac_").encode()
        + b"&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&code_verifier=" + ("v" * 43).encode()
        + b"&client_id=cli_0000000000000000000b",
        b"grant_type=refresh_token&refresh_token=" + secret("naprt_").encode(),
        b"scope=a&scope=b",
        b"scope=a&Scope=b&sc%6Fpe=c",
        b"a&a=",
        b"=&=&&&",
        b"x=%zz&y=%E2%82%AC&z=%FF",
        b"token=abc&token_type_hint=access_token;x=1",
    ]


def redirect_uri():
    return [
        "https://app.example/callback",
        "https://app.example",
        "http://127.0.0.1:8765/cb",
        "http://[::1]/cb",
        "http://localhost./cb",
        "com.example.app:/oauth2redirect",
        "https://user:pass@app.example/cb",
        "https://app.example@evil.example/cb",
        "https://app.example/cb#frag",
        "https://app.example/cb?x=1#",
        "https://app.example/%2F%2Fevil.example",
        "https://app.example/..%2F..%2Fcb",
        "https://app.example./cb",
        "https://xn--bcher-kva.example/cb",
        "https://b\u00fccher.example/cb",
        "HTTPS://APP.EXAMPLE/cb",
        "javascript:alert(1)//.x",
        "data:text/html,<script>alert(1)</script>",
        "file:///etc/passwd",
        "https:\\\\evil.example/cb",
        "https://app.example\\@evil.example",
        "http://127.0.0.1.evil.example/cb",
        "https://app.example/cb\t",
        "//evil.example/cb",
    ]


def page_token():
    def page(selector, size, token):
        return bytes([selector]) + struct.pack("<I", size) + token

    def tok(id_):
        return b64url(id_.encode()).encode()

    return [
        page(0x30, 20, tok("usr_00000000000000000001")),
        page(0x31, 100, tok("key_0AbC9zzzzzzzzzzzzzzz")),
        page(0x32, 1, tok("cli_ZZZZZZZZZZZZZZZZZZZZ")),
        page(0x33, 50, tok("evt_aaaaaaaaaaaaaaaaaaaa")),
        page(0x10, 0, b""),
        page(0x10, 101, b""),
        page(0x10, 0xFFFFFFFF, b""),
        page(0x20, 0, tok("key_00000000000000000001")),  # a token of another listing
        page(0x20, 0, tok("usr_../../../etc/passwdxx")),
        page(0x20, 0, tok("usr_00000000000000000001") + b"="),
        page(0x20, 0, base64.b64encode(b"usr_00000000000000000001\xff")),
        page(0x00, 0, b""),
    ]


def scopes():
    return [
        "keys:read",
        "openid profile email",
        "users:read users:write keys:read keys:write clients:read clients:write audit:read admin",
        "  keys:read   keys:read  ",
        "keys:read\tadmin",
        "KEYS:READ",
        "keys:read unknown openid",
        "",
        "keys:read\u00a0openid",
    ]


def rfc3339():
    return [
        "2026-01-02T03:04:05Z",
        "2026-01-02T04:04:05+01:00",
        "2026-01-02t03:04:05.123456789z",
        "1970-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "2024-02-29T23:59:60Z",
        "2026-13-01T00:00:00Z",
        "2026-01-02 03:04:05Z",
        "2026-01-02T03:04:05-00:00",
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC: refused (found by fuzzing)
        "0000-01-01T00:00:00+00:01",  # year -1 in UTC: refused
    ]


write("api_key_format", api_key_format())
write("jwt_verify", jwt_verify())
write("basic_auth", basic_auth())
write("form_body", form_body())
write("redirect_uri", redirect_uri())
write("page_token", page_token())
write("scopes", scopes())
write("rfc3339", rfc3339())
