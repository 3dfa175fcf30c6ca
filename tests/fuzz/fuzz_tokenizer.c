/* fuzz_tokenizer.c: libFuzzer target for the tokenizer.json loader
   (engine/tokenizer.c: JSON, vocab, merges, added tokens, the Oniguruma to
   PCRE2 regex translation, pre-tokenizer, padding and truncation sections).

   Input: TOKENIZER-JSON [SEP TEXT]. The file is loaded; when it loads,
   every id is looked up both ways, a few fixed texts and TEXT (when given)
   are encoded one by one, as a list and as a padded batch with the file's
   own options, and the ids are decoded again. Invariants: ids lie inside
   the vocabulary and name tokens, id_to_token and token_to_id agree, list
   and batch encodings agree with single encodings, invalid UTF-8 is refused
   with LACOS_EINVAL. A crash, leak, undefined behaviour or invariant failure
   is a finding. tests/c/test_fuzz_tokenizer.c replays the corpus in
   `make test`. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("tok");
  return 0;
}

static bool utf8_ok(const uint8_t *s, size_t n) {
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

static void check_ids(const lacos_tokenizer *tok, const int32_t *ids, int n) {
  int V = lacos_tokenizer_vocab_size(tok);
  for (int i = 0; i < n; i++) {
    FUZZ_REQUIRE(ids[i] >= 0 && ids[i] < V);
    double len;
    FUZZ_REQUIRE(lacos_tokenizer_id_to_token(tok, ids[i], &len) != NULL);
  }
}

enum { NTEXTS = 6 };

static void exercise(lacos_tokenizer *tok, const uint8_t *text, size_t text_n, bool have_text) {
  int V = lacos_tokenizer_vocab_size(tok);
  FUZZ_REQUIRE(V >= 0);
  /* ids <-> tokens: both directions agree (a string may name one id only) */
  int limit = V < 4096 ? V : 4096;
  for (int id = 0; id < limit; id++) {
    double len = -1;
    const char *s = lacos_tokenizer_id_to_token(tok, id, &len);
    if (!s) { FUZZ_REQUIRE(len == 0); continue; }
    int back = lacos_tokenizer_token_to_id(tok, s, len);
    FUZZ_REQUIRE(back >= 0 && back < V);
    double len2;
    const char *s2 = lacos_tokenizer_id_to_token(tok, back, &len2);
    FUZZ_REQUIRE(s2 && len2 == len && memcmp(s, s2, (size_t)len) == 0);
    (void)lacos_tokenizer_is_special(tok, id);
  }
  FUZZ_REQUIRE(lacos_tokenizer_id_to_token(tok, -1, NULL) == NULL && lacos_tokenizer_id_to_token(tok, V, NULL) == NULL);

  static const char *fixed[NTEXTS - 1] = {
    "Hello world, this is a test.", "  leading  and trailing  ", "Bonjour à tous! 你好，世界。 नमस्ते",
    "<pad></s><unk> tokens <s>and</s> text", "",
  };
  const char *texts[NTEXTS];
  double lens[NTEXTS];
  int nt = 0;
  for (int i = 0; i < NTEXTS - 1; i++) { texts[nt] = fixed[i]; lens[nt++] = -1; }
  bool text_valid = have_text && utf8_ok(text, text_n);
  if (have_text) {
    const int32_t *ids;
    int n;
    int s = lacos_tokenizer_encode(tok, &ids, &n, (const char *)text, (double)text_n);
    if (!text_valid) FUZZ_REQUIRE(s == LACOS_EINVAL);
    else if (s) fuzz_require_error(s);
    if (text_valid) { texts[nt] = (const char *)text; lens[nt++] = (double)text_n; }
  }
  /* one at a time, remembering the ids */
  int32_t *single[NTEXTS] = {0};
  int single_n[NTEXTS];
  bool ok_all = true;
  for (int i = 0; i < nt; i++) {
    const int32_t *ids;
    int n = -1;
    int s = lacos_tokenizer_encode(tok, &ids, &n, texts[i], lens[i]);
    if (s) { fuzz_require_error(s); ok_all = false; single_n[i] = -1; continue; }
    FUZZ_REQUIRE(n >= 0);
    check_ids(tok, ids, n);
    single[i] = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    FUZZ_REQUIRE(single[i]);
    if (n) memcpy(single[i], ids, sizeof(int32_t) * (size_t)n);
    single_n[i] = n;
    const char *dec;
    double dlen;
    s = lacos_tokenizer_decode(tok, &dec, &dlen, ids, n, i % 2);
    if (s) fuzz_require_error(s);
    else FUZZ_REQUIRE(dec != NULL && dlen >= 0);
  }
  /* as a list: the same ids */
  const int32_t *ids, *off;
  int s = lacos_tokenizer_encode_list(tok, &ids, &off, texts, lens, nt);
  if (s) { fuzz_require_error(s); FUZZ_REQUIRE(!ok_all || s == LACOS_ELIMIT || s == LACOS_ENOMEM); }
  else {
    FUZZ_REQUIRE(off[0] == 0);
    for (int i = 0; i < nt; i++) {
      FUZZ_REQUIRE(off[i + 1] >= off[i]);
      if (single_n[i] < 0) continue;
      FUZZ_REQUIRE(off[i + 1] - off[i] == single_n[i]);
      FUZZ_REQUIRE(single_n[i] == 0 || memcmp(ids + off[i], single[i], sizeof(int32_t) * (size_t)single_n[i]) == 0);
    }
  }
  /* as a batch with the file's padding and truncation */
  lacos_tokenizer_batch_options opt;
  lacos_tokenizer_batch_options_init(tok, &opt);
  lacos_tensor *bid = NULL, *mask = NULL;
  s = lacos_tokenizer_encode_batch(&bid, &mask, tok, texts, lens, nt, &opt);
  if (s) { fuzz_require_error(s); FUZZ_REQUIRE(!bid && !mask); }
  else {
    FUZZ_REQUIRE(bid->ndim == 2 && bid->shape[0] == nt && mask->shape[0] == nt && mask->shape[1] == bid->shape[1]);
    FUZZ_REQUIRE(bid->dtype == LACOS_I32 && mask->dtype == LACOS_I32);
    int64_t T = bid->shape[1];
    if (opt.max_length > 0 && opt.truncation && opt.pad_length <= opt.max_length && opt.pad_to_multiple_of <= 1)
      FUZZ_REQUIRE(T <= opt.max_length);
    const int32_t *b = bid->data, *m = mask->data;
    for (int i = 0; i < nt; i++) {
      int64_t real = 0;
      for (int64_t j = 0; j < T; j++) {
        FUZZ_REQUIRE(m[i * T + j] == 0 || m[i * T + j] == 1);
        if (m[i * T + j]) { real++; FUZZ_REQUIRE(b[i * T + j] >= 0 && b[i * T + j] < lacos_tokenizer_vocab_size(tok)); }
      }
      if (single_n[i] >= 0 && !(opt.max_length > 0 && opt.truncation)) FUZZ_REQUIRE(real == single_n[i]);
    }
  }
  lacos_tensor_free(bid);
  lacos_tensor_free(mask);
  /* no limit, no padding: always possible when single encodes worked */
  opt.max_length = 0;
  opt.truncation = 0;
  opt.pad_length = 0;
  opt.pad_to_multiple_of = 0;
  if (opt.pad_id < 0 && V > 0) opt.pad_id = 0;
  s = lacos_tokenizer_encode_batch(&bid, &mask, tok, texts, lens, nt, &opt);
  if (s) fuzz_require_error(s);
  lacos_tensor_free(bid);
  lacos_tensor_free(mask);
  for (int i = 0; i < nt; i++) free(single[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_clear();
  const uint8_t *parts[2];
  size_t lens[2];
  int np = fuzz_split(data, size, parts, lens, 2);
  fuzz_put("tokenizer.json", parts[0], lens[0]);
  char path[1024];
  fuzz_path(path, sizeof path, "tokenizer.json");
  lacos_tokenizer *tok = (lacos_tokenizer *)1;
  double before = lacos_memory_allocated(LACOS_CPU);
  int s = lacos_tokenizer_load(&tok, path);
  if (s) {
    fuzz_require_error(s);
    FUZZ_REQUIRE(tok == NULL);
    FUZZ_REQUIRE(strstr(lacos_last_error(), "tokenizer.json") != NULL);   /* names the file */
    FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
    return 0;
  }
  FUZZ_TRACE("  loaded, %d ids\n", lacos_tokenizer_vocab_size(tok));
  /* the text is encoded four ways: 1 KB of it is plenty (and keeps the
     target fast enough to explore the loader) */
  exercise(tok, np > 1 ? parts[1] : NULL, np > 1 ? (lens[1] < 1024 ? lens[1] : 1024) : 0, np > 1);
  lacos_tokenizer_free(tok);
  FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
  return 0;
}
