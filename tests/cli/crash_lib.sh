# crash_lib.sh: shared by test_crash.sh and test_concurrent.sh (sourced after
# lib.sh). Random delays, the canonical dump of a results database's done
# runs, and the checks every crashed or concurrent database must pass.

SWEEP=${LACOS_ROOT:-.}/tests/cli/sweep_small.lua
# the sweeps read the test data wherever the tree is (their own default is
# the ../shared/datasets beside it)
[ -n "${LACOS_TEST_DATA:-}" ] && export LACOS_DATA="$LACOS_TEST_DATA"
LONG=${LACOS_TEST_LONG:-0}
[ "$LONG" = 0 ] && LONG=

# One random seed per test file, printed so a failure can be replayed with
# LACOS_CRASH_SEED=<seed>.
CRASH_SEED=${LACOS_CRASH_SEED:-$(( $(date +%s%N) % 32768 ))}
RANDOM=$CRASH_SEED
echo "# random seed $CRASH_SEED (LACOS_CRASH_SEED to replay)"

now() { date +%s.%N; }
# rand_delay MAX: a random number of seconds in [0.03, MAX)
rand_delay() { awk -v r="$RANDOM" -v m="$1" 'BEGIN { printf "%.3f", 0.03 + (m - 0.03) * r / 32768 }'; }

have_data() { [ -n "${LACOS_TEST_DATA:-}" ] && [ -f "$LACOS_TEST_DATA/sts/stsb/sts-test.csv" ] && [ -f "$LACOS_TEST_DATA/nli/snli-infersent/dev.snli.txt" -o -d "$LACOS_TEST_DATA/nli" ]; }

# dump DB: every number a done run recorded, one line each, keyed by the
# point (config hash and seed) instead of run ids, in full precision: the
# step log (loss, lr, grad_norm; tokens_per_s is a timing) and the STS rows.
dump() {
  sqlite3 "$1" "
    SELECT r.config_sha256, r.seed, 'metric', m.key, m.step, quote(m.value), m.is_finite
      FROM runs r JOIN metrics m ON m.run_id = r.id
     WHERE r.status = 'done' AND m.key != 'tokens_per_s'
    UNION ALL
    SELECT r.config_sha256, r.seed, 'sts', s.dataset, s.language || ' ' || s.n_pairs, quote(s.spearman), quote(s.pearson)
      FROM runs r JOIN sts_results s ON s.run_id = r.id
     WHERE r.status = 'done'
    UNION ALL
    SELECT r.config_sha256, r.seed, 'param', p.key, '', quote(p.value_num), quote(p.value_text)
      FROM runs r JOIN params p ON p.run_id = r.id
     WHERE r.status = 'done'
    ORDER BY 1, 2, 3, 4, 5"
}

# check_db NAME DB POINTS [OTHER]: integrity, exactly one done run per point
# and POINTS points, every other run in status OTHER (default dead: killed
# ones; a run stopped by Ctrl-C is interrupted), none failed or left
# running, no duplicated metric or STS row within a run. One TAP line per check.
check_db() {
  local name=$1 db=$2 points=$3 other=${4:-dead} v
  v=$(sqlite3 "$db" "PRAGMA integrity_check" 2>&1)
  [ "$v" = ok ] && ok "$name: PRAGMA integrity_check is ok" || not_ok "$name: PRAGMA integrity_check is ok" "$v"
  v=$(sqlite3 "$db" "PRAGMA foreign_key_check" 2>&1)
  [ -z "$v" ] && ok "$name: foreign keys hold" || not_ok "$name: foreign keys hold" "$v"
  v=$(sqlite3 "$db" "SELECT count(*), sum(n = 1) FROM (SELECT count(*) AS n FROM runs WHERE status = 'done' GROUP BY experiment_id, config_sha256, seed)")
  [ "$v" = "$points|$points" ] && ok "$name: one done run for each of the $points points" \
    || not_ok "$name: one done run for each of the $points points" "points|points with one done run: $v" \
              "$(sqlite3 "$db" "SELECT id, status, exit_reason, pid FROM runs")"
  v=$(sqlite3 "$db" "SELECT group_concat(id || ':' || status || ':' || coalesce(error, exit_reason, ''), '; ') FROM runs WHERE status NOT IN ('done', '$other')")
  [ -z "$v" ] && ok "$name: every other run is $other, none failed or left running" \
    || not_ok "$name: every other run is $other, none failed or left running" "$v"
  v=$(sqlite3 "$db" "SELECT (SELECT count(*) FROM (SELECT 1 FROM metrics GROUP BY run_id, key, step HAVING count(*) > 1))
                          + (SELECT count(*) FROM (SELECT 1 FROM sts_results GROUP BY run_id, dataset, language, split, step HAVING count(*) > 1))")
  [ "$v" = 0 ] && ok "$name: no duplicated metric or STS row in any run" || not_ok "$name: no duplicated metric or STS row in any run" "$v groups duplicated"
}

# same_results NAME REF_DB DB: the done runs hold exactly the reference's numbers.
same_results() {
  local name=$1 a b
  a=$(dump "$2"); b=$(dump "$3")
  if [ -n "$a" ] && [ "$a" = "$b" ]; then
    ok "$name: the same numbers as the uninterrupted sweep, bit for bit ($(wc -l <<<"$a") values)"
  else
    not_ok "$name: the same numbers as the uninterrupted sweep, bit for bit" \
      "$(diff <(echo "$a") <(echo "$b") | head -20)"
  fi
}

# same_adapters NAME REF_DIR DIR: every adapter file under REF_DIR has a
# byte-identical twin at the same place under DIR.
same_adapters() {
  local name=$1 ref=$2 dir=$3 f bad="" n=0
  while IFS= read -r f; do
    n=$((n + 1))
    cmp -s "$ref/$f" "$dir/$f" || bad="$bad $f"
  done < <(cd "$ref" && find . -path '*/adapter/adapter_model.safetensors' | sort)
  if [ "$n" -gt 0 ] && [ -z "$bad" ]; then ok "$name: the $n saved adapters are byte-identical"
  else not_ok "$name: the saved adapters are byte-identical" "differ or missing:$bad (of $n)"; fi
}
