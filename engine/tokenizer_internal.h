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

#endif
