/* test_tokenizer.c: the tokenizer's pieces (byte map, UTF-8, the Oniguruma →
   PCRE2 translation, BLOOM's Split regex over every code point, the BPE merge
   order), every kind of bad tokenizer.json, and the ids of every sentence of
   the shared STS/NLI files against the digests the tokenizers library gave
   (tests/reference/make_tokenizer.py): 127 files, 555,662 texts, 9.8M tokens
   in about 5 s, and the first 16 texts of each file one by one (their line,
   column and the digest of their ids, so that a difference names the text;
   the sentences are read from LACOS_TEST_DATA, never stored in the
   repository). */
#include "test.h"
#include "tokenizer_internal.h"
#include "dataset_texts.h"
#include <jansson.h>
#include <sys/stat.h>
#include <time.h>

static char fixdir[4096];

static const char *fixture(const char *name) {
  static char path[4096 + 256];
  snprintf(path, sizeof path, "%s/%s", fixdir, name);
  return path;
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

/* A minimal valid BLOOM-style tokenizer.json with the given model and extra top-level fields. */
static const char *tok_json(const char *name, const char *model, const char *extra) {
  static char text[1 << 16];
  snprintf(text, sizeof text,
           "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\"normalizer\":null,"
           "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
           "\" ?[^(\\\\s|[.,!?…。，、।۔،])]+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
           "\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]},\"post_processor\":null,"
           "\"decoder\":{\"type\":\"ByteLevel\"}%s%s,\"model\":%s}",
           extra && *extra ? "," : "", extra ? extra : "", model);
  return write_tmp(name, text);
}

static const char *SMALL_MODEL =
  "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4,\"abc\":5,\"aa\":6,\"Ġ\":7,\"Ġa\":8},"
  "\"merges\":[\"b c\",\"a b\",\"a bc\",\"a a\",[\"Ġ\",\"a\"]]}";

/* ------------------------------------------------------------ pieces */

static void test_byte_map(void) {
  int seen[512] = {0};
  for (int b = 0; b < 256; b++) {
    uint32_t c = tok_byte_char(b);
    CHECK(c < 512);
    if (c < 512) seen[c]++;
    CHECK(tok_char_byte(c) == b);
  }
  for (int c = 0; c < 512; c++) CHECK(seen[c] <= 1);
  CHECK(tok_byte_char(' ') == 0x120);    /* Ġ */
  CHECK(tok_byte_char('\n') == 0x10A);   /* Ċ */
  CHECK(tok_byte_char(0) == 0x100);
  CHECK(tok_byte_char(0x7F) == 0x121);
  CHECK(tok_byte_char(0xAD) == 0x143);
  CHECK(tok_byte_char('A') == 'A' && tok_byte_char(0xE9) == 0xE9 && tok_byte_char(0xA1) == 0xA1);
  CHECK(tok_char_byte('a') == 'a' && tok_char_byte(0x20) == -1 && tok_char_byte(0x144) == -1);
}

static void test_utf8(void) {
  size_t bad = 99;
  CHECK(tok_utf8_valid((const uint8_t *)"", 0, &bad));
  CHECK(tok_utf8_valid((const uint8_t *)"plain ASCII text, long enough", 29, &bad));
  CHECK(tok_utf8_valid((const uint8_t *)"h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 14, &bad));
  struct { const char *s; size_t n, at; } bads[] = {
    {"\xff", 1, 0}, {"ab\xc3", 3, 2}, {"\xc0\xaf", 2, 0}, {"x\xed\xa0\x80", 4, 1}, {"\xf4\x90\x80\x80", 4, 0},
    {"abcdefgh\xe2\x82", 10, 8}, {"\x80", 1, 0}, {"\xe0\x80\x80", 3, 0}, {"ok\xf8\x88\x80\x80\x80", 7, 2},
  };
  for (size_t i = 0; i < sizeof bads / sizeof *bads; i++) {
    CHECK(!tok_utf8_valid((const uint8_t *)bads[i].s, bads[i].n, &bad));
    if (bad != bads[i].at) printf("#   case %zu: bad at %zu, expected %zu\n", i, bad, bads[i].at), test_failed_now = 1;
  }
  /* from_utf8_lossy: one U+FFFD per maximal invalid subpart. */
  struct { const char *in; size_t n; const char *out; } lossy[] = {
    {"a\xff" "b", 3, "a\xef\xbf\xbd" "b"},
    {"\xe0\x80", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xe0\xa0", 2, "\xef\xbf\xbd"},
    {"\xf0\x9f\x98", 3, "\xef\xbf\xbd"},
    {"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    {"\xf0\x9f\x98\x80", 4, "\xf0\x9f\x98\x80"},
  };
  for (size_t i = 0; i < sizeof lossy / sizeof *lossy; i++) {
    uint8_t out[64];
    size_t n = tok_utf8_lossy(out, (const uint8_t *)lossy[i].in, lossy[i].n);
    if (n != strlen(lossy[i].out) || memcmp(out, lossy[i].out, n)) printf("#   lossy case %zu differs\n", i), test_failed_now = 1;
  }
}

static void expect_translation(const char *onig, const char *pcre) {
  char *out = NULL;
  int s = tok_regex_translate(&out, onig, strlen(onig));
  if (s || strcmp(out, pcre)) {
    printf("#   %s -> %s, expected %s (%s)\n", onig, out ? out : "(error)", pcre, lacos_last_error());
    test_failed_now = 1;
  }
  mem_free(out);
}

static void test_regex_translate(void) {
  /* BLOOM's: in Oniguruma the nested class is a union, so ( | ) are members. */
  expect_translation(" ?[^(\\s|[.,!?…。，、।۔،])]+", " ?[^(\\p{White_Space}|.,!?…。，、।۔،)]+");
  expect_translation("'s|'t| ?\\p{L}+|\\s+(?!\\S)|\\s+", "'s|'t| ?\\p{L}+|\\p{White_Space}+(?!\\P{White_Space})|\\p{White_Space}+");
  expect_translation("[a[bc]d]", "[abcd]");
  expect_translation("[[:alpha:]x]", "[[:alpha:]x]");
  expect_translation("\\[a\\]", "\\[a\\]");
  expect_translation("\\w+", "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}]+");
  expect_translation("[\\w-]", "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}-]");
  expect_translation("\\h\\d", "[0-9a-fA-F]\\d");
  expect_translation("(?m:a.b)(?i)x(?-m)", "(?s:a.b)(?i)x(?-s)");
  expect_translation("(?<=a)b(?!c)", "(?<=a)b(?!c)");
  expect_translation("", "");
  char *out = NULL;
  CHECK_FAIL(tok_regex_translate(&out, "\\bword\\b", 8), LACOS_EUNSUPPORTED, "word boundaries");
  CHECK_FAIL(tok_regex_translate(&out, "[a-z&&[^aeiou]]", 15), LACOS_EUNSUPPORTED, "&&");
  CHECK_FAIL(tok_regex_translate(&out, "[a[^b]]", 7), LACOS_EUNSUPPORTED, "negated class nested");
  CHECK_FAIL(tok_regex_translate(&out, "[\\W]", 4), LACOS_EUNSUPPORTED, "\\W inside");
  CHECK(out == NULL);
}

typedef struct piece_list { int n; char text[64][64]; int id[64]; } piece_list;

static void collect(void *ud, const uint8_t *s, size_t n, int id) {
  piece_list *p = ud;
  if (p->n < 64) {
    snprintf(p->text[p->n], 64, "%.*s", (int)n, (const char *)s);
    p->id[p->n] = id;
  }
  p->n++;
}

static void expect_pieces(lacos_tokenizer *t, const char *text, int n, const char *const *want) {
  piece_list p = {0};
  CHECK_OK(tokenizer_pieces(t, text, strlen(text), collect, &p));
  bool same = p.n == n;
  for (int i = 0; same && i < n; i++) same = !strcmp(p.text[i], want[i]);
  if (!same) {
    printf("#   pieces of \"%s\":", text);
    for (int i = 0; i < p.n && i < 64; i++) printf(" [%s]", p.text[i]);
    printf("\n");
    test_failed_now = 1;
  }
}

static void test_bloom_pieces(void) {
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, fixture("bloomlike-32k.json")));
  if (!t) return;
  expect_pieces(t, "Hello world", 2, (const char *[]){"Hello", " world"});
  expect_pieces(t, "  two  spaces", 4, (const char *[]){" ", " two", " ", " spaces"});
  expect_pieces(t, "a(b|c)d", 7, (const char *[]){"a", "(", "b", "|", "c", ")", "d"});
  expect_pieces(t, "Wait... what?!", 4, (const char *[]){"Wait", "...", " what", "?!"});
  expect_pieces(t, "x\n\ny", 3, (const char *[]){"x", "\n\n", "y"});
  expect_pieces(t, "नमस्ते। ok", 3, (const char *[]){"नमस्ते", "।", " ok"});
  expect_pieces(t, "<s>hi</s>", 3, (const char *[]){"<s>", "hi", "</s>"});
  expect_pieces(t, "[x]{y}", 1, (const char *[]){"[x]{y}"});
  /* Every code point against what Oniguruma does (whitespace.json from the tokenizers library). */
  char *ws = NULL;
  size_t len;
  CHECK_OK(file_read_all(fixture("whitespace.json"), 1 << 20, &ws, &len));
  json_error_t je;
  json_t *root = ws ? json_loads(ws, 0, &je) : NULL;
  mem_free(ws);
  json_t *pts = json_object_get(root, "points");
  CHECK(json_is_array(pts) && json_array_size(pts) == 39);
  static uint8_t sep[0x110000];
  memset(sep, 0, sizeof sep);
  for (size_t i = 0; i < json_array_size(pts); i++) sep[json_integer_value(json_array_get(pts, i))] = 1;
  json_decref(root);
  int wrong = 0;
  for (uint32_t c = 0; c < 0x110000; c++) {
    if (c >= 0xD800 && c < 0xE000) continue;
    char buf[8];
    int k = 0;
    buf[k++] = 'a';
    if (c < 0x80) buf[k++] = (char)c;
    else if (c < 0x800) { buf[k++] = (char)(0xC0 | (c >> 6)); buf[k++] = (char)(0x80 | (c & 63)); }
    else if (c < 0x10000) { buf[k++] = (char)(0xE0 | (c >> 12)); buf[k++] = (char)(0x80 | ((c >> 6) & 63)); buf[k++] = (char)(0x80 | (c & 63)); }
    else { buf[k++] = (char)(0xF0 | (c >> 18)); buf[k++] = (char)(0x80 | ((c >> 12) & 63)); buf[k++] = (char)(0x80 | ((c >> 6) & 63)); buf[k++] = (char)(0x80 | (c & 63)); }
    buf[k++] = 'a';
    piece_list p = {0};
    if (tokenizer_pieces(t, buf, (size_t)k, collect, &p)) { wrong++; continue; }
    if ((p.n != 1) != sep[c]) {
      if (wrong < 10) printf("#   U+%04X: %d pieces, Oniguruma %s\n", c, p.n, sep[c] ? "splits" : "does not split");
      wrong++;
    }
  }
  CHECK(wrong == 0);
  lacos_tokenizer_free(t);
}

static void expect_bpe(lacos_tokenizer *t, const char *word, int n, const int *want) {
  for (int algo = 0; algo < 2; algo++) {
    int32_t out[64];
    int m = 0;
    CHECK_OK(tokenizer_bpe(t, (const uint8_t *)word, strlen(word), algo, out, 64, &m));
    bool same = m == n;
    for (int i = 0; same && i < n; i++) same = out[i] == want[i];
    if (!same) {
      printf("#   BPE (%s) of \"%s\":", algo ? "heap" : "scan", word);
      for (int i = 0; i < m; i++) printf(" %d", out[i]);
      printf("\n");
      test_failed_now = 1;
    }
  }
}

static void test_bpe_order(void) {
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, tok_json("small.json", SMALL_MODEL, NULL)));
  if (!t) return;
  expect_bpe(t, "abc", 1, (int[]){5});          /* b c (rank 0), then a bc (rank 2) */
  expect_bpe(t, "ab", 1, (int[]){3});
  expect_bpe(t, "aaa", 2, (int[]){6, 0});       /* ties: leftmost first */
  expect_bpe(t, "aaaa", 2, (int[]){6, 6});
  expect_bpe(t, "abab", 2, (int[]){3, 3});
  expect_bpe(t, "xaz", 1, (int[]){0});          /* characters outside the vocabulary are dropped */
  expect_bpe(t, "axa", 1, (int[]){6});          /* ... and the symbols around them may merge */
  expect_bpe(t, " a", 1, (int[]){8});           /* merges given as [a, b] pairs */
  const char *text;
  double len;
  CHECK_OK(lacos_tokenizer_decode(t, &text, &len, (const int32_t[]){3, 5, 8}, 3, 0));
  CHECK(len == 7 && !strcmp(text, "ababc a"));
  lacos_tokenizer_free(t);
  /* Without a decoder, upstream joins the token strings with spaces. */
  static char nodec[4096];
  snprintf(nodec, sizeof nodec, "{\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},\"model\":%s}", SMALL_MODEL);
  CHECK_OK(lacos_tokenizer_load(&t, write_tmp("nodec.json", nodec)));
  if (t) {
    CHECK_OK(lacos_tokenizer_decode(t, &text, &len, (const int32_t[]){3, 5, 8}, 3, 0));
    CHECK(!strcmp(text, "ab abc Ġa"));
    const int32_t *ids;
    int n;
    CHECK_OK(lacos_tokenizer_encode(t, &ids, &n, "abc a", -1));   /* GPT-2's regex: "abc", " a" */
    CHECK(n == 2 && ids[0] == 5 && ids[1] == 8);
    lacos_tokenizer_free(t);
  }
  /* The scan (short words) and the heap (long words) agree on real words. */
  CHECK_OK(lacos_tokenizer_load(&t, fixture("bloomlike-32k.json")));
  if (!t) return;
  const char *words[] = {"internationalization", " Donaudampfschiffahrtsgesellschaftskapitän", " антидисэстаблишментарианство",
                         " 東京特許許可局許可局長", " 😀😃😄😁😆😅", " pneumonoultramicroscopicsilicovolcanoconiosis",
                         " aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", " ababababababababababababababababab"};
  for (size_t i = 0; i < sizeof words / sizeof *words; i++) {
    int32_t a[512], b[512];
    int na = 0, nb = 0;
    CHECK_OK(tokenizer_bpe(t, (const uint8_t *)words[i], strlen(words[i]), 0, a, 512, &na));
    CHECK_OK(tokenizer_bpe(t, (const uint8_t *)words[i], strlen(words[i]), 1, b, 512, &nb));
    CHECK(na == nb && !memcmp(a, b, (size_t)na * sizeof *a));
  }
  lacos_tokenizer_free(t);
}

/* ------------------------------------------------------------ bad files */

static void test_bad_files(void) {
  lacos_tokenizer *t = NULL;
  CHECK_FAIL(lacos_tokenizer_load(&t, "/nonexistent/tokenizer.json"), LACOS_ENOTFOUND, "/nonexistent/tokenizer.json: No such file");
  CHECK_FAIL(lacos_tokenizer_load(&t, test_tmpdir()), LACOS_EIO, "is a directory");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("empty.json", "")), LACOS_EFORMAT, "malformed JSON");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("trunc.json", "{\"model\": {\"vocab\": {\"a\": 0}")), LACOS_EFORMAT, "trunc.json:1:");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("array.json", "[1, 2]")), LACOS_EFORMAT, "not an object");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("nomodel.json", "{\"version\":\"1.0\"}")), LACOS_EFORMAT, "no \"model\" section");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("ver.json", "{\"version\":\"2.0\",\"model\":{}}")), LACOS_EUNSUPPORTED, "version");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("uni.json", "{\"type\":\"Unigram\",\"vocab\":[]}", NULL)), LACOS_EUNSUPPORTED,
             "model.type is \"Unigram\"; lacos runs BPE and WordPiece models");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("novocab.json", "{\"type\":\"BPE\",\"merges\":[]}", NULL)), LACOS_EFORMAT, "model.vocab is missing");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("nomerges.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0}}", NULL)), LACOS_EFORMAT,
             "model.merges is missing");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("badid.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"},\"merges\":[]}", NULL)),
             LACOS_EFORMAT, "non-negative integer");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("negid.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}", NULL)),
             LACOS_EFORMAT, "non-negative integer");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("dupid.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}", NULL)),
             LACOS_EFORMAT, "both have id 0");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("dupkey.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}", NULL)),
             LACOS_EFORMAT, "duplicate");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("bigid.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":2000000000},\"merges\":[]}", NULL)),
             LACOS_ELIMIT, "id 2000000000");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("unkmerge.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a q\"]}", NULL)),
             LACOS_EFORMAT, "model.merges[0]: \"q\" is not in model.vocab");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("unkmerged.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[[\"a\",\"b\"]]}", NULL)),
             LACOS_EFORMAT, "\"ab\" is not in model.vocab");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("badmerge.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b c\"]}", NULL)),
             LACOS_EFORMAT, "two tokens separated by one space");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("badmerge2.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}", NULL)),
             LACOS_EFORMAT, "model.merges[0] must be");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("unk.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}", NULL)),
             LACOS_EFORMAT, "unk_token");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("drop.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}", NULL)),
             LACOS_EUNSUPPORTED, "dropout");
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("suffix.json", "{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"end_of_word_suffix\":\"</w>\"}", NULL)),
             LACOS_EUNSUPPORTED, "end_of_word_suffix");
  const char *nfkc = write_tmp("nfkc.json",
    "{\"normalizer\":{\"type\":\"NFKC\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}");
  CHECK_FAIL(lacos_tokenizer_load(&t, nfkc), LACOS_EUNSUPPORTED, "normalizer type \"NFKC\"");
  CHECK_OK(lacos_tokenizer_load(&t, write_tmp("emptyseq.json",   /* an empty normalizer Sequence does nothing */
    "{\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")));
  lacos_tokenizer_free(t);
  t = NULL;
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("ws.json",
    "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
    LACOS_EUNSUPPORTED, "pre_tokenizer type \"Whitespace\"");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("nopre.json", "{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
             LACOS_EUNSUPPORTED, "pre_tokenizer is null");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("splitonly.json",
    "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
    "\"behavior\":\"Isolated\",\"invert\":false}]},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
    LACOS_EUNSUPPORTED, "followed by ByteLevel");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("bound.json",
    "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\bx\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\"}]},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
    LACOS_EUNSUPPORTED, "pre_tokenizer.pretokenizers[0].pattern");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("badre.json",
    "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},"
    "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\"}]},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
    LACOS_EFORMAT, "cannot compile the regex");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("behav.json",
    "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},"
    "\"behavior\":\"Sideways\",\"invert\":false},{\"type\":\"ByteLevel\"}]},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
    LACOS_EFORMAT, "behavior must be");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("dec.json",
    "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"WordPiece\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
    LACOS_EUNSUPPORTED, "decoder type \"WordPiece\"");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("post.json",
    "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"post_processor\":{\"type\":\"RobertaProcessing\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}")),
    LACOS_EUNSUPPORTED, "post_processor type \"RobertaProcessing\"");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("addedid2.json",
    "{\"added_tokens\":[{\"id\":1,\"content\":\"<mask>\",\"special\":true}],\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]}}")), LACOS_EFORMAT, "which \"b\" already has");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("addedbad.json",
    "{\"added_tokens\":[{\"id\":1}],\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}")), LACOS_EFORMAT, "added_tokens[0] must be an object");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("trunc2.json",
    "{\"truncation\":{\"max_length\":0},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}")), LACOS_EFORMAT, "truncation.max_length");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("pad.json",
    "{\"padding\":{\"strategy\":\"Sometimes\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}")), LACOS_EFORMAT, "padding.strategy");
  CHECK_FAIL(lacos_tokenizer_load(&t, write_tmp("side.json",
    "{\"padding\":{\"direction\":\"Up\"},\"pre_tokenizer\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}")), LACOS_EFORMAT, "padding.direction");
  CHECK(t == NULL);
}

/* Caps: a file past them fails with a clear limit error before building anything big. */
static void test_limits(void) {
  lacos_tokenizer *t = NULL;
  tokenizer_limits saved = tokenizer_limits_current;
  tokenizer_limits_current.merges = 3;
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("lim1.json", SMALL_MODEL, NULL)), LACOS_ELIMIT, "model.merges has 5 entries, more than the 3");
  tokenizer_limits_current = saved;
  tokenizer_limits_current.vocab = 4;
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("lim2.json", SMALL_MODEL, NULL)), LACOS_ELIMIT, "model.vocab has 9 tokens");
  tokenizer_limits_current = saved;
  tokenizer_limits_current.file_bytes = 100;
  CHECK_FAIL(lacos_tokenizer_load(&t, tok_json("lim3.json", SMALL_MODEL, NULL)), LACOS_ELIMIT, "lim3.json: file is");
  tokenizer_limits_current = saved;
  /* A real file with millions of merges, under the default caps. */
  char big[4096];
  snprintf(big, sizeof big, "%s/many-merges.json", test_tmpdir());
  FILE *f = fopen(big, "wb");
  CHECK(f != NULL);
  if (f) {
    fputs("{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[", f);
    int n = saved.merges + 1;
    for (int i = 0; i < n; i++) fputs(i ? ",\"a b\"" : "\"a b\"", f);
    fputs("]}}", f);
    fclose(f);
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    CHECK_FAIL(lacos_tokenizer_load(&t, big), LACOS_ELIMIT, "model.merges has 2000001 entries, more than the 2000000 lacos allows");
    printf("#   %d merges refused in %.2f s of CPU\n", n, (double)clock() / CLOCKS_PER_SEC - t0);
    remove(big);
  }
  CHECK(t == NULL);
}

static void test_encode_errors(void) {
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, fixture("bloomlike-32k.json")));
  if (!t) return;
  const int32_t *ids;
  int n;
  CHECK_FAIL(lacos_tokenizer_encode(t, &ids, &n, "ok \xff here", -1), LACOS_EINVAL, "invalid UTF-8 at byte 3 (0xff)");
  CHECK_FAIL(lacos_tokenizer_encode(t, &ids, &n, "caf\xc3", 4), LACOS_EINVAL, "invalid UTF-8 at byte 3 (0xc3: the text ends inside a character)");
  CHECK_FAIL(lacos_tokenizer_encode(t, &ids, &n, "\xed\xa0\x80", 3), LACOS_EINVAL, "invalid UTF-8 at byte 0");
  CHECK_FAIL(lacos_tokenizer_encode(t, &ids, &n, "\xc0\xaf", 2), LACOS_EINVAL, "invalid UTF-8 at byte 0");
  CHECK_OK(lacos_tokenizer_encode(t, &ids, &n, "", 0));
  CHECK(n == 0);
  CHECK_OK(lacos_tokenizer_encode(t, &ids, &n, "a\0b", 3));   /* NUL is a character like any other */
  CHECK(n >= 2);
  const char *texts[3] = {"fine", "also fine", "bad \xfe"};
  const int32_t *off;
  CHECK_FAIL(lacos_tokenizer_encode_list(t, &ids, &off, texts, NULL, 3), LACOS_EINVAL, "text 3: invalid UTF-8 at byte 4");
  const char *text;
  double len;
  int32_t bad_ids[2] = {5, 999999};
  CHECK_FAIL(lacos_tokenizer_decode(t, &text, &len, bad_ids, 2, 0), LACOS_EINVAL, "id 999999 (position 2) is not a token");
  int32_t neg[1] = {-1};
  CHECK_FAIL(lacos_tokenizer_decode(t, &text, &len, neg, 1, 0), LACOS_EINVAL, "id -1");
  /* Batches: a text longer than max_length is an error unless truncation is on. */
  lacos_tokenizer_batch_options o;
  lacos_tokenizer_batch_options_init(t, &o);
  CHECK(o.max_length == 0 && o.truncation == 0 && o.pad_id == 3 && o.padding_side == LACOS_TOKENIZER_RIGHT);
  o.max_length = 3;
  lacos_tensor *bi = NULL, *bm = NULL;
  const char *two[2] = {"one two three four five", "six"};
  CHECK_FAIL(lacos_tokenizer_encode_batch(&bi, &bm, t, two, NULL, 2, &o), LACOS_ELIMIT,
             "text 1 has 5 tokens, more than the maximum length 3 (turn truncation on");
  o.truncation = 1;
  CHECK_OK(lacos_tokenizer_encode_batch(&bi, &bm, t, two, NULL, 2, &o));
  if (bi) {
    CHECK(bi->shape[0] == 2 && bi->shape[1] == 3);
    const int32_t *full;
    int nf;
    CHECK_OK(lacos_tokenizer_encode(t, &full, &nf, two[0], -1));
    int32_t *p = bi->data, *m = bm->data;
    CHECK(p[0] == full[0] && p[1] == full[1] && p[2] == full[2]);
    CHECK(m[0] == 1 && m[1] == 1 && m[2] == 1 && m[3] == 1 && m[4] == 1 && m[5] == 0 && p[5] == 3);   /* "six" is 2 tokens */
  }
  lacos_tensor_free(bi);
  lacos_tensor_free(bm);
  o.truncation_side = LACOS_TOKENIZER_LEFT;
  o.padding_side = LACOS_TOKENIZER_LEFT;
  o.pad_to_multiple_of = 4;
  CHECK_OK(lacos_tokenizer_encode_batch(&bi, &bm, t, two, NULL, 2, &o));
  if (bi) {
    const int32_t *full;
    int nf;
    CHECK_OK(lacos_tokenizer_encode(t, &full, &nf, two[0], -1));
    int32_t *p = bi->data, *m = bm->data;
    CHECK(bi->shape[1] == 4);
    CHECK(p[0] == 3 && m[0] == 0 && p[1] == full[nf - 3] && p[3] == full[nf - 1] && m[3] == 1);
    CHECK(m[4] == 0 && m[5] == 0 && m[6] == 1 && m[7] == 1 && p[4] == 3 && p[5] == 3);
  }
  lacos_tensor_free(bi);
  lacos_tensor_free(bm);
  o.pad_id = -1;
  o.max_length = 0;
  o.truncation = 0;
  CHECK_FAIL(lacos_tokenizer_encode_batch(&bi, &bm, t, two, NULL, 2, &o), LACOS_EINVAL, "text 1 needs padding but the tokenizer has no pad token");
  o.pad_id = 5000000;
  CHECK_FAIL(lacos_tokenizer_encode_batch(&bi, &bm, t, two, NULL, 2, &o), LACOS_EINVAL, "pad id 5000000");
  CHECK_OK(lacos_tokenizer_encode_batch(&bi, &bm, t, NULL, NULL, 0, NULL));
  CHECK(bi && bi->shape[0] == 0);
  lacos_tensor_free(bi);
  lacos_tensor_free(bm);
  lacos_tokenizer_free(t);
}

/* Mutated files and random bytes: an error or a result, never a crash. */
static void test_fuzz(void) {
  static char basejson[4096];
  snprintf(basejson, sizeof basejson,
    "{\"added_tokens\":[{\"id\":9,\"content\":\"<s>\",\"special\":true,\"lstrip\":true,\"rstrip\":true}],"
    "\"padding\":{\"strategy\":{\"Fixed\":4},\"direction\":\"Left\",\"pad_id\":1},\"truncation\":{\"max_length\":3},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a+\"},"
    "\"behavior\":\"MergedWithNext\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":true}]},"
    "\"decoder\":{\"type\":\"ByteLevel\"},\"model\":%s}", SMALL_MODEL);
  const char *base = write_tmp("fuzz-base.json", basejson);
  char *orig = NULL;
  size_t n = 0;
  CHECK_OK(file_read_all(base, 1 << 20, &orig, &n));
  if (!orig) return;
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, base));
  lacos_tokenizer_free(t);
  uint64_t seed = 12345;
  int loaded = 0;
  char *m = malloc(n + 1);
  for (int i = 0; i < 400; i++) {
    memcpy(m, orig, n + 1);
    int k = 1 + (int)(rng_u64(seed, (uint64_t)i * 8) % 3);
    for (int j = 0; j < k; j++) {
      size_t at = rng_u64(seed, (uint64_t)i * 8 + 1 + (uint64_t)j) % n;
      static const char pool[] = "{}[]\",:0123456789 abc\\-";
      m[at] = pool[rng_u64(seed, (uint64_t)i * 8 + 5 + (uint64_t)j) % (sizeof pool - 1)];
    }
    const char *path = write_tmp("fuzz.json", m);
    t = NULL;
    if (lacos_tokenizer_load(&t, path) == LACOS_OK) {
      loaded++;
      const int32_t *ids;
      int ni;
      if (lacos_tokenizer_encode(t, &ids, &ni, " ab<s> abc  aaa", -1) == LACOS_OK) {
        const char *text;
        double len;
        int32_t copy[64];
        for (int q = 0; q < ni && q < 64; q++) copy[q] = ids[q];
        lacos_tokenizer_decode(t, &text, &len, copy, ni < 64 ? ni : 64, 1);
      }
      lacos_tensor *a = NULL, *b = NULL;
      const char *two[2] = {"abc abc", "a"};
      lacos_tokenizer_encode_batch(&a, &b, t, two, NULL, 2, NULL);
      lacos_tensor_free(a);
      lacos_tensor_free(b);
      lacos_tokenizer_free(t);
    } else CHECK(lacos_last_error()[0] != 0);
  }
  free(m);
  mem_free(orig);
  printf("#   %d of 400 mutated files still loaded\n", loaded);
  /* Random bytes through the real tokenizer. */
  CHECK_OK(lacos_tokenizer_load(&t, fixture("bloomlike-32k.json")));
  if (!t) return;
  int valid = 0;
  for (int i = 0; i < 3000; i++) {
    uint8_t buf[64];
    int len = (int)(rng_u64(seed + 1, (uint64_t)i * 70) % 64);
    for (int j = 0; j < len; j++) {
      uint64_t r = rng_u64(seed + 1, (uint64_t)i * 70 + 1 + (uint64_t)j);
      buf[j] = (uint8_t)(r % 4 == 0 ? 0x80 + r % 0x80 : r % 4 == 1 ? 0xC0 + (r >> 8) % 0x38 : r % 4 == 2 ? ' ' : 'a' + (r >> 8) % 26);
    }
    const int32_t *ids;
    int ni;
    int s = lacos_tokenizer_encode(t, &ids, &ni, (const char *)buf, len);
    size_t bad;
    bool ok = tok_utf8_valid(buf, (size_t)len, &bad);
    CHECK(s == (ok ? LACOS_OK : LACOS_EINVAL));
    if (s == LACOS_OK) {
      valid++;
      const char *text;
      double dl;
      int32_t copy[128];
      int m2 = ni < 128 ? ni : 128;
      memcpy(copy, ids, (size_t)m2 * sizeof *copy);
      CHECK_OK(lacos_tokenizer_decode(t, &text, &dl, copy, m2, 0));
      if (ni < 128) CHECK(dl == len && !memcmp(text, buf, (size_t)len));   /* all 256 bytes are tokens: lossless */
    }
  }
  printf("#   %d of 3000 random byte strings were valid UTF-8\n", valid);
  lacos_tokenizer_free(t);
}

/* ------------------------------------------------------------ the dataset sweep */

static void test_dataset_digests(void) {
  const char *data = getenv("LACOS_TEST_DATA");
  struct stat st;
  if (!data || stat(data, &st) != 0) { SKIP("test_dataset_digests", "the shared datasets are not there (LACOS_TEST_DATA)"); return; }
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, fixture("bloomlike-32k.json")));
  dataset_sweep sw = {0};
  char sources[4096 + 256];
  snprintf(sources, sizeof sources, "%s", fixture("sources.json"));   /* fixture() reuses one buffer */
  dataset_sweep_run(&sw, t, data, sources, fixture("expected-bloomlike.json"));
  printf("#   %d files, %lld texts, %lld tokens in %.1f s (%d threads), %d mismatches\n", sw.n_files, sw.n_texts,
         sw.n_tokens, sw.seconds, lacos_threads_get(), sw.bad);
  printf("#   the first texts of every file, one by one: %d checked, %d differ\n", sw.n_samples, sw.samples_bad);
  CHECK(sw.bad == 0);
  CHECK(sw.samples_bad == 0 && sw.n_samples >= 1500);
  CHECK(sw.n_files == sw.n_listed && sw.n_files >= 127);
  lacos_tokenizer_free(t);
}

/* The same ids whatever the thread count. */
static void test_threads_agree(void) {
  lacos_tokenizer *t = NULL;
  CHECK_OK(lacos_tokenizer_load(&t, fixture("bloomlike-32k.json")));
  if (!t) return;
  enum { N = 2000 };
  static char bufs[N][96];
  const char *tx[N];
  for (int i = 0; i < N; i++) {
    snprintf(bufs[i], sizeof bufs[i], "sentence number %d, with words %x and %o; ünïcödé %d", i, i * 7919, i * 31, i % 13);
    tx[i] = bufs[i];
  }
  int saved = lacos_threads_get();
  lacos_threads_set(1);
  const int32_t *ids, *off;
  CHECK_OK(lacos_tokenizer_encode_list(t, &ids, &off, tx, NULL, N));
  size_t total = (size_t)off[N];
  int32_t *copy = malloc(total * sizeof *copy), *offc = malloc((N + 1) * sizeof *offc);
  memcpy(copy, ids, total * sizeof *copy);
  memcpy(offc, off, (N + 1) * sizeof *offc);
  lacos_threads_set(4);
  CHECK_OK(lacos_tokenizer_encode_list(t, &ids, &off, tx, NULL, N));
  CHECK((size_t)off[N] == total && !memcmp(ids, copy, total * sizeof *copy) && !memcmp(off, offc, (N + 1) * sizeof *offc));
  for (int i = 0; i < 50; i++) {
    const int32_t *one;
    int n;
    CHECK_OK(lacos_tokenizer_encode(t, &one, &n, tx[i * 37], -1));
    CHECK(n == offc[i * 37 + 1] - offc[i * 37] && !memcmp(one, copy + offc[i * 37], (size_t)n * sizeof *one));
  }
  lacos_threads_set(saved);
  free(copy);
  free(offc);
  lacos_tokenizer_free(t);
}

int main(void) {
  const char *root = getenv("LACOS_ROOT");
  snprintf(fixdir, sizeof fixdir, "%s/tests/fixtures/tokenizer", root ? root : ".");
  RUN(test_byte_map);
  RUN(test_utf8);
  RUN(test_regex_translate);
  RUN(test_bloom_pieces);
  RUN(test_bpe_order);
  RUN(test_bad_files);
  RUN(test_limits);
  RUN(test_encode_errors);
  RUN(test_threads_agree);
  RUN(test_fuzz);
  RUN(test_dataset_digests);
  TEST_EXIT();
}
