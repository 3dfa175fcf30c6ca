/* fuzz_datasets.h: the dataset readers' libFuzzer targets (engine/datasets.c),
   one per reader: fuzz_tsv.c, fuzz_csv.c, fuzz_gold.c, fuzz_lines.c and
   fuzz_jsonl.c define FUZZ_READER and include this file.

   Input: 5 control bytes that fill the read spec (header lines, trimming,
   blank/unlabelled/empty handling, column mapping, label kind, a filter,
   field counts, a score range, a 64-byte line limit, JSON keys), then the
   file(s): FILE for tsv, csv and jsonl; INPUT SEP GOLD for gold; S1 SEP S2
   [SEP LABELS] for lines.

   The reader runs twice into one set (the second read appends). On failure
   the set must be exactly as before and the message must name a file; on
   success every record must hold what the spec promises: valid UTF-8
   sentences of the recorded lengths, non-empty unless allowed, trimmed when
   asked, a third sentence exactly when mapped, finite scores inside the
   range (or NaN), labels of the right kind, the new subset's bounds. Then
   the set is hashed and turned into triplets and pairs in every mode. */
#include "fuzz_common.h"
#include <math.h>

enum { READ_TSV = 1, READ_CSV = 2, READ_GOLD = 3, READ_LINES = 4, READ_JSONL = 5 };

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("data");
  return 0;
}

static bool valid_utf8(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t k;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) { k = 1; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { k = 3; cp = c & 0x07; min = 0x10000; }
    else return false;
    if (i + k >= n) return false;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return false;
      cp = cp << 6 | (s[i + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += k + 1;
  }
  return true;
}

static bool ascii_space(int c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n'; }

static void check_sentence(const char *s, int32_t len, const lacos_read_spec *spec) {
  FUZZ_REQUIRE(s != NULL && len >= 0);
  FUZZ_REQUIRE(strlen(s) == (size_t)len);
  FUZZ_REQUIRE(valid_utf8((const unsigned char *)s, (size_t)len));
  if (!spec->allow_empty) FUZZ_REQUIRE(len > 0);
  if (spec->trim && len > 0) FUZZ_REQUIRE(!ascii_space((unsigned char)s[0]) && !ascii_space((unsigned char)s[len - 1]));
}

static void check_records(const lacos_pairset *set, int n0, int nsub0, const lacos_read_spec *spec, int reader,
                          bool has_s3, bool labelled) {
  int n = lacos_pairset_size(set), nsub = lacos_pairset_subset_count(set);
  FUZZ_REQUIRE(nsub == nsub0 + 1 && n >= n0);
  const lacos_pair_subset *sub = &lacos_pairset_subsets(set)[nsub - 1];
  FUZZ_REQUIRE(sub->first == n0 && sub->count == n - n0);
  FUZZ_REQUIRE(sub->count <= sub->lines && sub->skipped >= 0);
  FUZZ_REQUIRE(sub->name && sub->lang1 && sub->lang2 && sub->source);
  const lacos_pair *p = lacos_pairset_pairs(set);
  for (int i = n0; i < n; i++) {
    check_sentence(p[i].s1, p[i].len1, spec);
    check_sentence(p[i].s2, p[i].len2, spec);
    if (has_s3) check_sentence(p[i].s3, p[i].len3, spec);
    else FUZZ_REQUIRE(p[i].s3 == NULL);
    FUZZ_REQUIRE(p[i].subset == nsub - 1 && p[i].line >= 1);
    FUZZ_REQUIRE(isnan(p[i].score) || isfinite(p[i].score));
    if (!isnan(p[i].score)) {
      if (!isnan(spec->score_min)) FUZZ_REQUIRE(p[i].score >= spec->score_min);
      if (!isnan(spec->score_max)) FUZZ_REQUIRE(p[i].score <= spec->score_max);
    }
    if (reader == READ_GOLD) FUZZ_REQUIRE(!isnan(p[i].score));   /* unscored pairs are dropped */
    if (!labelled || spec->label_kind == LACOS_LABELS_NONE) FUZZ_REQUIRE(p[i].label == LACOS_NO_LABEL);
    else if (spec->label_kind == LACOS_LABELS_NLI) FUZZ_REQUIRE(p[i].label >= LACOS_ENTAILMENT && p[i].label <= LACOS_CONTRADICTION);
    else if (spec->label_kind == LACOS_LABELS_BINARY) FUZZ_REQUIRE(p[i].label == 0 || p[i].label == 1);
  }
}

static int read_once(lacos_pairset *set, int reader, const lacos_read_spec *spec, int nparts) {
  char a[1024], b[1024], c[1024];
  fuzz_path(a, sizeof a, "a.txt");
  fuzz_path(b, sizeof b, "b.txt");
  fuzz_path(c, sizeof c, "c.txt");
  switch (reader) {
  case READ_TSV: return lacos_pairset_read_tsv(set, a, spec);
  case READ_CSV: return lacos_pairset_read_csv(set, a, spec);
  case READ_JSONL: return lacos_pairset_read_jsonl(set, a, spec);
  case READ_GOLD: return lacos_pairset_read_gold(set, a, b, spec);
  default: return lacos_pairset_read_lines(set, a, b, nparts > 2 ? c : NULL, spec);
  }
}

static void derived(const lacos_pairset *set) {
  char hex[65];
  FUZZ_REQUIRE(lacos_pairset_sha256(set, hex) == LACOS_OK && strlen(hex) == 64);
  for (int mode = 0; mode <= 2; mode++) {
    lacos_pairset *t = NULL;
    int s = lacos_pairset_nli_triplets(&t, set, mode, mode == 1 ? 7 : -1);
    if (s) { fuzz_require_error(s); FUZZ_REQUIRE(t == NULL); continue; }
    const lacos_pair *p = lacos_pairset_pairs(t);
    for (int i = 0; i < lacos_pairset_size(t); i++) {
      FUZZ_REQUIRE(p[i].s1 && p[i].s2 && strlen(p[i].s1) == (size_t)p[i].len1 && strlen(p[i].s2) == (size_t)p[i].len2);
      FUZZ_REQUIRE(mode == LACOS_PAIRS_ENTAILMENT ? p[i].s3 == NULL : (p[i].s3 && strlen(p[i].s3) == (size_t)p[i].len3));
    }
    FUZZ_REQUIRE(lacos_pairset_sha256(t, hex) == LACOS_OK);
    lacos_pairset_free(t);
  }
}

static int fuzz_dataset(int reader, const uint8_t *data, size_t size) {
  fuzz_clear();
  fuzz_bytes in = { data, size };
  unsigned c0 = fuzz_byte(&in), c1 = fuzz_byte(&in), c2 = fuzz_byte(&in), c3 = fuzz_byte(&in), c4 = fuzz_byte(&in);
  lacos_read_spec spec;
  lacos_read_spec_init(&spec);
  spec.header = c0 & 3;
  spec.trim = !((c0 >> 2) & 1);
  spec.skip_blank = (c0 >> 3) & 1;
  spec.skip_unlabeled = (c0 >> 4) & 1;
  spec.allow_empty = (c0 >> 5) & 1;
  spec.truncate_input = (c0 >> 6) & 1;
  if (c0 >> 7) spec.max_line_bytes = 64;
  spec.col_s1 = (c1 & 7) ? (int)(c1 & 7) : 1;
  spec.col_s2 = ((c1 >> 3) & 7) ? (int)((c1 >> 3) & 7) : 2;
  spec.col_s3 = (int)(c1 >> 6);
  spec.col_score = (int)(c2 & 7);
  spec.col_label = (int)((c2 >> 3) & 7);
  spec.label_kind = (int)(c2 >> 6);
  spec.filter_col = (c3 & 7) == 7 ? 1 : 0;
  spec.filter_value = "x";
  spec.min_fields = (int)((c3 >> 3) & 7);
  spec.max_fields = (c3 >> 6) ? (int)(c3 >> 6) + 2 : 0;
  if (c4 & 1) { spec.score_min = 0; spec.score_max = 5; }
  if (c4 & 2) spec.subset = "fuzz";
  spec.lang1 = (c4 & 4) ? "en" : NULL;
  spec.lang2 = (c4 & 4) ? "de" : NULL;
  if (reader == READ_JSONL) {
    spec.key_score = (c4 & 8) ? "score" : NULL;
    spec.key_s3 = (c4 & 16) ? "s3" : NULL;
    if (c4 & 32) spec.key_label = NULL;
    if (c4 & 64) spec.key_s1 = "premise", spec.key_s2 = "hypothesis";
  }
  if (c4 & 128) spec.header = -1;   /* refused by every reader */

  const uint8_t *parts[3];
  size_t lens[3];
  int want = reader == READ_GOLD ? 2 : reader == READ_LINES ? 3 : 1;
  int np = fuzz_split(in.p, in.n, parts, lens, want);
  static const char *names[3] = { "a.txt", "b.txt", "c.txt" };
  for (int i = 0; i < np; i++) fuzz_put(names[i], parts[i], lens[i]);
  /* gold and lines need their second file; a missing one is an error path too */
  bool has_s3 = reader == READ_JSONL ? spec.key_s3 != NULL : (reader == READ_TSV || reader == READ_CSV) && spec.col_s3 != 0;
  bool labelled = reader == READ_JSONL ? spec.key_label != NULL
                : reader == READ_LINES ? np > 2
                : reader == READ_GOLD ? false : spec.col_label != 0;

  double before = lacos_memory_allocated(LACOS_CPU);
  lacos_pairset *set = NULL;
  FUZZ_REQUIRE(lacos_pairset_new(&set) == LACOS_OK);
  for (int round = 0; round < 2; round++) {
    int n0 = lacos_pairset_size(set), nsub0 = lacos_pairset_subset_count(set);
    int s = read_once(set, reader, &spec, np);
    if (s) {
      fuzz_require_error(s);
      FUZZ_REQUIRE(lacos_pairset_size(set) == n0 && lacos_pairset_subset_count(set) == nsub0);
      FUZZ_REQUIRE(strstr(lacos_last_error(), fuzz_dir) != NULL);   /* names the file */
      break;
    }
    check_records(set, n0, nsub0, &spec, reader, has_s3, labelled);
    FUZZ_TRACE("  read %d records\n", lacos_pairset_size(set) - n0);
  }
  derived(set);
  lacos_pairset_free(set);
  FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fuzz_dataset(FUZZ_READER, data, size); }
