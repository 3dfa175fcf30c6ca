/* results_json.c: canonical JSON, so that one config gives one hash
   whatever its key order or number spelling: keys sorted bytewise, numbers
   in their shortest round-tripping form (integral values below 2^53 as
   integers), no spaces. */
#include "results_internal.h"
#include <errno.h>
#include <math.h>

void sbuf_put(sbuf *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1) cap *= 2;
    if (mem_realloc(&b->p, cap, "text")) { b->oom = 1; return; }
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}
void sbuf_puts(sbuf *b, const char *s) { sbuf_put(b, s, strlen(s)); }

/* Shortest text that reads back as exactly v; integral values below 2^53
   without fraction or exponent (so 1.0, 1 and 1e0 are all "1"). */
void number_format(double v, char out[40]) {
  if (v == floor(v) && fabs(v) < 9007199254740992.0) {
    snprintf(out, 40, "%.0f", v == 0 ? 0.0 : v);
    return;
  }
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(out, 40, "%.*g", prec, v);
    if (strtod(out, NULL) == v) return;
  }
}

/* A decimal number as people write one: [+-]digits[.digits][e[+-]digits].
   Hex, inf, nan and surrounding spaces stay text. */
bool decimal_parse(const char *s, double *v) {
  const char *p = s;
  if (*p == '+' || *p == '-') p++;
  int digits = 0;
  while (*p >= '0' && *p <= '9') { p++; digits++; }
  if (*p == '.') { p++; while (*p >= '0' && *p <= '9') { p++; digits++; } }
  if (!digits) return false;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    if (!(*p >= '0' && *p <= '9')) return false;
    while (*p >= '0' && *p <= '9') p++;
  }
  if (*p) return false;
  errno = 0;
  double d = strtod(s, NULL);
  if (!isfinite(d)) return false;
  *v = d;
  return true;
}

/* ------------------------------------------------------------------ canonical JSON */

static int canon_value(sbuf *b, json_t *v) {
  char num[40];
  switch (json_typeof(v)) {
  case JSON_OBJECT: {
    size_t n = json_object_size(v), i = 0;
    const char **keys;
    TRY(meta_alloc(&keys, (n ? n : 1) * sizeof *keys, "canonical JSON"));
    const char *k;
    json_t *x;
    json_object_foreach(v, k, x) keys[i++] = k;
    /* Bytewise order, the same as Lua's table.sort on strings. */
    for (size_t a = 1; a < n; a++) {
      const char *t = keys[a];
      size_t c = a;
      while (c > 0 && strcmp(keys[c - 1], t) > 0) { keys[c] = keys[c - 1]; c--; }
      keys[c] = t;
    }
    sbuf_puts(b, "{");
    for (i = 0; i < n; i++) {
      if (i) sbuf_puts(b, ",");
      json_t *ks = json_string(keys[i]);
      char *kt = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
      json_decref(ks);
      if (!kt) { mem_free(keys); return fail(LACOS_ENOMEM, "canonical JSON: out of memory"); }
      sbuf_puts(b, kt);
      free(kt);
      sbuf_puts(b, ":");
      int s = canon_value(b, json_object_get(v, keys[i]));
      if (s) { mem_free(keys); return s; }
    }
    sbuf_puts(b, "}");
    mem_free(keys);
    return LACOS_OK;
  }
  case JSON_ARRAY:
    sbuf_puts(b, "[");
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i) sbuf_puts(b, ",");
      TRY(canon_value(b, json_array_get(v, i)));
    }
    sbuf_puts(b, "]");
    return LACOS_OK;
  case JSON_INTEGER: {
    json_int_t iv = json_integer_value(v);
    if (iv > -9007199254740992LL && iv < 9007199254740992LL) snprintf(num, sizeof num, "%lld", (long long)iv);
    else number_format((double)iv, num);   /* what a Lua number would hold */
    sbuf_puts(b, num);
    return LACOS_OK;
  }
  case JSON_REAL:
    number_format(json_real_value(v), num);
    sbuf_puts(b, num);
    return LACOS_OK;
  case JSON_STRING: {
    char *t = json_dumps(v, JSON_ENCODE_ANY);
    if (!t) return fail(LACOS_ENOMEM, "canonical JSON: out of memory");
    sbuf_puts(b, t);
    free(t);
    return LACOS_OK;
  }
  case JSON_TRUE: sbuf_puts(b, "true"); return LACOS_OK;
  case JSON_FALSE: sbuf_puts(b, "false"); return LACOS_OK;
  case JSON_NULL: sbuf_puts(b, "null"); return LACOS_OK;
  }
  return fail(LACOS_EFORMAT, "canonical JSON: unknown value type");
}

int db_json_parse(json_t **out, const char *text, const char *what) {
  json_error_t err;
  *out = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
  if (!*out) return fail(LACOS_EFORMAT, "%s: invalid JSON at line %d, column %d: %s", what, err.line, err.column, err.text);
  return LACOS_OK;
}

int canonical_json_of(char **out, char *sha, json_t *root) {
  sbuf b = { 0 };
  int s = canon_value(&b, root);
  if (!s && !b.p) sbuf_puts(&b, "");
  if (!s && b.oom) s = fail(LACOS_ENOMEM, "canonical JSON: out of memory");
  if (s) { mem_free(b.p); return s; }
  if (sha) {
    s = lacos_sha256_buffer(b.p, (double)b.n, sha);
    if (s) { mem_free(b.p); return s; }
  }
  *out = b.p;
  return LACOS_OK;
}

int lacos_db_canonical_json(char **out, char *sha256_hex, const char *json) {
  if (!out) return fail(LACOS_EINVAL, "lacos_db_canonical_json: out is NULL");
  *out = NULL;
  if (!json) return fail(LACOS_EINVAL, "lacos_db_canonical_json: json is NULL");
  json_t *root;
  TRY(db_json_parse(&root, json, "config"));
  int s = canonical_json_of(out, sha256_hex, root);
  json_decref(root);
  return s;
}

void lacos_db_text_free(char *text) { mem_free(text); }

