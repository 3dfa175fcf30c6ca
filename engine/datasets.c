/* datasets.c: readers for STS, NLI, paraphrase and bitext files into pair
   sets, and NLI pairs -> training triplets.

   The parsing rules are those of ../shared/datasets/PITFALLS.md: files are
   streamed line by line (never loaded whole, so a file with a 1 GB line fails
   after max_line_bytes instead of exhausting memory), a UTF-8 BOM is dropped,
   one \r is stripped per line, header lines are skipped only where the caller
   says so, TAB files are split on TAB alone (literal quotes are data), CSV is
   RFC 4180, and scores are parsed with strtod_l in the C locale whatever the
   process locale is. The triplet builder follows sentence-transformers'
   examples/training/nli/training_nli_v2.py (AllNLI) for LACOS_TRIPLETS_SBERT. */
#include "engine.h"
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <sys/stat.h>
#include <jansson.h>
#include <openssl/evp.h>

enum { MAX_FIELDS = 64 };
/* The row-level helpers return a count or -status; NEG passes a failing
   status up negated. */
#define NEG(expr) do { int neg_status_ = (expr); if (neg_status_ != LACOS_OK) return -neg_status_; } while (0)
#define DEFAULT_MAX_LINE (1u << 20)
#define DEFAULT_MAX_FILE (8.0 * 1024 * 1024 * 1024)
#define ARENA_BLOCK (4u << 20)
#define ARENA_FIRST (64u << 10)

/* ------------------------------------------------------------ the set */

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap, bytes;
  char data[];
} arena_block;

struct lacos_pairset {
  lacos_pair *pairs;
  size_t n, cap;
  lacos_pair_subset *subsets;
  int nsub, capsub;
  arena_block *blocks;
  double text_bytes;
};

/* A NUL-terminated copy of p[0..n) in the set's text blocks. */
static int arena_put(lacos_pairset *s, const char **out, const char *p, size_t n) {
  *out = NULL;
  arena_block *b = s->blocks;
  if (!b || b->cap - b->used < n + 1) {
    /* blocks grow from 64 KiB to ARENA_BLOCK: a small set (a test file, the
       triplets of a few pairs) does not hold 4 MiB; under AddressSanitizer
       the 4 MiB first block made the dataset fuzz targets ten times slower */
    size_t want = b ? (b->cap * 2 < ARENA_BLOCK ? b->cap * 2 : ARENA_BLOCK) : ARENA_FIRST;
    size_t cap = n + 1 > want ? n + 1 : want, bytes = sizeof(arena_block) + cap;
    TRY(mem_alloc(&b, bytes, "dataset text"));
    b->next = s->blocks;
    b->used = 0;
    b->cap = cap;
    b->bytes = bytes;
    s->blocks = b;
  }
  char *dst = b->data + b->used;
  if (n) memcpy(dst, p, n);
  dst[n] = 0;
  b->used += n + 1;
  s->text_bytes += (double)n + 1;
  *out = dst;
  return LACOS_OK;
}

static int arena_str(lacos_pairset *s, const char **out, const char *p) {
  return arena_put(s, out, p ? p : "", p ? strlen(p) : 0);
}

int lacos_pairset_new(lacos_pairset **out) {
  if (!out) return fail(LACOS_EINVAL, "pairset: out is NULL");
  return meta_calloc(out, 1, sizeof **out, "pair set");
}

void lacos_pairset_free(lacos_pairset *s) {
  if (!s) return;
  for (arena_block *b = s->blocks, *nx; b; b = nx) { nx = b->next; mem_free(b); }
  mem_free(s->pairs);
  mem_free(s->subsets);
  mem_free(s);
}

int lacos_pairset_size(const lacos_pairset *s) { return s ? (int)s->n : 0; }
const lacos_pair *lacos_pairset_pairs(const lacos_pairset *s) { return s ? s->pairs : NULL; }
int lacos_pairset_subset_count(const lacos_pairset *s) { return s ? s->nsub : 0; }
const lacos_pair_subset *lacos_pairset_subsets(const lacos_pairset *s) { return s ? s->subsets : NULL; }
double lacos_pairset_text_bytes(const lacos_pairset *s) { return s ? s->text_bytes : 0; }

static int push_pair(lacos_pairset *s, const lacos_pair *p) {
  if (s->n >= (size_t)INT32_MAX) return fail(LACOS_ELIMIT, "pair set: more than %d pairs", INT32_MAX);
  if (s->n == s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : 1024;
    TRY(mem_realloc(&s->pairs, ncap * sizeof *s->pairs, "dataset pairs"));
    s->cap = ncap;
  }
  s->pairs[s->n++] = *p;
  return LACOS_OK;
}

static const char *base_name(const char *path) {
  const char *b = strrchr(path, '/');
  return b ? b + 1 : path;
}

/* Opens a subset for one read call; the caller commits it or rolls back. */
static int subset_begin(lacos_pairset *s, const lacos_read_spec *spec, const char *source) {
  if (s->nsub == s->capsub) {
    int ncap = s->capsub ? s->capsub * 2 : 8;
    TRY(meta_realloc(&s->subsets, (size_t)ncap * sizeof *s->subsets, "pair set subsets"));
    s->capsub = ncap;
  }
  lacos_pair_subset *sub = &s->subsets[s->nsub];
  memset(sub, 0, sizeof *sub);
  TRY(arena_str(s, &sub->name, spec->subset ? spec->subset : base_name(source)));
  TRY(arena_str(s, &sub->lang1, spec->lang1));
  TRY(arena_str(s, &sub->lang2, spec->lang2));
  TRY(arena_str(s, &sub->source, source));
  sub->first = (int32_t)s->n;
  s->nsub++;
  return LACOS_OK;
}

static void subset_commit(lacos_pairset *s) {
  lacos_pair_subset *sub = &s->subsets[s->nsub - 1];
  sub->count = (int32_t)(s->n - (size_t)sub->first);
}

/* A failed read leaves the records as they were (the arena keeps the text,
   which is only memory). */
static int rollback(lacos_pairset *s, size_t n0, int nsub0, int status) {
  s->n = n0;
  s->nsub = nsub0;
  return status;
}

/* ------------------------------------------------------------ numbers */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static int is_space(int c) { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n'; }

/* A decimal number and nothing else: [+-] digits [. digits] [e [+-] digits]
   (digits on at least one side of the point). strtod alone takes more —
   "0x10" (16), "0x1p3", "inf", "nan", "infinity" — none of which is a
   score or a label anyone wrote. */
static bool decimal_syntax(const char *p, size_t n) {
  size_t i = 0, digits = 0;
  if (i < n && (p[i] == '+' || p[i] == '-')) i++;
  while (i < n && p[i] >= '0' && p[i] <= '9') { i++; digits++; }
  if (i < n && p[i] == '.') {
    i++;
    while (i < n && p[i] >= '0' && p[i] <= '9') { i++; digits++; }
  }
  if (digits == 0) return false;
  if (i < n && (p[i] == 'e' || p[i] == 'E')) {
    i++;
    if (i < n && (p[i] == '+' || p[i] == '-')) i++;
    size_t e = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9') { i++; e++; }
    if (e == 0) return false;
  }
  return i == n;
}

/* Parses a whole field as a finite decimal number in the C locale (the
   decimal point is '.', whatever LC_NUMERIC says); spaces around it are
   allowed, anything else (hex, inf, nan, trailing junk) is not. */
static bool parse_number(const char *p, size_t n, double *out) {
  while (n && is_space((unsigned char)*p)) { p++; n--; }
  while (n && is_space((unsigned char)p[n - 1])) n--;
  if (n == 0 || n > 63 || !decimal_syntax(p, n)) return false;
  char buf[64];
  memcpy(buf, p, n);
  buf[n] = 0;
  pthread_once(&c_locale_once, c_locale_init);
  if (!c_locale) return false;
  char *end;
  errno = 0;
  double v = strtod_l(buf, &end, c_locale);
  if (end != buf + n || !isfinite(v)) return false;
  *out = v;
  return true;
}

static bool parse_int(const char *p, size_t n, int32_t *out) {
  double v;
  if (!parse_number(p, n, &v) || v != floor(v) || fabs(v) > 1e9) return false;
  for (size_t i = 0; i < n; i++) if (p[i] == '.' || p[i] == 'e' || p[i] == 'E' || p[i] == 'x' || p[i] == 'X') return false;
  *out = (int32_t)v;
  return true;
}

/* ------------------------------------------------------------ text checks */

/* Returns the offset of the first byte that is not valid UTF-8, or -1. */
static long utf8_invalid_at(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t k;
    unsigned min;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) { k = 1; min = 0x80; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { k = 2; min = 0x800; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { k = 3; min = 0x10000; cp = c & 0x07; }
    else return (long)i;
    if (i + k >= n) return (long)i;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80) return (long)i;
      cp = (cp << 6) | (s[i + j] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return (long)i;
    i += k + 1;
  }
  return -1;
}

/* ------------------------------------------------------------ line reader */

/* Streams a file line by line with a cap on the line length. Lines come back
   NUL-terminated in the reader's buffer (valid until the next call), without
   their \n and one trailing \r, the first one without a UTF-8 BOM. */
typedef struct linereader {
  FILE *f;
  const char *path;
  char *buf;
  size_t cap, start, end, max_line;
  int64_t lineno;
  bool eof;
} linereader;

static int lr_open(linereader *lr, const char *path, const lacos_read_spec *spec) {
  memset(lr, 0, sizeof *lr);
  lr->path = path;
  double ml = spec && spec->max_line_bytes > 0 ? spec->max_line_bytes : DEFAULT_MAX_LINE;
  double mf = spec && spec->max_file_bytes > 0 ? spec->max_file_bytes : DEFAULT_MAX_FILE;
  if (ml > 1024.0 * 1024 * 1024) ml = 1024.0 * 1024 * 1024;
  lr->max_line = (size_t)ml;
  lr->f = fopen(path, "rb");
  if (!lr->f) return fail_errno("%s", path);
  struct stat st;
  if (fstat(fileno(lr->f), &st) != 0) { fclose(lr->f); lr->f = NULL; return fail_errno("%s", path); }
  if (S_ISDIR(st.st_mode)) { fclose(lr->f); lr->f = NULL; return fail(LACOS_EIO, "%s: is a directory, expected a file", path); }
  if ((double)st.st_size > mf) {
    fclose(lr->f); lr->f = NULL;
    return fail(LACOS_ELIMIT, "%s: file is %.1f MiB, more than the %.1f MiB allowed (max_file_bytes)",
                path, st.st_size / 1048576.0, mf / 1048576.0);
  }
  lr->cap = lr->max_line + 3 < 65536 ? lr->max_line + 3 : 65536;
  if (mem_alloc(&lr->buf, lr->cap, "line buffer")) { fclose(lr->f); lr->f = NULL; return fail_context("%s", path); }
  return LACOS_OK;
}

static void lr_close(linereader *lr) {
  if (lr->f) fclose(lr->f);
  mem_free(lr->buf);
  lr->f = NULL;
  lr->buf = NULL;
}

/* 1 = a line, 0 = end of file, -status on an error. */
static int lr_next(linereader *lr, char **line, size_t *len) {
  for (;;) {
    char *nl = lr->start < lr->end ? memchr(lr->buf + lr->start, '\n', lr->end - lr->start) : NULL;
    size_t avail = lr->end - lr->start;
    if (!nl && !lr->eof) {
      /* \r\n is allowed on top of a line of max_line bytes. */
      if (avail > lr->max_line + 1)
        return -fail(LACOS_ELIMIT, "%s:%lld: line is longer than the limit of %zu bytes (max_line_bytes)",
                    lr->path, (long long)lr->lineno + 1, lr->max_line);
      if (lr->start > 0) {
        memmove(lr->buf, lr->buf + lr->start, avail);
        lr->start = 0;
        lr->end = avail;
      }
      if (lr->end + 1 >= lr->cap) {
        size_t ncap = lr->cap * 2;
        if (ncap > lr->max_line + 3) ncap = lr->max_line + 3;
        if (ncap <= lr->cap) ncap = lr->cap + 1;
        if (mem_realloc(&lr->buf, ncap, "line buffer")) return -fail_context("%s", lr->path);
        lr->cap = ncap;
      }
      size_t got = fread(lr->buf + lr->end, 1, lr->cap - 1 - lr->end, lr->f);
      if (got == 0) {
        if (ferror(lr->f)) return -fail_errno("%s: read failed", lr->path);
        lr->eof = true;
      }
      lr->end += got;
      continue;
    }
    if (!nl && avail == 0) return 0;
    char *p = lr->buf + lr->start;
    size_t n = nl ? (size_t)(nl - p) : avail;   /* the last line may lack its \n */
    lr->start += nl ? n + 1 : n;
    p[n] = 0;                                   /* the buffer always has room past end */
    lr->lineno++;
    if (n && p[n - 1] == '\r') p[--n] = 0;
    if (n > lr->max_line)
      return -fail(LACOS_ELIMIT, "%s:%lld: line is longer than the limit of %zu bytes (max_line_bytes)",
                  lr->path, (long long)lr->lineno, lr->max_line);
    if (lr->lineno == 1 && n >= 3 && (unsigned char)p[0] == 0xef && (unsigned char)p[1] == 0xbb && (unsigned char)p[2] == 0xbf) {
      p += 3;
      n -= 3;
    }
    if (memchr(p, 0, n)) return -fail(LACOS_EFORMAT, "%s:%lld: NUL byte in a text line (binary file?)", lr->path, (long long)lr->lineno);
    if ((lr->lineno & 0xffff) == 0 && lacos_interrupt_pending())
      return -fail(LACOS_EINTERRUPTED, "%s: interrupted", lr->path);
    *line = p;
    *len = n;
    return 1;
  }
}

/* ------------------------------------------------------------ rows */

typedef struct row {
  const char *f[MAX_FIELDS];
  size_t n[MAX_FIELDS];
  int nf;          /* fields present (may exceed MAX_FIELDS; only the first are kept) */
} row;

static void split_tab(char *line, size_t len, row *r) {
  r->nf = 0;
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || line[i] == '\t') {
      if (r->nf < MAX_FIELDS) { r->f[r->nf] = line + start; r->n[r->nf] = i - start; }
      r->nf++;
      start = i + 1;
    }
  }
}

static int spec_check(const lacos_read_spec *spec, const char *path, bool columns) {
  if (!spec) return fail(LACOS_EINVAL, "%s: no read spec given", path);
  if (columns) {
    int cols[5] = { spec->col_s1, spec->col_s2, spec->col_s3, spec->col_score, spec->col_label };
    for (int i = 0; i < 5; i++)
      if (cols[i] < 0 || cols[i] > MAX_FIELDS) return fail(LACOS_EINVAL, "%s: column %d out of range 1..%d", path, cols[i], MAX_FIELDS);
    if (spec->col_s1 == 0 || spec->col_s2 == 0) return fail(LACOS_EINVAL, "%s: the read spec must map sentence columns 1 and 2", path);
    if (spec->filter_col < 0 || spec->filter_col > MAX_FIELDS) return fail(LACOS_EINVAL, "%s: filter column out of range", path);
    if (spec->filter_col && !spec->filter_value) return fail(LACOS_EINVAL, "%s: filter column without a filter value", path);
  }
  if (spec->header < 0) return fail(LACOS_EINVAL, "%s: header must be >= 0", path);
  if (spec->label_kind < 0 || spec->label_kind > LACOS_LABELS_INT) return fail(LACOS_EINVAL, "%s: unknown label kind %d", path, spec->label_kind);
  return LACOS_OK;
}

static int spec_min_fields(const lacos_read_spec *spec) {
  int m = spec->min_fields;
  int cols[6] = { spec->col_s1, spec->col_s2, spec->col_s3, spec->col_score, spec->col_label, spec->filter_col };
  for (int i = 0; i < 6; i++) if (cols[i] > m) m = cols[i];
  return m;
}

static bool ascii_ieq(const char *a, size_t n, const char *b) {
  size_t m = strlen(b);
  if (n != m) return false;
  for (size_t i = 0; i < n; i++) {
    int x = (unsigned char)a[i], y = (unsigned char)b[i];
    if (x >= 'A' && x <= 'Z') x += 32;
    if (x != y) return false;
  }
  return true;
}

/* 1 = label parsed, 0 = unlabeled row to skip, -status on an error. */
static int parse_label(const char *where, long long line, const char *p, size_t n, const lacos_read_spec *spec, int32_t *label) {
  while (n && is_space((unsigned char)*p)) { p++; n--; }
  while (n && is_space((unsigned char)p[n - 1])) n--;
  if (spec->skip_unlabeled && (n == 0 || (n == 1 && p[0] == '-'))) return 0;
  switch (spec->label_kind) {
  case LACOS_LABELS_NLI:
    if (ascii_ieq(p, n, "entailment")) { *label = LACOS_ENTAILMENT; return 1; }
    if (ascii_ieq(p, n, "neutral")) { *label = LACOS_NEUTRAL; return 1; }
    if (ascii_ieq(p, n, "contradiction")) { *label = LACOS_CONTRADICTION; return 1; }
    return -fail(LACOS_EFORMAT, "%s:%lld: label '%.*s' is not entailment, neutral or contradiction",
                where, line, (int)(n > 40 ? 40 : n), p);
  case LACOS_LABELS_BINARY:
    if (n == 1 && (p[0] == '0' || p[0] == '1')) { *label = p[0] - '0'; return 1; }
    return -fail(LACOS_EFORMAT, "%s:%lld: label '%.*s' is not 0 or 1", where, line, (int)(n > 40 ? 40 : n), p);
  case LACOS_LABELS_INT:
    if (parse_int(p, n, label)) return 1;
    return -fail(LACOS_EFORMAT, "%s:%lld: label '%.*s' is not an integer", where, line, (int)(n > 40 ? 40 : n), p);
  default:
    *label = LACOS_NO_LABEL;
    return 1;
  }
}

static int parse_score_field(const char *where, long long line, int col, const char *p, size_t n,
                             const lacos_read_spec *spec, double *score) {
  if (!parse_number(p, n, score)) {
    if (col > 0)
      return fail(LACOS_EFORMAT, "%s:%lld: field %d: '%.*s' is not a number (score expected)%s", where, line, col,
                  (int)(n > 40 ? 40 : n), p, line == 1 && !spec->header ? "; if the file has a header line, read it with a header" : "");
    return fail(LACOS_EFORMAT, "%s:%lld: '%.*s' is not a number (score expected)", where, line, (int)(n > 40 ? 40 : n), p);
  }
  if ((!isnan(spec->score_min) && *score < spec->score_min) || (!isnan(spec->score_max) && *score > spec->score_max))
    return fail(LACOS_EFORMAT, "%s:%lld: score %g outside the range %g..%g of this dataset", where, line, *score,
                spec->score_min, spec->score_max);
  return LACOS_OK;
}

/* Copies one sentence into the arena (trimmed, checked). */
static int put_sentence(lacos_pairset *s, const lacos_read_spec *spec, const char *where, long long line, int which,
                        const char *p, size_t n, const char **out, int32_t *outlen) {
  if (spec->trim) {
    while (n && is_space((unsigned char)*p)) { p++; n--; }
    while (n && is_space((unsigned char)p[n - 1])) n--;
  }
  if (n == 0 && !spec->allow_empty) return fail(LACOS_EFORMAT, "%s:%lld: sentence %d is empty", where, line, which);
  if (n > (size_t)INT32_MAX) return fail(LACOS_ELIMIT, "%s:%lld: sentence too long", where, line);
  long bad = utf8_invalid_at((const unsigned char *)p, n);
  if (bad >= 0) return fail(LACOS_EFORMAT, "%s:%lld: sentence %d is not valid UTF-8 (byte %ld)", where, line, which, bad + 1);
  TRY(arena_put(s, out, p, n));
  *outlen = (int32_t)n;
  return LACOS_OK;
}

static int add_record2(lacos_pairset *s, const lacos_read_spec *spec, const char *where, const char *where2,
                       long long line, const char *t1, size_t n1, const char *t2, size_t n2, const char *t3, size_t n3,
                       double score, int32_t label) {
  lacos_pair p;
  memset(&p, 0, sizeof p);
  TRY(put_sentence(s, spec, where, line, 1, t1, n1, &p.s1, &p.len1));
  TRY(put_sentence(s, spec, where2, line, 2, t2, n2, &p.s2, &p.len2));
  if (t3) TRY(put_sentence(s, spec, where, line, 3, t3, n3, &p.s3, &p.len3));
  p.score = score;
  p.label = label;
  p.subset = s->nsub - 1;
  p.line = line > INT32_MAX ? INT32_MAX : (int32_t)line;
  return push_pair(s, &p);
}

static int add_record(lacos_pairset *s, const lacos_read_spec *spec, const char *where, long long line,
                      const char *t1, size_t n1, const char *t2, size_t n2, const char *t3, size_t n3,
                      double score, int32_t label) {
  return add_record2(s, spec, where, where, line, t1, n1, t2, n2, t3, n3, score, label);
}

/* Takes the mapped columns of one split row: 1 = added, 0 = skipped, -status on an error. */
static int take_row(lacos_pairset *s, const lacos_read_spec *spec, const char *where, long long line, const row *r,
                    int min_fields, const char *sep) {
  if (r->nf < min_fields)
    return -fail(LACOS_EFORMAT, "%s:%lld: expected at least %d %s-separated fields, found %d", where, line, min_fields,
                sep, r->nf);
  if (spec->max_fields > 0 && r->nf > spec->max_fields)
    return -fail(LACOS_EFORMAT, "%s:%lld: expected at most %d fields, found %d", where, line, spec->max_fields, r->nf);
  if (spec->filter_col) {
    int c = spec->filter_col - 1;
    if (r->n[c] != strlen(spec->filter_value) || memcmp(r->f[c], spec->filter_value, r->n[c]) != 0) return 0;
  }
  double score = NAN;
  int32_t label = LACOS_NO_LABEL;
  if (spec->col_label && spec->label_kind != LACOS_LABELS_NONE) {
    int c = spec->col_label - 1;
    int st = parse_label(where, line, r->f[c], r->n[c], spec, &label);
    if (st < 0) return st;
    if (st == 0) return 0;
  }
  if (spec->col_score) {
    int c = spec->col_score - 1;
    NEG(parse_score_field(where, line, spec->col_score, r->f[c], r->n[c], spec, &score));
  }
  const char *t3 = NULL;
  size_t n3 = 0;
  if (spec->col_s3) { t3 = r->f[spec->col_s3 - 1]; n3 = r->n[spec->col_s3 - 1]; }
  NEG(add_record(s, spec, where, line, r->f[spec->col_s1 - 1], r->n[spec->col_s1 - 1],
                 r->f[spec->col_s2 - 1], r->n[spec->col_s2 - 1], t3, n3, score, label));
  return 1;
}

static bool blank(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++) if (!is_space((unsigned char)p[i])) return false;
  return true;
}

void lacos_read_spec_init(lacos_read_spec *spec) {
  memset(spec, 0, sizeof *spec);
  spec->trim = 1;
  spec->score_min = NAN;
  spec->score_max = NAN;
  spec->key_s1 = "sentence1";
  spec->key_s2 = "sentence2";
  spec->key_label = "gold_label";
}

/* ------------------------------------------------------------ TSV */

int lacos_pairset_read_tsv(lacos_pairset *s, const char *path, const lacos_read_spec *spec) {
  if (!s || !path) return fail(LACOS_EINVAL, "read_tsv: set and path are required");
  TRY(spec_check(spec, path, true));
  size_t n0 = s->n;
  int nsub0 = s->nsub;
  linereader lr;
  TRY(lr_open(&lr, path, spec));
  int st = subset_begin(s, spec, path);
  int min_fields = spec_min_fields(spec);
  char *line;
  size_t len;
  row r;
  while (st == LACOS_OK) {
    int got = lr_next(&lr, &line, &len);
    if (got < 0) { st = -got; break; }
    if (got == 0) break;
    if (lr.lineno <= spec->header) continue;
    lacos_pair_subset *sub = &s->subsets[s->nsub - 1];
    if (len == 0 || (spec->skip_blank && blank(line, len))) {
      if (spec->skip_blank) { sub->skipped++; continue; }
      st = fail(LACOS_EFORMAT, "%s:%lld: blank line", path, (long long)lr.lineno);
      break;
    }
    sub->lines++;
    split_tab(line, len, &r);
    int t = take_row(s, spec, path, lr.lineno, &r, min_fields, "TAB");
    if (t < 0) st = -t;
    else if (t == 0) s->subsets[s->nsub - 1].skipped++;
  }
  lr_close(&lr);
  if (st != LACOS_OK) return rollback(s, n0, nsub0, st);
  subset_commit(s);
  return LACOS_OK;
}

/* ------------------------------------------------------------ CSV (RFC 4180) */

typedef struct csvbuf { char *p; size_t n, cap, max; } csvbuf;

static int csv_push(csvbuf *b, char c, const char *path, long long line) {
  if (b->n + 1 >= b->cap) {
    if (b->cap >= b->max + 2) return fail(LACOS_ELIMIT, "%s:%lld: record is longer than the limit of %zu bytes (max_line_bytes)", path, line, b->max);
    size_t ncap = b->cap ? b->cap * 2 : 1024;
    if (ncap > b->max + 2) ncap = b->max + 2;
    if (mem_realloc(&b->p, ncap, "record buffer")) return fail_context("%s", path);
    b->cap = ncap;
  }
  b->p[b->n++] = c;
  return LACOS_OK;
}

/* Reads one record (which may span lines inside quotes) into b, with the
   unescaped fields separated by NUL bytes; offsets go to r. 1 = record,
   0 = end of file, -status on an error. *first_line receives the line the record starts on. */
static int csv_record(linereader *lr, csvbuf *b, row *r, long long *first_line, bool *is_blank) {
  char *line;
  size_t len;
  int got = lr_next(lr, &line, &len);
  if (got <= 0) return got;
  *first_line = lr->lineno;
  *is_blank = len == 0;
  b->n = 0;
  size_t starts[MAX_FIELDS];
  int nf = 0;
  size_t i = 0;
  for (;;) {
    /* at the start of a field */
    if (nf < MAX_FIELDS) starts[nf] = b->n;
    nf++;
    if (i < len && line[i] == '"') {
      i++;
      for (;;) {
        if (i >= len) {
          /* a newline inside quotes belongs to the field */
          NEG(csv_push(b, '\n', lr->path, *first_line));
          got = lr_next(lr, &line, &len);
          if (got < 0) return got;
          if (got == 0) return -fail(LACOS_EFORMAT, "%s:%lld: quoted field never closed (end of file)", lr->path, *first_line);
          i = 0;
          continue;
        }
        char c = line[i++];
        if (c == '"') {
          if (i < len && line[i] == '"') { NEG(csv_push(b, '"', lr->path, *first_line)); i++; continue; }
          break;   /* closing quote */
        }
        NEG(csv_push(b, c, lr->path, *first_line));
      }
      if (i < len && line[i] != ',')
        return -fail(LACOS_EFORMAT, "%s:%lld: unexpected character '%c' after a closing quote", lr->path, (long long)lr->lineno, line[i]);
    } else {
      while (i < len && line[i] != ',') {
        if (line[i] == '"')
          return -fail(LACOS_EFORMAT, "%s:%lld: quote inside an unquoted field (field %d)", lr->path, (long long)lr->lineno, nf);
        NEG(csv_push(b, line[i++], lr->path, *first_line));
      }
    }
    NEG(csv_push(b, 0, lr->path, *first_line));
    if (i >= len) break;
    i++;   /* the comma */
  }
  r->nf = nf;
  for (int k = 0; k < nf && k < MAX_FIELDS; k++) {
    r->f[k] = b->p + starts[k];
    r->n[k] = strlen(b->p + starts[k]);
  }
  return 1;
}

int lacos_pairset_read_csv(lacos_pairset *s, const char *path, const lacos_read_spec *spec) {
  if (!s || !path) return fail(LACOS_EINVAL, "read_csv: set and path are required");
  TRY(spec_check(spec, path, true));
  size_t n0 = s->n;
  int nsub0 = s->nsub;
  linereader lr;
  TRY(lr_open(&lr, path, spec));
  csvbuf b = { NULL, 0, 0, lr.max_line };
  int st = subset_begin(s, spec, path);
  int min_fields = spec_min_fields(spec);
  int records = 0;
  row r;
  while (st == LACOS_OK) {
    long long line = 0;
    bool is_blank = false;
    int got = csv_record(&lr, &b, &r, &line, &is_blank);
    if (got < 0) { st = -got; break; }
    if (got == 0) break;
    if (records++ < spec->header) continue;
    lacos_pair_subset *sub = &s->subsets[s->nsub - 1];
    if (is_blank) {
      if (spec->skip_blank) { sub->skipped++; continue; }
      st = fail(LACOS_EFORMAT, "%s:%lld: blank line", path, line);
      break;
    }
    sub->lines++;
    int t = take_row(s, spec, path, line, &r, min_fields, "comma");
    if (t < 0) st = -t;
    else if (t == 0) sub->skipped++;
  }
  mem_free(b.p);
  lr_close(&lr);
  if (st != LACOS_OK) return rollback(s, n0, nsub0, st);
  subset_commit(s);
  return LACOS_OK;
}

/* ------------------------------------------------------------ input + gold */

int lacos_pairset_read_gold(lacos_pairset *s, const char *input, const char *gold, const lacos_read_spec *spec) {
  if (!s || !input || !gold) return fail(LACOS_EINVAL, "read_gold: set, input and gold paths are required");
  TRY(spec_check(spec, input, false));
  if (spec->col_s1 < 0 || spec->col_s2 < 0 || spec->col_s1 > MAX_FIELDS || spec->col_s2 > MAX_FIELDS)
    return fail(LACOS_EINVAL, "%s: sentence columns out of range", input);
  lacos_read_spec sp = *spec;
  if (!sp.col_s1) sp.col_s1 = 1;
  if (!sp.col_s2) sp.col_s2 = 2;
  sp.col_score = 0;
  sp.col_label = 0;
  sp.col_s3 = 0;
  sp.filter_col = 0;

  /* Gold scores first: NaN marks a blank (unscored) line. */
  linereader lr;
  TRY(lr_open(&lr, gold, spec));
  double *scores = NULL;
  size_t ng = 0, capg = 0;
  int st = LACOS_OK;
  char *line;
  size_t len;
  for (;;) {
    int got = lr_next(&lr, &line, &len);
    if (got < 0) { st = -got; break; }
    if (got == 0) break;
    if (ng == capg) {
      capg = capg ? capg * 2 : 1024;
      if ((st = mem_realloc(&scores, capg * sizeof *scores, "gold scores"))) { fail_context("%s", gold); break; }
    }
    double v = NAN;
    if (!blank(line, len)) {
      st = parse_score_field(gold, lr.lineno, 0, line, len, spec, &v);
      if (st) break;
    }
    scores[ng++] = v;
  }
  lr_close(&lr);
  if (st) { mem_free(scores); return st; }

  size_t n0 = s->n;
  int nsub0 = s->nsub;
  st = lr_open(&lr, input, spec);
  if (st) { mem_free(scores); return st; }
  st = subset_begin(s, &sp, input);
  int min_fields = spec_min_fields(&sp);
  row r;
  size_t ni = 0;
  while (st == LACOS_OK) {
    int got = lr_next(&lr, &line, &len);
    if (got < 0) { st = -got; break; }
    if (got == 0) break;
    ni++;
    lacos_pair_subset *sub = &s->subsets[s->nsub - 1];
    if (ni > ng) {
      if (spec->truncate_input) { ni--; break; }
      st = fail(LACOS_EFORMAT, "%s:%zu: the input has more lines than the %zu of its gold file %s", input, ni, ng, gold);
      break;
    }
    sub->lines++;
    if (isnan(scores[ni - 1])) { sub->skipped++; continue; }
    if (len == 0) { st = fail(LACOS_EFORMAT, "%s:%zu: blank input line for a scored pair (%s:%zu)", input, ni, gold, ni); break; }
    split_tab(line, len, &r);
    if (r.nf < min_fields) {
      st = fail(LACOS_EFORMAT, "%s:%zu: expected at least %d TAB-separated fields, found %d", input, ni, min_fields, r.nf);
      break;
    }
    if (sp.max_fields > 0 && r.nf > sp.max_fields) {
      st = fail(LACOS_EFORMAT, "%s:%zu: expected at most %d fields, found %d", input, ni, sp.max_fields, r.nf);
      break;
    }
    st = add_record(s, &sp, input, (long long)ni, r.f[sp.col_s1 - 1], r.n[sp.col_s1 - 1], r.f[sp.col_s2 - 1],
                    r.n[sp.col_s2 - 1], NULL, 0, scores[ni - 1], LACOS_NO_LABEL);
  }
  lr_close(&lr);
  if (st == LACOS_OK && ni < ng)
    st = fail(LACOS_EFORMAT, "%s: %zu lines, but its gold file %s has %zu: the files are not aligned", input, ni, gold, ng);
  mem_free(scores);
  if (st != LACOS_OK) return rollback(s, n0, nsub0, st);
  subset_commit(s);
  return LACOS_OK;
}

/* ------------------------------------------------------------ aligned lines */

int lacos_pairset_read_lines(lacos_pairset *s, const char *path1, const char *path2, const char *labels,
                             const lacos_read_spec *spec) {
  if (!s || !path1 || !path2) return fail(LACOS_EINVAL, "read_lines: set and two paths are required");
  TRY(spec_check(spec, path1, false));
  if (labels && spec->label_kind == LACOS_LABELS_NONE) return fail(LACOS_EINVAL, "%s: a labels file needs a label kind", labels);
  linereader a, b, c;
  TRY(lr_open(&a, path1, spec));
  int st = lr_open(&b, path2, spec);
  if (st) { lr_close(&a); return st; }
  if (labels) {
    st = lr_open(&c, labels, spec);
    if (st) { lr_close(&a); lr_close(&b); return st; }
  }
  size_t n0 = s->n;
  int nsub0 = s->nsub;
  st = subset_begin(s, spec, path1);
  while (st == LACOS_OK) {
    char *l1 = NULL, *l2 = NULL, *l3 = NULL;
    size_t n1 = 0, n2 = 0, n3 = 0;
    int g1 = lr_next(&a, &l1, &n1);
    if (g1 < 0) { st = -g1; break; }
    /* a's line lives in a's buffer, untouched by the other readers */
    int g2 = lr_next(&b, &l2, &n2);
    if (g2 < 0) { st = -g2; break; }
    int g3 = g1;
    if (labels) { g3 = lr_next(&c, &l3, &n3); if (g3 < 0) { st = -g3; break; } }
    if (g1 == 0 && g2 == 0 && g3 == 0) break;
    if (g1 != g2 || g1 != g3) {
      const char *shortp = g1 == 0 ? path1 : g2 == 0 ? path2 : labels;
      st = fail(LACOS_EFORMAT, "%s: ends after %lld lines, but the files read with it (%s%s%s) are longer: they must be line-aligned",
                shortp, (long long)(g1 == 0 ? a.lineno : g2 == 0 ? b.lineno : c.lineno), path1, labels ? ", " : "",
                labels ? labels : "");
      break;
    }
    long long line = a.lineno;
    if (line <= spec->header) continue;
    lacos_pair_subset *sub = &s->subsets[s->nsub - 1];
    sub->lines++;
    if (spec->skip_blank && blank(l1, n1) && blank(l2, n2)) { sub->skipped++; continue; }
    int32_t label = LACOS_NO_LABEL;
    if (labels) {
      int t = parse_label(labels, line, l3, n3, spec, &label);
      if (t < 0) { st = -t; break; }
      if (t == 0) { sub->skipped++; continue; }
    }
    st = add_record2(s, spec, path1, path2, line, l1, n1, l2, n2, NULL, 0, NAN, label);
  }
  lr_close(&a);
  lr_close(&b);
  if (labels) lr_close(&c);
  if (st != LACOS_OK) return rollback(s, n0, nsub0, st);
  subset_commit(s);
  return LACOS_OK;
}

/* ------------------------------------------------------------ JSON lines */

static int json_text(json_t *o, const char *key, const char *where, long long line, bool required,
                     const char **p, size_t *n) {
  *p = NULL;
  *n = 0;
  if (!key) return LACOS_OK;
  json_t *v = json_object_get(o, key);
  if (!v || json_is_null(v)) {
    if (!required) return LACOS_OK;
    return fail(LACOS_EFORMAT, "%s:%lld: no \"%s\" field", where, line, key);
  }
  if (json_is_string(v)) {
    *p = json_string_value(v);
    *n = json_string_length(v);
    if (memchr(*p, 0, *n)) return fail(LACOS_EFORMAT, "%s:%lld: \"%s\" contains a NUL character", where, line, key);
    return LACOS_OK;
  }
  return fail(LACOS_EFORMAT, "%s:%lld: \"%s\" is not a string", where, line, key);
}

int lacos_pairset_read_jsonl(lacos_pairset *s, const char *path, const lacos_read_spec *spec) {
  if (!s || !path) return fail(LACOS_EINVAL, "read_jsonl: set and path are required");
  TRY(spec_check(spec, path, false));
  if (!spec->key_s1 || !spec->key_s2) return fail(LACOS_EINVAL, "%s: the read spec must name the two sentence keys", path);
  size_t n0 = s->n;
  int nsub0 = s->nsub;
  linereader lr;
  TRY(lr_open(&lr, path, spec));
  int st = subset_begin(s, spec, path);
  char *line;
  size_t len;
  while (st == LACOS_OK) {
    int got = lr_next(&lr, &line, &len);
    if (got < 0) { st = -got; break; }
    if (got == 0) break;
    if (lr.lineno <= spec->header) continue;
    lacos_pair_subset *sub = &s->subsets[s->nsub - 1];
    if (blank(line, len)) {
      if (spec->skip_blank) { sub->skipped++; continue; }
      st = fail(LACOS_EFORMAT, "%s:%lld: blank line", path, (long long)lr.lineno);
      break;
    }
    sub->lines++;
    json_error_t err;
    json_t *o = json_loadb(line, len, 0, &err);
    if (!o) { st = fail(LACOS_EFORMAT, "%s:%lld: invalid JSON: %s (column %d)", path, (long long)lr.lineno, err.text, err.column); break; }
    if (!json_is_object(o)) { json_decref(o); st = fail(LACOS_EFORMAT, "%s:%lld: expected a JSON object", path, (long long)lr.lineno); break; }
    const char *t1, *t2, *t3, *tl;
    size_t n1, n2, n3, nl;
    double score = NAN;
    int32_t label = LACOS_NO_LABEL;
    long long ln = lr.lineno;
    st = json_text(o, spec->key_s1, path, ln, true, &t1, &n1);
    if (!st) st = json_text(o, spec->key_s2, path, ln, true, &t2, &n2);
    if (!st) st = json_text(o, spec->key_s3, path, ln, spec->key_s3 != NULL, &t3, &n3);
    int keep = 1;
    if (!st && spec->label_kind != LACOS_LABELS_NONE && spec->key_label) {
      json_t *v = json_object_get(o, spec->key_label);
      if (v && json_is_integer(v) && spec->label_kind != LACOS_LABELS_NLI) {
        label = (int32_t)json_integer_value(v);
        if (spec->label_kind == LACOS_LABELS_BINARY && label != 0 && label != 1)
          st = fail(LACOS_EFORMAT, "%s:%lld: label %d is not 0 or 1", path, ln, label);
      } else {
        st = json_text(o, spec->key_label, path, ln, true, &tl, &nl);
        if (!st) {
          int t = parse_label(path, ln, tl, nl, spec, &label);
          if (t < 0) st = -t;
          else keep = t;
        }
      }
    }
    if (!st && keep && spec->key_score) {
      json_t *v = json_object_get(o, spec->key_score);
      if (v && json_is_number(v)) {
        score = json_number_value(v);
        if ((!isnan(spec->score_min) && score < spec->score_min) || (!isnan(spec->score_max) && score > spec->score_max))
          st = fail(LACOS_EFORMAT, "%s:%lld: score %g outside the range %g..%g of this dataset", path, ln, score,
                    spec->score_min, spec->score_max);
      } else if (v && json_is_string(v)) {
        st = parse_score_field(path, ln, 0, json_string_value(v), json_string_length(v), spec, &score);
      } else {
        st = fail(LACOS_EFORMAT, "%s:%lld: no numeric \"%s\" field", path, ln, spec->key_score);
      }
    }
    if (!st && keep) st = add_record(s, spec, path, ln, t1, n1, t2, n2, t3, n3, score, label);
    else if (!st) sub->skipped++;
    json_decref(o);
  }
  lr_close(&lr);
  if (st != LACOS_OK) return rollback(s, n0, nsub0, st);
  subset_commit(s);
  return LACOS_OK;
}

/* ------------------------------------------------------------ digest */

int lacos_pairset_sha256(const lacos_pairset *s, char *hex) {
  if (!s || !hex) return fail(LACOS_EINVAL, "pairset_sha256: set and hex buffer are required");
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) { EVP_MD_CTX_free(ctx); return fail(LACOS_ENOMEM, "sha256: out of memory"); }
  char num[64];
  for (size_t i = 0; i < s->n; i++) {
    const lacos_pair *p = &s->pairs[i];
    EVP_DigestUpdate(ctx, p->s1, (size_t)p->len1);
    EVP_DigestUpdate(ctx, "\t", 1);
    EVP_DigestUpdate(ctx, p->s2, (size_t)p->len2);
    EVP_DigestUpdate(ctx, "\t", 1);
    if (p->s3) EVP_DigestUpdate(ctx, p->s3, (size_t)p->len3);
    int k = isnan(p->score) ? snprintf(num, sizeof num, "\t-\t%d\n", p->label)
                            : snprintf(num, sizeof num, "\t%.17g\t%d\n", p->score, p->label);
    EVP_DigestUpdate(ctx, num, (size_t)k);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  static const char digits[] = "0123456789abcdef";
  for (unsigned i = 0; i < n; i++) { hex[2 * i] = digits[md[i] >> 4]; hex[2 * i + 1] = digits[md[i] & 15]; }
  hex[2 * n] = 0;
  return LACOS_OK;
}

/* ------------------------------------------------------------ NLI -> triplets */

typedef struct ivec { int32_t *v; int32_t n, cap; } ivec;

static int ivec_add_unique(ivec *a, int32_t x) {
  for (int32_t i = 0; i < a->n; i++) if (a->v[i] == x) return LACOS_OK;
  if (a->n == a->cap) {
    int32_t ncap = a->cap ? a->cap * 2 : 2;
    TRY(mem_realloc(&a->v, (size_t)ncap * sizeof *a->v, "triplets"));
    a->cap = ncap;
  }
  a->v[a->n++] = x;
  return LACOS_OK;
}

typedef struct sentence { const char *p; int32_t len; const char *copy; ivec ent, con; } sentence;

typedef struct intern {
  int32_t *slots;          /* -1 = empty, else sentence id */
  size_t mask;
  sentence *sent;
  int32_t n, cap;
} intern;

static uint64_t hash_bytes(const char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) { h ^= (unsigned char)p[i]; h *= 1099511628211ull; }
  return h;
}

static int intern_grow(intern *t) {
  size_t nslots = t->slots ? (t->mask + 1) * 2 : 1024;
  int32_t *ns;
  TRY(mem_alloc(&ns, nslots * sizeof *ns, "triplets"));
  for (size_t i = 0; i < nslots; i++) ns[i] = -1;
  for (int32_t id = 0; id < t->n; id++) {
    size_t h = (size_t)hash_bytes(t->sent[id].p, (size_t)t->sent[id].len) & (nslots - 1);
    while (ns[h] >= 0) h = (h + 1) & (nslots - 1);
    ns[h] = id;
  }
  mem_free(t->slots);
  t->slots = ns;
  t->mask = nslots - 1;
  return LACOS_OK;
}

static int intern_id(intern *t, const char *p, int32_t len, int32_t *id) {
  if (!t->slots || (size_t)t->n * 2 >= t->mask + 1) TRY(intern_grow(t));
  size_t h = (size_t)hash_bytes(p, (size_t)len) & t->mask;
  while (t->slots[h] >= 0) {
    sentence *e = &t->sent[t->slots[h]];
    if (e->len == len && memcmp(e->p, p, (size_t)len) == 0) { *id = t->slots[h]; return LACOS_OK; }
    h = (h + 1) & t->mask;
  }
  if (t->n == t->cap) {
    int32_t ncap = t->cap ? t->cap * 2 : 1024;
    TRY(mem_realloc(&t->sent, (size_t)ncap * sizeof *t->sent, "triplets"));
    t->cap = ncap;
  }
  sentence *e = &t->sent[t->n];
  memset(e, 0, sizeof *e);
  e->p = p;
  e->len = len;
  t->slots[h] = t->n;
  *id = t->n++;
  return LACOS_OK;
}

static void intern_free(intern *t) {
  for (int32_t i = 0; i < t->n; i++) { mem_free(t->sent[i].ent.v); mem_free(t->sent[i].con.v); }
  mem_free(t->sent);
  mem_free(t->slots);
}

static int copy_of(lacos_pairset *out, sentence *e, const char **copy) {
  if (!e->copy) TRY(arena_put(out, &e->copy, e->p, (size_t)e->len));
  *copy = e->copy;
  return LACOS_OK;
}

static int32_t pick(const ivec *a, double seed, uint64_t *counter) {
  if (seed < 0) return a->v[0];
  uint64_t r = rng_u64((uint64_t)seed, (*counter)++);
  return a->v[r % (uint64_t)a->n];
}

static int emit(lacos_pairset *out, intern *t, int32_t a, int32_t p, int32_t n) {
  lacos_pair rec;
  memset(&rec, 0, sizeof rec);
  TRY(copy_of(out, &t->sent[a], &rec.s1));
  TRY(copy_of(out, &t->sent[p], &rec.s2));
  if (n >= 0) TRY(copy_of(out, &t->sent[n], &rec.s3));
  rec.len1 = t->sent[a].len;
  rec.len2 = t->sent[p].len;
  rec.len3 = n >= 0 ? t->sent[n].len : 0;
  rec.label = LACOS_NO_LABEL;
  rec.score = NAN;
  rec.subset = 0;
  rec.line = 0;
  return push_pair(out, &rec);
}

int lacos_pairset_nli_triplets(lacos_pairset **out, const lacos_pairset *src, int mode, double seed) {
  if (!out || !src) return fail(LACOS_EINVAL, "nli_triplets: out and source set are required");
  *out = NULL;
  if (mode < LACOS_TRIPLETS_PREMISE || mode > LACOS_PAIRS_ENTAILMENT) return fail(LACOS_EINVAL, "nli_triplets: unknown mode %d", mode);
  size_t labelled = 0;
  for (size_t i = 0; i < src->n; i++) if (src->pairs[i].label >= 0) labelled++;
  if (src->n && !labelled) return fail(LACOS_EINVAL, "nli_triplets: the set has no NLI labels");
  lacos_pairset *o;
  TRY(lacos_pairset_new(&o));
  lacos_read_spec spec;
  lacos_read_spec_init(&spec);
  const char *names[] = { "triplets", "sbert-triplets", "entailment-pairs" };
  spec.subset = names[mode];
  if (src->nsub > 0) { spec.lang1 = src->subsets[0].lang1; spec.lang2 = src->subsets[0].lang2; }
  int st = subset_begin(o, &spec, src->nsub > 0 ? src->subsets[0].source : "");
  if (st) { lacos_pairset_free(o); return st; }

  if (mode == LACOS_PAIRS_ENTAILMENT) {
    for (size_t i = 0; i < src->n && !st; i++) {
      const lacos_pair *p = &src->pairs[i];
      if (p->label != LACOS_ENTAILMENT) continue;
      lacos_pair rec = *p;
      if ((st = arena_put(o, &rec.s1, p->s1, (size_t)p->len1)) || (st = arena_put(o, &rec.s2, p->s2, (size_t)p->len2)))
        break;
      rec.s3 = NULL;
      rec.len3 = 0;
      rec.subset = 0;
      st = push_pair(o, &rec);
    }
  } else {
    intern t;
    memset(&t, 0, sizeof t);
    bool both = mode == LACOS_TRIPLETS_SBERT;
    for (size_t i = 0; i < src->n && !st; i++) {
      const lacos_pair *p = &src->pairs[i];
      int32_t a, b;
      /* every row creates its sentences' groups (neutral ones too), so the
         group order is the order in which sentences first appear */
      st = intern_id(&t, p->s1, p->len1, &a);
      if (!st && both) st = intern_id(&t, p->s2, p->len2, &b);
      else if (!st) b = -1;
      if (st) break;
      if (p->label != LACOS_ENTAILMENT && p->label != LACOS_CONTRADICTION) continue;
      if (!both) { st = intern_id(&t, p->s2, p->len2, &b); if (st) break; }
      ivec *ga = p->label == LACOS_ENTAILMENT ? &t.sent[a].ent : &t.sent[a].con;
      st = ivec_add_unique(ga, b);
      if (!st && both) st = ivec_add_unique(p->label == LACOS_ENTAILMENT ? &t.sent[b].ent : &t.sent[b].con, a);
    }
    uint64_t counter = 0;
    for (int32_t id = 0; id < t.n && !st; id++) {
      sentence *e = &t.sent[id];
      if (!e->ent.n || !e->con.n) continue;
      if (both) {
        int32_t e1 = pick(&e->ent, seed, &counter), c1 = pick(&e->con, seed, &counter);
        st = emit(o, &t, id, e1, c1);
        if (st) break;
        int32_t e2 = pick(&e->ent, seed, &counter), c2 = pick(&e->con, seed, &counter);
        st = emit(o, &t, e2, id, c2);
      } else {
        int32_t e1 = pick(&e->ent, seed, &counter), c1 = pick(&e->con, seed, &counter);
        st = emit(o, &t, id, e1, c1);
      }
    }
    intern_free(&t);
  }
  if (st) { lacos_pairset_free(o); return st; }
  subset_commit(o);
  o->subsets[0].lines = (int32_t)(src->n > INT32_MAX ? INT32_MAX : src->n);
  *out = o;
  return LACOS_OK;
}
