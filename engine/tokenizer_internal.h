/* tokenizer_internal.h: the pieces of tokenizer.c that the C tests check one
   by one (the byte map, UTF-8 handling, the Oniguruma → PCRE2 translation,
   pre-tokenization and the BPE merge loop). Not part of the public API. */
#ifndef LACOS_TOKENIZER_INTERNAL_H
#define LACOS_TOKENIZER_INTERNAL_H
#include "engine.h"

/* GPT-2's bytes_to_unicode: the code point byte b is written as in vocab strings. */
uint32_t tok_byte_char(int b);
/* The byte a code point stands for, or -1 if it is not one of the 256. */
int tok_char_byte(uint32_t cp);

/* Strict UTF-8 (as Rust's str): no overlong forms, surrogates or code points
   past U+10FFFF. Returns true when valid; otherwise *bad is the offset of the
   first byte of the first invalid sequence. */
bool tok_utf8_valid(const uint8_t *s, size_t n, size_t *bad);
/* Rust's String::from_utf8_lossy: every maximal invalid subpart becomes one
   U+FFFD. out must hold 3·n bytes; returns the bytes written. */
size_t tok_utf8_lossy(uint8_t *out, const uint8_t *s, size_t n);

/* Rewrites an Oniguruma (Ruby syntax) pattern, as tokenizers compiles it,
   into a PCRE2 pattern with the same meaning under PCRE2_UTF | PCRE2_UCP |
   PCRE2_MULTILINE: nested classes are flattened (BLOOM's "[^(\s|[.,!?…])]"
   is the class of '(' '|' ')' whitespace and the listed marks), \s becomes
   \p{White_Space}, \w Oniguruma's word class, \h a hex digit, (?m) dotall.
   Constructs whose meaning differs and cannot be rewritten (\b, negated
   nested classes, &&, ...) fail with LACOS_EUNSUPPORTED. *out is malloc'd. */
int tok_regex_translate(char **out, const char *pattern, size_t n);

/* Limits on what a tokenizer.json may hold; tests lower them. */
typedef struct tokenizer_limits {
  size_t file_bytes;     /* the whole file */
  int vocab;             /* model.vocab entries */
  int merges;            /* model.merges entries */
  int added;             /* added_tokens entries */
  int max_id;            /* largest token id */
  size_t token_bytes;    /* one token string */
} tokenizer_limits;
extern tokenizer_limits tokenizer_limits_current;

/* Calls fn for every piece the added-token split and the pre-tokenizer make
   of text (id >= 0: an added token, whose bytes are given too). */
typedef void (*tok_piece_fn)(void *ud, const uint8_t *s, size_t n, int added_id);
int tokenizer_pieces(lacos_tokenizer *t, const char *text, size_t n, tok_piece_fn fn, void *ud);

/* The BPE of one pre-tokenized piece (raw bytes) without the piece cache.
   algo: 0 = linear scan (short words), 1 = heap (long words), -1 = automatic. */
int tokenizer_bpe(lacos_tokenizer *t, const uint8_t *piece, size_t n, int algo, int32_t *out, int cap, int *n_out);

/* The normalized text of s (a WordPiece tokenizer's normalizer; the text
   itself without one), valid until the next call on t. */
int tokenizer_normalize(lacos_tokenizer *t, const uint8_t *s, size_t n, const uint8_t **out, size_t *out_n);

/* ---- shared with wordpiece.c and tokenizer_template.c ----
   Both sit below tokenizer.c, which calls them: what they read of the
   vocabulary comes through a tok_vocab that tokenizer.c fills, and the
   character helpers from utf8.h, so no object depends on one that
   depends on it. */

typedef struct json_t json_t;

typedef struct tok_vocab {
  const lacos_tokenizer *t;
  /* the id of s in model.vocab (added tokens not included), or -1 */
  int64_t (*find)(const lacos_tokenizer *t, const uint8_t *s, size_t n);
  /* whether id names a token */
  bool (*known)(const lacos_tokenizer *t, int64_t id);
  int n_ids;                 /* largest id + 1 */
} tok_vocab;

/* BERT's pipeline for a WordPiece model (wordpiece.c): the normalizer, the
   pre-tokenizer, the model's greedy longest-match and the decoder. */
typedef struct tok_wordpiece tok_wordpiece;
/* Per-thread scratch for normalising and matching. */
typedef struct tok_wp_scratch tok_wp_scratch;

/* Reads "normalizer", "pre_tokenizer", "decoder" and model's
   unk_token / continuing_subword_prefix / max_input_chars_per_word; the
   vocabulary is already loaded. */
int tok_wordpiece_parse(tok_wordpiece **out, const tok_vocab *v, const json_t *root);
void tok_wordpiece_free(tok_wordpiece *w);
int tok_wp_scratch_new(tok_wp_scratch **out);
void tok_wp_scratch_free(tok_wp_scratch *s);
/* false when the file has no normalizer (the text is used as it is). */
bool tok_wordpiece_normalizes(const tok_wordpiece *w);
/* t's WordPiece pipeline, or NULL for a BPE tokenizer (for tests). */
const tok_wordpiece *tokenizer_wordpiece(const lacos_tokenizer *t);
/* The normalized text of s[0..n): *out points into the scratch and stays
   valid until the next normalize on that scratch. */
int tok_wordpiece_normalize(const tok_wordpiece *w, tok_wp_scratch *sc, const uint8_t *s, size_t n,
                            const uint8_t **out, size_t *out_n);
/* Calls fn on every word the pre-tokenizer makes of s (normalized text). */
typedef int (*tok_word_fn)(void *ud, const uint8_t *s, size_t n);
int tok_wordpiece_pre_tokenize(const tok_wordpiece *w, const uint8_t *s, size_t n, tok_word_fn fn, void *ud);
/* The ids of one word: out must hold n + 1 ids (a word of n bytes never
   gives more). */
int tok_wordpiece_word(const tok_wordpiece *w, const tok_vocab *v, tok_wp_scratch *sc, const uint8_t *s,
                       size_t n, int32_t *out, size_t *n_out);
/* true when the file has a WordPiece decoder (else tokens are joined with spaces). */
bool tok_wordpiece_has_decoder(const tok_wordpiece *w);
/* The decoded form of the token at position index of the decoded list
   (prefix stripped or a space put before it, then the cleanup), written to
   out, which holds n + 1 bytes; returns the bytes written. */
size_t tok_wordpiece_decode_token(const tok_wordpiece *w, size_t index, const uint8_t *s, size_t n, uint8_t *out);

/* A post-processor that puts special tokens around the text(s)
   (TemplateProcessing, BertProcessing: tokenizer_template.c). */
typedef struct tok_template tok_template;
/* pp: one TemplateProcessing or BertProcessing object; where names it in errors. */
int tok_template_parse(tok_template **out, const tok_vocab *v, const json_t *pp, const char *where);
void tok_template_free(tok_template *tp);
/* How many ids the template adds to one text (pair = 0) or to a pair. */
int tok_template_added(const tok_template *tp, int pair);
/* Writes the template's ids around a (and b, for a pair) to ids (and the
   type ids to types, when not NULL); both hold na + nb + added entries.
   specials = 0 leaves the special tokens out (the texts keep the template's
   order and type ids). Returns the number written. */
size_t tok_template_apply(const tok_template *tp, const int32_t *a, size_t na, const int32_t *b, size_t nb, int pair,
                          int specials, int32_t *ids, int32_t *types);

#endif
