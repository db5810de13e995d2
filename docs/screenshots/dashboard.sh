#!/usr/bin/env bash
# Takes the README's screenshots of the Aspire dashboard during an export: starts the AppHost (local mode, a fresh
# data directory), gets a token for the development client, kicks off an export of the seeded Group (slowed so it is
# still running), and photographs the dashboard's resources page and the export's trace with headless Chromium.
#
#   docs/screenshots/dashboard.sh            # writes docs/images/dashboard-resources.png and dashboard-trace.png
#
# Needs: the .NET SDK, Node.js, PostgreSQL server binaries (pg_config --bindir), Debian's chromium (apt-get install
# chromium); playwright-core (this folder's lock file) drives it.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out="$repo/docs/images"
work=$(mktemp -d); chmod 755 "$work" # PostgreSQL runs as its own OS user and must reach its data directory
dashboard=http://localhost:15080
api=http://localhost:5080
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$chromium" ] || { echo "chromium not found: apt-get install chromium" >&2; exit 1; }
mkdir -p "$out"

cleanup() {
  if [ -n "${apphost:-}" ] && kill -0 "$apphost" 2>/dev/null; then
    kill -TERM "$apphost" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$apphost" 2>/dev/null || break; sleep 1; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

dotnet build "$repo/Helios.AppHost" -v q -nologo >/dev/null
apphost_bin="$repo/Helios.AppHost/bin/Debug/net10.0/Helios.AppHost"
(cd "$repo/Helios.AppHost" && exec env ASPNETCORE_ENVIRONMENT=Development DOTNET_ENVIRONMENT=Development \
  ASPNETCORE_URLS=$dashboard ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://localhost:19080 \
  ASPIRE_RESOURCE_SERVICE_ENDPOINT_URL=http://localhost:20080 ASPIRE_ALLOW_UNSECURED_TRANSPORT=true \
  ASPIRE_DASHBOARD_UNSECURED_ALLOW_ANONYMOUS=true \
  "$apphost_bin" --Helios:Infrastructure=local --Helios:DataDirectory="$work/data" \
    --Parameters:helios-db-password=screenshot-only --Helios:SeedPatients=300 \
    --Helios:Export:PartitionRows=500 --Helios:Export:ReadBatchRows=50 --Helios:Export:DelayPerBatch=00:00:00.250 >"$work/apphost.log" 2>&1) &
apphost=$!

wait_for() { # url, seconds
  for _ in $(seq 1 "$2"); do curl -sf --max-time 5 -o /dev/null "$1" && return 0; sleep 1; done
  echo "timed out waiting for $1; AppHost log:" >&2; tail -50 "$work/apphost.log" >&2; exit 1
}
wait_for "$api/health" 240
wait_for "$api/.well-known/smart-configuration" 30

token_endpoint=$(curl -sf "$api/.well-known/smart-configuration" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).token_endpoint))')
keys="$work/data/local/auth"
token=$(node "$repo/Helios.AppHost/auth/oidc-provider/token.mjs" "$token_endpoint" helios-dev "$keys/helios-dev.private.pem" \
  "$keys/helios-dev.jwks.json" "system/*.cruds" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).access_token))')

# The seeded Group exists once the one-shot seed has finished.
for _ in $(seq 1 240); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$api/Group/helios-sample")" = 200 ] && break
  sleep 1
done
status=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $token" -H 'Prefer: respond-async' -H 'Accept: application/fhir+json' \
  "$api/Group/helios-sample/\$export" | tr -d '\r' | awk 'tolower($1)=="content-location:"{print $2}')
echo "export running: $status"
sleep 5

[ -d "$repo/docs/screenshots/node_modules/playwright-core" ] || (cd "$repo/docs/screenshots" && npm ci --no-audit --no-fund >/dev/null)
CHROMIUM="$chromium" node "$repo/docs/screenshots/shoot.mjs" "$dashboard" "$out"

curl -s -o /dev/null -w 'status poll: %{http_code}\n' -H "Authorization: Bearer $token" "$status"
