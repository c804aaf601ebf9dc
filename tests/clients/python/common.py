"""What the scripts in this directory share: the server's address, checks that fail with a
clear message, and the token-endpoint errors Authlib raises."""

import os
import sys

import requests
from authlib.integrations.base_client import OAuthError


class Failed(Exception):
    pass


def env(name):
    value = os.environ.get(name)
    if not value:
        raise Failed(f"the environment variable {name} is not set")
    return value


BASE = os.environ.get("BASE", "").rstrip("/")
TOKEN_URL = f"{BASE}/oauth/token"
REVOKE_URL = f"{BASE}/oauth/revoke"
INTROSPECT_URL = f"{BASE}/oauth/introspect"
REGISTER_URL = f"{BASE}/oauth/register"


def check(condition, message):
    if not condition:
        raise Failed(message)


def equal(actual, expected, what):
    if actual != expected:
        raise Failed(f"{what}: expected {expected!r}, got {actual!r}")


class StatusRecorder:
    """A requests response hook: keeps the status of the last answer, which Authlib's
    OAuthError does not carry."""

    def __init__(self, session):
        self.last = None
        session.hooks["response"].append(self._record)

    def _record(self, response, *args, **kwargs):
        self.last = response.status_code


def oauth_error(call, what):
    """Runs `call`, which must fail with an OAuth error; returns its `error` code."""
    try:
        result = call()
    except OAuthError as error:
        return error.error
    raise Failed(f"{what}: expected an OAuth error, got {result!r}")


def json_of(response, status, what):
    if response.status_code != status:
        raise Failed(f"{what}: expected {status}, got {response.status_code}: {response.text}")
    return response.json() if response.content else None


def main(run, name):
    if not BASE:
        print("the environment variable BASE is not set", file=sys.stderr)
        sys.exit(2)
    try:
        run()
    except Failed as failure:
        print(f"{name} FAILED: {failure}", file=sys.stderr)
        sys.exit(1)
    except requests.RequestException as error:
        print(f"{name} FAILED: request error {error}", file=sys.stderr)
        sys.exit(1)
    print(f"{name} passed")
