/* tokenizer.c: Hugging Face tokenizer.json byte-level BPE, exactly as BLOOM's,
   and the shared machinery (vocabulary, added tokens, batches, truncation,
   padding, decoding) that a WordPiece model (BERT's: wordpiece.c) and the
   special-token templates (tokenizer_template.c) plug into.

   Matches huggingface/tokenizers:
   - tokenizers/src/tokenizer/added_vocabulary.rs: added tokens split the text
     before anything else (leftmost-longest; tokens with normalized = false
     first, then normalized ones inside the remaining gaps; single_word,
     lstrip, rstrip as find_matches applies them);
   - pre_tokenizers/split.rs, tokenizer/normalizer.rs (split), pattern.rs: the
     Split pre-tokenizer and its five behaviours; pre_tokenizers/byte_level.rs:
     bytes_char, the GPT-2 regex, add_prefix_space and the ByteLevel decoder;
   - models/bpe/model.rs and word.rs: merges applied by rank (lowest rank
     first, leftmost on ties), characters missing from the vocabulary dropped
     or mapped to unk_token (fused with fuse_unk) or to <0xXX> byte tokens;
   - tokenizer/serialization.rs, models/bpe/serialization.rs: the file format
     ("a b" and ["a", "b"] merges, added-token ids);
   - utils/truncation.rs, utils/padding.rs, tokenizer/mod.rs (post_process):
     truncation (room left for the post-processor's special tokens; the
     LongestFirst, OnlyFirst and OnlySecond strategies for pairs), the
     template, then padding;
   - tokenizer/added_vocabulary.rs (extract_and_normalize): a WordPiece
     tokenizer's normalizer runs on the gaps between the normalized = false
     added tokens, before the normalized ones are looked for.
   The regexes are Oniguruma patterns upstream; here they run on PCRE2 (UTF,
   UCP, JIT) after tok_regex_translate gives them the same meaning. Pieces
   seen before come from a per-thread cache, so most words skip the merges. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_internal.h"
#include "utf8.h"
#include <jansson.h>
#include <pcre2.h>
#include <pthread.h>
#ifdef _OPENMP
#include <omp.h>
#endif

tokenizer_limits tokenizer_limits_current = {
  .file_bytes = (size_t)256 << 20,   /* BLOOM's file is 14.5 MB */
  .vocab = 2000000,                  /* BLOOM: 250,680 tokens */
  .merges = 2000000,                 /* BLOOM: about 250k merges */
  .added = 200000,
  .max_id = 4000000,
  .token_bytes = 65536,
};

/* ------------------------------------------------------------ byte map */

static uint16_t byte_char_tab[256];
static int16_t char_byte_tab[512];
static uint8_t byte_utf8[256][2], byte_utf8_len[256];
static pthread_once_t byte_map_once = PTHREAD_ONCE_INIT;

static void byte_map_init(void) {
  int n = 0;
  for (int b = 0; b < 256; b++) {
    bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    byte_char_tab[b] = (uint16_t)(self ? b : 256 + n++);
  }
  for (int c = 0; c < 512; c++) char_byte_tab[c] = -1;
  for (int b = 0; b < 256; b++) {
    uint32_t c = byte_char_tab[b];
    char_byte_tab[c] = (int16_t)b;
    if (c < 0x80) { byte_utf8[b][0] = (uint8_t)c; byte_utf8_len[b] = 1; }
    else { byte_utf8[b][0] = (uint8_t)(0xC0 | (c >> 6)); byte_utf8[b][1] = (uint8_t)(0x80 | (c & 63)); byte_utf8_len[b] = 2; }
  }
}

uint32_t tok_byte_char(int b) {
  pthread_once(&byte_map_once, byte_map_init);
  return b >= 0 && b < 256 ? byte_char_tab[b] : 0;
}

int tok_char_byte(uint32_t cp) {
  pthread_once(&byte_map_once, byte_map_init);
  return cp < 512 ? char_byte_tab[cp] : -1;
}

/* ------------------------------------------------------------ UTF-8 */

/* Length of the valid sequence at s, or minus the length of its maximal
   invalid subpart (the bytes Rust's from_utf8_lossy turns into one U+FFFD). */
static int utf8_step(const uint8_t *s, size_t n) {
  uint8_t c = s[0];
  if (c < 0x80) return 1;
  int need;
  uint8_t lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) need = 1;
  else if (c == 0xE0) { need = 2; lo = 0xA0; }
  else if (c >= 0xE1 && c <= 0xEC) need = 2;
  else if (c == 0xED) { need = 2; hi = 0x9F; }
  else if (c == 0xEE || c == 0xEF) need = 2;
  else if (c == 0xF0) { need = 3; lo = 0x90; }
  else if (c >= 0xF1 && c <= 0xF3) need = 3;
  else if (c == 0xF4) { need = 3; hi = 0x8F; }
  else return -1;
  for (int k = 1; k <= need; k++) {
    if ((size_t)k >= n) return -k;
    uint8_t b = s[k];
    if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return -k;
  }
  return need + 1;
}

bool tok_utf8_valid(const uint8_t *s, size_t n, size_t *bad) {
  size_t i = 0;
  while (i < n) {
    if (i + 8 <= n) {
      uint64_t v;
      memcpy(&v, s + i, 8);
      if (!(v & 0x8080808080808080ull)) { i += 8; continue; }
    }
    int k = utf8_step(s + i, n - i);
    if (k < 0) { if (bad) *bad = i; return false; }
    i += (size_t)k;
  }
  return true;
}

size_t tok_utf8_lossy(uint8_t *out, const uint8_t *s, size_t n) {
  size_t i = 0, o = 0;
  while (i < n) {
    int k = utf8_step(s + i, n - i);
    if (k > 0) { memcpy(out + o, s + i, (size_t)k); o += (size_t)k; i += (size_t)k; }
    else { out[o++] = 0xEF; out[o++] = 0xBF; out[o++] = 0xBD; i += (size_t)-k; }
  }
  return o;
}

static int utf8_len_of(uint8_t c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

/* Start of the character that ends just before offset i. */
static size_t utf8_prev(const uint8_t *s, size_t i) {
  do i--; while (i > 0 && (s[i] & 0xC0) == 0x80);
  return i;
}


/* ------------------------------------------------------------ growable buffers */

typedef struct buf { void *p; size_t cap; } buf;

static int buf_reserve(buf *b, size_t need, const char *what) {
  if (need <= b->cap) return LACOS_OK;
  size_t nc = b->cap ? b->cap : 256;
  while (nc < need) {
    if (nc > SIZE_MAX / 2) return fail(LACOS_ENOMEM, "%s: size overflow", what);
    nc *= 2;
  }
  TRY(mem_realloc(&b->p, nc, what));
  b->cap = nc;
  return LACOS_OK;
}

static void buf_free(buf *b) { mem_free(b->p); b->p = NULL; b->cap = 0; }

/* ------------------------------------------------------------ hashing */

static inline uint64_t hash_bytes(const uint8_t *s, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, s, 8);
    h = (h ^ v) * 0xFF51AFD7ED558CCDull;
    h ^= h >> 32;
    s += 8;
    n -= 8;
  }
  uint64_t v = 0;
  memcpy(&v, s, n);
  h = (h ^ v) * 0xC4CEB9FE1A85EC53ull;
  h ^= h >> 29;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 32;
  return h;
}

static inline uint64_t hash_u64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xFF51AFD7ED558CCDull;
  x ^= x >> 33;
  return x;
}

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n) c *= 2;
  return c;
}

/* ------------------------------------------------------------ the tokenizer */

enum { STEP_SPLIT = 0, STEP_PREFIX = 1 };
enum { B_REMOVED = 0, B_ISOLATED = 1, B_MERGED_PREV = 2, B_MERGED_NEXT = 3, B_CONTIGUOUS = 4 };
enum { MAX_STEPS = 16 };
enum { TOK_MODEL = 1, TOK_ADDED = 2, TOK_SPECIAL = 4 };
enum { NO_TOKEN = UINT32_MAX };
enum { DEC_NONE = 0, DEC_BYTELEVEL = 1, DEC_WORDPIECE = 2 };

typedef struct pre_step {
  int kind, behavior, invert, jit;
  pcre2_code *re;
} pre_step;

typedef struct added_tok {
  int32_t id;
  uint32_t off, len;
  bool special, single_word, lstrip, rstrip, normalized;
  char *norm;            /* normalized = true and a normalizer: the content normalized (malloc'd), else NULL */
  uint32_t norm_len;
} added_tok;

/* A byte trie of added-token contents: children as sibling lists, the root's
   as a direct table. */
typedef struct trie {
  int32_t root[256];
  int32_t *child, *sibling, *token;
  uint8_t *byte;
  int n, cap, tokens;
} trie;

typedef struct merge_slot { uint64_t key; uint32_t rank; int32_t id; } merge_slot;
#define MERGE_EMPTY UINT64_MAX

typedef struct strmap { uint64_t *slot; size_t mask; } strmap;   /* hash high bits << 32 | (index + 1) */

typedef struct pcache_slot { uint64_t hash; uint32_t key_off, ids_off; uint16_t key_len, n_ids; } pcache_slot;
enum { CACHE_SLOTS = 1 << 16, CACHE_ENTRIES = 1 << 15, CACHE_KEY_MAX = 128,
       CACHE_KEY_BYTES = 2 << 20, CACHE_IDS = 1 << 18 };

typedef struct range { uint32_t start, end; int match; } range;

/* Per-thread encoding state: regex match data, scratch, output, piece cache. */
typedef struct tok_ctx {
  pcre2_match_data *md[MAX_STEPS];
  pcre2_match_data *word_md;
  pcre2_match_context *mctx;
  pcre2_jit_stack *jit;
  buf ids;
  size_t n_ids;
  buf sym, nid, rank, nxt, prv, heap, pbuf, tmp;
  buf lvl[MAX_STEPS];
  pcache_slot *cslot;
  uint8_t *ckeys;
  int32_t *cids;
  size_t c_used, ckeys_used, cids_used;
  tok_piece_fn piece_fn;
  void *piece_ud;
  tok_wp_scratch *wps;       /* WordPiece tokenizers: normalizer and matching scratch */
  int status, failed_at;
  char message[512];
} tok_ctx;

struct lacos_tokenizer {
  char *path;
  int n_ids;                 /* largest id + 1 */
  uint32_t *tok_off, *tok_len;
  uint8_t *tok_flags;
  char *arena;
  size_t arena_len, arena_cap;
  strmap vocab_map, added_map;
  int n_vocab;
  merge_slot *merges;
  size_t merges_mask;
  int n_merges;
  int32_t byte_id[256];
  int32_t byte_fb[256][2];
  int8_t byte_fb_n[256];
  int unk_id;
  bool fuse_unk, byte_fallback, ignore_merges;
  added_tok *added;
  int n_added;
  trie trie_raw, trie_norm;
  pcre2_code *word_re;
  pre_step steps[MAX_STEPS];
  int n_steps;
  int decoder;
  tok_wordpiece *wp;         /* a WordPiece model with BERT's normalizer and pre-tokenizer; NULL: BPE */
  tok_template *post;        /* special tokens around the text(s); NULL: none */
  lacos_tokenizer_batch_options batch;
  tok_ctx **ctx;
  int n_ctx;
  buf list_ids, list_off, list_who, list_at, list_cnt, dec, dec_raw;
  buf b_ids, b_off, out_ids, out_off, one;   /* second texts of pairs; rows with special tokens */
};

/* ------------------------------------------------------------ string maps */

static const uint8_t *vocab_key(const lacos_tokenizer *t, uint32_t id, size_t *len) {
  *len = t->tok_len[id];
  return (const uint8_t *)t->arena + t->tok_off[id];
}
static const uint8_t *added_key(const lacos_tokenizer *t, uint32_t i, size_t *len) {
  *len = t->added[i].len;
  return (const uint8_t *)t->arena + t->added[i].off;
}

static int strmap_init(strmap *m, size_t n, const char *what) {
  size_t cap = pow2_at_least(2 * n + 2);
  TRY(mem_calloc(&m->slot, cap, sizeof *m->slot, what));
  m->mask = cap - 1;
  return LACOS_OK;
}
static void strmap_free(strmap *m) {
  mem_free(m->slot);
  m->slot = NULL;
}

typedef const uint8_t *(*key_fn)(const lacos_tokenizer *, uint32_t, size_t *);

static int64_t strmap_get(const lacos_tokenizer *t, const strmap *m, key_fn key, const uint8_t *s, size_t n) {
  if (!m->slot) return -1;
  uint64_t h = hash_bytes(s, n), tag = h >> 32;
  for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
    uint64_t v = m->slot[i];
    if (!v) return -1;
    if ((v >> 32) == tag) {
      uint32_t idx = (uint32_t)(v & 0xFFFFFFFFu) - 1;
      size_t kl;
      const uint8_t *k = key(t, idx, &kl);
      if (kl == n && memcmp(k, s, n) == 0) return idx;
    }
  }
}

/* Inserts index idx whose key is s (not present yet). */
static void strmap_put(strmap *m, const uint8_t *s, size_t n, uint32_t idx) {
  uint64_t h = hash_bytes(s, n), tag = h >> 32;
  size_t i = h & m->mask;
  while (m->slot[i]) i = (i + 1) & m->mask;
  m->slot[i] = (tag << 32) | (uint64_t)(idx + 1);
}

static int token_id(const lacos_tokenizer *t, const uint8_t *s, size_t n) {
  int64_t a = strmap_get(t, &t->added_map, added_key, s, n);
  if (a >= 0) return t->added[a].id;
  return (int)strmap_get(t, &t->vocab_map, vocab_key, s, n);
}

static int64_t vocab_find(const lacos_tokenizer *t, const uint8_t *s, size_t n) {
  return strmap_get(t, &t->vocab_map, vocab_key, s, n);
}
static bool id_known(const lacos_tokenizer *t, int64_t id) {
  return id >= 0 && id < t->n_ids && t->tok_len[id] != NO_TOKEN;
}
/* The vocabulary as wordpiece.c and tokenizer_template.c read it. */
static tok_vocab vocab_of(const lacos_tokenizer *t) { return (tok_vocab){ t, vocab_find, id_known, t->n_ids }; }

/* ------------------------------------------------------------ merges */

static inline const merge_slot *merge_find(const lacos_tokenizer *t, int32_t a, int32_t b) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  for (size_t i = hash_u64(key) & t->merges_mask;; i = (i + 1) & t->merges_mask) {
    const merge_slot *s = &t->merges[i];
    if (s->key == key) return s;
    if (s->key == MERGE_EMPTY) return NULL;
  }
}

/* A later merge of the same pair replaces the earlier one, as collecting the
   merges into upstream's HashMap does. */
static void merge_put(lacos_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t id) {
  uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
  for (size_t i = hash_u64(key) & t->merges_mask;; i = (i + 1) & t->merges_mask) {
    merge_slot *s = &t->merges[i];
    if (s->key == key || s->key == MERGE_EMPTY) {
      if (s->key == MERGE_EMPTY) t->n_merges++;
      s->key = key;
      s->rank = rank;
      s->id = id;
      return;
    }
  }
}

/* ------------------------------------------------------------ regex translation */

typedef struct sbuf { char *p; size_t n, cap; bool oom; } sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t nc = b->cap ? b->cap * 2 : 64;
    while (nc < b->n + n + 1) nc *= 2;
    if (mem_realloc(&b->p, nc, "regex translation")) { b->oom = true; return; }
    b->cap = nc;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

#define ONIG_WORD "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}"

int tok_regex_translate(char **out, const char *p, size_t n) {
  *out = NULL;
  sbuf b = {0};
  int depth = 0;   /* 0 outside a class, 1 in a class, more in nested classes */
  size_t i = 0;
  const char *why = NULL;
  while (i < n && !why) {
    char c = p[i];
    if (c == '\\') {
      if (i + 1 >= n) { sb_add(&b, p + i, 1); i++; continue; }
      char d = p[i + 1];
      switch (d) {
      case 's': sb_str(&b, "\\p{White_Space}"); break;
      case 'S': sb_str(&b, "\\P{White_Space}"); break;
      case 'w': sb_str(&b, depth ? ONIG_WORD : "[" ONIG_WORD "]"); break;
      case 'W':
        if (depth) why = "\\W inside a character class";
        else sb_str(&b, "[^" ONIG_WORD "]");
        break;
      case 'h': sb_str(&b, depth ? "0-9a-fA-F" : "[0-9a-fA-F]"); break;
      case 'H':
        if (depth) why = "\\H inside a character class";
        else sb_str(&b, "[^0-9a-fA-F]");
        break;
      case 'b': case 'B': why = "word boundaries (\\b, \\B)"; break;
      case 'K': why = "\\K"; break;
      default:
        if ((unsigned char)d >= 0x80) { sb_add(&b, p + i, 1); i++; continue; }
        sb_add(&b, p + i, 2);
      }
      i += 2;
      continue;
    }
    if (c == '[') {
      if (depth == 0) {
        depth = 1;
        sb_add(&b, "[", 1);
        i++;
        if (i < n && p[i] == '^') { sb_add(&b, "^", 1); i++; }
        if (i < n && p[i] == ']') { sb_add(&b, "]", 1); i++; }
        continue;
      }
      if (i + 1 < n && p[i + 1] == ':') {   /* POSIX bracket [:alpha:] */
        const char *end = NULL;
        for (size_t j = i + 2; j + 1 < n; j++) if (p[j] == ':' && p[j + 1] == ']') { end = p + j + 2; break; }
        if (end) { sb_add(&b, p + i, (size_t)(end - (p + i))); i = (size_t)(end - p); continue; }
      }
      if (i + 1 < n && p[i + 1] == '^') { why = "a negated class nested in a class"; break; }
      depth++;   /* a nested class is a union: its members join the outer class */
      i++;
      continue;
    }
    if (c == ']' && depth) {
      if (depth == 1) sb_add(&b, "]", 1);
      depth--;
      i++;
      continue;
    }
    if (c == '&' && depth && i + 1 < n && p[i + 1] == '&') { why = "class intersection (&&)"; break; }
    if (c == '(' && !depth && i + 2 < n && p[i + 1] == '?') {
      /* Inline options: Ruby's (?m) is PCRE2's (?s). */
      size_t j = i + 2;
      while (j < n && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) j++;
      if (j > i + 2 && j < n && (p[j] == ')' || p[j] == ':')) {
        sb_add(&b, "(?", 2);
        for (size_t k = i + 2; k < j; k++) sb_add(&b, p[k] == 'm' ? "s" : p + k, 1);
        i = j;
        continue;
      }
    }
    sb_add(&b, &c, 1);
    i++;
  }
  if (why) { mem_free(b.p); return fail(LACOS_EUNSUPPORTED, "the regex uses %s, which lacos cannot run like Oniguruma does", why); }
  if (b.oom) { mem_free(b.p); return fail(LACOS_ENOMEM, "out of memory translating a regex"); }
  if (!b.p) sb_add(&b, "", 0);
  if (b.oom) return fail(LACOS_ENOMEM, "out of memory translating a regex");
  *out = b.p;
  return LACOS_OK;
}

static int regex_compile(pcre2_code **out, int *jit, const char *onig, size_t n, bool literal) {
  char *pat = NULL;
  if (literal) {
    /* Split with a String pattern matches it literally (regex::escape upstream). */
    sbuf b = {0};
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)onig[i];
      if (c < 0x80 && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
        char e[8];
        snprintf(e, sizeof e, "\\x{%x}", c);
        sb_str(&b, e);
      } else sb_add(&b, onig + i, 1);
    }
    if (!b.p) sb_add(&b, "", 0);
    if (b.oom) { mem_free(b.p); return fail(LACOS_ENOMEM, "out of memory compiling a regex"); }
    pat = b.p;
  } else TRY(tok_regex_translate(&pat, onig, n));
  pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
  if (cc) pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
  int err;
  PCRE2_SIZE off;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, strlen(pat),
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE | PCRE2_DOTALL, &err, &off, cc);
  pcre2_compile_context_free(cc);
  if (!re) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    int s = fail(LACOS_EFORMAT, "cannot compile the regex \"%.*s\" (as PCRE2 \"%s\"): %s at offset %zu",
                 (int)(n > 200 ? 200 : n), onig, pat, (const char *)msg, (size_t)off);
    mem_free(pat);
    return s;
  }
  mem_free(pat);
  /* LACOS_PCRE2_JIT=0 matches with PCRE2's interpreter: the same results,
     slower, and code that valgrind can follow (it reports false uses of
     uninitialised memory inside JIT-compiled matchers) */
  const char *no = getenv("LACOS_PCRE2_JIT");
  *jit = !(no && !strcmp(no, "0")) && pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
  *out = re;
  return LACOS_OK;
}

/* ------------------------------------------------------------ trie of added tokens */

/* A new node for byte; its index in *out. */
static int trie_node(trie *tr, uint8_t byte, int *out) {
  if (tr->n == tr->cap) {
    int nc = tr->cap ? tr->cap * 2 : 64;
    const char *what = "the added-token trie";
    TRY(mem_realloc(&tr->child, (size_t)nc * sizeof *tr->child, what));
    TRY(mem_realloc(&tr->sibling, (size_t)nc * sizeof *tr->sibling, what));
    TRY(mem_realloc(&tr->token, (size_t)nc * sizeof *tr->token, what));
    TRY(mem_realloc(&tr->byte, (size_t)nc, what));
    tr->cap = nc;
  }
  int i = tr->n++;
  tr->child[i] = tr->sibling[i] = tr->token[i] = -1;
  tr->byte[i] = byte;
  *out = i;
  return LACOS_OK;
}

static int trie_add(trie *tr, const uint8_t *s, size_t n, int token) {
  if (!tr->n) {
    for (int b = 0; b < 256; b++) tr->root[b] = -1;
    int first;
    TRY(trie_node(tr, 0, &first));
  }
  int cur = -1;
  for (size_t i = 0; i < n; i++) {
    int next = -1;
    if (cur < 0) next = tr->root[s[i]];
    else for (int k = tr->child[cur]; k >= 0; k = tr->sibling[k]) if (tr->byte[k] == s[i]) { next = k; break; }
    if (next < 0) {
      TRY(trie_node(tr, s[i], &next));
      if (cur < 0) tr->root[s[i]] = next;
      else { tr->sibling[next] = tr->child[cur]; tr->child[cur] = next; }
    }
    cur = next;
  }
  if (tr->token[cur] < 0) tr->tokens++;
  tr->token[cur] = token;
  return LACOS_OK;
}

/* The longest token starting at s[0]: its index, and its length in *len; -1 if none. */
static inline int trie_longest(const trie *tr, const uint8_t *s, size_t n, size_t *len) {
  int cur = tr->root[s[0]], best = -1;
  size_t i = 1;
  while (cur >= 0) {
    if (tr->token[cur] >= 0) { best = tr->token[cur]; *len = i; }
    if (i >= n) break;
    int next = -1;
    for (int k = tr->child[cur]; k >= 0; k = tr->sibling[k]) if (tr->byte[k] == s[i]) { next = k; break; }
    cur = next;
    i++;
  }
  return best;
}

static void trie_free(trie *tr) {
  mem_free(tr->child); mem_free(tr->sibling); mem_free(tr->token); mem_free(tr->byte);
  memset(tr, 0, sizeof *tr);
}

/* ------------------------------------------------------------ per-thread state */

static void ctx_free(tok_ctx *c) {
  if (!c) return;
  for (int k = 0; k < MAX_STEPS; k++) { if (c->md[k]) pcre2_match_data_free(c->md[k]); buf_free(&c->lvl[k]); }
  if (c->word_md) pcre2_match_data_free(c->word_md);
  if (c->mctx) pcre2_match_context_free(c->mctx);
  if (c->jit) pcre2_jit_stack_free(c->jit);
  buf_free(&c->ids); buf_free(&c->sym); buf_free(&c->nid); buf_free(&c->rank); buf_free(&c->nxt);
  buf_free(&c->prv); buf_free(&c->heap); buf_free(&c->pbuf); buf_free(&c->tmp);
  mem_free(c->cslot);
  mem_free(c->ckeys);
  mem_free(c->cids);
  tok_wp_scratch_free(c->wps);
  mem_free(c);
}

static int ctx_new(lacos_tokenizer *t, tok_ctx **out) {
  tok_ctx *c;
  TRY(meta_calloc(&c, 1, sizeof *c, "tokenizer state"));
  for (int k = 0; k < t->n_steps; k++) {
    if (t->steps[k].kind != STEP_SPLIT) continue;
    c->md[k] = pcre2_match_data_create_from_pattern(t->steps[k].re, NULL);
    if (!c->md[k]) { ctx_free(c); return fail(LACOS_ENOMEM, "out of memory creating regex match data"); }
  }
  if (t->word_re && !(c->word_md = pcre2_match_data_create_from_pattern(t->word_re, NULL))) {
    ctx_free(c);
    return fail(LACOS_ENOMEM, "out of memory creating regex match data");
  }
  /* A larger JIT stack than the 32 KiB default, for long pieces. */
  c->mctx = pcre2_match_context_create(NULL);
  c->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
  if (!c->mctx || !c->jit) { ctx_free(c); return fail(LACOS_ENOMEM, "out of memory creating the regex stack"); }
  pcre2_jit_stack_assign(c->mctx, NULL, c->jit);
  int s = mem_calloc(&c->cslot, CACHE_SLOTS, sizeof *c->cslot, "tokenizer piece cache");
  if (!s) s = mem_alloc(&c->ckeys, CACHE_KEY_BYTES, "tokenizer piece cache");
  if (!s) s = mem_alloc(&c->cids, CACHE_IDS * sizeof *c->cids, "tokenizer piece cache");
  if (!s && t->wp) s = tok_wp_scratch_new(&c->wps);
  if (s) { ctx_free(c); return s; }
  *out = c;
  return LACOS_OK;
}

static int ctx_ensure(lacos_tokenizer *t, int n) {
  if (n <= t->n_ctx) return LACOS_OK;
  TRY(meta_realloc(&t->ctx, (size_t)n * sizeof *t->ctx, "tokenizer state"));
  while (t->n_ctx < n) {
    TRY(ctx_new(t, &t->ctx[t->n_ctx]));
    t->n_ctx++;
  }
  return LACOS_OK;
}

static inline int emit_id(tok_ctx *c, int32_t id) {
  if ((c->n_ids + 1) * sizeof(int32_t) > c->ids.cap) TRY(buf_reserve(&c->ids, (c->n_ids + 1) * sizeof(int32_t), "token ids"));
  ((int32_t *)c->ids.p)[c->n_ids++] = id;
  return LACOS_OK;
}

/* ------------------------------------------------------------ BPE */

/* Symbols of a piece: one per byte (its byte-level character), characters
   missing from the vocabulary dropped, or unk / <0xXX> tokens as configured. */
static int bpe_symbols(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t n, size_t *m_out) {
  TRY(buf_reserve(&c->sym, (2 * n + 2) * sizeof(int32_t), "BPE scratch"));
  int32_t *sym = c->sym.p;
  size_t m = 0;
  int32_t unk = -1;   /* a pending unknown run */
  for (size_t i = 0; i < n; i++) {
    int32_t id = t->byte_id[s[i]];
    if (id >= 0) {
      if (unk >= 0) { sym[m++] = unk; unk = -1; }
      sym[m++] = id;
    } else if (t->byte_fallback && t->byte_fb_n[s[i]] > 0) {
      for (int k = 0; k < t->byte_fb_n[s[i]]; k++) sym[m++] = t->byte_fb[s[i]][k];
    } else if (t->unk_id >= 0) {
      if (unk >= 0 && !t->fuse_unk) sym[m++] = unk;
      unk = t->unk_id;
    }
  }
  if (unk >= 0) sym[m++] = unk;
  *m_out = m;
  return LACOS_OK;
}

/* Short words: ranks of neighbouring pairs in an array; each step merges the
   lowest rank, leftmost on ties — the order upstream's heap pops. */
static void bpe_scan(const lacos_tokenizer *t, int32_t *sym, uint32_t *rank, int32_t *nid, size_t *m_io) {
  size_t m = *m_io;
  for (size_t i = 0; i + 1 < m; i++) {
    const merge_slot *ms = merge_find(t, sym[i], sym[i + 1]);
    rank[i] = ms ? ms->rank : UINT32_MAX;
    nid[i] = ms ? ms->id : -1;
  }
  while (m > 1) {
    size_t best = 0;
    uint32_t br = rank[0];
    for (size_t i = 1; i + 1 < m; i++) if (rank[i] < br) { br = rank[i]; best = i; }
    if (br == UINT32_MAX) break;
    /* Symbol best+1 goes; pairs best+2.. move down one place. */
    sym[best] = nid[best];
    size_t after = m - best - 2, pairs_after = m >= best + 3 ? m - best - 3 : 0;
    memmove(sym + best + 1, sym + best + 2, after * sizeof *sym);
    memmove(rank + best + 1, rank + best + 2, pairs_after * sizeof *rank);
    memmove(nid + best + 1, nid + best + 2, pairs_after * sizeof *nid);
    m--;
    if (best > 0) {
      const merge_slot *ms = merge_find(t, sym[best - 1], sym[best]);
      rank[best - 1] = ms ? ms->rank : UINT32_MAX;
      nid[best - 1] = ms ? ms->id : -1;
    }
    if (best + 1 < m) {
      const merge_slot *ms = merge_find(t, sym[best], sym[best + 1]);
      rank[best] = ms ? ms->rank : UINT32_MAX;
      nid[best] = ms ? ms->id : -1;
    }
  }
  *m_io = m;
}

static inline void heap_push(uint64_t *h, size_t *n, uint64_t v) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h[p] <= v) break;
    h[i] = h[p];
    i = p;
  }
  h[i] = v;
}

static inline uint64_t heap_pop(uint64_t *h, size_t *n) {
  uint64_t top = h[0], v = h[--(*n)];
  size_t i = 0, m = *n;
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= m) break;
    size_t r = l + 1, k = (r < m && h[r] < h[l]) ? r : l;
    if (h[k] >= v) break;
    h[i] = h[k];
    i = k;
  }
  if (m) h[i] = v;
  return top;
}

/* Long words: upstream's algorithm (word.rs merge_all) — a min-heap of
   (rank, position) over a linked list of symbols; stale entries are skipped. */
static int bpe_heap(const lacos_tokenizer *t, tok_ctx *c, int32_t *sym, size_t *m_io) {
  size_t m = *m_io;
  TRY(buf_reserve(&c->nxt, m * sizeof(int32_t), "BPE scratch"));
  TRY(buf_reserve(&c->prv, m * sizeof(int32_t), "BPE scratch"));
  TRY(buf_reserve(&c->heap, (m + 2) * sizeof(uint64_t), "BPE scratch"));   /* grows below if needed */
  int32_t *nx = c->nxt.p, *pv = c->prv.p;
  uint64_t *h = c->heap.p;
  size_t hn = 0;
  for (size_t i = 0; i < m; i++) { nx[i] = i + 1 < m ? (int32_t)(i + 1) : -1; pv[i] = (int32_t)i - 1; }
  for (size_t i = 0; i + 1 < m; i++) {
    const merge_slot *ms = merge_find(t, sym[i], sym[i + 1]);
    if (ms) heap_push(h, &hn, ((uint64_t)ms->rank << 32) | i);
  }
  while (hn) {
    uint64_t top = heap_pop(h, &hn);
    uint32_t rank = (uint32_t)(top >> 32);
    int32_t pos = (int32_t)(top & 0xFFFFFFFFu);
    if (sym[pos] < 0 || nx[pos] < 0) continue;   /* removed, or last */
    int32_t r = nx[pos];
    const merge_slot *ms = merge_find(t, sym[pos], sym[r]);
    if (!ms || ms->rank != rank) continue;       /* stale entry */
    sym[pos] = ms->id;
    sym[r] = -1;
    nx[pos] = nx[r];
    if (nx[r] >= 0) pv[nx[r]] = pos;
    if (pv[pos] >= 0) {
      const merge_slot *p = merge_find(t, sym[pv[pos]], sym[pos]);
      if (p) heap_push(h, &hn, ((uint64_t)p->rank << 32) | (uint32_t)pv[pos]);
    }
    if (nx[pos] >= 0) {
      const merge_slot *p = merge_find(t, sym[pos], sym[nx[pos]]);
      if (p) heap_push(h, &hn, ((uint64_t)p->rank << 32) | (uint32_t)pos);
    }
    if (hn + 2 > c->heap.cap / sizeof(uint64_t)) {
      TRY(buf_reserve(&c->heap, (hn + 2) * 2 * sizeof(uint64_t), "BPE scratch"));
      h = c->heap.p;
    }
  }
  size_t k = 0;
  for (int32_t i = 0; i >= 0; i = nx[i]) sym[k++] = sym[i];
  *m_io = k;
  return LACOS_OK;
}

enum { SCAN_MAX = 48 };

/* The ids of one piece, appended to c's output. */
static int bpe_piece(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t n, int algo) {
  if (!n) return LACOS_OK;
  if (t->ignore_merges) {
    /* A piece that is itself a token skips the merges (upstream's ignore_merges). */
    TRY(buf_reserve(&c->tmp, 2 * n, "BPE scratch"));
    uint8_t *w = c->tmp.p;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) for (int j = 0; j < byte_utf8_len[s[i]]; j++) w[k++] = byte_utf8[s[i]][j];
    int64_t id = strmap_get(t, &t->vocab_map, vocab_key, w, k);
    if (id >= 0) return emit_id(c, (int32_t)id);
  }
  size_t m;
  TRY(bpe_symbols(t, c, s, n, &m));
  int32_t *sym = c->sym.p;
  if (m > 1) {
    if (algo == 0 || (algo < 0 && m <= SCAN_MAX)) {
      TRY(buf_reserve(&c->rank, m * sizeof(uint32_t), "BPE scratch"));
      TRY(buf_reserve(&c->nid, m * sizeof(int32_t), "BPE scratch"));
      bpe_scan(t, sym, c->rank.p, c->nid.p, &m);
    } else TRY(bpe_heap(t, c, sym, &m));
  }
  if ((c->n_ids + m) * sizeof(int32_t) > c->ids.cap) TRY(buf_reserve(&c->ids, (c->n_ids + m) * sizeof(int32_t), "token ids"));
  memcpy((int32_t *)c->ids.p + c->n_ids, sym, m * sizeof *sym);
  c->n_ids += m;
  return LACOS_OK;
}

/* The ids of one pre-tokenized piece through the model, appended to c's output. */
static int model_piece(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t n) {
  if (!t->wp) return bpe_piece(t, c, s, n, -1);
  if ((c->n_ids + n + 1) * sizeof(int32_t) > c->ids.cap) TRY(buf_reserve(&c->ids, (c->n_ids + n + 1) * sizeof(int32_t), "token ids"));
  size_t k;
  tok_vocab v = vocab_of(t);
  TRY(tok_wordpiece_word(t->wp, &v, c->wps, s, n, (int32_t *)c->ids.p + c->n_ids, &k));
  c->n_ids += k;
  return LACOS_OK;
}

static void cache_clear(tok_ctx *c) {
  memset(c->cslot, 0, CACHE_SLOTS * sizeof *c->cslot);
  c->c_used = c->ckeys_used = c->cids_used = 0;
}

/* A pre-tokenized piece: from the cache when seen before, else through BPE. */
static int emit_piece(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t n) {
  if (c->piece_fn) { c->piece_fn(c->piece_ud, s, n, -1); return LACOS_OK; }
  if (n > CACHE_KEY_MAX) return model_piece(t, c, s, n);
  uint64_t h = hash_bytes(s, n) | 1;
  size_t i = h & (CACHE_SLOTS - 1);
  for (;; i = (i + 1) & (CACHE_SLOTS - 1)) {
    pcache_slot *e = &c->cslot[i];
    if (!e->hash) break;
    if (e->hash == h && e->key_len == n && memcmp(c->ckeys + e->key_off, s, n) == 0) {
      if ((c->n_ids + e->n_ids) * sizeof(int32_t) > c->ids.cap)
        TRY(buf_reserve(&c->ids, (c->n_ids + e->n_ids) * sizeof(int32_t), "token ids"));
      memcpy((int32_t *)c->ids.p + c->n_ids, c->cids + e->ids_off, e->n_ids * sizeof(int32_t));
      c->n_ids += e->n_ids;
      return LACOS_OK;
    }
  }
  size_t before = c->n_ids;
  TRY(model_piece(t, c, s, n));
  size_t k = c->n_ids - before;
  if (k > 0xFFFF) return LACOS_OK;
  if (c->c_used >= CACHE_ENTRIES || c->ckeys_used + n > CACHE_KEY_BYTES || c->cids_used + k > CACHE_IDS) {
    cache_clear(c);
    i = h & (CACHE_SLOTS - 1);
  }
  while (c->cslot[i].hash) i = (i + 1) & (CACHE_SLOTS - 1);
  pcache_slot *e = &c->cslot[i];
  e->hash = h;
  e->key_off = (uint32_t)c->ckeys_used;
  e->key_len = (uint16_t)n;
  e->ids_off = (uint32_t)c->cids_used;
  e->n_ids = (uint16_t)k;
  memcpy(c->ckeys + c->ckeys_used, s, n);
  memcpy(c->cids + c->cids_used, (int32_t *)c->ids.p + before, k * sizeof(int32_t));
  c->ckeys_used += n;
  c->cids_used += k;
  c->c_used++;
  return LACOS_OK;
}

/* ------------------------------------------------------------ pre-tokenization */

static int pre_run(const lacos_tokenizer *t, tok_ctx *c, int k, const uint8_t *s, size_t n);

static int regex_fail(int rc, size_t n) {
  PCRE2_UCHAR msg[256];
  pcre2_get_error_message(rc, msg, sizeof msg);
  return fail(LACOS_ELIMIT, "the pre-tokenizer regex failed on a piece of %zu bytes: %s", n, (const char *)msg);
}

static inline int regex_match(const pre_step *st, tok_ctx *c, int k, const uint8_t *s, size_t n, size_t from) {
  if (st->jit) return pcre2_jit_match(st->re, s, n, from, 0, c->md[k], c->mctx);
  return pcre2_match(st->re, s, n, from, PCRE2_NO_UTF_CHECK, c->md[k], c->mctx);
}

static int add_range(tok_ctx *c, int k, size_t *nr, size_t start, size_t end, int match) {
  TRY(buf_reserve(&c->lvl[k], (*nr + 1) * sizeof(range), "pre-tokenizer pieces"));
  range *r = c->lvl[k].p;
  r[(*nr)++] = (range){(uint32_t)start, (uint32_t)end, match};
  return LACOS_OK;
}

/* Step k of the pre-tokenizer on the piece s[0..n). Isolated splits (BLOOM's,
   GPT-2's) stream their pieces; the other behaviours collect and fold them. */
static int pre_run(const lacos_tokenizer *t, tok_ctx *c, int k, const uint8_t *s, size_t n) {
  if (!n) return LACOS_OK;
  if (k == t->n_steps) return emit_piece(t, c, s, n);
  const pre_step *st = &t->steps[k];
  if (st->kind == STEP_PREFIX) {
    if (s[0] == ' ') return pre_run(t, c, k + 1, s, n);
    TRY(buf_reserve(&c->pbuf, n + 1, "pre-tokenizer scratch"));
    uint8_t *p = c->pbuf.p;
    p[0] = ' ';
    memcpy(p + 1, s, n);
    return pre_run(t, c, k + 1, p, n + 1);
  }
  bool stream = st->behavior == B_ISOLATED;
  size_t nr = 0, pos = 0, from = 0;
  for (;;) {
    int rc = regex_match(st, c, k, s, n, from);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) return regex_fail(rc, n);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md[k]);
    size_t ms = ov[0], me = ov[1];
    if (me < ms) me = ms;
    if (ms > pos) {
      if (stream) TRY(pre_run(t, c, k + 1, s + pos, ms - pos));
      else TRY(add_range(c, k, &nr, pos, ms, st->invert));
    }
    if (stream) TRY(pre_run(t, c, k + 1, s + ms, me - ms));
    else TRY(add_range(c, k, &nr, ms, me, !st->invert));
    pos = me;
    if (me == ms) {
      if (me >= n) break;
      from = me + (size_t)utf8_len_of(s[me]);
    } else from = me;
    if (from > n) break;
  }
  if (pos < n) {
    if (stream) return pre_run(t, c, k + 1, s + pos, n - pos);
    TRY(add_range(c, k, &nr, pos, n, st->invert));
  }
  if (stream) return LACOS_OK;
  /* Fold the (offsets, is_match) list as normalizer.rs split() does. */
  range *r = c->lvl[k].p;
  size_t m = 0;
  bool prev = false;
  switch (st->behavior) {
  case B_REMOVED:
    for (size_t i = 0; i < nr; i++) if (!r[i].match) r[m++] = r[i];
    break;
  case B_CONTIGUOUS:
    for (size_t i = 0; i < nr; i++) {
      bool mt = r[i].match;
      if (mt == prev && m) r[m - 1].end = r[i].end;
      else r[m++] = r[i];
      prev = mt;
    }
    break;
  case B_MERGED_PREV:
    for (size_t i = 0; i < nr; i++) {
      bool mt = r[i].match;
      if (mt && !prev && m) r[m - 1].end = r[i].end;
      else r[m++] = r[i];
      prev = mt;
    }
    break;
  case B_MERGED_NEXT: {
    /* Right to left, written back from the end. */
    size_t w = nr;
    for (size_t i = nr; i-- > 0;) {
      bool mt = r[i].match;
      if (mt && !prev && w < nr) r[w].start = r[i].start;
      else r[--w] = r[i];
      prev = mt;
    }
    memmove(r, r + w, (nr - w) * sizeof *r);
    m = nr - w;
    break;
  }
  }
  for (size_t i = 0; i < m; i++) {
    range q = ((range *)c->lvl[k].p)[i];   /* the buffer may move while deeper steps run */
    TRY(pre_run(t, c, k + 1, s + q.start, q.end - q.start));
  }
  return LACOS_OK;
}

/* ------------------------------------------------------------ added tokens */

static bool word_char_at(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t off) {
  int len;
  utf8_decode(s + off, &len);
  return pcre2_match(t->word_re, s + off, (size_t)len, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, c->word_md, NULL) >= 0;
}

static int emit_added(tok_ctx *c, const added_tok *a, const uint8_t *s, size_t n) {
  if (c->piece_fn) { c->piece_fn(c->piece_ud, s, n, a->id); return LACOS_OK; }
  return emit_id(c, a->id);
}

static int added_run(const lacos_tokenizer *t, tok_ctx *c, int pass, const uint8_t *s, size_t n);

static int word_piece_cb(void *ud, const uint8_t *s, size_t n) {
  void **a = ud;
  return emit_piece(a[0], a[1], s, n);
}

/* A gap between added tokens through the pre-tokenizer: BERT's for a
   WordPiece model, the Split / ByteLevel steps for BPE. */
static int pre_tokenize(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t n) {
  if (!t->wp) return pre_run(t, c, 0, s, n);
  void *ud[2] = {(void *)t, c};
  return tok_wordpiece_pre_tokenize(t->wp, s, n, word_piece_cb, ud);
}

/* A gap between the normalized = false added tokens: normalized (WordPiece
   tokenizers with a normalizer), then searched for the normalized ones. */
static int normalized_run(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t n) {
  if (!n) return LACOS_OK;
  if (!tok_wordpiece_normalizes(t->wp)) return added_run(t, c, 1, s, n);
  const uint8_t *ns;
  size_t nn;
  TRY(tok_wordpiece_normalize(t->wp, c->wps, s, n, &ns, &nn));
  return added_run(t, c, 1, ns, nn);
}

/* pass 0: tokens with normalized = false on the text; pass 1: the others on
   the normalized gaps (upstream's extract_and_normalize). */
static int added_run(const lacos_tokenizer *t, tok_ctx *c, int pass, const uint8_t *s, size_t n) {
  if (!n) return LACOS_OK;
  const trie *tr = pass == 0 ? &t->trie_raw : &t->trie_norm;
  if (!tr->tokens) return pass == 0 ? normalized_run(t, c, s, n) : pre_tokenize(t, c, s, n);
  size_t start_offset = 0, i = 0;
  while (i < n) {
    if (tr->root[s[i]] < 0) { i++; continue; }
    size_t len = 0;
    int ti = trie_longest(tr, s + i, n - i, &len);
    if (ti < 0) { i++; continue; }
    const added_tok *a = &t->added[ti];
    size_t start = i, stop = i + len;
    i = stop;   /* the automaton goes on after the match, whatever happens to it */
    if (a->single_word) {
      bool start_space = start == 0 || !word_char_at(t, c, s, utf8_prev(s, start));
      bool stop_space = stop == n || !word_char_at(t, c, s, stop);
      if (!start_space || !stop_space) continue;
    }
    if (a->lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t p = utf8_prev(s, ns);
        int l;
        if (!is_white_space(utf8_decode(s + p, &l))) break;
        ns = p;
      }
      start = ns > start_offset ? ns : start_offset;
    }
    if (a->rstrip) {
      while (stop < n) {
        int l;
        if (!is_white_space(utf8_decode(s + stop, &l))) break;
        stop += (size_t)l;
      }
    }
    if (start_offset < start) {
      if (pass == 0) TRY(normalized_run(t, c, s + start_offset, start - start_offset));
      else TRY(pre_tokenize(t, c, s + start_offset, start - start_offset));
    }
    TRY(emit_added(c, a, s + start, stop - start));
    start_offset = stop;
  }
  if (start_offset < n) {
    if (pass == 0) return normalized_run(t, c, s + start_offset, n - start_offset);
    return pre_tokenize(t, c, s + start_offset, n - start_offset);
  }
  return LACOS_OK;
}

static int encode_text(const lacos_tokenizer *t, tok_ctx *c, const uint8_t *s, size_t n) {
  size_t bad = 0;
  if (!tok_utf8_valid(s, n, &bad)) {
    int k = utf8_step(s + bad, n - bad);
    bool cut = bad + (size_t)-k == n && (s[bad] >= 0xC2 && s[bad] <= 0xF4);
    return fail(LACOS_EINVAL, "invalid UTF-8 at byte %zu (0x%02x%s)", bad, s[bad],
                cut ? ": the text ends inside a character" : "");
  }
  return added_run(t, c, 0, s, n);
}

/* ------------------------------------------------------------ loading */

static const char *json_type_name(const json_t *v) {
  switch (json_typeof(v)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a number";
  case JSON_TRUE: case JSON_FALSE: return "a boolean";
  default: return "null";
  }
}

/* Optional boolean field (absent or null: def). */
static int get_bool(const json_t *o, const char *key, bool def, bool *out, const char *where) {
  const json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) { *out = def; return LACOS_OK; }
  if (!json_is_boolean(v)) return fail(LACOS_EFORMAT, "%s.%s must be true or false, found %s", where, key, json_type_name(v));
  *out = json_is_true(v);
  return LACOS_OK;
}

/* Optional non-negative integer field (absent or null: def). */
static int get_uint(const json_t *o, const char *key, long long def, long long max, long long *out, const char *where) {
  const json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) { *out = def; return LACOS_OK; }
  if (!json_is_integer(v) || json_integer_value(v) < 0)
    return fail(LACOS_EFORMAT, "%s.%s must be a non-negative integer, found %s", where, key, json_type_name(v));
  if (json_integer_value(v) > max)
    return fail(LACOS_ELIMIT, "%s.%s is %lld, more than the %lld lacos allows", where, key, (long long)json_integer_value(v), max);
  *out = json_integer_value(v);
  return LACOS_OK;
}

static const char *get_type(const json_t *o) {
  const json_t *v = json_object_get(o, "type");
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Stores a string in the arena (sized in advance). */
static uint32_t arena_put(lacos_tokenizer *t, const char *s, size_t n) {
  uint32_t off = (uint32_t)t->arena_len;
  memcpy(t->arena + off, s, n);
  t->arena_len += n;
  return off;
}

static int add_step(lacos_tokenizer *t, pre_step st) {
  if (t->n_steps == MAX_STEPS) return fail(LACOS_ELIMIT, "pre_tokenizer: more than %d steps", MAX_STEPS);
  t->steps[t->n_steps++] = st;
  return LACOS_OK;
}

static int parse_split(lacos_tokenizer *t, const json_t *o, const char *where) {
  const json_t *pat = json_object_get(o, "pattern");
  const json_t *rx = json_is_object(pat) ? json_object_get(pat, "Regex") : NULL;
  const json_t *str = json_is_object(pat) ? json_object_get(pat, "String") : NULL;
  if (!(json_is_string(rx) || json_is_string(str)))
    return fail(LACOS_EFORMAT, "%s.pattern must be {\"Regex\": \"...\"} or {\"String\": \"...\"}", where);
  const json_t *p = rx ? rx : str;
  const json_t *bv = json_object_get(o, "behavior");
  static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
  int behavior = -1;
  for (int i = 0; i < 5 && json_is_string(bv); i++) if (!strcmp(json_string_value(bv), names[i])) behavior = i;
  if (behavior < 0)
    return fail(LACOS_EFORMAT, "%s.behavior must be Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous", where);
  bool invert;
  TRY(get_bool(o, "invert", false, &invert, where));
  pre_step st = {.kind = STEP_SPLIT, .behavior = behavior, .invert = invert};
  int s = regex_compile(&st.re, &st.jit, json_string_value(p), json_string_length(p), rx == NULL);
  if (s) return fail_context("%s.pattern", where);
  if ((s = add_step(t, st))) { pcre2_code_free(st.re); return s; }
  return LACOS_OK;
}

static const char GPT2_REGEX[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static int parse_bytelevel(lacos_tokenizer *t, const json_t *o, const char *where) {
  bool prefix, use_regex;
  TRY(get_bool(o, "add_prefix_space", true, &prefix, where));
  TRY(get_bool(o, "use_regex", true, &use_regex, where));
  if (prefix) TRY(add_step(t, (pre_step){.kind = STEP_PREFIX}));
  if (use_regex) {
    pre_step st = {.kind = STEP_SPLIT, .behavior = B_ISOLATED};
    TRY(regex_compile(&st.re, &st.jit, GPT2_REGEX, strlen(GPT2_REGEX), false));
    int s = add_step(t, st);
    if (s) { pcre2_code_free(st.re); return s; }
  }
  return LACOS_OK;
}

static int parse_pre_tokenizer(lacos_tokenizer *t, const json_t *pt) {
  if (!pt || json_is_null(pt))
    return fail(LACOS_EUNSUPPORTED, "pre_tokenizer is null; lacos needs a ByteLevel pre-tokenizer (byte-level BPE, as BLOOM and GPT-2)");
  const char *type = get_type(pt);
  if (!json_is_object(pt) || !type) return fail(LACOS_EFORMAT, "pre_tokenizer must be an object with a \"type\"");
  if (!strcmp(type, "ByteLevel")) return parse_bytelevel(t, pt, "pre_tokenizer");
  if (strcmp(type, "Sequence"))
    return fail(LACOS_EUNSUPPORTED, "pre_tokenizer type \"%s\" is not supported (lacos runs Split and ByteLevel, as BLOOM and GPT-2 use)", type);
  const json_t *list = json_object_get(pt, "pretokenizers");
  if (!json_is_array(list)) return fail(LACOS_EFORMAT, "pre_tokenizer.pretokenizers must be an array");
  size_t n = json_array_size(list);
  for (size_t i = 0; i < n; i++) {
    char where[64];
    snprintf(where, sizeof where, "pre_tokenizer.pretokenizers[%zu]", i);
    const json_t *e = json_array_get(list, i);
    const char *et = json_is_object(e) ? get_type(e) : NULL;
    if (!et) return fail(LACOS_EFORMAT, "%s must be an object with a \"type\"", where);
    if (!strcmp(et, "Split")) {
      if (i + 1 == n) return fail(LACOS_EUNSUPPORTED, "%s: a Split must be followed by ByteLevel (lacos runs byte-level BPE)", where);
      TRY(parse_split(t, e, where));
    } else if (!strcmp(et, "ByteLevel")) {
      if (i + 1 != n)
        return fail(LACOS_EUNSUPPORTED, "%s: ByteLevel must come last (a step after it would see byte-level characters)", where);
      TRY(parse_bytelevel(t, e, where));
    } else {
      return fail(LACOS_EUNSUPPORTED, "%s: type \"%s\" is not supported (lacos runs Split and ByteLevel, as BLOOM and GPT-2 use)", where, et);
    }
  }
  if (!n) return fail(LACOS_EUNSUPPORTED, "pre_tokenizer.pretokenizers is empty; lacos needs a ByteLevel pre-tokenizer");
  return LACOS_OK;
}

static int parse_side(const json_t *o, const char *key, int *side, const char *where) {
  const json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) { *side = LACOS_TOKENIZER_RIGHT; return LACOS_OK; }
  if (json_is_string(v) && !strcmp(json_string_value(v), "Right")) { *side = LACOS_TOKENIZER_RIGHT; return LACOS_OK; }
  if (json_is_string(v) && !strcmp(json_string_value(v), "Left")) { *side = LACOS_TOKENIZER_LEFT; return LACOS_OK; }
  return fail(LACOS_EFORMAT, "%s.%s must be \"Right\" or \"Left\"", where, key);
}

static int parse_truncation_padding(lacos_tokenizer *t, const json_t *root) {
  lacos_tokenizer_batch_options *b = &t->batch;
  memset(b, 0, sizeof *b);
  b->pad_id = -1;
  b->add_special = 1;
  const json_t *tr = json_object_get(root, "truncation");
  if (tr && !json_is_null(tr)) {
    if (!json_is_object(tr)) return fail(LACOS_EFORMAT, "truncation must be an object or null");
    long long ml, stride;
    const json_t *mv = json_object_get(tr, "max_length");
    if (!mv) return fail(LACOS_EFORMAT, "truncation.max_length is missing");
    TRY(get_uint(tr, "max_length", 0, INT32_MAX, &ml, "truncation"));
    if (ml < 1) return fail(LACOS_EFORMAT, "truncation.max_length must be at least 1");
    TRY(get_uint(tr, "stride", 0, INT32_MAX, &stride, "truncation"));
    TRY(parse_side(tr, "direction", &b->truncation_side, "truncation"));
    const json_t *sv = json_object_get(tr, "strategy");
    static const char *const strategies[] = {"LongestFirst", "OnlyFirst", "OnlySecond"};
    int strategy = sv ? -1 : LACOS_TOKENIZER_LONGEST_FIRST;
    for (int i = 0; i < 3 && json_is_string(sv); i++) if (!strcmp(json_string_value(sv), strategies[i])) strategy = i;
    if (strategy < 0) return fail(LACOS_EFORMAT, "truncation.strategy must be LongestFirst, OnlyFirst or OnlySecond");
    b->truncation_strategy = strategy;
    b->max_length = (int)ml;
    b->truncation = 1;
  }
  const json_t *pd = json_object_get(root, "padding");
  if (pd && !json_is_null(pd)) {
    if (!json_is_object(pd)) return fail(LACOS_EFORMAT, "padding must be an object or null");
    const json_t *sv = json_object_get(pd, "strategy");
    if (json_is_object(sv) && json_object_get(sv, "Fixed")) {
      long long fixed;
      TRY(get_uint(sv, "Fixed", 0, INT32_MAX, &fixed, "padding.strategy"));
      b->pad_length = (int)fixed;
    } else if (!(sv == NULL || (json_is_string(sv) && !strcmp(json_string_value(sv), "BatchLongest")))) {
      return fail(LACOS_EFORMAT, "padding.strategy must be \"BatchLongest\" or {\"Fixed\": N}");
    }
    long long mult, pad_id, pad_type;
    TRY(get_uint(pd, "pad_to_multiple_of", 0, 65536, &mult, "padding"));
    TRY(get_uint(pd, "pad_id", 0, INT32_MAX, &pad_id, "padding"));
    TRY(get_uint(pd, "pad_type_id", 0, INT32_MAX, &pad_type, "padding"));
    TRY(parse_side(pd, "direction", &b->padding_side, "padding"));
    b->pad_to_multiple_of = (int)mult;
    b->pad_id = (int)pad_id;
    b->pad_type_id = (int)pad_type;
  } else {
    /* no padding section: BLOOM's <pad>, or BERT's [PAD] */
    b->pad_id = token_id(t, (const uint8_t *)"<pad>", 5);
    if (b->pad_id < 0) b->pad_id = token_id(t, (const uint8_t *)"[PAD]", 5);
  }
  return LACOS_OK;
}

/* Collects the added tokens; their ids decide the size of the id space. */
typedef struct added_in { const char *s; size_t n; long long id; bool special, single_word, lstrip, rstrip, normalized; } added_in;

static int read_added(const json_t *root, added_in **out, int *n_out, size_t *bytes, long long *max_id) {
  *out = NULL;
  *n_out = 0;
  const json_t *a = json_object_get(root, "added_tokens");
  if (!a || json_is_null(a)) return LACOS_OK;
  if (!json_is_array(a)) return fail(LACOS_EFORMAT, "added_tokens must be an array");
  size_t n = json_array_size(a);
  if (n > (size_t)tokenizer_limits_current.added)
    return fail(LACOS_ELIMIT, "added_tokens has %zu entries, more than the %d lacos allows", n, tokenizer_limits_current.added);
  added_in *v;
  TRY(meta_calloc(&v, n ? n : 1, sizeof *v, "added_tokens"));
  for (size_t i = 0; i < n; i++) {
    char where[48];
    snprintf(where, sizeof where, "added_tokens[%zu]", i);
    const json_t *e = json_array_get(a, i);
    const json_t *content = json_object_get(e, "content");
    int s = LACOS_OK;
    if (!json_is_object(e) || !json_is_string(content)) s = fail(LACOS_EFORMAT, "%s must be an object with a \"content\" string", where);
    else if (!json_is_integer(json_object_get(e, "id"))) s = fail(LACOS_EFORMAT, "%s.id must be a non-negative integer", where);
    if (!s) s = get_uint(e, "id", 0, tokenizer_limits_current.max_id, &v[i].id, where);
    if (!s) s = get_bool(e, "special", false, &v[i].special, where);
    if (!s) s = get_bool(e, "single_word", false, &v[i].single_word, where);
    if (!s) s = get_bool(e, "lstrip", false, &v[i].lstrip, where);
    if (!s) s = get_bool(e, "rstrip", false, &v[i].rstrip, where);
    if (!s) s = get_bool(e, "normalized", !v[i].special, &v[i].normalized, where);
    if (!s && json_string_length(content) > tokenizer_limits_current.token_bytes)
      s = fail(LACOS_ELIMIT, "%s.content is %zu bytes, more than the %zu lacos allows", where, json_string_length(content),
               tokenizer_limits_current.token_bytes);
    if (s) { mem_free(v); return s; }
    v[i].s = json_string_value(content);
    v[i].n = json_string_length(content);
    *bytes += v[i].n;
    if (v[i].id > *max_id) *max_id = v[i].id;
  }
  *out = v;
  *n_out = (int)n;
  return LACOS_OK;
}

static int build_vocab(lacos_tokenizer *t, const json_t *model, const added_in *ai, int n_ai, size_t added_bytes,
                       long long added_max) {
  const tokenizer_limits *L = &tokenizer_limits_current;
  const json_t *vocab = json_object_get(model, "vocab");
  if (!vocab) return fail(LACOS_EFORMAT, "model.vocab is missing");
  if (!json_is_object(vocab)) return fail(LACOS_EFORMAT, "model.vocab must be an object of token: id, found %s", json_type_name(vocab));
  size_t nv = json_object_size(vocab);
  if (nv > (size_t)L->vocab)
    return fail(LACOS_ELIMIT, "model.vocab has %zu tokens, more than the %d lacos allows", nv, L->vocab);
  long long max_id = added_max;
  size_t bytes = added_bytes;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)vocab, key, val) {
    if (!json_is_integer(val) || json_integer_value(val) < 0)
      return fail(LACOS_EFORMAT, "model.vocab[\"%.60s\"]: the id must be a non-negative integer, found %s", key, json_type_name(val));
    if (json_integer_value(val) > L->max_id)
      return fail(LACOS_ELIMIT, "model.vocab[\"%.60s\"]: id %lld is more than the %d lacos allows", key,
                  (long long)json_integer_value(val), L->max_id);
    size_t kl = strlen(key);
    if (kl > L->token_bytes)
      return fail(LACOS_ELIMIT, "model.vocab: a token of %zu bytes, more than the %zu lacos allows", kl, L->token_bytes);
    if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    bytes += kl;
  }
  t->n_ids = (int)(max_id + 1);
  t->n_vocab = (int)nv;
  size_t ni = (size_t)t->n_ids;
  TRY(mem_alloc(&t->tok_off, ni * sizeof *t->tok_off, "tokenizer vocabulary"));
  TRY(mem_alloc(&t->tok_len, ni * sizeof *t->tok_len, "tokenizer vocabulary"));
  TRY(mem_calloc(&t->tok_flags, ni, 1, "tokenizer vocabulary"));
  t->arena_cap = bytes + 1;
  TRY(mem_alloc(&t->arena, t->arena_cap, "tokenizer vocabulary"));
  for (size_t i = 0; i < ni; i++) t->tok_len[i] = NO_TOKEN;
  TRY(strmap_init(&t->vocab_map, nv, "tokenizer vocabulary"));
  json_object_foreach((json_t *)vocab, key, val) {
    int id = (int)json_integer_value(val);
    size_t kl = strlen(key);
    if (t->tok_len[id] != NO_TOKEN)
      return fail(LACOS_EFORMAT, "model.vocab: \"%.60s\" and \"%.*s\" both have id %d", key,
                  (int)(t->tok_len[id] > 60 ? 60 : t->tok_len[id]), t->arena + t->tok_off[id], id);
    t->tok_off[id] = arena_put(t, key, kl);
    t->tok_len[id] = (uint32_t)kl;
    t->tok_flags[id] = TOK_MODEL;
    strmap_put(&t->vocab_map, (const uint8_t *)key, kl, (uint32_t)id);
  }
  /* Added tokens: a content already in the vocabulary keeps its id there
     (upstream's add_tokens); a new one takes its given id, which no other
     token may hold. A repeated content updates the flags of the first. */
  TRY(meta_calloc(&t->added, n_ai ? (size_t)n_ai : 1, sizeof *t->added, "added_tokens"));
  TRY(strmap_init(&t->added_map, (size_t)n_ai, "tokenizer added tokens"));
  for (int i = 0; i < n_ai; i++) {
    const added_in *a = &ai[i];
    if (!a->n) continue;   /* upstream ignores empty contents */
    int64_t prev = strmap_get(t, &t->added_map, added_key, (const uint8_t *)a->s, a->n);
    added_tok *d;
    if (prev >= 0) d = &t->added[prev];
    else {
      int64_t vid = strmap_get(t, &t->vocab_map, vocab_key, (const uint8_t *)a->s, a->n);
      int id = vid >= 0 ? (int)vid : (int)a->id;
      if (vid < 0) {
        if (t->tok_len[id] != NO_TOKEN)
          return fail(LACOS_EFORMAT, "added_tokens[%d]: \"%.60s\" has id %d, which \"%.*s\" already has", i, a->s, id,
                      (int)(t->tok_len[id] > 60 ? 60 : t->tok_len[id]), t->arena + t->tok_off[id]);
        t->tok_off[id] = arena_put(t, a->s, a->n);
        t->tok_len[id] = (uint32_t)a->n;
      }
      d = &t->added[t->n_added];
      d->id = id;
      d->off = t->tok_off[id];
      d->len = (uint32_t)a->n;
      strmap_put(&t->added_map, (const uint8_t *)a->s, a->n, (uint32_t)t->n_added);
      t->n_added++;
    }
    d->special = a->special;
    d->single_word = a->single_word;
    d->lstrip = a->lstrip;
    d->rstrip = a->rstrip;
    d->normalized = a->normalized;
  }
  for (int i = 0; i < t->n_added; i++) {
    added_tok *d = &t->added[i];
    t->tok_flags[d->id] |= TOK_ADDED | (d->special ? TOK_SPECIAL : 0);
    TRY(trie_add(d->normalized ? &t->trie_norm : &t->trie_raw, (const uint8_t *)t->arena + d->off, d->len, i));
    if (d->single_word && !t->word_re) {
      static const char wp[] = "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]";
      int err;
      PCRE2_SIZE off;
      t->word_re = pcre2_compile((PCRE2_SPTR)wp, sizeof wp - 1, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
      if (!t->word_re) {
        static const char wp2[] = "\\w";   /* PCRE2 before 10.40 has no binary properties */
        t->word_re = pcre2_compile((PCRE2_SPTR)wp2, 2, PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
      }
      if (!t->word_re) return fail(LACOS_ENOMEM, "cannot compile the word-character regex");
    }
  }
  return LACOS_OK;
}

/* Added tokens with normalized = true are looked for in normalized text, so
   their contents go into the trie normalized too (added_vocabulary.rs,
   refresh_added_tokens); build_vocab put them in as written, before the
   normalizer was read. */
static int normalize_added(lacos_tokenizer *t) {
  if (!tok_wordpiece_normalizes(t->wp) || !t->trie_norm.tokens) return LACOS_OK;
  tok_wp_scratch *sc;
  TRY(tok_wp_scratch_new(&sc));
  trie_free(&t->trie_norm);
  int s = LACOS_OK;
  for (int i = 0; i < t->n_added && !s; i++) {
    const added_tok *d = &t->added[i];
    if (!d->normalized) continue;
    const uint8_t *ns;
    size_t nn;
    s = tok_wordpiece_normalize(t->wp, sc, (const uint8_t *)t->arena + d->off, d->len, &ns, &nn);
    if (!s && nn) s = trie_add(&t->trie_norm, ns, nn, i);   /* normalized away: nothing to find */
    /* decoding gives the normalized form too (added_vocabulary.rs, simple_id_to_token) */
    if (!s && (nn != d->len || memcmp(ns, t->arena + d->off, nn))) {
      s = meta_alloc(&t->added[i].norm, nn + 1, "tokenizer added tokens");
      if (!s) { memcpy(t->added[i].norm, ns, nn); t->added[i].norm_len = (uint32_t)nn; }
    }
  }
  tok_wp_scratch_free(sc);
  return s;
}

static int merge_token(const lacos_tokenizer *t, const char *s, size_t n, size_t i, int32_t *id) {
  int64_t v = strmap_get(t, &t->vocab_map, vocab_key, (const uint8_t *)s, n);
  if (v < 0) return fail(LACOS_EFORMAT, "model.merges[%zu]: \"%.*s\" is not in model.vocab", i, (int)(n > 60 ? 60 : n), s);
  *id = (int32_t)v;
  return LACOS_OK;
}

static int build_merges(lacos_tokenizer *t, const json_t *model) {
  const json_t *merges = json_object_get(model, "merges");
  if (!merges) return fail(LACOS_EFORMAT, "model.merges is missing");
  if (!json_is_array(merges)) return fail(LACOS_EFORMAT, "model.merges must be an array, found %s", json_type_name(merges));
  size_t n = json_array_size(merges);
  if (n > (size_t)tokenizer_limits_current.merges)
    return fail(LACOS_ELIMIT, "model.merges has %zu entries, more than the %d lacos allows", n, tokenizer_limits_current.merges);
  size_t cap = pow2_at_least(2 * n + 2);
  TRY(mem_alloc(&t->merges, cap * sizeof *t->merges, "tokenizer merges"));
  for (size_t i = 0; i < cap; i++) t->merges[i].key = MERGE_EMPTY;
  t->merges_mask = cap - 1;
  buf cat = {0};
  uint32_t rank = 0;
  int s = LACOS_OK;
  for (size_t i = 0; i < n && !s; i++) {
    const json_t *e = json_array_get(merges, i);
    const char *a, *b;
    size_t na, nb;
    if (json_is_string(e)) {
      const char *line = json_string_value(e);
      size_t len = json_string_length(e);
      if (len >= 8 && !memcmp(line, "#version", 8)) continue;
      const char *sp = memchr(line, ' ', len);
      if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - line))) {
        s = fail(LACOS_EFORMAT, "model.merges[%zu]: \"%.60s\" is not two tokens separated by one space", i, line);
        break;
      }
      a = line; na = (size_t)(sp - line);
      b = sp + 1; nb = len - na - 1;
    } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
               json_is_string(json_array_get(e, 1))) {
      a = json_string_value(json_array_get(e, 0)); na = json_string_length(json_array_get(e, 0));
      b = json_string_value(json_array_get(e, 1)); nb = json_string_length(json_array_get(e, 1));
    } else {
      s = fail(LACOS_EFORMAT, "model.merges[%zu] must be \"a b\" or [\"a\", \"b\"], found %s", i, json_type_name(e));
      break;
    }
    int32_t ia = 0, ib = 0, ic = 0;
    if ((s = merge_token(t, a, na, i, &ia)) || (s = merge_token(t, b, nb, i, &ib))) break;
    if ((s = buf_reserve(&cat, na + nb + 1, "tokenizer merges"))) break;
    memcpy(cat.p, a, na);
    memcpy((char *)cat.p + na, b, nb);
    if ((s = merge_token(t, cat.p, na + nb, i, &ic))) break;
    merge_put(t, ia, ib, rank++, ic);
  }
  buf_free(&cat);
  return s;
}

/* BPE or WordPiece; upstream's untagged models without a "type" are told
   apart by their fields (merges, or continuing_subword_prefix alone). */
static int check_model_type(const json_t *model, bool *wordpiece) {
  const char *type = get_type(model);
  *wordpiece = type ? !strcmp(type, "WordPiece")
                    : !json_object_get(model, "merges") && json_object_get(model, "continuing_subword_prefix");
  if (type && strcmp(type, "BPE") && !*wordpiece)
    return fail(LACOS_EUNSUPPORTED, "model.type is \"%s\"; lacos runs BPE and WordPiece models", type);
  if (!type && !*wordpiece && !json_object_get(model, "merges"))
    return fail(LACOS_EUNSUPPORTED, "model has no \"type\", no merges and no continuing_subword_prefix; lacos runs BPE and "
                "WordPiece models");
  return LACOS_OK;
}

static int build_model(lacos_tokenizer *t, const json_t *model) {
  const json_t *dropout = json_object_get(model, "dropout");
  if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0))
    return fail(LACOS_EUNSUPPORTED, "model.dropout is set; lacos runs BPE without dropout (as for inference)");
  const char *affix[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
  for (int i = 0; i < 2; i++) {
    const json_t *v = json_object_get(model, affix[i]);
    if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
      return fail(LACOS_EUNSUPPORTED, "model.%s is set; lacos runs byte-level BPE without it", affix[i]);
  }
  TRY(get_bool(model, "fuse_unk", false, &t->fuse_unk, "model"));
  TRY(get_bool(model, "byte_fallback", false, &t->byte_fallback, "model"));
  TRY(get_bool(model, "ignore_merges", false, &t->ignore_merges, "model"));
  TRY(build_merges(t, model));
  t->unk_id = -1;
  const json_t *unk = json_object_get(model, "unk_token");
  if (unk && !json_is_null(unk)) {
    if (!json_is_string(unk)) return fail(LACOS_EFORMAT, "model.unk_token must be a string or null");
    int64_t id = strmap_get(t, &t->vocab_map, vocab_key, (const uint8_t *)json_string_value(unk), json_string_length(unk));
    if (id < 0) return fail(LACOS_EFORMAT, "model.unk_token \"%.60s\" is not in model.vocab", json_string_value(unk));
    t->unk_id = (int)id;
  }
  for (int b = 0; b < 256; b++) {
    t->byte_id[b] = (int32_t)strmap_get(t, &t->vocab_map, vocab_key, byte_utf8[b], byte_utf8_len[b]);
    t->byte_fb_n[b] = 0;
    if (t->byte_fallback) {
      int k = 0;
      for (int j = 0; j < byte_utf8_len[b]; j++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", byte_utf8[b][j]);
        int64_t id = strmap_get(t, &t->vocab_map, vocab_key, (const uint8_t *)name, 6);
        if (id < 0) { k = -1; break; }
        t->byte_fb[b][k++] = (int32_t)id;
      }
      t->byte_fb_n[b] = (int8_t)(k < 0 ? 0 : k);
    }
  }
  return LACOS_OK;
}

/* The post-processor: ByteLevel (offsets only: no ids), TemplateProcessing
   or BertProcessing (special tokens), or a Sequence holding ByteLevels and
   at most one of the others. */
static int parse_post_processor(lacos_tokenizer *t, const json_t *root) {
  const json_t *pp = json_object_get(root, "post_processor");
  if (!pp || json_is_null(pp)) return LACOS_OK;
  const char *type = json_is_object(pp) ? get_type(pp) : NULL;
  const json_t *one = NULL;
  bool ok = type && !strcmp(type, "ByteLevel");
  char where[64] = "post_processor";
  if (type && (!strcmp(type, "TemplateProcessing") || !strcmp(type, "BertProcessing"))) { ok = true; one = pp; }
  if (type && !strcmp(type, "Sequence")) {
    const json_t *l = json_object_get(pp, "processors");
    ok = json_is_array(l);
    for (size_t i = 0; ok && i < json_array_size(l); i++) {
      const json_t *e = json_array_get(l, i);
      const char *et = get_type(e);
      ok = et && (!strcmp(et, "ByteLevel") || ((!strcmp(et, "TemplateProcessing") || !strcmp(et, "BertProcessing")) && !one));
      if (ok && strcmp(et, "ByteLevel")) { one = e; snprintf(where, sizeof where, "post_processor.processors[%zu]", i); }
      else if (!ok) type = et ? et : "?";
    }
  }
  if (!ok)
    return fail(LACOS_EUNSUPPORTED, "post_processor type \"%s\" is not supported (lacos runs ByteLevel, TemplateProcessing and "
                "BertProcessing; a Sequence holds at most one template)", type ? type : "?");
  tok_vocab v = vocab_of(t);
  return one ? tok_template_parse(&t->post, &v, one, where) : LACOS_OK;
}

static int build_rest(lacos_tokenizer *t, const json_t *root) {
  const json_t *norm = json_object_get(root, "normalizer");
  const json_t *nlist = json_is_object(norm) ? json_object_get(norm, "normalizers") : NULL;
  bool empty_seq = get_type(norm) && !strcmp(get_type(norm), "Sequence") && json_is_array(nlist) && !json_array_size(nlist);
  if (norm && !json_is_null(norm) && !empty_seq) {
    const char *type = json_is_object(norm) ? get_type(norm) : NULL;
    return fail(LACOS_EUNSUPPORTED, "normalizer type \"%s\" is not supported (lacos runs byte-level BPE without a normalizer, as BLOOM)",
                type ? type : "?");
  }
  TRY(parse_pre_tokenizer(t, json_object_get(root, "pre_tokenizer")));
  const json_t *dec = json_object_get(root, "decoder");
  if (!dec || json_is_null(dec)) t->decoder = DEC_NONE;
  else {
    const char *type = json_is_object(dec) ? get_type(dec) : NULL;
    if (!type || strcmp(type, "ByteLevel"))
      return fail(LACOS_EUNSUPPORTED, "decoder type \"%s\" is not supported (lacos decodes byte-level BPE with ByteLevel)",
                  type ? type : "?");
    t->decoder = DEC_BYTELEVEL;
  }
  return LACOS_OK;
}

int lacos_tokenizer_load(lacos_tokenizer **out, const char *path) {
  if (!out) return fail(LACOS_EINVAL, "lacos_tokenizer_load: out is NULL");
  *out = NULL;
  if (!path) return fail(LACOS_EINVAL, "lacos_tokenizer_load: path is NULL");
  pthread_once(&byte_map_once, byte_map_init);
  char *text = NULL;
  size_t len = 0;
  TRY(file_read_all(path, tokenizer_limits_current.file_bytes, &text, &len));
  json_error_t jerr;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
  mem_free(text);
  /* (jansson reports some allocation failures with no position and no text) */
  if (!root && (json_error_code(&jerr) == json_error_out_of_memory || (jerr.line < 0 && !jerr.text[0])))
    return fail(LACOS_ENOMEM, "%s: out of memory reading the tokenizer's JSON (under a memory limit?)", path);
  if (!root) return fail(LACOS_EFORMAT, "%s:%d:%d: malformed JSON: %s", path, jerr.line, jerr.column, jerr.text);
  lacos_tokenizer *t;
  int s = meta_calloc(&t, 1, sizeof *t, "tokenizer");
  if (s) { json_decref(root); return fail_context("%s", path); }
  added_in *ai = NULL;
  int n_ai = 0;
  if (!s && !json_is_object(root)) s = fail(LACOS_EFORMAT, "the file is JSON but not an object");
  if (!s) {
    const json_t *ver = json_object_get(root, "version");
    if (ver && !(json_is_string(ver) && !strcmp(json_string_value(ver), "1.0")))
      s = fail(LACOS_EUNSUPPORTED, "version is not \"1.0\" (the tokenizer.json format lacos reads)");
  }
  const json_t *model = s ? NULL : json_object_get(root, "model");
  if (!s && !model) s = fail(LACOS_EFORMAT, "no \"model\" section (is this a tokenizer.json?)");
  if (!s && !json_is_object(model)) s = fail(LACOS_EFORMAT, "model must be an object, found %s", json_type_name(model));
  size_t added_bytes = 0;
  long long added_max = -1;
  bool wordpiece = false;
  if (!s) s = check_model_type(model, &wordpiece);
  if (!s) s = read_added(root, &ai, &n_ai, &added_bytes, &added_max);
  if (!s) s = build_vocab(t, model, ai, n_ai, added_bytes, added_max);
  if (!s && wordpiece) {
    tok_vocab v = vocab_of(t);
    s = tok_wordpiece_parse(&t->wp, &v, root);
    if (!s && tok_wordpiece_has_decoder(t->wp)) t->decoder = DEC_WORDPIECE;
    if (!s) s = normalize_added(t);
  } else if (!s) {
    s = build_model(t, model);
    if (!s) s = build_rest(t, root);
  }
  if (!s) s = parse_post_processor(t, root);
  if (!s) s = parse_truncation_padding(t, root);
  if (!s) s = meta_strdup(&t->path, path, "tokenizer path");
  if (!s) s = ctx_ensure(t, 1);
  mem_free(ai);
  json_decref(root);
  if (s) {
    if (!strstr(lacos_last_error(), path)) fail_context("%s", path);
    lacos_tokenizer_free(t);
    return s;
  }
  *out = t;
  return LACOS_OK;
}

void lacos_tokenizer_free(lacos_tokenizer *t) {
  if (!t) return;
  for (int i = 0; i < t->n_ctx; i++) ctx_free(t->ctx[i]);
  mem_free(t->ctx);
  for (int k = 0; k < t->n_steps; k++) if (t->steps[k].re) pcre2_code_free(t->steps[k].re);
  if (t->word_re) pcre2_code_free(t->word_re);
  mem_free(t->tok_off);
  mem_free(t->tok_len);
  mem_free(t->tok_flags);
  mem_free(t->arena);
  mem_free(t->merges);
  strmap_free(&t->vocab_map);
  strmap_free(&t->added_map);
  trie_free(&t->trie_raw);
  trie_free(&t->trie_norm);
  for (int i = 0; i < t->n_added; i++) mem_free(t->added[i].norm);
  mem_free(t->added);
  tok_wordpiece_free(t->wp);
  tok_template_free(t->post);
  buf_free(&t->list_ids); buf_free(&t->list_off); buf_free(&t->list_who); buf_free(&t->list_at);
  buf_free(&t->list_cnt); buf_free(&t->dec); buf_free(&t->dec_raw);
  buf_free(&t->b_ids); buf_free(&t->b_off); buf_free(&t->out_ids); buf_free(&t->out_off); buf_free(&t->one);
  mem_free(t->path);
  mem_free(t);
}

/* ------------------------------------------------------------ queries */

int lacos_tokenizer_vocab_size(const lacos_tokenizer *t) { return t ? t->n_ids : 0; }

int lacos_tokenizer_token_to_id(const lacos_tokenizer *t, const char *token, double len) {
  if (!t || !token) return -1;
  size_t n = len < 0 ? strlen(token) : (size_t)len;
  return token_id(t, (const uint8_t *)token, n);
}

const char *lacos_tokenizer_id_to_token(const lacos_tokenizer *t, int id, double *len) {
  if (len) *len = 0;
  if (!t || id < 0 || id >= t->n_ids || t->tok_len[id] == NO_TOKEN) return NULL;
  if (len) *len = t->tok_len[id];
  return t->arena + t->tok_off[id];
}

int lacos_tokenizer_is_special(const lacos_tokenizer *t, int id) {
  return t && id >= 0 && id < t->n_ids && (t->tok_flags[id] & TOK_SPECIAL) ? 1 : 0;
}

const char *lacos_tokenizer_model_type(const lacos_tokenizer *t) { return t && t->wp ? "WordPiece" : "BPE"; }

int lacos_tokenizer_special_count(const lacos_tokenizer *t, int pair) {
  return t && t->post ? tok_template_added(t->post, pair ? 1 : 0) : 0;
}

void lacos_tokenizer_batch_options_init(const lacos_tokenizer *t, lacos_tokenizer_batch_options *opt) {
  if (!opt) return;
  if (t) *opt = t->batch;
  else { memset(opt, 0, sizeof *opt); opt->pad_id = -1; opt->add_special = 1; }
}

/* ------------------------------------------------------------ encoding */

static int text_len(const char *text, double len, size_t *n) {
  if (!text) {
    if (len > 0) return fail(LACOS_EINVAL, "the text is NULL");
    *n = 0;
    return LACOS_OK;
  }
  if (len < 0) { *n = strlen(text); return LACOS_OK; }
  if (len != len || len > (double)INT32_MAX)
    return fail(LACOS_ELIMIT, "a text of %.0f bytes is more than the %d bytes lacos tokenizes at once", len, INT32_MAX);
  *n = (size_t)len;
  return LACOS_OK;
}

/* Special tokens the options put around one text (pair = 0) or a pair. */
static int added_count(const lacos_tokenizer *t, const lacos_tokenizer_batch_options *o, int pair) {
  return o->add_special && t->post ? tok_template_added(t->post, pair) : 0;
}

/* One row: the text(s) as the template lays them out — with the special
   tokens, or only the texts (in the template's order and type ids) when
   they are off; without a template, A then B with type ids 0 and 1. */
static size_t write_row(const lacos_tokenizer *t, const lacos_tokenizer_batch_options *o, const int32_t *a, size_t na,
                        const int32_t *b, size_t nb, int pair, int32_t *ids, int32_t *types) {
  if (t->post) return tok_template_apply(t->post, a, na, b, nb, pair, o->add_special, ids, types);
  if (na) memcpy(ids, a, na * sizeof *ids);
  if (nb) memcpy(ids + na, b, nb * sizeof *ids);
  if (types) {
    for (size_t j = 0; j < na; j++) types[j] = 0;
    for (size_t j = 0; j < nb; j++) types[na + j] = 1;
  }
  return na + nb;
}

int lacos_tokenizer_encode(lacos_tokenizer *t, const int32_t **ids, int *n, const char *text, double len) {
  if (!t || !ids || !n) return fail(LACOS_EINVAL, "lacos_tokenizer_encode: NULL argument");
  *ids = NULL;
  *n = 0;
  size_t nb;
  TRY(text_len(text, len, &nb));
  tok_ctx *c = t->ctx[0];
  c->n_ids = 0;
  TRY(encode_text(t, c, (const uint8_t *)text, nb));
  static const int32_t none[1] = {0};
  const int32_t *out = c->ids.p ? (const int32_t *)c->ids.p : none;   /* never NULL, even for no tokens */
  size_t m = c->n_ids;
  if (t->post) {
    lacos_tokenizer_batch_options o = t->batch;
    o.add_special = 1;
    TRY(buf_reserve(&t->one, (m + (size_t)added_count(t, &o, 0) + 1) * sizeof(int32_t), "token ids"));
    m = write_row(t, &o, out, m, NULL, 0, 0, t->one.p, NULL);
    out = t->one.p;
  }
  if (m > INT32_MAX) return fail(LACOS_ELIMIT, "the text gives more than %d tokens", INT32_MAX);
  *ids = out;
  *n = (int)m;
  return LACOS_OK;
}

/* The model's ids of n texts, no special tokens, into ids_b and off_b (text
   i has [off[i], off[i+1])), spread over the engine's threads. */
static int encode_many(lacos_tokenizer *t, buf *ids_b, buf *off_b, const char *const *texts, const double *lens, int n) {
  if (n < 0) return fail(LACOS_EINVAL, "lacos_tokenizer_encode: %d texts", n);
  if (n > 0 && !texts) return fail(LACOS_EINVAL, "lacos_tokenizer_encode: texts is NULL");
  size_t nn = (size_t)n;
  TRY(buf_reserve(off_b, (nn + 1) * sizeof(int32_t), "token offsets"));
  TRY(buf_reserve(&t->list_cnt, (nn + 1) * sizeof(int32_t), "token offsets"));
  TRY(buf_reserve(&t->list_who, (nn + 1) * sizeof(int32_t), "token offsets"));
  TRY(buf_reserve(&t->list_at, (nn + 1) * sizeof(size_t), "token offsets"));
  int nt = threads_count();
  if (nt > n / 16) nt = n / 16;   /* threads only pay off on a few dozen texts */
  if (nt < 1) nt = 1;
  TRY(ctx_ensure(t, nt));
  int32_t *cnt = t->list_cnt.p, *who = t->list_who.p;
  size_t *at = t->list_at.p;
  for (int k = 0; k < nt; k++) { t->ctx[k]->n_ids = 0; t->ctx[k]->status = 0; t->ctx[k]->failed_at = n; }
  int any_failed = 0;
  #pragma omp parallel for schedule(dynamic, 32) num_threads(nt) if (nt > 1)
  for (int i = 0; i < n; i++) {
    int tid = 0;
#ifdef _OPENMP
    tid = omp_get_thread_num();
#endif
    tok_ctx *c = t->ctx[tid];
    if (__atomic_load_n(&any_failed, __ATOMIC_RELAXED)) continue;
    size_t before = c->n_ids, nb = 0;
    int s = text_len(texts[i], lens ? lens[i] : -1, &nb);
    if (!s) s = encode_text(t, c, (const uint8_t *)texts[i], nb);
    if (!s && lacos_interrupt_flag) s = fail(LACOS_EINTERRUPTED, "interrupted");
    if (!s && c->n_ids - before > INT32_MAX) s = fail(LACOS_ELIMIT, "more than %d tokens", INT32_MAX);
    if (s) {
      if (i < c->failed_at) {
        c->status = s;
        c->failed_at = i;
        snprintf(c->message, sizeof c->message, "%s", lacos_last_error());
      }
      __atomic_store_n(&any_failed, 1, __ATOMIC_RELAXED);
      continue;
    }
    who[i] = tid;
    at[i] = before;
    cnt[i] = (int32_t)(c->n_ids - before);
  }
  int worst = -1;
  for (int k = 0; k < nt; k++) if (t->ctx[k]->status && (worst < 0 || t->ctx[k]->failed_at < t->ctx[worst]->failed_at)) worst = k;
  if (worst >= 0) {
    tok_ctx *c = t->ctx[worst];
    if (c->status == LACOS_EINTERRUPTED) return fail(LACOS_EINTERRUPTED, "interrupted");
    return fail(c->status, "text %d: %s", c->failed_at + 1, c->message);
  }
  size_t total = 0;
  int32_t *off = off_b->p;
  for (size_t i = 0; i < nn; i++) {
    off[i] = (int32_t)total;
    total += (size_t)cnt[i];
    if (total > INT32_MAX) return fail(LACOS_ELIMIT, "the texts give more than %d tokens together", INT32_MAX);
  }
  off[nn] = (int32_t)total;
  TRY(buf_reserve(ids_b, (total + 1) * sizeof(int32_t), "token ids"));
  int32_t *dst = ids_b->p;
  for (size_t i = 0; i < nn; i++)   /* a thread that only saw empty texts has no id buffer yet */
    if (cnt[i]) memcpy(dst + off[i], (int32_t *)t->ctx[who[i]]->ids.p + at[i], (size_t)cnt[i] * sizeof(int32_t));
  return LACOS_OK;
}

static int check_options(const lacos_tokenizer *t, const lacos_tokenizer_batch_options *o, int pair) {
  if (o->max_length < 0 || o->pad_length < 0 || o->pad_to_multiple_of < 0 || o->pad_type_id < 0)
    return fail(LACOS_EINVAL, "batch options: max_length, pad_length, pad_to_multiple_of and pad_type_id must not be negative");
  if ((o->padding_side != LACOS_TOKENIZER_RIGHT && o->padding_side != LACOS_TOKENIZER_LEFT) ||
      (o->truncation_side != LACOS_TOKENIZER_RIGHT && o->truncation_side != LACOS_TOKENIZER_LEFT))
    return fail(LACOS_EINVAL, "batch options: sides must be LACOS_TOKENIZER_RIGHT or LACOS_TOKENIZER_LEFT");
  if (o->truncation_strategy < LACOS_TOKENIZER_LONGEST_FIRST || o->truncation_strategy > LACOS_TOKENIZER_ONLY_SECOND)
    return fail(LACOS_EINVAL, "batch options: truncation_strategy %d is not a lacos_tokenizer_truncation", o->truncation_strategy);
  if (o->add_special != 0 && o->add_special != 1) return fail(LACOS_EINVAL, "batch options: add_special must be 0 or 1");
  if (o->truncation && !o->max_length) return fail(LACOS_EINVAL, "batch options: truncation needs a max_length");
  int added = added_count(t, o, pair);
  if (o->truncation && o->max_length < added)
    return fail(LACOS_EINVAL, "batch options: max_length %d leaves no room for the %d special tokens the tokenizer adds%s",
                o->max_length, added, pair ? " to a pair" : "");
  return LACOS_OK;
}

/* The lengths row `row` keeps of its texts (na, and nb for a pair) so that
   with the special tokens it fits max_length: tokenizers' truncate_encodings. */
static int truncate_lengths(const lacos_tokenizer *t, const lacos_tokenizer_batch_options *o, int pair, int row,
                            int64_t *na, int64_t *nb) {
  int added = added_count(t, o, pair);
  int64_t total = *na + *nb + added;
  if (!o->max_length || total <= o->max_length) return LACOS_OK;
  if (!o->truncation)
    return fail(LACOS_ELIMIT, "%s %d has %lld tokens, more than the maximum length %d (turn truncation on to cut it)",
                pair ? "pair" : "text", row + 1, (long long)total, o->max_length);
  int64_t limit = o->max_length - added, remove = *na + *nb - limit;
  if (o->truncation_strategy == LACOS_TOKENIZER_LONGEST_FIRST) {
    if (!pair) { *na = limit; return LACOS_OK; }
    int64_t n1 = *na, n2 = *nb;
    bool swap = n1 > n2;
    if (swap) { int64_t x = n1; n1 = n2; n2 = x; }
    n2 = n1 > limit ? n1 : (n1 > limit - n1 ? n1 : limit - n1);
    if (n1 + n2 > limit) { n1 = limit / 2; n2 = n1 + limit % 2; }
    if (swap) { int64_t x = n1; n1 = n2; n2 = x; }
    if (*na > n1) *na = n1;
    if (*nb > n2) *nb = n2;
    return LACOS_OK;
  }
  bool second = o->truncation_strategy == LACOS_TOKENIZER_ONLY_SECOND;
  if (second && !pair)
    return fail(LACOS_EINVAL, "text %d: truncation only_second needs pairs of texts", row + 1);
  int64_t *target = second ? nb : na;
  if (*target <= remove)
    return fail(LACOS_ELIMIT, "%s %d has %lld tokens; cutting only its %s text (%lld tokens) cannot bring it to %d",
                pair ? "pair" : "text", row + 1, (long long)total, second ? "second" : "first", (long long)*target,
                o->max_length);
  *target -= remove;
  return LACOS_OK;
}

/* Where a text cut to m of its n ids starts (left truncation keeps the end). */
static inline const int32_t *cut(const lacos_tokenizer_batch_options *o, const int32_t *ids, int64_t n, int64_t m) {
  return o->truncation_side == LACOS_TOKENIZER_LEFT ? ids + (n - m) : ids;
}

int lacos_tokenizer_encode_list_opt(lacos_tokenizer *t, const int32_t **ids, const int32_t **offsets,
                                    const char *const *texts, const double *lens, int n,
                                    const lacos_tokenizer_batch_options *opt) {
  if (!t || !ids || !offsets) return fail(LACOS_EINVAL, "lacos_tokenizer_encode_list: NULL argument");
  *ids = NULL;
  *offsets = NULL;
  lacos_tokenizer_batch_options o = opt ? *opt : t->batch;
  TRY(check_options(t, &o, 0));
  TRY(encode_many(t, &t->list_ids, &t->list_off, texts, lens, n));
  const int32_t *raw = t->list_ids.p, *off = t->list_off.p;
  int added = added_count(t, &o, 0);
  if (!added && !o.max_length) {   /* the model's ids are the rows */
    *ids = raw;
    *offsets = off;
    return LACOS_OK;
  }
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    int64_t na = off[i + 1] - off[i], nb = 0;
    TRY(truncate_lengths(t, &o, 0, i, &na, &nb));
    total += (size_t)(na + added);
  }
  if (total > INT32_MAX) return fail(LACOS_ELIMIT, "the texts give more than %d tokens together", INT32_MAX);
  TRY(buf_reserve(&t->out_off, ((size_t)n + 1) * sizeof(int32_t), "token offsets"));
  TRY(buf_reserve(&t->out_ids, (total + 1) * sizeof(int32_t), "token ids"));
  int32_t *dst = t->out_ids.p, *doff = t->out_off.p;
  size_t k = 0;
  for (int i = 0; i < n; i++) {
    int64_t full = off[i + 1] - off[i], na = full, nb = 0;
    TRY(truncate_lengths(t, &o, 0, i, &na, &nb));
    doff[i] = (int32_t)k;
    k += write_row(t, &o, cut(&o, raw + off[i], full, na), (size_t)na, NULL, 0, 0, dst + k, NULL);
  }
  doff[n] = (int32_t)k;
  *ids = dst;
  *offsets = doff;
  return LACOS_OK;
}

int lacos_tokenizer_encode_list(lacos_tokenizer *t, const int32_t **ids, const int32_t **offsets,
                                const char *const *texts, const double *lens, int n) {
  if (!t) return fail(LACOS_EINVAL, "lacos_tokenizer_encode_list: NULL argument");
  lacos_tokenizer_batch_options o = t->batch;
  o.add_special = 1;
  o.max_length = 0;
  o.truncation = 0;
  return lacos_tokenizer_encode_list_opt(t, ids, offsets, texts, lens, n, &o);
}

int lacos_tokenizer_encode_pairs(lacos_tensor **ids_out, lacos_tensor **mask_out, lacos_tensor **types_out,
                                 lacos_tokenizer *t, const char *const *first, const double *first_lens,
                                 const char *const *second, const double *second_lens, int n,
                                 const lacos_tokenizer_batch_options *opt) {
  if (!ids_out || !mask_out || !t) return fail(LACOS_EINVAL, "lacos_tokenizer_encode_pairs: NULL argument");
  *ids_out = *mask_out = NULL;
  if (types_out) *types_out = NULL;
  int pair = second != NULL;
  lacos_tokenizer_batch_options o = opt ? *opt : t->batch;
  TRY(check_options(t, &o, pair));
  if (o.pad_id >= t->n_ids) return fail(LACOS_EINVAL, "batch options: pad id %d is not in the vocabulary (%d ids)", o.pad_id, t->n_ids);
  TRY(encode_many(t, &t->list_ids, &t->list_off, first, first_lens, n));
  if (pair) {
    int s = encode_many(t, &t->b_ids, &t->b_off, second, second_lens, n);
    if (s) return fail_context("second texts");
  }
  const int32_t *ia = t->list_ids.p, *oa = t->list_off.p, *ib = pair ? t->b_ids.p : NULL, *ob = pair ? t->b_off.p : NULL;
  int added = added_count(t, &o, pair);
  int64_t T = 0;
  for (int i = 0; i < n; i++) {
    int64_t na = oa[i + 1] - oa[i], nb = pair ? ob[i + 1] - ob[i] : 0;
    TRY(truncate_lengths(t, &o, pair, i, &na, &nb));
    if (na + nb + added > T) T = na + nb + added;
  }
  if (o.pad_length > T) T = o.pad_length;
  if (o.pad_to_multiple_of > 0 && T % o.pad_to_multiple_of) T += o.pad_to_multiple_of - T % o.pad_to_multiple_of;
  if (T * (int64_t)n > INT32_MAX) return fail(LACOS_ELIMIT, "a batch of %d x %lld tokens is too large", n, (long long)T);
  int64_t shape[2] = {n, T};
  lacos_tensor *ti = NULL, *tm = NULL, *tt = NULL;
  int s = lacos_tensor_empty(&ti, LACOS_I32, LACOS_CPU, 2, shape);
  if (!s) s = lacos_tensor_new(&tm, LACOS_I32, LACOS_CPU, 2, shape);
  if (!s && types_out) s = lacos_tensor_empty(&tt, LACOS_I32, LACOS_CPU, 2, shape);
  int32_t *pi = ti ? ti->data : NULL, *pm = tm ? tm->data : NULL, *pt = tt ? tt->data : NULL;
  for (int i = 0; i < n && !s; i++) {
    int64_t fa = oa[i + 1] - oa[i], fb = pair ? ob[i + 1] - ob[i] : 0, na = fa, nb = fb;
    truncate_lengths(t, &o, pair, i, &na, &nb);   /* succeeded above */
    int64_t L = na + nb + added;
    if (L < T && o.pad_id < 0) {
      s = fail(LACOS_EINVAL, "text %d needs padding but the tokenizer has no pad token (no padding section, no <pad> or [PAD]): give a pad id", i + 1);
      break;
    }
    int64_t start = o.padding_side == LACOS_TOKENIZER_LEFT ? T - L : 0;
    int32_t *row = pi + (int64_t)i * T, *mrow = pm + (int64_t)i * T, *trow = pt ? pt + (int64_t)i * T : NULL;
    for (int64_t j = 0; j < T; j++) row[j] = o.pad_id;
    if (trow) for (int64_t j = 0; j < T; j++) trow[j] = o.pad_type_id;
    write_row(t, &o, cut(&o, ia + oa[i], fa, na), (size_t)na, pair ? cut(&o, ib + ob[i], fb, nb) : NULL, (size_t)nb, pair,
              row + start, trow ? trow + start : NULL);
    for (int64_t j = 0; j < L; j++) mrow[start + j] = 1;
  }
  if (s) {
    lacos_tensor_free(ti);
    lacos_tensor_free(tm);
    lacos_tensor_free(tt);
    return s;
  }
  *ids_out = ti;
  *mask_out = tm;
  if (types_out) *types_out = tt;
  return LACOS_OK;
}

int lacos_tokenizer_encode_batch(lacos_tensor **ids_out, lacos_tensor **mask_out, lacos_tokenizer *t,
                                 const char *const *texts, const double *lens, int n,
                                 const lacos_tokenizer_batch_options *opt) {
  return lacos_tokenizer_encode_pairs(ids_out, mask_out, NULL, t, texts, lens, NULL, NULL, n, opt);
}

/* ------------------------------------------------------------ decoding */

/* The string a token decodes from: its own, or for a normalized added token
   its normalized form (added_vocabulary.rs, simple_id_to_token). */
static const uint8_t *decode_form(const lacos_tokenizer *t, int id, size_t *m) {
  const uint8_t *s = (const uint8_t *)t->arena + t->tok_off[id];
  *m = t->tok_len[id];
  if (t->tok_flags[id] & TOK_ADDED) {
    int64_t a = strmap_get(t, &t->added_map, added_key, s, *m);
    if (a >= 0 && t->added[a].norm) { *m = t->added[a].norm_len; return (const uint8_t *)t->added[a].norm; }
  }
  return s;
}

int lacos_tokenizer_decode(lacos_tokenizer *t, const char **text, double *len, const int32_t *ids, int n, int skip_special) {
  if (!t || !text || !len) return fail(LACOS_EINVAL, "lacos_tokenizer_decode: NULL argument");
  *text = "";
  *len = 0;
  if (n < 0 || (n > 0 && !ids)) return fail(LACOS_EINVAL, "lacos_tokenizer_decode: bad id list");
  size_t total = 0;
  for (int i = 0; i < n; i++) {
    int id = ids[i];
    if (id < 0 || id >= t->n_ids || t->tok_len[id] == NO_TOKEN)
      return fail(LACOS_EINVAL, "id %d (position %d) is not a token of this tokenizer (ids 0 to %d)", id, i + 1, t->n_ids - 1);
    size_t m;
    decode_form(t, id, &m);
    total += m + 1;
  }
  TRY(buf_reserve(&t->dec_raw, total + 1, "decoded text"));
  uint8_t *raw = t->dec_raw.p;
  size_t k = 0;
  bool first = true;
  for (int i = 0; i < n; i++) {
    int id = ids[i];
    if (skip_special && (t->tok_flags[id] & TOK_SPECIAL)) continue;
    size_t m;
    const uint8_t *s = decode_form(t, id, &m);
    if (t->decoder == DEC_NONE) {   /* upstream without a decoder joins tokens with spaces */
      if (!first) raw[k++] = ' ';
      memcpy(raw + k, s, m);
      k += m;
      first = false;
      continue;
    }
    if (t->decoder == DEC_WORDPIECE) {   /* index among the tokens kept, as upstream's decode_chain sees them */
      k += tok_wordpiece_decode_token(t->wp, first ? 0 : 1, s, m, raw + k);
      first = false;
      continue;
    }
    /* ByteLevel: characters back to bytes; a token with a character outside
       the map (an added token with a space, say) goes in as it is. */
    size_t k0 = k;
    bool mapped = true;
    for (size_t j = 0; j < m;) {
      int l;
      int b = tok_char_byte(utf8_decode(s + j, &l));
      if (b < 0) { mapped = false; break; }
      raw[k++] = (uint8_t)b;
      j += (size_t)l;
    }
    if (!mapped) { k = k0; memcpy(raw + k, s, m); k += m; }
  }
  TRY(buf_reserve(&t->dec, 3 * k + 1, "decoded text"));
  size_t o = tok_utf8_lossy(t->dec.p, raw, k);
  ((char *)t->dec.p)[o] = 0;
  *text = t->dec.p;
  *len = (double)o;
  return LACOS_OK;
}

/* ------------------------------------------------------------ test hooks */

int tokenizer_pieces(lacos_tokenizer *t, const char *text, size_t n, tok_piece_fn fn, void *ud) {
  tok_ctx *c = t->ctx[0];
  c->piece_fn = fn;
  c->piece_ud = ud;
  c->n_ids = 0;
  int s = encode_text(t, c, (const uint8_t *)text, n);
  c->piece_fn = NULL;
  c->piece_ud = NULL;
  return s;
}

int tokenizer_bpe(lacos_tokenizer *t, const uint8_t *piece, size_t n, int algo, int32_t *out, int cap, int *n_out) {
  tok_ctx *c = t->ctx[0];
  c->n_ids = 0;
  TRY(bpe_piece(t, c, piece, n, algo));
  if (c->n_ids > (size_t)cap) return fail(LACOS_ELIMIT, "%zu ids do not fit in %d", c->n_ids, cap);
  memcpy(out, c->ids.p, c->n_ids * sizeof(int32_t));
  *n_out = (int)c->n_ids;
  return LACOS_OK;
}

int tokenizer_normalize(lacos_tokenizer *t, const uint8_t *s, size_t n, const uint8_t **out, size_t *out_n) {
  if (!tok_wordpiece_normalizes(t->wp)) { *out = s; *out_n = n; return LACOS_OK; }
  return tok_wordpiece_normalize(t->wp, t->ctx[0]->wps, s, n, out, out_n);
}

const tok_wordpiece *tokenizer_wordpiece(const lacos_tokenizer *t) { return t->wp; }
