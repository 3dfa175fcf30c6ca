#!/usr/bin/env bash
# lacos tokenize through the shell: ids, token strings, counts, decoding,
# max length / truncation, TEXTFILE arguments, the ids of whole dataset files
# against the tokenizers library's digests, and every kind of bad input.
. "$(dirname "$0")/lib.sh"
FIX=${LACOS_ROOT:-.}/tests/fixtures/tokenizer
TOK=$FIX/bloomlike-32k.json
DATA=${LACOS_TEST_DATA:-}

# "Hello world" -> [43, 3992, 2578] with bloomlike-32k (the tokenizers library).
run_in $'Hello world\r\n Hello world\n\nlast line without newline' "$LACOS" tokenize --tokenizer "$TOK"
expect "ids per line, CRLF and a last line without newline" 0 ""
lines=$(printf '%s\n' "$OUT" | wc -l)
if [ "$(printf '%s\n' "$OUT" | sed -n 1p)" = "43 3992 2578" ] && [ "$lines" = 4 ] && [ -z "$(printf '%s\n' "$OUT" | sed -n 3p)" ]; then
  ok "one output line per input line (empty line stays empty)"
else not_ok "one output line per input line (empty line stays empty)" "stdout: $OUT"; fi

run_in $'Hello world\n' "$LACOS" tokenize --tokenizer "$TOK" --tokens
expect "--tokens prints vocabulary strings" 0 "^H ello Ġworld$"
run_in $'Hello world\nsix\n\n' "$LACOS" tokenize --tokenizer "$TOK" --count
expect "--count" 0 $'^3\n2\n0$'
run_in $'43 3992 2578\n1 43 2\n[1, 43, 2]\n' "$LACOS" tokenize --tokenizer "$TOK" --decode
expect "--decode (spaces, commas, brackets)" 0 $'^Hello world\n<s>H</s>\n<s>H</s>$'
run_in $'1 43 2\n' "$LACOS" tokenize --tokenizer "$TOK" --decode --skip-special
expect "--decode --skip-special" 0 "^H$"

# encode then decode gives the text back
text=$'Ünïcödé, emoji 😀👍🏽, Arabic مرحبا، Hindi नमस्ते। and  spaces\tand tabs'
run_in "$text" "$LACOS" tokenize --tokenizer "$TOK"
ids=$OUT
run_in "$ids" "$LACOS" tokenize --tokenizer "$TOK" --decode
if [ "$OUT" = "$text" ]; then ok "decode(encode(text)) is the text"; else not_ok "decode(encode(text)) is the text" "got: $OUT"; fi

run_in $'one two three four\n' "$LACOS" tokenize --tokenizer "$TOK" --max-length 2
expect "--max-length refuses longer lines" 1 "line 1 has 4 tokens, more than --max-length 2 \(add --truncate"
[ -z "$OUT" ] && ok "no partial output on error" || not_ok "no partial output on error" "stdout: $OUT"
run_in $'one two three four\nx\n' "$LACOS" tokenize --tokenizer "$TOK" --max-length 2 --truncate --truncation-side left
expect "--truncate keeps the last tokens with --truncation-side left" 0 $'^2073 2899\n'

# A WordPiece tokenizer (BERT's pipeline; tests/fixtures/wordpiece/wp-small.json):
# [CLS] and [SEP] around each line, --no-special without them, truncation
# keeps them, decoding joins "##" pieces (ids and pieces from the tokenizers library).
WP=${LACOS_ROOT:-.}/tests/fixtures/wordpiece/wp-small.json
run_in $'Hello, WORLD! Ça va?\n' "$LACOS" tokenize --tokenizer "$WP" --tokens
expect "WordPiece: [CLS] ... [SEP], lowercase, accents stripped, ## pieces" 0 "^\[CLS\] hel ##lo , world ! ca va \? \[SEP\]$"
run_in $'Hello, WORLD! Ça va?\n' "$LACOS" tokenize --tokenizer "$WP" --no-special --tokens
expect "WordPiece: --no-special" 0 "^hel ##lo , world ! ca va \?$"
run_in $'Hello, WORLD! Ça va?\n' "$LACOS" tokenize --tokenizer "$WP" --max-length 5 --truncate --tokens
expect "WordPiece: --truncate keeps [CLS] and [SEP]" 0 "^\[CLS\] hel ##lo , \[SEP\]$"
run_in $'Hello, WORLD! Ça va?\n' "$LACOS" tokenize --tokenizer "$WP" --max-length 5
expect "WordPiece: --max-length counts the special tokens" 1 "line 1 has 10 tokens, more than --max-length 5"
run_in $'Hello, WORLD! Ça va?\n' "$LACOS" tokenize --tokenizer "$WP"
ids=$OUT
run_in "$ids" "$LACOS" tokenize --tokenizer "$WP" --decode --skip-special
expect "WordPiece: --decode joins the pieces (cleanup: no space before punctuation)" 0 "^hello, world! ca va\?$"
run_in $'Hello\n' "$LACOS" tokenize --tokenizer "$WP" --decode --no-special
expect "--no-special with --decode is a usage error" 2 "--decode reads ids"

printf 'Hello world\n' > "$TMP/a.txt"; printf 'six' > "$TMP/b.txt"
run_cmd "$LACOS" tokenize --tokenizer "$TOK" "$TMP/a.txt" "$TMP/b.txt"
expect "TEXTFILE arguments, in order" 0 $'^43 3992 2578\n86 2583$'
run_in "" "$LACOS" tokenize --tokenizer "$TOK" --stats
expect "empty input: no output" 0 "0 lines, 0 tokens"

# Bad input: clear message naming the cause, non-zero exit, nothing on stdout.
run_in $'fine\nbad \xff byte\n' "$LACOS" tokenize --tokenizer "$TOK"
expect "invalid UTF-8 names the line and byte" 1 "line 2: invalid UTF-8 at byte 4 \(0xff\)"
[ -z "$OUT" ] && ok "invalid UTF-8: nothing printed" || not_ok "invalid UTF-8: nothing printed" "stdout: $OUT"
run_in $'ca\xc3' "$LACOS" tokenize --tokenizer "$TOK"
expect "a text cut inside a character" 1 "line 1: invalid UTF-8 at byte 2 \(0xc3: the text ends inside a character\)"
run_in $'1 two 3\n' "$LACOS" tokenize --tokenizer "$TOK" --decode
expect "--decode with a word that is not an id" 1 "line 1: 'two' is not a token id"
run_in $'1 999999\n' "$LACOS" tokenize --tokenizer "$TOK" --decode
expect "--decode with an id outside the vocabulary" 1 "line 1: id 999999 \(position 2\) is not a token"
run_cmd "$LACOS" tokenize --tokenizer "$TMP/missing.json"
expect "missing tokenizer file" 1 "missing.json: No such file or directory"
printf '{"model": {"vocab": ' > "$TMP/broken.json"
run_cmd "$LACOS" tokenize --tokenizer "$TMP/broken.json"
expect "malformed tokenizer.json" 1 "broken.json:1:[0-9]+: malformed JSON"
printf '{"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"Unigram","vocab":[]}}' > "$TMP/unigram.json"
run_cmd "$LACOS" tokenize --tokenizer "$TMP/unigram.json"
expect "unsupported model type" 1 "unigram.json: model.type is \"Unigram\"; lacos runs BPE and WordPiece models"
printf '{"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":["a c"]}}' > "$TMP/merge.json"
run_cmd "$LACOS" tokenize --tokenizer "$TMP/merge.json"
expect "merge with an unknown token" 1 "merge.json: model.merges\[0\]: \"c\" is not in model.vocab"
run_cmd "$LACOS" tokenize --tokenizer "$TOK" "$TMP/missing.txt"
expect "missing TEXTFILE" 1 "missing.txt: No such file or directory"
run_cmd "$LACOS" tokenize
expect "--tokenizer is required" 2 "missing required option --tokenizer"
run_cmd "$LACOS" tokenize --tokenizer "$TOK" --max-length 0
expect "--max-length must be positive" 2 "--max-length must be at least 1"
run_cmd "$LACOS" tokenize --tokenizer "$TOK" --truncate
expect "--truncate needs --max-length" 2 "--truncate needs --max-length"
run_cmd "$LACOS" tokenize --tokenizer "$TOK" --decode --tokens
expect "--decode with --tokens" 2 "--decode reads ids"
run_cmd "$LACOS" tokenize --help
expect "--help" 0 "usage: lacos tokenize --tokenizer FILE.json"

# Whole dataset files: the output is exactly what the fixture digests hash
# (each text's ids space-separated, one line per text).
digest_of() { "$LACOS" -e "print(require('lacos.json').read('$FIX/expected-bloomlike.json').files['$1'].sha256)"; }
if [ -n "$DATA" ] && [ -d "$DATA/nli" ]; then
  got=$("$LACOS" tokenize --tokenizer "$TOK" < "$DATA/nli/snli-infersent/s1.test" | sha256sum | cut -d' ' -f1)
  want=$(digest_of nli/snli-infersent/s1.test)
  [ "$got" = "$want" ] && ok "SNLI s1.test: ids equal the tokenizers library's" || not_ok "SNLI s1.test ids" "sha256 $got, expected $want"
  got=$(awk -F'\t' '{print $1; print $2}' "$DATA/nli/xnli-dev/dev-zh.tsv" | "$LACOS" tokenize --tokenizer "$TOK" | sha256sum | cut -d' ' -f1)
  want=$(digest_of nli/xnli-dev/dev-zh.tsv)
  [ "$got" = "$want" ] && ok "XNLI dev-zh: ids equal the tokenizers library's" || not_ok "XNLI dev-zh ids" "sha256 $got, expected $want"
  # PCRE2's interpreter (LACOS_PCRE2_JIT=0, as make check-valgrind runs) splits exactly as its JIT does
  got=$(awk -F'\t' '{print $1; print $2}' "$DATA/nli/xnli-dev/dev-zh.tsv" | LACOS_PCRE2_JIT=0 "$LACOS" tokenize --tokenizer "$TOK" | sha256sum | cut -d' ' -f1)
  [ "$got" = "$want" ] && ok "XNLI dev-zh without the regex JIT: the same ids" || not_ok "XNLI dev-zh without the regex JIT" "sha256 $got, expected $want"
else
  skip "dataset files through lacos tokenize" "the shared datasets are not there (LACOS_TEST_DATA)"
fi
finish
