/* test_wordpiece.c: WordPiece tokenizers (BERT's pipeline: wordpiece.c, the
   templates of tokenizer_template.c, the batches of tokenizer.c) against what
   the tokenizers library gave (tests/reference/make_wordpiece.py ->
   tests/fixtures/wordpiece):

   - all-MiniLM-L6-v2's tokenizer.json (models/all-MiniLM-L6-v2, from `make
     models-minilm`; skipped, saying so, when absent): edge cases and random
     strings (ids, ids without special tokens, decoded text with and without
     special tokens), decoding of id lists, batches and pairs under the
     file's truncation and padding, sentence-transformers' (256, longest)
     and others (ids, attention mask, token type ids, refusals), and every
     sentence of the shared datasets (STS, NLI, paraphrase, Tatoeba: 351
     files) through digests, the first 16 texts of each file one by one;
   - every code point through BERT's normalizer and pre-tokenizer;
   - a small trained WordPiece tokenizer under 16 variants of its
     normalizer, pre-tokenizer, model settings, post-processor, decoder and
     added tokens;
   - bad files (each refused with the file and the cause) and mutated ones. */
#include "test.h"
#include "tokenizer_internal.h"
#include "dataset_texts.h"
#include <jansson.h>
#include <sys/stat.h>

static char fixdir[4096], modeldir[4096];

static const char *fixture(const char *name) {
  static char path[4][4096 + 256];
  static int k;
  k = (k + 1) % 4;
  snprintf(path[k], sizeof path[k], "%s/%s", fixdir, name);
  return path[k];
}

static const char *write_tmp(const char *name, const char *text) {
  static char path[4096];
  snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
  FILE *f = fopen(path, "wb");
  if (!f) return path;
  fputs(text, f);
  fclose(f);
  return path;
}

static json_t *read_json(const char *path) {
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  if (!j) printf("#   %s:%d: %s\n", path, je.line, je.text);
  return j;
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Bytes of a hex string (malloc'd, NUL-terminated; *n its length). */
static char *unhex(const char *hex, size_t *n) {
  size_t m = strlen(hex) / 2;
  char *s = malloc(m + 1);
  for (size_t i = 0; i < m; i++) {
    unsigned v;
    sscanf(hex + 2 * i, "%2x", &v);
    s[i] = (char)v;
  }
  s[m] = 0;
  *n = m;
  return s;
}

/* sha256 of the ids space-separated with a newline: make_tokenizer.py's digest([ids]). */
static void ids_digest(const int32_t *ids, size_t n, char hex[65]) {
  char *buf = malloc(n * 12 + 2);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += (size_t)sprintf(buf + k, i ? " %d" : "%d", ids[i]);
  buf[k++] = '\n';
  lacos_sha256_buffer(buf, (double)k, hex);
  free(buf);
}

static bool same_ids(const int32_t *ids, size_t n, const json_t *want) {
  if (!json_is_array(want) || json_array_size(want) != n) return false;
  for (size_t i = 0; i < n; i++) if (json_integer_value(json_array_get(want, i)) != ids[i]) return false;
  return true;
}

static void print_ids(const char *who, const int32_t *ids, size_t n) {
  printf("#     %s:", who);
  for (size_t i = 0; i < n && i < 40; i++) printf(" %d", ids[i]);
  printf("%s\n", n > 40 ? " ..." : "");
}

static void print_json_ids(const char *who, const json_t *a) {
  printf("#     %s:", who);
  for (size_t i = 0; i < json_array_size(a) && i < 40; i++) printf(" %lld", (long long)json_integer_value(json_array_get(a, i)));
  printf("\n");
}

static lacos_tokenizer *load_minilm(void) {
  char path[4096 + 32];
  snprintf(path, sizeof path, "%s/tokenizer.json", modeldir);
  json_t *cases = read_json(fixture("cases-minilm.json"));
  char hex[65];
  char *text = NULL;
  size_t len = 0;
  if (!file_read_all(path, 64 << 20, &text, &len)) { lacos_sha256_buffer(text, (double)len, hex); mem_free(text); }
  const char *want = json_string_value(json_object_get(cases, "tokenizer_sha256"));
  bool ok = want && !strcmp(hex, want);
  json_decref(cases);
  lacos_tokenizer *t = NULL;
  if (!ok) {
    printf("#   %s is not the tokenizer.json the fixtures were made from (sha256 %s, fixtures: %s)\n", path, hex, want ? want : "?");
    test_failed_now = 1;
    return NULL;
  }
  if (lacos_tokenizer_load(&t, path)) {
    printf("#   %s\n", lacos_last_error());
    test_failed_now = 1;
    return NULL;
  }
  return t;
}

/* ------------------------------------------------------------ cases */

/* Edge cases and random strings: ids, ids without specials, decoded text. Returns mismatches. */
static int check_cases(lacos_tokenizer *t, const json_t *cases, const char *label) {
  int bad = 0, n = (int)json_array_size(cases);
  for (int i = 0; i < n; i++) {
    const json_t *c = json_array_get(cases, i);
    size_t len;
    char *text;
    const char *unit = json_string_value(json_object_get(c, "unit_hex"));
    if (unit) {
      size_t ul;
      char *u = unhex(unit, &ul);
      int times = (int)json_integer_value(json_object_get(c, "times"));
      text = malloc(ul * (size_t)times + 1);
      for (int k = 0; k < times; k++) memcpy(text + ul * (size_t)k, u, ul);
      len = ul * (size_t)times;
      text[len] = 0;
      free(u);
    } else text = unhex(json_string_value(json_object_get(c, "hex")), &len);
    const int32_t *ids;
    int m = 0;
    bool ok = true;
    char why[256] = "";
    if (lacos_tokenizer_encode(t, &ids, &m, text, (double)len)) {
      ok = false;
      snprintf(why, sizeof why, "encode failed: %s", lacos_last_error());
    }
    int32_t *copy = malloc(((size_t)m + 1) * sizeof *copy);
    if (ok) memcpy(copy, ids, (size_t)m * sizeof *copy);
    char hex[65];
    const json_t *want = json_object_get(c, "ids");
    if (ok && want && !same_ids(copy, (size_t)m, want)) { ok = false; snprintf(why, sizeof why, "ids differ"); }
    if (ok && !want) {
      ids_digest(copy, (size_t)m, hex);
      if (m != json_integer_value(json_object_get(c, "n_ids")) || strcmp(hex, json_string_value(json_object_get(c, "ids_sha256")))) {
        ok = false;
        snprintf(why, sizeof why, "%d ids, the library %lld (digest %s)", m, (long long)json_integer_value(json_object_get(c, "n_ids")), hex);
      }
    }
    /* without special tokens */
    if (ok) {
      lacos_tokenizer_batch_options o;
      lacos_tokenizer_batch_options_init(t, &o);
      o.add_special = 0;
      o.max_length = 0;
      o.truncation = 0;
      const int32_t *ni, *off;
      const char *one[1] = {text};
      double lens[1] = {(double)len};
      if (lacos_tokenizer_encode_list_opt(t, &ni, &off, one, lens, 1, &o)) { ok = false; snprintf(why, sizeof why, "%s", lacos_last_error()); }
      else {
        const json_t *wn = json_object_get(c, "ids_nospecial");
        const char *wd = json_string_value(json_object_get(c, "nospecial_sha256"));
        size_t k = (size_t)(off[1] - off[0]);
        if (wd) {
          ids_digest(ni, k, hex);
          if (strcmp(hex, wd)) { ok = false; snprintf(why, sizeof why, "ids without special tokens differ (digest)"); }
        } else if (wn) {
          if (!same_ids(ni, k, wn)) { ok = false; snprintf(why, sizeof why, "ids without special tokens differ"); }
        } else if (!(m >= 2 ? k == (size_t)m - 2 && !memcmp(ni, copy + 1, k * sizeof *ni) : k == 0)) {
          ok = false;   /* absent from the fixture: the ids less the first and the last (Python's ids[1:-1]) */
          snprintf(why, sizeof why, "ids without special tokens are not the ids between [CLS] and [SEP]");
        }
      }
    }
    /* decoded, with and without special tokens */
    for (int skip = 0; skip < 2 && ok; skip++) {
      const char *dt;
      double dl;
      if (lacos_tokenizer_decode(t, &dt, &dl, copy, m, skip)) { ok = false; snprintf(why, sizeof why, "decode: %s", lacos_last_error()); break; }
      const char *wh = json_string_value(json_object_get(c, skip ? "decoded_skip_hex" : "decoded_hex"));
      if (wh) {
        size_t wl;
        char *w = unhex(wh, &wl);
        if (wl != (size_t)dl || memcmp(w, dt, wl)) {
          ok = false;
          snprintf(why, sizeof why, "decoded%s \"%.60s\", the library \"%.60s\"", skip ? " (skip special)" : "", dt, w);
        }
        free(w);
      } else {
        lacos_sha256_buffer(dt, dl, hex);
        if (strcmp(hex, json_string_value(json_object_get(c, skip ? "decoded_skip_sha256" : "decoded_sha256")))) {
          ok = false;
          snprintf(why, sizeof why, "decoded text%s differs (digest)", skip ? " (skip special)" : "");
        }
      }
    }
    if (!ok && bad++ < 5) {
      printf("#   %s: case %d \"%.80s\": %s\n", label, i + 1, text, why);
      if (want) { print_ids("lacos", copy, (size_t)m); print_json_ids("the library", want); }
    }
    free(copy);
    free(text);
  }
  return bad;
}

static int check_decode(lacos_tokenizer *t, const json_t *dec, const char *label) {
  int bad = 0;
  for (size_t i = 0; i < json_array_size(dec); i++) {
    const json_t *d = json_array_get(dec, i);
    const json_t *ids = json_object_get(d, "ids");
    size_t n = json_array_size(ids);
    int32_t *v = malloc((n + 1) * sizeof *v);
    for (size_t k = 0; k < n; k++) v[k] = (int32_t)json_integer_value(json_array_get(ids, k));
    for (int skip = 0; skip < 2; skip++) {
      const char *dt;
      double dl;
      size_t wl;
      char *w = unhex(json_string_value(json_object_get(d, skip ? "skip_hex" : "hex")), &wl);
      int s = lacos_tokenizer_decode(t, &dt, &dl, v, (int)n, skip);
      if ((s || wl != (size_t)dl || memcmp(w, dt, wl)) && bad++ < 5) {
        printf("#   %s: decode %zu (skip %d): \"%.60s\", the library \"%.60s\" %s\n", label, i + 1, skip, s ? "" : dt, w,
               s ? lacos_last_error() : "");
        print_ids("ids", v, n);
      }
      free(w);
    }
    free(v);
  }
  return bad;
}

/* Options as the reference set them on the library (null: the file's). */
static void config_options(lacos_tokenizer *t, const json_t *cfg, lacos_tokenizer_batch_options *o) {
  lacos_tokenizer_batch_options_init(t, o);
  const json_t *pad = json_object_get(cfg, "padding"), *tr = json_object_get(cfg, "truncation");
  if (json_is_object(pad)) {
    const char *dir = json_string_value(json_object_get(pad, "direction"));
    o->padding_side = dir && !strcmp(dir, "left") ? LACOS_TOKENIZER_LEFT : LACOS_TOKENIZER_RIGHT;
    o->pad_id = (int)json_integer_value(json_object_get(pad, "pad_id"));
    o->pad_length = (int)json_integer_value(json_object_get(pad, "length"));
    o->pad_to_multiple_of = (int)json_integer_value(json_object_get(pad, "pad_to_multiple_of"));
    o->pad_type_id = (int)json_integer_value(json_object_get(pad, "pad_type_id"));
  }
  if (json_is_object(tr)) {
    o->max_length = (int)json_integer_value(json_object_get(tr, "max_length"));
    o->truncation = 1;
    const char *st = json_string_value(json_object_get(tr, "strategy"));
    o->truncation_strategy = !st || !strcmp(st, "longest_first") ? LACOS_TOKENIZER_LONGEST_FIRST
                             : !strcmp(st, "only_first") ? LACOS_TOKENIZER_ONLY_FIRST : LACOS_TOKENIZER_ONLY_SECOND;
    const char *dir = json_string_value(json_object_get(tr, "direction"));
    o->truncation_side = dir && !strcmp(dir, "left") ? LACOS_TOKENIZER_LEFT : LACOS_TOKENIZER_RIGHT;
  }
  o->add_special = json_is_false(json_object_get(cfg, "add_special")) ? 0 : 1;
}

/* One tensor row against the library's list. The library leaves rows
   unpadded when it has no padding to do (no padding section, none asked
   for); lacos always pads, so then only the masked part has to agree. */
static bool row_matches(const int32_t *row, int64_t T, const json_t *want, bool ragged) {
  size_t L = json_array_size(want);
  if ((int64_t)L > T || ((int64_t)L < T && !ragged)) return false;
  for (size_t j = 0; j < L; j++) if (row[j] != json_integer_value(json_array_get(want, j))) return false;
  return true;
}

static int check_batches(lacos_tokenizer *t, const json_t *batches, const char *label) {
  int bad = 0;
  const json_t *th = json_object_get(batches, "texts_hex"), *ph = json_object_get(batches, "pairs_hex");
  size_t n = json_array_size(th), np = json_array_size(ph);
  char **tx = calloc(n + 1, sizeof *tx), **pa = calloc(np + 1, sizeof *pa), **pb = calloc(np + 1, sizeof *pb);
  double *tl = calloc(n + 1, sizeof *tl), *al = calloc(np + 1, sizeof *al), *bl = calloc(np + 1, sizeof *bl);
  size_t k;
  for (size_t i = 0; i < n; i++) { tx[i] = unhex(json_string_value(json_array_get(th, i)), &k); tl[i] = (double)k; }
  for (size_t i = 0; i < np; i++) {
    pa[i] = unhex(json_string_value(json_array_get(json_array_get(ph, i), 0)), &k); al[i] = (double)k;
    pb[i] = unhex(json_string_value(json_array_get(json_array_get(ph, i), 1)), &k); bl[i] = (double)k;
  }
  const json_t *cfgs = json_object_get(batches, "configs");
  for (size_t ci = 0; ci < json_array_size(cfgs); ci++) {
    const json_t *cfg = json_array_get(cfgs, ci);
    const char *clabel = json_string_value(json_object_get(cfg, "label"));
    lacos_tokenizer_batch_options o;
    config_options(t, cfg, &o);
    bool ragged = !json_is_object(json_object_get(cfg, "padding")) && o.pad_length == 0;
    for (int pair = 0; pair < 2; pair++) {
      const json_t *want = json_object_get(cfg, pair ? "pair" : "single");
      lacos_tensor *ids = NULL, *mask = NULL, *types = NULL;
      int s = pair ? lacos_tokenizer_encode_pairs(&ids, &mask, &types, t, (const char *const *)pa, al, (const char *const *)pb, bl,
                                                  (int)np, &o)
                   : lacos_tokenizer_encode_pairs(&ids, &mask, &types, t, (const char *const *)tx, tl, NULL, NULL, (int)n, &o);
      const json_t *err = json_object_get(want, "error");
      if (err) {
        if (s == LACOS_OK && bad++ < 5)
          printf("#   %s, %s, %s: the library refused (%s), lacos did not\n", label, clabel, pair ? "pairs" : "texts",
                 json_string_value(err));
      } else if (s) {
        if (bad++ < 5) printf("#   %s, %s, %s: %s\n", label, clabel, pair ? "pairs" : "texts", lacos_last_error());
      } else {
        int64_t T = ids->shape[1];
        const char *fields[3] = {"ids", "mask", "type_ids"};
        lacos_tensor *ts[3] = {ids, mask, types};
        size_t rows = json_array_size(json_object_get(want, "ids"));
        if ((size_t)ids->shape[0] != rows && bad++ < 5) printf("#   %s, %s: %lld rows, the library %zu\n", label, clabel, (long long)ids->shape[0], rows);
        for (size_t r = 0; r < rows && (size_t)ids->shape[0] == rows; r++) {
          for (int f = 0; f < 3; f++) {
            const int32_t *row = (const int32_t *)ts[f]->data + (int64_t)r * T;
            const json_t *w = json_array_get(json_object_get(want, fields[f]), r);
            bool ok = row_matches(row, T, w, ragged);
            if (ok && ragged) for (int64_t j = (int64_t)json_array_size(w); j < T && f == 1; j++) ok = ok && row[j] == 0;
            if (!ok) {
              if (bad++ < 5) {
                printf("#   %s, %s, %s row %zu: %s differ\n", label, clabel, pair ? "pair" : "text", r + 1, fields[f]);
                print_ids("lacos", row, (size_t)T);
                print_json_ids("the library", w);
              }
              break;
            }
          }
        }
      }
      lacos_tensor_free(ids);
      lacos_tensor_free(mask);
      lacos_tensor_free(types);
    }
  }
  for (size_t i = 0; i < n; i++) free(tx[i]);
  for (size_t i = 0; i < np; i++) { free(pa[i]); free(pb[i]); }
  free(tx); free(pa); free(pb); free(tl); free(al); free(bl);
  return bad;
}

static void test_minilm_cases(void) {
  lacos_tokenizer *t = load_minilm();
  if (!t) return;
  json_t *f = read_json(fixture("cases-minilm.json"));
  const json_t *cases = json_object_get(f, "cases"), *dec = json_object_get(f, "decode");
  CHECK(json_array_size(cases) > 700 && json_array_size(dec) >= 400);
  CHECK(lacos_tokenizer_vocab_size(t) == json_integer_value(json_object_get(f, "vocab_size")));
  CHECK(!strcmp(lacos_tokenizer_model_type(t), "WordPiece"));
  const json_t *sc = json_object_get(f, "special_count");
  CHECK(lacos_tokenizer_special_count(t, 0) == json_integer_value(json_array_get(sc, 0)));
  CHECK(lacos_tokenizer_special_count(t, 1) == json_integer_value(json_array_get(sc, 1)));
  int bad = check_cases(t, cases, "all-MiniLM-L6-v2");
  int bad_dec = check_decode(t, dec, "all-MiniLM-L6-v2");
  int bad_tok = 0;
  const json_t *toks = json_object_get(f, "tokens");
  for (size_t i = 0; i < json_array_size(toks); i++) {
    const json_t *e = json_array_get(toks, i);
    int id = (int)json_integer_value(json_object_get(e, "id"));
    const char *want = json_string_value(json_object_get(e, "token"));
    double len;
    const char *got = lacos_tokenizer_id_to_token(t, id, &len);
    if (!got || strlen(want) != (size_t)len || memcmp(got, want, (size_t)len) || lacos_tokenizer_token_to_id(t, want, -1) != id) bad_tok++;
  }
  printf("#   %zu cases (%d differ), %zu decodings (%d differ), %zu tokens looked up (%d differ)\n", json_array_size(cases),
         bad, json_array_size(dec), bad_dec, json_array_size(toks), bad_tok);
  CHECK(bad == 0 && bad_dec == 0 && bad_tok == 0);
  json_decref(f);
  lacos_tokenizer_free(t);
}

static void test_minilm_batches(void) {
  lacos_tokenizer *t = load_minilm();
  if (!t) return;
  json_t *f = read_json(fixture("cases-minilm.json"));
  const json_t *b = json_object_get(f, "batches");
  CHECK(json_array_size(json_object_get(b, "configs")) == 9);
  /* the file's settings: truncation at 128, padding to a fixed 128, [PAD] = 0 */
  lacos_tokenizer_batch_options o;
  lacos_tokenizer_batch_options_init(t, &o);
  CHECK(o.max_length == 128 && o.truncation == 1 && o.pad_length == 128 && o.pad_id == 0 && o.add_special == 1 &&
        o.truncation_strategy == LACOS_TOKENIZER_LONGEST_FIRST && o.pad_type_id == 0);
  int bad = check_batches(t, b, "all-MiniLM-L6-v2");
  printf("#   %zu settings, %zu texts and %zu pairs each: %d differ\n", json_array_size(json_object_get(b, "configs")),
         json_array_size(json_object_get(b, "texts_hex")), json_array_size(json_object_get(b, "pairs_hex")), bad);
  CHECK(bad == 0);
  /* refusals of options that cannot work */
  lacos_tensor *ids = NULL, *mask = NULL, *types = NULL;
  const char *one[1] = {"some words here"};
  o.max_length = 1;
  CHECK_FAIL(lacos_tokenizer_encode_pairs(&ids, &mask, &types, t, one, NULL, NULL, NULL, 1, &o), LACOS_EINVAL,
             "max_length 1 leaves no room for the 2 special tokens");
  o.max_length = 2;
  CHECK_FAIL(lacos_tokenizer_encode_pairs(&ids, &mask, &types, t, one, NULL, one, NULL, 1, &o), LACOS_EINVAL,
             "leaves no room for the 3 special tokens the tokenizer adds to a pair");
  o.max_length = 4;
  o.truncation_strategy = LACOS_TOKENIZER_ONLY_SECOND;
  CHECK_FAIL(lacos_tokenizer_encode_pairs(&ids, &mask, &types, t, one, NULL, NULL, NULL, 1, &o), LACOS_EINVAL,
             "truncation only_second needs pairs");
  o.truncation_strategy = 7;
  CHECK_FAIL(lacos_tokenizer_encode_batch(&ids, &mask, t, one, NULL, 1, &o), LACOS_EINVAL, "truncation_strategy 7");
  o.truncation_strategy = LACOS_TOKENIZER_LONGEST_FIRST;
  o.truncation = 0;
  CHECK_FAIL(lacos_tokenizer_encode_batch(&ids, &mask, t, one, NULL, 1, &o), LACOS_ELIMIT,
             "text 1 has 5 tokens, more than the maximum length 4");
  CHECK(ids == NULL && mask == NULL && types == NULL);
  /* encode_list_opt truncates as encode_batch does, keeping [CLS] and [SEP] */
  lacos_tokenizer_batch_options_init(t, &o);
  o.max_length = 4;
  o.truncation_side = LACOS_TOKENIZER_LEFT;
  const int32_t *li, *lo;
  CHECK_OK(lacos_tokenizer_encode_list_opt(t, &li, &lo, one, NULL, 1, &o));
  const int32_t *full;
  int nf;
  int32_t cut[4];
  memcpy(cut, li, sizeof cut);
  CHECK(lo[1] - lo[0] == 4);
  CHECK_OK(lacos_tokenizer_encode(t, &full, &nf, one[0], -1));
  CHECK(nf == 5 && cut[0] == 101 && cut[1] == full[2] && cut[2] == full[3] && cut[3] == 102);
  json_decref(f);
  lacos_tokenizer_free(t);
}

/* Every sentence of the shared datasets, as the library tokenizes it. */
static void test_minilm_datasets(void) {
  const char *data = getenv("LACOS_TEST_DATA");
  lacos_tokenizer *t = load_minilm();
  if (!t) return;
  dataset_sweep sw = {0};
  dataset_sweep_run(&sw, t, data, fixture("sources.json"), fixture("expected-minilm.json"));
  printf("#   %d files, %lld texts, %lld ids in %.1f s (%d threads), %d mismatches\n", sw.n_files, sw.n_texts, sw.n_tokens,
         sw.seconds, lacos_threads_get(), sw.bad);
  for (int f = 0; f < sw.n_folders; f++)
    printf("#     %-10s %3d files, %7lld texts, %9lld ids\n", sw.folder[f].name, sw.folder[f].files, sw.folder[f].texts,
           sw.folder[f].tokens);
  printf("#   the first texts of every file, one by one: %d checked, %d differ\n", sw.n_samples, sw.samples_bad);
  CHECK(sw.bad == 0);
  CHECK(sw.samples_bad == 0 && sw.n_samples >= 5000);
  CHECK(sw.n_files == sw.n_listed && sw.n_files >= 351);
  lacos_tokenizer_free(t);
}

/* ------------------------------------------------------------ every code point */

typedef struct span { uint32_t a, b; } span;
typedef struct spans { span *v; int n, cap; } spans;

static void span_add(spans *s, uint32_t c) {
  if (s->n && s->v[s->n - 1].b + 1 == c) { s->v[s->n - 1].b = c; return; }
  if (s->n == s->cap) { s->cap = s->cap ? 2 * s->cap : 256; s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v); }
  s->v[s->n++] = (span){c, c};
}

static bool in_ranges(const json_t *r, uint32_t c, size_t *at) {
  while (*at < json_array_size(r) && (uint32_t)json_integer_value(json_array_get(json_array_get(r, *at), 1)) < c) (*at)++;
  if (*at >= json_array_size(r)) return false;
  return (uint32_t)json_integer_value(json_array_get(json_array_get(r, *at), 0)) <= c;
}

static int compare_spans(const char *what, const spans *got, const json_t *want) {
  int bad = 0;
  size_t n = json_array_size(want);
  for (size_t i = 0; i < n || i < (size_t)got->n; i++) {
    long long wa = -1, wb = -1;
    if (i < n) { wa = json_integer_value(json_array_get(json_array_get(want, i), 0)); wb = json_integer_value(json_array_get(json_array_get(want, i), 1)); }
    long long ga = i < (size_t)got->n ? (long long)got->v[i].a : -1, gb = i < (size_t)got->n ? (long long)got->v[i].b : -1;
    if (ga != wa || gb != wb) {
      printf("#   %s: range %zu is U+%04llX..U+%04llX here, U+%04llX..U+%04llX for the library\n", what, i + 1, ga, gb, wa, wb);
      bad++;
      break;   /* the rest are shifted */
    }
  }
  return bad;
}

static int count_word(void *ud, const uint8_t *s, size_t n) {
  (void)s;
  (void)n;
  (*(int *)ud)++;
  return LACOS_OK;
}

static void test_every_code_point(void) {
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, fixture("wp-small.json")));
  json_t *u = read_json(fixture("unicode-minilm.json"));
  if (!t || !u) { test_failed_now = 1; lacos_tokenizer_free(t); json_decref(u); return; }
  const tok_wordpiece *w = tokenizer_wordpiece(t);
  const json_t *exempt = json_object_get(u, "exempt"), *mapped = json_object_get(u, "mapped");
  spans removed = {0}, space = {0}, chinese = {0}, ws = {0}, punct = {0};
  size_t at = 0;
  int block = -1, n_block = 0, bad_blocks = 0, checked = 0;
  char *lines = NULL;
  size_t lines_len = 0, lines_cap = 0;
  for (uint32_t c = 0; c <= 0x110000; c++) {
    if (c == 0x110000 || (int)(c >> 8) != block) {   /* close the previous block's digest */
      if (block >= 0) {
        char key[16], hex[65];
        snprintf(key, sizeof key, "%d", block);
        const json_t *want = json_object_get(mapped, key);
        lacos_sha256_buffer(lines ? lines : "", (double)lines_len, hex);
        bool ok = want ? (n_block == json_integer_value(json_object_get(want, "n")) &&
                          !strcmp(hex, json_string_value(json_object_get(want, "sha256"))))
                       : n_block == 0;
        if (!ok && bad_blocks++ < 5)
          printf("#   code points U+%04X..U+%04X: %d changed by the normalizer otherwise, the library %lld (or other outputs)\n",
                 block << 8, (block << 8) + 255, n_block, want ? (long long)json_integer_value(json_object_get(want, "n")) : 0);
      }
      if (c == 0x110000) break;
      block = (int)(c >> 8);
      n_block = 0;
      lines_len = 0;
    }
    if (c >= 0xD800 && c < 0xE000) continue;
    uint8_t in[8];
    int k = 0;
    if (c < 0x80) in[k++] = (uint8_t)c;
    else if (c < 0x800) { in[k++] = (uint8_t)(0xC0 | (c >> 6)); in[k++] = (uint8_t)(0x80 | (c & 63)); }
    else if (c < 0x10000) { in[k++] = (uint8_t)(0xE0 | (c >> 12)); in[k++] = (uint8_t)(0x80 | ((c >> 6) & 63)); in[k++] = (uint8_t)(0x80 | (c & 63)); }
    else { in[k++] = (uint8_t)(0xF0 | (c >> 18)); in[k++] = (uint8_t)(0x80 | ((c >> 12) & 63)); in[k++] = (uint8_t)(0x80 | ((c >> 6) & 63)); in[k++] = (uint8_t)(0x80 | (c & 63)); }
    const uint8_t *out;
    size_t on;
    if (tokenizer_normalize(t, in, (size_t)k, &out, &on)) { printf("#   U+%04X: %s\n", c, lacos_last_error()); test_failed_now = 1; break; }
    /* the pre-tokenizer on "a" c "a": one word, two (c is whitespace) or three (punctuation) */
    uint8_t aca[10];
    aca[0] = 'a';
    memcpy(aca + 1, in, (size_t)k);
    aca[k + 1] = 'a';
    int words = 0;
    tok_wordpiece_pre_tokenize(w, aca, (size_t)k + 2, count_word, &words);
    if (in_ranges(exempt, c, &at)) continue;   /* older Unicode data upstream: see unicode-minilm.json */
    checked++;
    if (words == 2) span_add(&ws, c);
    else if (words == 3) span_add(&punct, c);
    if (on == (size_t)k && !memcmp(out, in, on)) continue;
    if (on == 0) span_add(&removed, c);
    else if (on == 1 && out[0] == ' ') span_add(&space, c);
    else if (on == (size_t)k + 2 && out[0] == ' ' && out[on - 1] == ' ' && !memcmp(out + 1, in, (size_t)k)) span_add(&chinese, c);
    else {
      if (lines_len + 16 + 2 * on + 2 > lines_cap) { lines_cap = 2 * (lines_len + 16 + 2 * on + 2); lines = realloc(lines, lines_cap); }
      lines_len += (size_t)sprintf(lines + lines_len, "%u ", c);
      for (size_t i = 0; i < on; i++) lines_len += (size_t)sprintf(lines + lines_len, "%02x", out[i]);
      lines[lines_len++] = '\n';
      n_block++;
    }
  }
  int bad = bad_blocks;
  bad += compare_spans("removed by clean_text", &removed, json_object_get(u, "removed"));
  bad += compare_spans("turned into a space", &space, json_object_get(u, "space"));
  bad += compare_spans("spaced as Chinese", &chinese, json_object_get(u, "chinese"));
  bad += compare_spans("whitespace to the pre-tokenizer", &ws, json_object_get(u, "ws"));
  bad += compare_spans("punctuation to the pre-tokenizer", &punct, json_object_get(u, "punct"));
  printf("#   %d code points checked (%lld exempt: newer Unicode data here than in the library's tables, or unassigned in "
         "Python's Unicode %s), %d differences\n", checked, (long long)json_integer_value(json_object_get(u, "n_exempt")),
         json_string_value(json_object_get(u, "unicode_python")), bad);
  CHECK(bad == 0 && checked > 280000);
  free(removed.v); free(space.v); free(chinese.v); free(ws.v); free(punct.v); free(lines);
  json_decref(u);
  lacos_tokenizer_free(t);
}

/* ------------------------------------------------------------ variants */

/* wp-small.json with a variant's sections put in place, as a file: "model"
   is merged into the model, "rename_prefix": [old, new] renames the
   continuation tokens of the vocabulary, other keys replace their section
   (make_wordpiece.py's apply_variant). */
static const char *variant_file(const json_t *patch, int k) {
  json_t *base = read_json(fixture("wp-small.json"));
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)patch, key, val) {
    if (!strcmp(key, "model")) json_object_update(json_object_get(base, "model"), val);
    else if (!strcmp(key, "rename_prefix")) {
      const char *from = json_string_value(json_array_get(val, 0)), *to = json_string_value(json_array_get(val, 1));
      json_t *vocab = json_object_get(json_object_get(base, "model"), "vocab"), *renamed = json_object();
      const char *tk;
      json_t *id;
      json_object_foreach(vocab, tk, id) {
        char name[512];
        if (!strncmp(tk, from, strlen(from))) snprintf(name, sizeof name, "%s%s", to, tk + strlen(from));
        else snprintf(name, sizeof name, "%s", tk);
        json_object_set(renamed, name, id);
      }
      json_object_set_new(json_object_get(base, "model"), "vocab", renamed);
    } else json_object_set(base, key, val);
  }
  static char path[4096];
  snprintf(path, sizeof path, "%s/variant-%d.json", test_tmpdir(), k);
  json_dump_file(base, path, JSON_COMPACT);
  json_decref(base);
  return path;
}

static void test_variants(void) {
  json_t *f = read_json(fixture("cases-variants.json"));
  const json_t *vs = json_object_get(f, "variants");
  CHECK(json_array_size(vs) == 16);
  int total_bad = 0;
  for (size_t i = 0; i < json_array_size(vs); i++) {
    const json_t *v = json_array_get(vs, i);
    const char *label = json_string_value(json_object_get(v, "label"));
    lacos_tokenizer *t = NULL;
    if (lacos_tokenizer_load(&t, variant_file(json_object_get(v, "patch"), (int)i))) {
      printf("#   %s: %s\n", label, lacos_last_error());
      total_bad++;
      continue;
    }
    const json_t *sc = json_object_get(v, "special_count");
    int bad = (lacos_tokenizer_special_count(t, 0) != json_integer_value(json_array_get(sc, 0))) +
              (lacos_tokenizer_special_count(t, 1) != json_integer_value(json_array_get(sc, 1)));
    bad += check_cases(t, json_object_get(v, "cases"), label);
    bad += check_decode(t, json_object_get(v, "decode"), label);
    bad += check_batches(t, json_object_get(v, "batches"), label);
    printf("#   %-80s %zu cases, %zu decodings, %zu batch settings: %d differ\n", label,
           json_array_size(json_object_get(v, "cases")), json_array_size(json_object_get(v, "decode")),
           json_array_size(json_object_get(json_object_get(v, "batches"), "configs")), bad);
    total_bad += bad;
    lacos_tokenizer_free(t);
  }
  CHECK(total_bad == 0);
  json_decref(f);
}

/* The same ids whatever the thread count (each thread has its own normalizer scratch). */
static void test_threads_agree(void) {
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, fixture("wp-small.json")));
  if (!t) return;
  enum { N = 3000 };
  static char bufs[N][128];
  const char *tx[N];
  for (int i = 0; i < N; i++) {
    snprintf(bufs[i], sizeof bufs[i], "Sentence %d: Ünïcödé ÀÉÎ 漢字%d, naïve %x — «quoted» and [MASK] %o", i, i % 7, i * 7919, i);
    tx[i] = bufs[i];
  }
  int saved = lacos_threads_get();
  lacos_threads_set(1);
  const int32_t *ids, *off;
  CHECK_OK(lacos_tokenizer_encode_list(t, &ids, &off, tx, NULL, N));
  size_t total = (size_t)off[N];
  int32_t *copy = malloc(total * sizeof *copy);
  memcpy(copy, ids, total * sizeof *copy);
  lacos_threads_set(4);
  CHECK_OK(lacos_tokenizer_encode_list(t, &ids, &off, tx, NULL, N));
  CHECK((size_t)off[N] == total && !memcmp(ids, copy, total * sizeof *copy));
  lacos_threads_set(saved);
  free(copy);
  lacos_tokenizer_free(t);
}

/* ------------------------------------------------------------ bad files */

/* A WordPiece tokenizer.json with the given sections (each a JSON value, or NULL to leave it out). */
static const char *wp_json(const char *name, const char *model, const char *normalizer, const char *pre,
                           const char *post, const char *decoder, const char *extra) {
  static char text[1 << 14];
  snprintf(text, sizeof text,
           "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"[PAD]\",\"special\":true},"
           "{\"id\":1,\"content\":\"[UNK]\",\"special\":true},{\"id\":2,\"content\":\"[CLS]\",\"special\":true},"
           "{\"id\":3,\"content\":\"[SEP]\",\"special\":true}]%s%s%s%s%s%s%s%s%s%s%s%s,\"model\":%s}",
           normalizer ? ",\"normalizer\":" : "", normalizer ? normalizer : "", pre ? ",\"pre_tokenizer\":" : "", pre ? pre : "",
           post ? ",\"post_processor\":" : "", post ? post : "", decoder ? ",\"decoder\":" : "", decoder ? decoder : "",
           extra ? "," : "", extra ? extra : "", "", "",
           model ? model : "{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
                           "\"max_input_chars_per_word\":100,\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,"
                           "\"a\":4,\"##b\":5,\"ab\":6}}");
  return write_tmp(name, text);
}

static const char *TEMPLATE =
  "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[CLS]\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
  "\"type_id\":0}},{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":0}}],\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},"
  "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}}],\"special_tokens\":{\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[2],\"tokens\":[\"[CLS]\"]},"
  "\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[3],\"tokens\":[\"[SEP]\"]}}}";

static void test_bad_files(void) {
  lacos_tokenizer *t = NULL;
  const char *BN = "{\"type\":\"BertNormalizer\"}", *BP = "{\"type\":\"BertPreTokenizer\"}";
  /* the minimal file loads and works */
  CHECK_OK(lacos_tokenizer_load(&t, wp_json("ok.json", NULL, BN, BP, TEMPLATE, "{\"type\":\"WordPiece\"}", NULL)));
  if (t) {
    const int32_t *ids;
    int n;
    CHECK_OK(lacos_tokenizer_encode(t, &ids, &n, "AB a abb x", -1));
    CHECK(n == 7 && ids[0] == 2 && ids[1] == 6 && ids[2] == 4 && ids[3] == 6 && ids[4] == 5 && ids[5] == 1 && ids[6] == 3);
    lacos_tokenizer_free(t);
    t = NULL;
  }
  struct { const char *name, *model, *norm, *pre, *post, *dec; int status; const char *needle; } cases[] = {
    {"empty.json", "{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":100,"
     "\"vocab\":{}}", BN, BP, NULL, NULL, LACOS_EFORMAT, "empty.json: model.vocab is empty"},
    {"nounk.json", "{\"type\":\"WordPiece\",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":100,\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"a\":4}}",
     BN, BP, NULL, NULL, LACOS_EFORMAT, "nounk.json: model.unk_token is missing"},
    {"unk.json", "{\"type\":\"WordPiece\",\"unk_token\":\"<unk>\",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":100,"
     "\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"a\":4}}", BN, BP, NULL, NULL, LACOS_EFORMAT, "model.unk_token \"<unk>\" is not in model.vocab"},
    {"prefix.json", "{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":7,\"max_input_chars_per_word\":100,"
     "\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"a\":4}}", BN, BP, NULL, NULL, LACOS_EFORMAT, "model.continuing_subword_prefix must be a string"},
    {"maxc.json", "{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":-1,"
     "\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"a\":4}}", BN, BP, NULL, NULL, LACOS_EFORMAT, "max_input_chars_per_word must be a non-negative integer"},
    {"vid.json", "{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":1,"
     "\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"a\":\"zero\"}}", BN, BP, NULL, NULL, LACOS_EFORMAT, "model.vocab[\"a\"]: the id must be a non-negative integer"},
    {"nfkc.json", NULL, "{\"type\":\"NFKC\"}", BP, NULL, NULL, LACOS_EUNSUPPORTED, "normalizer type \"NFKC\" is not supported with a WordPiece model"},
    {"seqn.json", NULL, "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Lowercase\"},{\"type\":\"Replace\"}]}", BP, NULL, NULL,
     LACOS_EUNSUPPORTED, "normalizer.normalizers[1] type \"Replace\""},
    {"bnbool.json", NULL, "{\"type\":\"BertNormalizer\",\"lowercase\":\"yes\"}", BP, NULL, NULL, LACOS_EFORMAT,
     "normalizer.lowercase must be true or false"},
    {"ws.json", NULL, BN, "{\"type\":\"Whitespace\"}", NULL, NULL, LACOS_EUNSUPPORTED, "pre_tokenizer type \"Whitespace\" is not supported with a WordPiece model"},
    {"pseq.json", NULL, BN, "{\"type\":\"Sequence\",\"pretokenizers\":[" "{\"type\":\"BertPreTokenizer\"},{\"type\":\"Digits\"}]}", NULL, NULL,
     LACOS_EUNSUPPORTED, "a Sequence of 2 pre-tokenizers"},
    {"bldec.json", NULL, BN, BP, NULL, "{\"type\":\"ByteLevel\"}", LACOS_EUNSUPPORTED, "decoder type \"ByteLevel\" is not supported with a WordPiece model"},
    {"roberta.json", NULL, BN, BP, "{\"type\":\"RobertaProcessing\",\"sep\":[\"[SEP]\",3],\"cls\":[\"[CLS]\",2]}", NULL,
     LACOS_EUNSUPPORTED, "post_processor type \"RobertaProcessing\" is not supported"},
    {"tmiss.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"[X]\",\"type_id\":0}},"
     "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}},{\"Sequence\":{\"id\":\"B\","
     "\"type_id\":1}}],\"special_tokens\":{}}", NULL, LACOS_EFORMAT,
     "post_processor.single[0]: special token \"[X]\" is not in post_processor.special_tokens"},
    {"tnoa.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[],\"pair\":[],\"special_tokens\":{}}", NULL,
     LACOS_EFORMAT, "post_processor.single leaves out the text ($A)"},
    {"tbsingle.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"B\",\"type_id\":0}}],"
     "\"pair\":[],\"special_tokens\":{}}", NULL, LACOS_EFORMAT, "the single-text template uses the second text $B"},
    {"tnob.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
     "\"pair\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{}}", NULL, LACOS_EFORMAT,
     "post_processor.pair leaves out the texts ($A and $B)"},
    {"tid.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
     "\"pair\":[{\"Sequence\":{\"id\":\"A\"}},{\"Sequence\":{\"id\":\"B\"}}],\"special_tokens\":{\"[X]\":{\"id\":\"[X]\",\"ids\":[99],"
     "\"tokens\":[\"[X]\"]}}}", NULL, LACOS_EFORMAT, "post_processor.special_tokens[\"[X]\"]: id 99 is not a token"},
    {"ttype.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":-1}}],"
     "\"pair\":[],\"special_tokens\":{}}", NULL, LACOS_EFORMAT, "post_processor.single[0].type_id must be a non-negative integer"},
    {"tseq.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"C\",\"type_id\":0}}],"
     "\"pair\":[],\"special_tokens\":{}}", NULL, LACOS_EFORMAT, "the sequence id must be \"A\" or \"B\""},
    {"tlen.json", NULL, BN, BP, "{\"type\":\"TemplateProcessing\",\"single\":[{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
     "\"pair\":[{\"Sequence\":{\"id\":\"A\"}},{\"Sequence\":{\"id\":\"B\"}}],\"special_tokens\":{\"[X]\":{\"id\":\"[X]\",\"ids\":[2,3],"
     "\"tokens\":[\"[X]\"]}}}", NULL, LACOS_EFORMAT, "ids and tokens must be lists of the same length"},
    {"bert.json", NULL, BN, BP, "{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\"],\"cls\":[\"[CLS]\",2]}", NULL, LACOS_EFORMAT,
     "post_processor.sep must be [token, id]"},
    {"seq2.json", NULL, BN, BP, "{\"type\":\"Sequence\",\"processors\":[{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",3],"
     "\"cls\":[\"[CLS]\",2]},{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",3],\"cls\":[\"[CLS]\",2]}]}", NULL, LACOS_EUNSUPPORTED,
     "a Sequence holds at most one template"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    t = NULL;
    CHECK_FAIL(lacos_tokenizer_load(&t, wp_json(cases[i].name, cases[i].model, cases[i].norm, cases[i].pre, cases[i].post,
                                                cases[i].dec, NULL)),
               cases[i].status, cases[i].needle);
    CHECK(t == NULL);
    if (!strstr(lacos_last_error(), cases[i].name)) { printf("#   the message does not name the file: %s\n", lacos_last_error()); test_failed_now = 1; }
  }
  /* a model without "type" is told apart by its fields */
  CHECK_OK(lacos_tokenizer_load(&t, wp_json("notype.json", "{\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\","
                                            "\"max_input_chars_per_word\":100,\"vocab\":{\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"a\":4}}", BN, BP, NULL, NULL, NULL)));
  if (t) CHECK(!strcmp(lacos_tokenizer_model_type(t), "WordPiece"));
  lacos_tokenizer_free(t);
}

/* Mutated WordPiece files: an error or a result, never a crash. */
static void test_fuzz(void) {
  const char *base = wp_json("fuzz-base.json", NULL, "{\"type\":\"BertNormalizer\",\"strip_accents\":null}", "{\"type\":\"BertPreTokenizer\"}",
                             TEMPLATE, "{\"type\":\"WordPiece\",\"prefix\":\"##\",\"cleanup\":true}",
                             "\"padding\":{\"strategy\":{\"Fixed\":6},\"direction\":\"Left\",\"pad_id\":0,\"pad_type_id\":1},"
                             "\"truncation\":{\"max_length\":5,\"strategy\":\"LongestFirst\"}");
  char *orig = NULL;
  size_t n = 0;
  CHECK_OK(file_read_all(base, 1 << 20, &orig, &n));
  if (!orig) return;
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, base));
  lacos_tokenizer_free(t);
  uint64_t seed = 2026;
  int loaded = 0;
  char *m = malloc(n + 1);
  for (int i = 0; i < 600; i++) {
    memcpy(m, orig, n + 1);
    int k = 1 + (int)(rng_u64(seed, (uint64_t)i * 8) % 3);
    for (int j = 0; j < k; j++) {
      size_t at = rng_u64(seed, (uint64_t)i * 8 + 1 + (uint64_t)j) % n;
      static const char pool[] = "{}[]\",:0123456789 abAB#\\-";
      m[at] = pool[rng_u64(seed, (uint64_t)i * 8 + 5 + (uint64_t)j) % (sizeof pool - 1)];
    }
    t = NULL;
    if (lacos_tokenizer_load(&t, write_tmp("fuzz.json", m)) == LACOS_OK) {
      loaded++;
      const int32_t *ids;
      int ni;
      if (lacos_tokenizer_encode(t, &ids, &ni, " AB[CLS] abb\t漢 ÀB  ##a", -1) == LACOS_OK) {
        const char *text;
        double len;
        int32_t copy[64];
        for (int q = 0; q < ni && q < 64; q++) copy[q] = ids[q];
        lacos_tokenizer_decode(t, &text, &len, copy, ni < 64 ? ni : 64, 1);
      }
      lacos_tensor *a = NULL, *b = NULL, *c = NULL;
      const char *x[2] = {"ab ab ab ab", "a"}, *y[2] = {"b", "ab ab ab ab ab"};
      lacos_tokenizer_encode_pairs(&a, &b, &c, t, x, NULL, y, NULL, 2, NULL);
      lacos_tensor_free(a);
      lacos_tensor_free(b);
      lacos_tensor_free(c);
      lacos_tokenizer_free(t);
    } else CHECK(lacos_last_error()[0] != 0);
  }
  free(m);
  mem_free(orig);
  printf("#   %d of 600 mutated files still loaded\n", loaded);
}

int main(void) {
  const char *root = getenv("LACOS_ROOT");
  snprintf(fixdir, sizeof fixdir, "%s/tests/fixtures/wordpiece", root ? root : ".");
  const char *md = getenv("LACOS_MINILM");
  snprintf(modeldir, sizeof modeldir, "%s", md ? md : "");
  if (!md) snprintf(modeldir, sizeof modeldir, "%s/models/all-MiniLM-L6-v2", root ? root : ".");
  RUN(test_bad_files);
  RUN(test_every_code_point);
  RUN(test_variants);
  RUN(test_threads_agree);
  RUN(test_fuzz);
  /* the tests of the real tokenizer skip, saying why, when it is not there */
  char tj[4096 + 32], why[4096 + 128];
  snprintf(tj, sizeof tj, "%s/tokenizer.json", modeldir);
  snprintf(why, sizeof why, "%s is absent (make models-minilm fetches all-MiniLM-L6-v2)", tj);
  bool model = exists(tj);
  const char *data = getenv("LACOS_TEST_DATA");
  if (model) { RUN(test_minilm_cases); RUN(test_minilm_batches); }
  else { SKIP("test_minilm_cases", why); SKIP("test_minilm_batches", why); }
  if (!data || !exists(data)) SKIP("test_minilm_datasets", "the shared datasets are not there (LACOS_TEST_DATA)");
  else if (!model) SKIP("test_minilm_datasets", why);
  else RUN(test_minilm_datasets);
  TEST_EXIT();
}
