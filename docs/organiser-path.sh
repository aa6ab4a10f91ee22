#!/bin/bash
# Issue 19's "done when", by hand: from an empty data folder to an invite-only
# campaign with codes, an e-mail campaign, feeds and the federated announcement,
# with pledge admin and the README's commands only. Binaries from $BIN.
set -u
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug}   # cargo build -p pledge-server --bin pledged -p pledge-client --bin pledge
BIN=$(cd "$BIN" && pwd); W=$(mktemp -d /tmp/org.XXXX); cd "$W"
export PATH=$BIN:$PATH
/usr/bin/python3 -u -m aiosmtpd -n -l 127.0.0.1:2525 > smtp.out 2>&1 &
SMTP=$!
cat > pledged.toml <<'TOML'
listen = "127.0.0.1:8080"
smtp_host = "127.0.0.1"
smtp_port = 2525
smtp_tls = "none"
mail_from = "Pledges <pledge@union.example>"
activitypub = true
public_url = "https://pledge.example"
TOML
echo '$ pledged --config pledged.toml'
pledged --config pledged.toml > pledged.out 2>&1 &
P=$!
sleep 3; cat pledged.out
export PLEDGE_SERVER=http://127.0.0.1:8080 PLEDGE_ADMIN_TOKEN_FILE=pledge-data/admin.token PLEDGE_PASSPHRASE="correct horse battery"
run() { echo "\$ $*"; "$@"; echo "[exit $?]"; }
run pledge admin campaign create --title "Walkout on 8 March" --action "walk out at 11:00" \
    --deadline 2027-03-08T11:00+01:00 --goal 50 --threshold-max 500 --attester invite:acme-staff
run pledge admin invites mint --group acme-staff --count 3
run pledge admin campaign create --title "Union ballot walkout" --action "walk out" \
    --deadline +30d --goal 50 --threshold-max 500 --attester email --email-domain union.example
run pledge admin campaign list
run pledge admin invites list
echo '$ pledge --wallet jane.pledge tokens --attest email:jane@union.example   (code typed from the mail)'
( sleep 4; grep -o '[0-9]\{8\}' smtp.out | tail -1 ) | pledge --wallet jane.pledge tokens --attest email:jane@union.example; echo "[exit $?]"
echo '$ curl -s http://127.0.0.1:8080/v1/feed.atom'
curl -s http://127.0.0.1:8080/v1/feed.atom | grep -o "<title type=\"text\">[^<]*</title>"
echo '$ curl -s webfinger'
curl -s 'http://127.0.0.1:8080/.well-known/webfinger?resource=acct:campaigns@pledge.example'; echo
echo '$ curl -s -H "Accept: application/activity+json" http://127.0.0.1:8080/ap/outbox'
curl -s -H 'Accept: application/activity+json' http://127.0.0.1:8080/ap/outbox | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["type"], d["totalItems"]); [print(" ", i["type"], i["object"]["type"], i["object"]["name"], i["object"]["joinMode"], i["object"]["externalParticipationUrl"]) for i in d["orderedItems"]]'
kill $P $SMTP; wait 2>/dev/null
echo "work dir: $W"
