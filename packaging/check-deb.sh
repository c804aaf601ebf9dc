#!/usr/bin/env bash
# Builds the Debian package from the release build (`cargo deb --no-build`), installs it with
# dpkg, checks the unit, starts the installed binary as the package's user with the packaged
# configuration, and purges the package again, checking that it leaves nothing behind.
# Installs on this host: run by .ci/run (as root), never by `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if dpkg -s netapi >/dev/null 2>&1; then
  echo "check-deb: a netapi package is already installed here; not touching it" >&2
  exit 1
fi
command -v cargo-deb >/dev/null || cargo install --locked --quiet cargo-deb
cargo build --release --locked -p netapi
cargo deb --no-build -p netapi
deb=$(ls -t target/debian/netapi_*.deb | head -n1)
echo "check-deb: $deb"

dpkg -i "$deb"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  dpkg --purge netapi >/dev/null 2>&1 || true
}
trap cleanup EXIT
fail() { echo "check-deb: $*" >&2; exit 1; }

unit=/lib/systemd/system/netapi.service
[ -f "$unit" ] || unit=/usr/lib/systemd/system/netapi.service
[ -f "$unit" ] || fail "no systemd unit installed"
grep -qx 'ProtectSystem=strict' "$unit" || fail "the unit lost ProtectSystem=strict"
# systemd-analyze needs a systemd it can talk to for some checks; where it cannot run at all
# (a container without systemd), say so and go on.
if command -v systemd-analyze >/dev/null; then
  if out=$(systemd-analyze verify "$unit" 2>&1); then
    echo "check-deb: systemd-analyze verify: ok"
  elif grep -q 'netapi.service' <<<"$out"; then
    fail "systemd-analyze verify: $out"
  else
    echo "check-deb: systemd-analyze verify could not run here: $out"
  fi
fi

getent passwd netapi >/dev/null || fail "no user netapi"
[ "$(stat -c %U:%a /var/lib/netapi)" = "netapi:750" ] || fail "/var/lib/netapi: $(stat -c %U:%a /var/lib/netapi)"
[ "$(stat -c %U:%G:%a /etc/netapi/netapi.env)" = "root:netapi:640" ] || fail "netapi.env: $(stat -c %U:%G:%a /etc/netapi/netapi.env)"
grep -q '^NETAPI_PEPPER=.\{40,\}$' /etc/netapi/netapi.env || fail "no generated pepper"

# The installed binary, as the package's user, with the packaged configuration and pepper;
# only the port is chosen here (a free one), so that nothing else on the machine is in the way.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$(mktemp)
runuser -u netapi -- sh -c 'set -a; . /etc/netapi/netapi.env; cd /var/lib/netapi;
  exec /usr/bin/netapi serve --config /etc/netapi/netapi.toml --listen 127.0.0.1:'"$port" >"$log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; fail "the server exited"; }
  sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || { cat "$log"; fail "not ready"; }
key=$(curl -fsS -X POST "$base/v1/register" -H 'Content-Type: application/json' \
  -d '{"email":"deb@example.com","name":"Deb","password":"a long enough password 1"}' | jq -r .api_key.key)
[ -n "$key" ] && [ "$key" != null ] || fail "registration failed"
[ "$(curl -fsS "$base/v1/users/me" -H "Authorization: Bearer $key" | jq -r .email)" = deb@example.com ] \
  || fail "the new key does not work"
[ "$(stat -c %U /var/lib/netapi/netapi.db)" = netapi ] || fail "the database is not the service's"
[ "$(stat -c %U:%a /var/lib/netapi/netapi.key)" = "netapi:600" ] || fail "netapi.key: $(stat -c %U:%a /var/lib/netapi/netapi.key)"
kill -TERM "$server"
wait "$server" || true
server=""

dpkg --purge netapi
! dpkg -s netapi >/dev/null 2>&1 || fail "still installed after purge"
[ ! -e /var/lib/netapi ] || fail "/var/lib/netapi left after purge"
[ ! -e /etc/netapi ] || fail "/etc/netapi left after purge: $(ls -la /etc/netapi)"
[ ! -e /usr/bin/netapi ] || fail "/usr/bin/netapi left after purge"
! getent passwd netapi >/dev/null || fail "user netapi left after purge"
echo "check-deb: ok"
