/* wordpiece.c: BERT's tokenizer.json pipeline around a WordPiece model —
   the normalizer, the pre-tokenizer, the model's greedy longest match and
   the decoder — giving what huggingface/tokenizers gives:

   - normalizers/bert.rs (BertNormalizer), in this order: clean_text drops
     NUL, U+FFFD and control characters (categories Cc, Cf, Co except \t \n
     \r) and turns whitespace (\t \n \r and White_Space) into ' ';
     handle_chinese_chars puts ' ' around each character of the CJK blocks
     listed in is_chinese_char; strip_accents (when unset: the value of
     lowercase) is NFD followed by dropping nonspacing marks (Mn); lowercase
     is char::to_lowercase, character by character. Also the normalizers
     Lowercase, NFD, StripAccents (which drops every mark, Mn Mc Me:
     normalizers/strip.rs) and a Sequence of these (what
     sentence-transformers' do_lower_case saves: [Lowercase, BertNormalizer]);
   - pre_tokenizers/bert.rs (BertPreTokenizer): whitespace ends a word and is
     dropped; ASCII punctuation and Unicode punctuation (categories Pc Pd Ps
     Pe Pi Pf Po) are words of one character;
   - models/wordpiece/mod.rs: a word of more than max_input_chars_per_word
     characters is [UNK]; otherwise the longest vocabulary entry at the start,
     then the longest "##"-prefixed one where the last match ended, and so
     on; a word with a place where nothing matches is [UNK] as a whole;
   - decoders/wordpiece.rs: "##" dropped, a space before other tokens but
     the first, then cleanup (" ." -> "." and the others of cleanup()).

   Unicode data comes from utf8proc (categories, NFD with canonical ordering,
   simple lowercase mappings). tokenizers takes its categories from the
   unicode_categories crate, whose tables are Unicode 8.0's: for characters
   assigned or recategorised since (624 code points under utf8proc 2.8's
   Unicode 15, none of them in the shared datasets) lacos follows the newer
   data; tests/c/test_wordpiece.c checks every other code point against the
   tokenizers library. */
#include "tokenizer_internal.h"
#include "utf8.h"
#include <jansson.h>
#include <utf8proc.h>

enum { N_CLEAN = 1, N_CHINESE, N_NFD, N_STRIP, N_STRIP_MARKS, N_LOWER };
enum { MAX_NORM_STEPS = 32 };

struct tok_wordpiece {
  int steps[MAX_NORM_STEPS];   /* the normalizer as a list of N_* steps; none = no normalizer */
  int n_steps;
  bool bert_pre;               /* BertPreTokenizer; else the whole text is one word */
  char *prefix;                /* continuing_subword_prefix */
  size_t prefix_len;
  int32_t unk_id;
  size_t max_chars;            /* max_input_chars_per_word */
  bool decoder, cleanup;       /* a WordPiece decoder, and its cleanup */
  char *dec_prefix;
  size_t dec_prefix_len;
};

/* Growable scratch; the normalizer ping-pongs between two code point buffers. */
struct tok_wp_scratch {
  uint32_t *cp[2];
  size_t cp_cap[2];
  uint8_t *utf8, *out, *word;
  size_t utf8_cap, out_cap, word_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem, const char *what) {
  if (need <= *cap) return LACOS_OK;
  size_t nc = *cap ? *cap : 256;
  while (nc < need) {
    if (nc > SIZE_MAX / 4 / elem) return fail(LACOS_ENOMEM, "%s: size overflow", what);
    nc *= 2;
  }
  TRY(mem_realloc(p, nc * elem, what));
  *cap = nc;
  return LACOS_OK;
}

int tok_wp_scratch_new(tok_wp_scratch **out) {
  return meta_calloc(out, 1, sizeof **out, "tokenizer state");
}

void tok_wp_scratch_free(tok_wp_scratch *s) {
  if (!s) return;
  mem_free(s->cp[0]);
  mem_free(s->cp[1]);
  mem_free(s->utf8);
  mem_free(s->out);
  mem_free(s->word);
  mem_free(s);
}

/* ------------------------------------------------------------ normalizer */

/* Cc, Cf and Co, as unicode_categories' is_other (which has no Cn or Cs). */
static bool is_control(uint32_t c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO;
}

/* The blocks normalizers/bert.rs calls Chinese: the CJK unified ideographs
   and their extensions and compatibility forms (Hangul, kana are not). */
static bool is_chinese(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static size_t utf8_put(uint8_t *o, uint32_t c) {
  if (c < 0x80) { o[0] = (uint8_t)c; return 1; }
  if (c < 0x800) { o[0] = (uint8_t)(0xC0 | (c >> 6)); o[1] = (uint8_t)(0x80 | (c & 63)); return 2; }
  if (c < 0x10000) {
    o[0] = (uint8_t)(0xE0 | (c >> 12)); o[1] = (uint8_t)(0x80 | ((c >> 6) & 63)); o[2] = (uint8_t)(0x80 | (c & 63));
    return 3;
  }
  o[0] = (uint8_t)(0xF0 | (c >> 18)); o[1] = (uint8_t)(0x80 | ((c >> 12) & 63));
  o[2] = (uint8_t)(0x80 | ((c >> 6) & 63)); o[3] = (uint8_t)(0x80 | (c & 63));
  return 4;
}

/* NFD of a[0..n) into the other buffer: utf8proc decomposes and puts the
   combining marks in canonical order (it reads UTF-8, so the code points go
   through a UTF-8 copy). */
static int nfd(tok_wp_scratch *sc, int from, size_t n, size_t *m_out) {
  TRY(grow((void **)&sc->utf8, &sc->utf8_cap, 4 * n + 1, 1, "tokenizer normalizer"));
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += utf8_put(sc->utf8 + k, sc->cp[from][i]);
  int to = 1 - from;
  for (;;) {
    utf8proc_ssize_t r = utf8proc_decompose(sc->utf8, (utf8proc_ssize_t)k, (utf8proc_int32_t *)sc->cp[to],
                                            (utf8proc_ssize_t)sc->cp_cap[to], UTF8PROC_DECOMPOSE);
    if (r < 0) return fail(LACOS_EINVAL, "NFD failed: %s", utf8proc_errmsg(r));
    if ((size_t)r <= sc->cp_cap[to]) { *m_out = (size_t)r; return LACOS_OK; }
    TRY(grow((void **)&sc->cp[to], &sc->cp_cap[to], (size_t)r, sizeof(uint32_t), "tokenizer normalizer"));
  }
}

bool tok_wordpiece_normalizes(const tok_wordpiece *w) { return w && w->n_steps > 0; }

int tok_wordpiece_normalize(const tok_wordpiece *w, tok_wp_scratch *sc, const uint8_t *s, size_t n,
                            const uint8_t **out, size_t *out_n) {
  /* Code points in cp[cur], n of them; each step writes the other buffer.
     No step more than triples the text (Chinese spacing), NFD sizes itself. */
  int cur = 0;
  TRY(grow((void **)&sc->cp[0], &sc->cp_cap[0], n + 1, sizeof(uint32_t), "tokenizer normalizer"));
  size_t m = 0;
  for (size_t i = 0; i < n;) {
    int l;
    sc->cp[0][m++] = utf8_decode(s + i, &l);
    i += (size_t)l;
  }
  for (int k = 0; k < w->n_steps; k++) {
    int to = 1 - cur;
    if (w->steps[k] == N_NFD) {
      size_t r = 0;
      TRY(nfd(sc, cur, m, &r));
      m = r;
      cur = to;
      continue;
    }
    TRY(grow((void **)&sc->cp[to], &sc->cp_cap[to], 3 * m + 1, sizeof(uint32_t), "tokenizer normalizer"));
    const uint32_t *a = sc->cp[cur];
    uint32_t *b = sc->cp[to];
    size_t r = 0;
    switch (w->steps[k]) {
    case N_CLEAN:
      for (size_t i = 0; i < m; i++) {
        uint32_t c = a[i];
        if (c == 0 || c == 0xFFFD || is_control(c)) continue;
        b[r++] = (c == '\t' || c == '\n' || c == '\r' || is_white_space(c)) ? ' ' : c;
      }
      break;
    case N_CHINESE:
      for (size_t i = 0; i < m; i++) {
        if (is_chinese(a[i])) { b[r++] = ' '; b[r++] = a[i]; b[r++] = ' '; }
        else b[r++] = a[i];
      }
      break;
    case N_STRIP:   /* BertNormalizer: nonspacing marks */
      for (size_t i = 0; i < m; i++)
        if (utf8proc_category((utf8proc_int32_t)a[i]) != UTF8PROC_CATEGORY_MN) b[r++] = a[i];
      break;
    case N_STRIP_MARKS:   /* StripAccents: every mark (is_combining_mark: Mn, Mc, Me) */
      for (size_t i = 0; i < m; i++) {
        utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)a[i]);
        if (k != UTF8PROC_CATEGORY_MN && k != UTF8PROC_CATEGORY_MC && k != UTF8PROC_CATEGORY_ME) b[r++] = a[i];
      }
      break;
    case N_LOWER:
      for (size_t i = 0; i < m; i++) {
        /* U+0130 is the one character whose unconditional lowercase
           (SpecialCasing.txt, which Rust's to_lowercase follows) is two:
           i and a combining dot above; utf8proc gives the simple mapping. */
        if (a[i] == 0x130) { b[r++] = 'i'; b[r++] = 0x307; }
        else b[r++] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)a[i]);
      }
      break;
    }
    m = r;
    cur = to;
  }
  TRY(grow((void **)&sc->out, &sc->out_cap, 4 * m + 1, 1, "tokenizer normalizer"));
  size_t k = 0;
  for (size_t i = 0; i < m; i++) k += utf8_put(sc->out + k, sc->cp[cur][i]);
  *out = sc->out;
  *out_n = k;
  return LACOS_OK;
}

/* ------------------------------------------------------------ pre-tokenizer */

/* char::is_ascii_punctuation || unicode_categories' is_punctuation. */
static bool is_bert_punct(uint32_t c) {
  if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
  return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

int tok_wordpiece_pre_tokenize(const tok_wordpiece *w, const uint8_t *s, size_t n, tok_word_fn fn, void *ud) {
  if (!w->bert_pre) return n ? fn(ud, s, n) : LACOS_OK;
  size_t start = 0, i = 0;
  while (i < n) {
    int l;
    uint32_t c = utf8_decode(s + i, &l);
    bool space = is_white_space(c), punct = !space && is_bert_punct(c);
    if (space || punct) {
      if (i > start) TRY(fn(ud, s + start, i - start));
      if (punct) TRY(fn(ud, s + i, (size_t)l));
      start = i + (size_t)l;
    }
    i += (size_t)l;
  }
  if (n > start) TRY(fn(ud, s + start, n - start));
  return LACOS_OK;
}

/* ------------------------------------------------------------ model */

int tok_wordpiece_word(const tok_wordpiece *w, const tok_vocab *v, tok_wp_scratch *sc, const uint8_t *s,
                       size_t n, int32_t *out, size_t *n_out) {
  *n_out = 0;
  if (!n) return LACOS_OK;
  size_t chars = 0;
  for (size_t i = 0; i < n; i++) chars += (s[i] & 0xC0) != 0x80;
  if (chars > w->max_chars) { out[(*n_out)++] = w->unk_id; return LACOS_OK; }
  /* candidates are the prefix followed by a piece of the word */
  TRY(grow((void **)&sc->word, &sc->word_cap, w->prefix_len + n + 1, 1, "tokenizer scratch"));
  memcpy(sc->word, w->prefix, w->prefix_len);
  size_t start = 0, k = 0;
  while (start < n) {
    size_t end = n;
    int64_t id = -1;
    while (end > start) {
      if (start == 0) id = v->find(v->t, s, end);
      else {
        memcpy(sc->word + w->prefix_len, s + start, end - start);
        id = v->find(v->t, sc->word, w->prefix_len + end - start);
      }
      if (id >= 0) break;
      do end--; while (end > start && (s[end] & 0xC0) == 0x80);   /* one character back */
    }
    if (id < 0) { out[0] = w->unk_id; *n_out = 1; return LACOS_OK; }
    out[k++] = (int32_t)id;
    start = end;
  }
  *n_out = k;
  return LACOS_OK;
}

/* ------------------------------------------------------------ decoder */

bool tok_wordpiece_has_decoder(const tok_wordpiece *w) { return w && w->decoder; }

/* Rust's str::replace: every non-overlapping occurrence, left to right. The
   result is never longer (every replacement is shorter than what it replaces). */
static size_t replace_all(uint8_t *s, size_t n, const char *from, const char *to) {
  size_t fl = strlen(from), tl = strlen(to), r = 0, i = 0;
  while (i < n) {
    if (i + fl <= n && !memcmp(s + i, from, fl)) {
      memcpy(s + r, to, tl);   /* r <= i, and tl < fl: never overtakes the unread text */
      r += tl;
      i += fl;
    } else s[r++] = s[i++];
  }
  return r;
}

size_t tok_wordpiece_decode_token(const tok_wordpiece *w, size_t index, const uint8_t *s, size_t n, uint8_t *out) {
  size_t k = 0;
  if (index > 0) {
    if (n >= w->dec_prefix_len && !memcmp(s, w->dec_prefix, w->dec_prefix_len)) { s += w->dec_prefix_len; n -= w->dec_prefix_len; }
    else out[k++] = ' ';
  }
  memcpy(out + k, s, n);
  k += n;
  if (w->cleanup) {
    static const char *const pairs[][2] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
      {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) k = replace_all(out, k, pairs[i][0], pairs[i][1]);
  }
  return k;
}

/* ------------------------------------------------------------ loading */

static const char *type_of(const json_t *o) {
  const json_t *v = json_is_object(o) ? json_object_get(o, "type") : NULL;
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An optional boolean (absent: def); null too where upstream has Option<bool>. */
static int opt_bool(const json_t *o, const char *key, int def, int *out, const char *where, bool null_ok) {
  const json_t *v = json_object_get(o, key);
  if (!v || (null_ok && json_is_null(v))) { *out = def; return LACOS_OK; }
  if (!json_is_boolean(v)) return fail(LACOS_EFORMAT, "%s.%s must be true or false%s", where, key, null_ok ? " or null" : "");
  *out = json_is_true(v);
  return LACOS_OK;
}

static int add_norm_step(tok_wordpiece *w, int step, const char *where) {
  if (w->n_steps == MAX_NORM_STEPS) return fail(LACOS_ELIMIT, "%s: more than %d normalizer steps", where, MAX_NORM_STEPS);
  w->steps[w->n_steps++] = step;
  return LACOS_OK;
}

static int parse_normalizer(tok_wordpiece *w, const json_t *n, const char *where, int depth) {
  if (!n || json_is_null(n)) return LACOS_OK;
  const char *type = type_of(n);
  if (!type) return fail(LACOS_EFORMAT, "%s must be an object with a \"type\" (or null)", where);
  if (!strcmp(type, "BertNormalizer")) {
    int clean, chinese, strip, lower;
    TRY(opt_bool(n, "clean_text", 1, &clean, where, false));
    TRY(opt_bool(n, "handle_chinese_chars", 1, &chinese, where, false));
    TRY(opt_bool(n, "lowercase", 1, &lower, where, false));
    TRY(opt_bool(n, "strip_accents", lower, &strip, where, true));   /* unset: follows lowercase */
    if (clean) TRY(add_norm_step(w, N_CLEAN, where));
    if (chinese) TRY(add_norm_step(w, N_CHINESE, where));
    if (strip) { TRY(add_norm_step(w, N_NFD, where)); TRY(add_norm_step(w, N_STRIP, where)); }
    if (lower) TRY(add_norm_step(w, N_LOWER, where));
    return LACOS_OK;
  }
  if (!strcmp(type, "Lowercase")) return add_norm_step(w, N_LOWER, where);
  if (!strcmp(type, "NFD")) return add_norm_step(w, N_NFD, where);
  if (!strcmp(type, "StripAccents")) return add_norm_step(w, N_STRIP_MARKS, where);
  if (!strcmp(type, "Sequence")) {
    const json_t *list = json_object_get(n, "normalizers");
    if (!json_is_array(list)) return fail(LACOS_EFORMAT, "%s.normalizers must be an array", where);
    if (depth > 4) return fail(LACOS_EUNSUPPORTED, "%s: normalizer Sequences nested more than 4 deep", where);
    for (size_t i = 0; i < json_array_size(list); i++) {
      char w2[128];
      snprintf(w2, sizeof w2, "%s.normalizers[%zu]", where, i);
      TRY(parse_normalizer(w, json_array_get(list, i), w2, depth + 1));
    }
    return LACOS_OK;
  }
  return fail(LACOS_EUNSUPPORTED, "%s type \"%s\" is not supported with a WordPiece model (lacos runs BertNormalizer, "
              "Lowercase, NFD, StripAccents and Sequences of them)", where, type);
}

static int get_string(const json_t *o, const char *key, const char *where, char **out, size_t *len) {
  const json_t *v = json_object_get(o, key);
  if (!v) return fail(LACOS_EFORMAT, "%s.%s is missing", where, key);
  if (!json_is_string(v)) return fail(LACOS_EFORMAT, "%s.%s must be a string", where, key);
  *len = json_string_length(v);
  TRY(meta_alloc(out, *len + 1, "WordPiece tokenizer"));
  memcpy(*out, json_string_value(v), *len + 1);
  return LACOS_OK;
}

static int parse_all(tok_wordpiece *w, const tok_vocab *v, const json_t *root) {
  const json_t *model = json_object_get(root, "model");
  if (v->n_ids == 0 || !json_object_size(json_object_get(model, "vocab")))
    return fail(LACOS_EFORMAT, "model.vocab is empty: a WordPiece model needs at least its unk_token");
  char *unk = NULL;
  size_t unk_len = 0;
  TRY(get_string(model, "unk_token", "model", &unk, &unk_len));
  int64_t id = v->find(v->t, (const uint8_t *)unk, unk_len);
  if (id < 0) {
    int s = fail(LACOS_EFORMAT, "model.unk_token \"%.60s\" is not in model.vocab", unk);
    mem_free(unk);
    return s;
  }
  mem_free(unk);
  w->unk_id = (int32_t)id;
  TRY(get_string(model, "continuing_subword_prefix", "model", &w->prefix, &w->prefix_len));
  const json_t *mc = json_object_get(model, "max_input_chars_per_word");
  if (!mc) return fail(LACOS_EFORMAT, "model.max_input_chars_per_word is missing");
  if (!json_is_integer(mc) || json_integer_value(mc) < 0)
    return fail(LACOS_EFORMAT, "model.max_input_chars_per_word must be a non-negative integer");
  w->max_chars = (size_t)json_integer_value(mc);

  TRY(parse_normalizer(w, json_object_get(root, "normalizer"), "normalizer", 0));

  const json_t *pt = json_object_get(root, "pre_tokenizer");
  const char *ptype = type_of(pt);
  if (pt && !json_is_null(pt)) {
    if (!ptype) return fail(LACOS_EFORMAT, "pre_tokenizer must be an object with a \"type\" (or null)");
    const json_t *one = pt;
    if (!strcmp(ptype, "Sequence")) {   /* a Sequence holding only BertPreTokenizer is the same */
      const json_t *list = json_object_get(pt, "pretokenizers");
      if (!json_is_array(list)) return fail(LACOS_EFORMAT, "pre_tokenizer.pretokenizers must be an array");
      if (json_array_size(list) != 1)
        return fail(LACOS_EUNSUPPORTED, "pre_tokenizer: a Sequence of %zu pre-tokenizers with a WordPiece model (lacos runs "
                    "BertPreTokenizer alone)", json_array_size(list));
      one = json_array_get(list, 0);
      ptype = type_of(one);
      if (!ptype) return fail(LACOS_EFORMAT, "pre_tokenizer.pretokenizers[0] must be an object with a \"type\"");
    }
    if (strcmp(ptype, "BertPreTokenizer"))
      return fail(LACOS_EUNSUPPORTED, "pre_tokenizer type \"%s\" is not supported with a WordPiece model (lacos runs "
                  "BertPreTokenizer)", ptype);
    w->bert_pre = true;
  }

  const json_t *dec = json_object_get(root, "decoder");
  if (dec && !json_is_null(dec)) {
    const char *dtype = type_of(dec);
    if (!dtype || strcmp(dtype, "WordPiece"))
      return fail(LACOS_EUNSUPPORTED, "decoder type \"%s\" is not supported with a WordPiece model (lacos decodes with "
                  "WordPiece)", dtype ? dtype : "?");
    w->decoder = true;
    const json_t *pv = json_object_get(dec, "prefix");
    if (pv && !json_is_string(pv)) return fail(LACOS_EFORMAT, "decoder.prefix must be a string");
    const char *p = pv ? json_string_value(pv) : "##";
    w->dec_prefix_len = pv ? json_string_length(pv) : 2;
    TRY(meta_alloc(&w->dec_prefix, w->dec_prefix_len + 1, "WordPiece tokenizer"));
    memcpy(w->dec_prefix, p, w->dec_prefix_len + 1);
    int cleanup;
    TRY(opt_bool(dec, "cleanup", 1, &cleanup, "decoder", false));
    w->cleanup = cleanup;
  }
  return LACOS_OK;
}

int tok_wordpiece_parse(tok_wordpiece **out, const tok_vocab *v, const json_t *root) {
  *out = NULL;
  tok_wordpiece *w;
  TRY(meta_calloc(&w, 1, sizeof *w, "WordPiece tokenizer"));
  int s = parse_all(w, v, root);
  if (s) { tok_wordpiece_free(w); return s; }
  *out = w;
  return LACOS_OK;
}

void tok_wordpiece_free(tok_wordpiece *w) {
  if (!w) return;
  mem_free(w->prefix);
  mem_free(w->dec_prefix);
  mem_free(w);
}

int lacos_text_lower(const char *text, double len, char *out, double cap, double *out_len) {
  *out_len = 0;
  if (len < 0 || cap < 0) return fail(LACOS_EINVAL, "text lengths must be >= 0");
  const utf8proc_uint8_t *p = (const utf8proc_uint8_t *)text;
  utf8proc_ssize_t n = (utf8proc_ssize_t)len, i = 0;
  size_t o = 0, c = (size_t)cap;
  while (i < n) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate(p + i, n - i, &cp);
    if (k < 1) return fail(LACOS_EINVAL, "invalid UTF-8 at byte %lld", (long long)i);
    utf8proc_uint8_t buf[4];
    utf8proc_ssize_t w = utf8proc_encode_char(utf8proc_tolower(cp), buf);
    if (o + (size_t)w > c) return fail(LACOS_ELIMIT, "lowercased text does not fit in %zu bytes", c);
    memcpy(out + o, buf, (size_t)w);
    o += (size_t)w;
    i += k;
  }
  *out_len = (double)o;
  return LACOS_OK;
}
