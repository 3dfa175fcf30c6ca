/* utf8.h: the two character questions every tokenizer stage asks, inline
   for the hot loops of tokenizer.c and wordpiece.c alike. */
#ifndef LACOS_UTF8_H
#define LACOS_UTF8_H
#include <stdbool.h>
#include <stdint.h>

/* The code point at s (valid UTF-8), its length in *len. */
static inline uint32_t utf8_decode(const uint8_t *s, int *len) {
  uint8_t c = s[0];
  if (c < 0x80) { *len = 1; return c; }
  if (c < 0xE0) { *len = 2; return ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F); }
  if (c < 0xF0) { *len = 3; return ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F); }
  *len = 4;
  return ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

/* Unicode White_Space: what \s means to Rust's regex and to Oniguruma
   (Rust's char::is_whitespace). */
static inline bool is_white_space(uint32_t c) {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
#endif
