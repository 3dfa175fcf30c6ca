#!/usr/bin/env bash
# test_fresh_clone.sh: `make run` as a user runs it on a fresh clone: a copy
# of the tree (every file git would check out, plus the build outputs so that
# make finds them up to date) in a folder with no ../shared beside it, a clean
# HOME, none of the test runner's LACOS_* variables. The data quickstart needs
# is fetched into the clone's data root (datasets/) from a mirror of a data
# root served on loopback (tests/lua/httpd.lua over the shared datasets,
# LACOS_DATA_MIRROR), checked against the registry's sha256; a second run
# fetches nothing; a dropped connection is resumed; with no network and no
# mirror the run stops with one message naming --data, LACOS_DATA and
# LACOS_DATA_MIRROR and leaves no empty folder behind.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
D=${LACOS_TEST_DATA:-}

if [ -z "$D" ] || [ ! -f "$D/sts/stsb/sts-test.csv" ]; then
  skip "make run on a fresh clone" "LACOS_TEST_DATA is not there (the mirror serves it)"
  finish
fi
if [ -n "${LACOS_UNDER_VALGRIND:-}" ]; then
  skip "make run on a fresh clone" "make run starts build/lacos itself, outside valgrind"
  finish
fi
if ! command -v git >/dev/null || ! git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  skip "make run on a fresh clone" "not a git checkout: no list of the files a clone has"
  finish
fi

FRESH="$TMP/fresh"
CLONE="$FRESH/lacos"
HOMEDIR="$TMP/fresh-home"
mkdir -p "$CLONE" "$HOMEDIR"
# what a clone checks out (committed files and new ones git does not ignore), with their times
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp -p --parents -t "$CLONE" 2>/dev/null)
# the build outputs, so that make finds everything up to date instead of compiling for minutes
mkdir -p "$CLONE/$BUILD"
for p in "$ROOT/$BUILD"/* "$ROOT/$BUILD"/.flags; do
  case "$(basename "$p")" in tests|test.log|valgrind|fuzz) continue ;; esac
  [ -e "$p" ] && cp -a "$p" "$CLONE/$BUILD/"
done
[ ! -e "$FRESH/shared" ] && [ -f "$CLONE/Makefile" ] && [ ! -e "$CLONE/datasets/sts" ] \
  && ok "a clone with no ../shared beside it and no data" || not_ok "a clone with no ../shared beside it and no data" "$(ls -a "$FRESH" "$CLONE/datasets")"

# the mirror: a data root served as it is
"$LACOS" run "$ROOT/tests/lua/httpd.lua" "$D" "$TMP/fresh-port" "$TMP/fresh-httpd.log" 300 >/dev/null 2>&1 &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null' EXIT
for _ in $(seq 200); do [ -s "$TMP/fresh-port" ] && break; sleep 0.05; done
PORT=$(cat "$TMP/fresh-port" 2>/dev/null)
MIRROR="http://127.0.0.1:$PORT"

SANFLAG=
[ "$BUILD" = build-san ] && SANFLAG="SAN=1"
# make test runs quickstart with fewer pairs (RUN_ARGS, as test_quickstart.lua does); make check-long exactly as make run
PAIRS=2500
RUN_ARGS=
if [ "${LACOS_TEST_LONG:-0}" = 0 ]; then PAIRS=192; RUN_ARGS="--pairs 192 --eval-limit 64"; fi
# make run as a user types it: a clean HOME, no test-runner variables, no make of ours above it
user_make() {
  env -u LACOS_DATA -u LACOS_DB -u LACOS_TEST_DATA -u LACOS_HOME -u LACOS_ROOT -u LACOS -u LUA_PATH -u LACOS_TEST_TMP \
      -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u all_proxy \
      HOME="$HOMEDIR" "$@" make --no-print-directory -C "$CLONE" run BUILD="$BUILD" $SANFLAG ${RUN_ARGS:+RUN_ARGS="$RUN_ARGS"}
}

run_cmd user_make LACOS_DATA_MIRROR="$MIRROR"
expect "make run on the fresh clone fetches what quickstart needs and runs" 0 "results are in"
if grep -qE "quickstart: fetching 8 datasets into $CLONE/datasets from the mirror $MIRROR: sts12, sts13, sts14, sts15, sts16, stsb, sick, snli-infersent" <<<"$ERR"; then
  ok "it says what it fetches, where from and where to"; else not_ok "it says what it fetches, where from and where to" "$ERR"; fi
if grep -q "training pairs: $PAIRS" <<<"$OUT" && grep -q "STSBenchmark" <<<"$OUT"; then ok "the quickstart table"; else not_ok "the quickstart table" "$OUT"; fi
run_cmd "$CLONE/$BUILD/lacos" data list --data "$CLONE/datasets" --verify
bad=0
for s in sts12 sts13 sts14 sts15 sts16 stsb sick snli-infersent; do
  grep -qE "^$s +[a-z]+ +present " <<<"$OUT" || bad=1
done
if [ $bad = 0 ] && grep -q "every present file matches its sha256" <<<"$OUT"; then ok "the fetched sets are present and match their sha256"
else not_ok "the fetched sets are present and match their sha256" "$OUT"; fi
n=$(ls "$CLONE/datasets/.lacos/pulled/" 2>/dev/null | wc -l)
[ "$n" = 8 ] && ok "each pull is recorded" || not_ok "each pull is recorded" "$(ls -R "$CLONE/datasets/.lacos")"
if grep -q "GET /sts/stsb/sts-test.csv" "$TMP/fresh-httpd.log" && ! grep -q "raw.githubusercontent" "$TMP/fresh-httpd.log"; then
  ok "the mirror is asked for the data root's paths"; else not_ok "the mirror is asked for the data root's paths" "$(head -5 "$TMP/fresh-httpd.log")"; fi

# again: nothing fetched, both points skipped
before=$(wc -l < "$TMP/fresh-httpd.log")
run_cmd user_make LACOS_DATA_MIRROR="$MIRROR"
expect "make run again" 0 "results are in"
after=$(wc -l < "$TMP/fresh-httpd.log")
if [ "$before" = "$after" ] && grep -q "already, skipped" <<<"$ERR"; then ok "the second make run fetches nothing and redoes nothing"
else not_ok "the second make run fetches nothing and redoes nothing" "requests $before -> $after" "$ERR"; fi

# a connection dropped mid-file: the download resumes where it stopped, in the same make run
rm -rf "$CLONE/datasets/sts/sick"
run_cmd user_make LACOS_DATA_MIRROR="$MIRROR/cutonce/200000"
expect "make run resumes a dropped download" 0 "results are in"
if grep -q "sick: the download stopped" <<<"$ERR" && grep -qE "GET /cutonce/200000/sts/sick/[^ ]+ bytes=200000-" "$TMP/fresh-httpd.log"; then
  ok "the second request asked for the rest (Range: bytes=200000-)"
else not_ok "the second request asked for the rest (Range: bytes=200000-)" "$ERR" "$(tail -5 "$TMP/fresh-httpd.log")"; fi
run_cmd "$CLONE/$BUILD/lacos" data show sick --data "$CLONE/datasets" --verify
expect "the resumed files match their sha256" 0 "SICK.txt +[0-9]+ +sha256 ok"

# no network and no mirror: one message with the three ways out, no empty folder left
rm -rf "$CLONE/datasets/sts/sts12"
find "$CLONE/datasets" -type d | sort > "$TMP/fresh-dirs-before"
run_cmd user_make https_proxy=http://127.0.0.1:1 HTTPS_PROXY=http://127.0.0.1:1 no_proxy= NO_PROXY=
if [ "$RC" != 0 ] && grep -q -- "--data DIR" <<<"$ERR" && grep -q "LACOS_DATA=DIR" <<<"$ERR" && grep -q "LACOS_DATA_MIRROR=URL" <<<"$ERR" \
   && grep -q "quickstart: the data it needs is not all under $CLONE/datasets (sts12)" <<<"$ERR"; then
  ok "no network, no mirror: one message naming --data, LACOS_DATA and LACOS_DATA_MIRROR"
else not_ok "no network, no mirror: one message naming --data, LACOS_DATA and LACOS_DATA_MIRROR" "exit $RC" "$ERR"; fi
if grep -qE "data_root|eval_limit|models_dir" <<<"$ERR"; then not_ok "the message names no internal option" "$ERR"; else ok "the message names no internal option"; fi
find "$CLONE/datasets" -type d | sort > "$TMP/fresh-dirs-after"
empty=$(find "$CLONE/datasets" -type d -empty)
if cmp -s "$TMP/fresh-dirs-before" "$TMP/fresh-dirs-after" && [ -z "$empty" ]; then ok "no folder left behind"
else not_ok "no folder left behind" "$(diff "$TMP/fresh-dirs-before" "$TMP/fresh-dirs-after")" "empty: $empty"; fi

kill $HTTPD 2>/dev/null
finish
