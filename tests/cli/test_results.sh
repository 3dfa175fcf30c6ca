# test_results.sh: `lacos results` and the results database on bad input:
# every failure exits non-zero with a message naming the file and the
# cause, prints nothing on stdout, never crashes, and leaves data alone.
source "$(dirname "$0")/lib.sh"

D="$TMP/results-cli"
mkdir -p "$D"

# A small database to read.
make_db() {  # make_db PATH
  "$LACOS" -e "
    local db = require('lacos.results').open('$1')
    local run = db:start_run{ config = { lr = 1e-4 }, seed = 1, heartbeat = -1 }
    run:log(1, { loss = 0.5 })
    run:finish('done')
    db:close()" >/dev/null 2>&1
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

expect_fail() {  # expect_fail NAME RC PATTERN: also requires empty stdout
  local name=$1
  expect "$@"
  if [ -n "$OUT" ]; then not_ok "$name: no output on stdout" "stdout: ${OUT:0:300}"; fi
}

run_cmd "$LACOS" results --help
expect "results --help documents the subcommands and formats" 0 "lacos results show RUN"
for w in "compare RUN RUN" 'sql "SELECT' "--csv" "--json" "--db FILE" "--status S" "--limit N"; do
  grep -qF -- "$w" <<<"$OUT" || not_ok "results --help mentions '$w'"
done

run_cmd "$LACOS" results --db "$D/absent.db"
expect_fail "a missing database is named, not created" 1 "absent\.db: no results database there"
[ ! -e "$D/absent.db" ] && ok "missing database not created" || not_ok "missing database not created"

printf 'id,name\n1,not a database but a CSV file that is long enough\n' > "$D/text.db"
run_cmd "$LACOS" results --db "$D/text.db"
expect_fail "a file that is not a database" 1 "text\.db: .*not an SQLite database"

make_db "$D/corrupt.db"
sqlite3 "$D/corrupt.db" "PRAGMA journal_mode = DELETE;" >/dev/null
head -c 3000 /dev/urandom | dd of="$D/corrupt.db" bs=1 seek=100 conv=notrunc status=none
run_cmd "$LACOS" results --db "$D/corrupt.db"
expect_fail "a corrupted database" 1 "corrupt\.db: .*(corrupted|not an SQLite database)"

make_db "$D/newer.db"
sqlite3 "$D/newer.db" "INSERT INTO schema_version VALUES (99, '2099-01-01'); PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
before=$(sha "$D/newer.db")
run_cmd "$LACOS" results --db "$D/newer.db"
expect_fail "a database from a newer lacos is refused" 1 "newer\.db: the database has schema version 99, newer than this lacos"
run_cmd "$LACOS" -e "require('lacos.results').open('$D/newer.db')"
expect "a newer database is refused for writing too" 1 "upgrade lacos"
[ "$(sha "$D/newer.db")" = "$before" ] && ok "the newer database is untouched" || not_ok "the newer database is untouched"

sqlite3 "$D/foreign.db" "CREATE TABLE customers (id INTEGER PRIMARY KEY); INSERT INTO customers VALUES (1);"
run_cmd "$LACOS" -e "require('lacos.results').open('$D/foreign.db')"
expect "somebody else's SQLite file is left alone" 1 "foreign\.db: not a lacos results database"
[ "$(sqlite3 "$D/foreign.db" "SELECT count(*) FROM sqlite_schema")" = 1 ] && ok "no tables added to it" || not_ok "no tables added to it"

make_db "$D/ok.db"
run_cmd "$LACOS" results --db "$D/ok.db" sql "SELEC * FROM runs"
expect_fail "results sql: a syntax error" 1 "ok\.db: bad query: near \"SELEC\": syntax error"
run_cmd "$LACOS" results --db "$D/ok.db" sql "DROP TABLE runs"
expect_fail "results sql: a write statement is refused" 1 "ok\.db: query refused: it would change the database"
run_cmd "$LACOS" results --db "$D/ok.db" sql "UPDATE runs SET status = 'failed'"
expect_fail "results sql: an update is refused" 1 "query refused"
run_cmd "$LACOS" results --db "$D/ok.db" sql "SELECT 1; DELETE FROM runs"
expect_fail "results sql: a second statement is refused" 1 "one statement at a time"
run_cmd "$LACOS" results --db "$D/ok.db" sql "ATTACH '$D/other.db' AS o"
expect_fail "results sql: ATTACH is refused" 1 "may not attach"
[ ! -e "$D/other.db" ] && ok "ATTACH created no file" || not_ok "ATTACH created no file"
run_cmd "$LACOS" results --db "$D/ok.db" sql "SELECT * FROM runs WHERE id = ?"
expect_fail "results sql: a missing parameter" 1 "the query has 1 parameter, 0 values given"
[ "$(sqlite3 "$D/ok.db" "SELECT count(*) || status FROM runs")" = "1done" ] && ok "the refused statements changed nothing" \
  || not_ok "the refused statements changed nothing"

run_cmd "$LACOS" results --db "$D/ok.db" show 99
expect_fail "results show: an unknown run" 1 "ok\.db: no run '99'"
run_cmd "$LACOS" results --db "$D/ok.db" frobnicate
expect_fail "results: an unknown subcommand" 2 "unknown subcommand 'frobnicate'"
run_cmd "$LACOS" results --db "$D/ok.db" --csv --json
expect_fail "results: --csv and --json together" 2 "choose one of --csv and --json"
run_cmd "$LACOS" results --db "$D/ok.db" compare 1
expect_fail "results compare: needs two runs" 2 "missing arguments"
run_cmd "$LACOS" results --db "$D/ok.db" --limit 0
expect_fail "results: --limit must be positive" 2 "--limit must be at least 1"
run_cmd "$LACOS" results --db "$D/ok.db" show 1 --status done
expect_fail "results show: --status does not apply" 2 "--status does not apply to 'results show'"

# A path below a regular file cannot hold a database.
run_cmd "$LACOS" -e "require('lacos.results').open('$D/text.db/sub/x.db')"
expect "a path below a file" 1 "text\.db: cannot create the results database below it: it is a file, not a directory"

# Locked past the timeout: a sqlite3 shell holds the write lock.
( printf 'BEGIN IMMEDIATE;\nINSERT INTO tags SELECT 1, "k", "v" WHERE 0;\n.shell sleep 3\nCOMMIT;\n' | sqlite3 "$D/ok.db" ) &
holder=$!
sleep 0.5
start=$(date +%s.%N)
run_cmd env LACOS_DB_TIMEOUT=0.5 "$LACOS" -e "local db = require('lacos.results').open('$D/ok.db'); db:start_run{ heartbeat = -1 }"
took=$(echo "$(date +%s.%N) - $start" | bc)
expect "a database locked past the timeout" 1 "ok\.db: starting a run: the database is locked by another process \(waited 0\.5 s\)"
(( $(echo "$took < 2.5" | bc) )) && ok "the lock wait honours LACOS_DB_TIMEOUT" || not_ok "the lock wait honours LACOS_DB_TIMEOUT" "took $took s"
run_cmd "$LACOS" results --db "$D/ok.db" --csv
expect "reading works while a writer holds the lock" 0 "^id,"
wait "$holder"
run_cmd "$LACOS" -e "local db = require('lacos.results').open('$D/ok.db'); db:start_run{ heartbeat = -1 }:finish('done')"
expect "writing works again once the lock is gone" 0 ""

# Permissions: root ignores them, so run those cases as nobody when root.
as_user=()
if [ "$(id -u)" = 0 ]; then
  if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups "$LACOS" --version >/dev/null 2>&1; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    chmod 0711 "$TMP"
  else
    as_user=(none)
  fi
fi
if [ "${as_user[0]:-}" = none ]; then
  skip "an unwritable directory" "running as root without setpriv to drop privileges"
  skip "a read-only database file" "running as root without setpriv to drop privileges"
else
  P="$TMP/results-perm"
  mkdir -p "$P/ro-dir" && chmod 0777 "$P" && chmod 0555 "$P/ro-dir"
  run_cmd "${as_user[@]}" "$LACOS" -e "require('lacos.results').open('$P/ro-dir/lacos.db')"
  expect "an unwritable directory" 1 "ro-dir: cannot create the results database in this directory: Permission denied"
  run_cmd "${as_user[@]}" "$LACOS" -e "require('lacos.results').open('$P/ro-dir/deeper/lacos.db')"
  expect "an unwritable parent directory" 1 "ro-dir/deeper: cannot create the directory for the results database: Permission denied"
  make_db "$P/ro.db"
  chmod 0444 "$P/ro.db"
  before=$(sha "$P/ro.db")
  run_cmd "${as_user[@]}" "$LACOS" -e "require('lacos.results').open('$P/ro.db')"
  expect "a read-only database file" 1 "ro\.db: the database file is read-only \(permission denied\)"
  run_cmd "${as_user[@]}" "$LACOS" results --db "$P/ro.db" --json
  expect "a read-only database file can still be listed" 0 '"status": "done"'
  [ "$(sha "$P/ro.db")" = "$before" ] && ok "the read-only file is unchanged" || not_ok "the read-only file is unchanged"
fi

finish
