#!/usr/bin/env bash
# test_data.sh: the `lacos data` command: usage errors, list/show on the
# shared datasets (present, partial, corrupt with --verify), and pull through
# a loopback server (tests/lua/httpd.lua) with LACOS_DATA_MIRROR (a mirror of a data root), including a
# set with no published sha256 (allnli) and --url/--sha256.
source "$(dirname "$0")/lib.sh"
D=${LACOS_TEST_DATA:-}

run_cmd "$LACOS" data --help
expect "data --help" 0 "lacos data list\|show NAME\|pull NAME"
run_cmd "$LACOS" data
expect "no subcommand is a usage error" 2 "missing SUBCOMMAND"
run_cmd "$LACOS" data frobnicate
expect "unknown subcommand" 2 "unknown subcommand 'frobnicate'"
run_cmd "$LACOS" data show
expect "show needs a NAME" 2 "show needs a dataset NAME"
run_cmd "$LACOS" data list --url http://x
expect "--url belongs to pull" 2 "--url is an option of 'pull'"
run_cmd "$LACOS" data pull stsb --verify
expect "--verify belongs to list/show" 2 "options of list and show"
run_cmd "$LACOS" data show no-such-set
expect "unknown dataset" 1 "unknown dataset 'no-such-set'"

EMPTY="$TMP/data-empty"
mkdir -p "$EMPTY"
run_cmd "$LACOS" data list --data "$EMPTY"
expect "list on an empty root: everything missing" 0 "stsb +sts +missing +0/5"

if [ -z "$D" ] || [ ! -f "$D/sts/stsb/sts-test.csv" ]; then
  skip "data list on the shared datasets" "LACOS_TEST_DATA is not there"
else
  run_cmd "$LACOS" data list --data "$D"
  expect "list: the shared sets are present" 0 "sts17 +sts +present +16/16"
  if grep -qE "allnli +nli +missing" <<<"$OUT" && grep -qE "stsb-multi-mt +sts +present" <<<"$OUT"; then ok "list: absent training sets are missing"; else not_ok "list: absent training sets are missing" "$OUT"; fi
  OUT=$(LACOS_DATA="$D" "$LACOS" data list --json 2>&1); RC=$?
  expect "LACOS_DATA and --json" 0 '"state": "present"'
  run_cmd "$LACOS" data show sts17 --data "$D" --verify
  expect "show --verify" 0 "STS.input.track6.tr-en.txt +45317 +sha256 ok"

  # a copy with one byte changed (same size) and a partial copy
  BAD="$TMP/data-bad"
  mkdir -p "$BAD/paraphrase" "$BAD/sts/stsb"
  cp -r "$D/paraphrase/msrp" "$BAD/paraphrase/"
  chmod -R u+w "$BAD"
  printf 'X' | dd of="$BAD/paraphrase/msrp/msr-para-val.tsv" bs=1 seek=100 conv=notrunc 2>/dev/null
  cp "$D/sts/stsb/sts-test.csv" "$BAD/sts/stsb/"
  run_cmd "$LACOS" data list --data "$BAD"
  expect "sizes match: present without --verify" 0 "msrp +pairs +present"
  run_cmd "$LACOS" data list --data "$BAD" --verify
  expect "list --verify finds the changed byte" 1 "msrp +pairs +corrupt"
  if grep -qE "stsb +sts +partial +1/5" <<<"$OUT"; then ok "a partial set"; else not_ok "a partial set" "$OUT"; fi
  run_cmd "$LACOS" data show msrp --data "$BAD" --verify
  expect "show names the corrupt file" 1 "msr-para-val.tsv +126482 +SHA256 MISMATCH"
fi

# ---------------------------------------------------------------- pull through a loopback mirror
# the mirror serves a data root's layout: <mirror>/nli/allnli/AllNLI.tsv is the root's nli/allnli/AllNLI.tsv
WWW="$TMP/data-www"
mkdir -p "$WWW/nli/allnli" "$WWW/files"
printf 'split\tdataset\tfilename\tsentence1\tsentence2\tlabel\ntrain\tSNLI\tf\tA man.\tA person.\tentailment\ntrain\tSNLI\tf\tA man.\tA dog.\tcontradiction\ndev\tMNLI\tf\tX.\tY.\tneutral\n' > "$WWW/nli/allnli/AllNLI.tsv"
printf 'sent0,sent1,hard_neg\n"A man, tall.",A person.,Nobody.\n' > "$WWW/files/simcse.csv"
SIMCSE_SHA=$(sha256sum "$WWW/files/simcse.csv" | cut -d' ' -f1)
if [ -n "$D" ] && [ -f "$D/nli/kornli-xnli/xnli.dev.ko.tsv" ]; then
  ln -s "$D/nli/kornli-xnli" "$WWW/nli/kornli-xnli"
fi
"$LACOS" run "$(dirname "$0")/../lua/httpd.lua" "$WWW" "$TMP/data-port" "$TMP/data-httpd.log" 60 >/dev/null 2>&1 &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$TMP/data-port" ] && break; sleep 0.05; done
PORT=$(cat "$TMP/data-port" 2>/dev/null)
export LACOS_DATA_MIRROR="http://127.0.0.1:$PORT"
ROOT="$TMP/data-pulled"

if [ -n "$D" ] && [ -f "$D/nli/kornli-xnli/xnli.dev.ko.tsv" ]; then
  run_cmd "$LACOS" data pull kornli-xnli --data "$ROOT"
  expect "pull kornli-xnli from the mirror" 0 "kornli-xnli: present under"
  if grep -q "verified by sha256" <<<"$OUT"; then ok "pull verifies each file"; else not_ok "pull verifies each file" "$OUT"; fi
  run_cmd "$LACOS" data show kornli-xnli --data "$ROOT" --verify
  expect "pulled files match their sha256" 0 "xnli.test.ko.tsv +1032430 +sha256 ok"
  run_cmd "$LACOS" data pull kornli-xnli --data "$ROOT"
  expect "a second pull fetches nothing" 0 "already present"
  [ -f "$ROOT/.lacos/pulled/kornli-xnli.json" ] && ok "the pull is recorded" || not_ok "the pull is recorded"
else
  skip "pull kornli-xnli from the mirror" "LACOS_TEST_DATA is not there"
fi

run_cmd "$LACOS" data pull allnli --data "$ROOT"
expect "no published sha256: refused, hash printed" 1 "no sha256 is known for http://127.0.0.1:$PORT/nli/allnli/AllNLI.tsv"
if grep -q "run again with --sha256 [0-9a-f]\{64\}" <<<"$ERR"; then ok "the refusal gives the hash to pass"; else not_ok "the refusal gives the hash to pass" "$ERR"; fi
[ ! -e "$ROOT/nli/allnli/AllNLI.tsv" ] && ok "refused: nothing installed" || not_ok "refused: nothing installed"
run_cmd "$LACOS" data pull allnli --data "$ROOT" --no-verify
expect "--no-verify accepts and records" 0 "verified by none \(--no-verify\)"
run_cmd "$LACOS" -e "local d = require('lacos').data; d.set_root('$ROOT'); local s = d.load('allnli', {split = 'train'}); local t = d.nli_triplets(s); print('allnli', s:size(), t:size(), (t:triplet(1)))"
expect "the pulled AllNLI reads by header names and split filter" 0 "allnli	2	1	A man."

run_cmd "$LACOS" data pull simcse-nli --data "$ROOT" --url "http://127.0.0.1:$PORT/files/simcse.csv" --sha256 "$SIMCSE_SHA"
expect "--url and --sha256" 0 "simcse-nli: present under"
run_cmd "$LACOS" data pull stsb --data "$ROOT" --url "http://127.0.0.1:$PORT/files/simcse.csv"
if [ "$RC" = 1 ] && grep -q "unpacking .* with tar failed" <<<"$ERR" && [ ! -e "$ROOT/sts/stsb/sts-test.csv" ]; then ok "--url with a wrong file is refused"; else not_ok "--url with a wrong file is refused" "rc=$RC" "$ERR"; fi
run_cmd "$LACOS" data pull sts17 --data "$ROOT" --url "http://127.0.0.1:$PORT/x"
expect "--url needs a one-download set" 1 "apply to sets with one download; this one has 2"
LACOS_DATA_MIRROR="http://127.0.0.1:1" run_cmd "$LACOS" data pull msrp --data "$ROOT"
expect "connection refused" 1 "cannot connect"
run_cmd "$LACOS" data pull nope --data "$ROOT"
expect "pull of an unknown set" 1 "unknown dataset 'nope'"

kill $HTTPD 2>/dev/null
finish
