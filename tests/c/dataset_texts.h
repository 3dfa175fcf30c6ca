/* dataset_texts.h: the sentences of a shared-dataset file cut out as
   tests/reference/make_tokenizer.py cuts them (TSV columns, whole lines, or
   RFC 4180 CSV; BOM, CRLF and header lines handled), each with its line and
   column, for the tokenizer tests that compare against the tokenizers
   library's digests (test_tokenizer.c, test_wordpiece.c). */
#ifndef LACOS_TEST_DATASET_TEXTS_H
#define LACOS_TEST_DATASET_TEXTS_H
#include "test.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The texts of a file, with the line (1-based, header counted; for CSV the
   line the record starts on) and the column (1-based field) of each. */
typedef struct texts { const char **s; double *len; int *line, *col; int n, cap; } texts;

static void texts_add(texts *t, const char *s, size_t n, int line, int col) {
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 1024;
    t->s = realloc(t->s, (size_t)t->cap * sizeof *t->s);
    t->len = realloc(t->len, (size_t)t->cap * sizeof *t->len);
    t->line = realloc(t->line, (size_t)t->cap * sizeof *t->line);
    t->col = realloc(t->col, (size_t)t->cap * sizeof *t->col);
  }
  t->s[t->n] = s;
  t->line[t->n] = line;
  t->col[t->n] = col;
  t->len[t->n++] = (double)n;
}

static void texts_free(texts *t) { free(t->s); free(t->len); free(t->line); free(t->col); }

/* Cuts the sentences out of data (modified in place) as make_tokenizer.py does. */
static void extract(char *data, size_t n, const char *format, int header, const int *cols, int ncols, texts *out) {
  if (n >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) { data += 3; n -= 3; }
  if (!strcmp(format, "csv")) {
    /* RFC 4180; fields are unquoted in place. */
    char *fields[16];
    size_t flen[16];
    int nf = 0;
    size_t i = 0;
    char *w = data;
    bool at_start = true, open_record = false;
    char *fstart = w;
    int line = 1, record_line = 1;
    while (i < n) {
      char c = data[i];
      if (!open_record && !nf) record_line = line;
      if (at_start && c == '"') {
        at_start = false;
        open_record = true;
        i++;
        while (i < n) {
          if (data[i] == '"') {
            if (i + 1 < n && data[i + 1] == '"') { *w++ = '"'; i += 2; continue; }
            i++;
            break;
          }
          if (data[i] == '\n') line++;
          *w++ = data[i++];
        }
        continue;
      }
      at_start = false;
      open_record = true;
      bool crlf = c == '\r' && i + 1 < n && data[i + 1] == '\n';
      if (c == ',' || c == '\n' || crlf) {
        if (nf < 16) { fields[nf] = fstart; flen[nf] = (size_t)(w - fstart); nf++; }
        at_start = true;
        if (c != ',') {
          for (int k = 0; k < ncols; k++)
            if (cols[k] <= nf) texts_add(out, fields[cols[k] - 1], flen[cols[k] - 1], record_line, cols[k]);
          nf = 0;
          open_record = false;
          line++;
          i += crlf ? 2 : 1;
          fstart = w;
          continue;
        }
        i++;
        fstart = w;
        continue;
      }
      *w++ = c;
      i++;
    }
    if (open_record || nf) {
      if (nf < 16) { fields[nf] = fstart; flen[nf] = (size_t)(w - fstart); nf++; }
      for (int k = 0; k < ncols; k++)
        if (cols[k] <= nf) texts_add(out, fields[cols[k] - 1], flen[cols[k] - 1], record_line, cols[k]);
    }
    return;
  }
  size_t i = 0;
  int line = 0;
  while (i < n) {
    char *nl = memchr(data + i, '\n', n - i);
    size_t end = nl ? (size_t)(nl - data) : n, e = end;
    if (e > i && data[e - 1] == '\r') e--;
    if (line++ >= header) {
      if (!strcmp(format, "lines")) texts_add(out, data + i, e - i, line, 1);
      else {
        const char *f[64];
        size_t fl[64];
        int nf = 0;
        size_t s = i;
        for (size_t j = i; j <= e; j++) {
          if (j == e || data[j] == '\t') {
            if (nf < 64) { f[nf] = data + s; fl[nf] = j - s; nf++; }
            s = j + 1;
          }
        }
        for (int k = 0; k < ncols; k++) if (cols[k] <= nf) texts_add(out, f[cols[k] - 1], fl[cols[k] - 1], line, cols[k]);
      }
    }
    i = end + 1;
  }
}

/* What dataset_sweep_run found. */
typedef struct dataset_sweep {
  int n_listed, n_files, bad, n_samples, samples_bad;
  long long n_texts, n_tokens;
  double seconds;
  /* per folder of the data root (sts, nli, paraphrase, bitext): files, texts, tokens */
  struct { char name[32]; int files; long long texts, tokens; } folder[16];
  int n_folders;
} dataset_sweep;

static void sweep_folder(dataset_sweep *sw, const char *rel, long long texts, long long tokens) {
  char name[32];
  size_t k = strcspn(rel, "/");
  snprintf(name, sizeof name, "%.*s", (int)(k < 31 ? k : 31), rel);
  int f = 0;
  while (f < sw->n_folders && strcmp(sw->folder[f].name, name)) f++;
  if (f == sw->n_folders) {
    if (f == 16) return;
    snprintf(sw->folder[f].name, sizeof sw->folder[f].name, "%s", name);
    sw->n_folders++;
  }
  sw->folder[f].files++;
  sw->folder[f].texts += texts;
  sw->folder[f].tokens += tokens;
}

/* Every file of sources.json (under the data root) through t's encode_list,
   against expected.json's digests: per file, the digest of all its texts'
   ids and the digests of its first texts one by one (their line and column
   name the text that differs). Mismatches are printed as TAP diagnostics. */
static void dataset_sweep_run(dataset_sweep *sw, lacos_tokenizer *t, const char *data, const char *sources_path,
                              const char *expected_path) {
  json_error_t je;
  char *txt = NULL;
  size_t len;
  json_t *sources = NULL, *expected = NULL;
  if (!file_read_all(sources_path, 16 << 20, &txt, &len)) { sources = json_loads(txt, 0, &je); mem_free(txt); }
  if (!file_read_all(expected_path, 16 << 20, &txt, &len)) { expected = json_loads(txt, 0, &je); mem_free(txt); }
  json_t *files = json_object_get(sources, "files"), *exp = json_object_get(expected, "files");
  if (!json_is_array(files) || !json_is_object(exp) || !t) {
    printf("#   fixtures missing or unreadable (%s, %s)\n", sources_path, expected_path);
    sw->bad++;
    json_decref(sources);
    json_decref(expected);
    return;
  }
  sw->n_listed = (int)json_array_size(files);
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (size_t fi = 0; fi < json_array_size(files); fi++) {
    json_t *r = json_array_get(files, fi);
    const char *rel = json_string_value(json_object_get(r, "path"));
    if (!rel) continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", data, rel);
    char *buf = NULL;
    size_t n = 0;
    if (file_read_all(path, 256 << 20, &buf, &n)) {
      printf("#   %s\n", lacos_last_error());
      sw->bad++;
      continue;
    }
    char hex[65];
    lacos_sha256_buffer(buf, (double)n, hex);
    if (strcmp(hex, json_string_value(json_object_get(r, "sha256")))) {
      printf("#   %s differs from the copy the fixtures were made from (sha256 %s)\n", rel, hex);
      sw->bad++;
      mem_free(buf);
      continue;
    }
    int cols[16], nc = 0;
    json_t *cj = json_object_get(r, "columns");
    for (size_t k = 0; k < json_array_size(cj) && nc < 16; k++) cols[nc++] = (int)json_integer_value(json_array_get(cj, k));
    texts tx = {0};
    extract(buf, n, json_string_value(json_object_get(r, "format")), (int)json_integer_value(json_object_get(r, "header")),
            cols, nc, &tx);
    const int32_t *ids, *off;
    int s = lacos_tokenizer_encode_list(t, &ids, &off, tx.s, tx.len, tx.n);
    if (s) { printf("#   %s: %s\n", rel, lacos_last_error()); sw->bad++; }
    else {
      /* The digest: each text's ids space-separated, one line per text. */
      size_t cap = (size_t)off[tx.n] * 11 + (size_t)tx.n + 1, k = 0;
      char *out = malloc(cap);
      for (int i = 0; i < tx.n; i++) {
        for (int j = off[i]; j < off[i + 1]; j++) k += (size_t)sprintf(out + k, j > off[i] ? " %d" : "%d", ids[j]);
        out[k++] = '\n';
      }
      lacos_sha256_buffer(out, (double)k, hex);
      free(out);
      json_t *e = json_object_get(exp, rel);
      long long want_texts = json_integer_value(json_object_get(e, "texts")), want_tokens = json_integer_value(json_object_get(e, "tokens"));
      if (tx.n != want_texts || off[tx.n] != want_tokens || strcmp(hex, json_string_value(json_object_get(e, "sha256")))) {
        printf("#   %s: %d texts, %d tokens, ids sha256 %s; the tokenizers library: %lld texts, %lld tokens, %s\n", rel, tx.n,
               off[tx.n], hex, want_texts, want_tokens, json_string_value(json_object_get(e, "sha256")));
        sw->bad++;
      }
      /* The first texts one by one: where they are, and their ids' digest. */
      json_t *first = json_object_get(e, "first");
      if (!json_is_array(first) || json_array_size(first) == 0) { printf("#   %s: no \"first\" texts in the fixture\n", rel); sw->bad++; }
      for (size_t k = 0; k < json_array_size(first); k++) {
        json_t *smp = json_array_get(first, k);
        int i = (int)json_integer_value(json_object_get(smp, "index")) - 1;
        int line = (int)json_integer_value(json_object_get(smp, "line")), col = (int)json_integer_value(json_object_get(smp, "column"));
        if (i < 0 || i >= tx.n || tx.line[i] != line || tx.col[i] != col) {
          printf("#   %s: text %d is at line %d column %d here, at line %d column %d for the fixture\n", rel, i + 1,
                 i >= 0 && i < tx.n ? tx.line[i] : 0, i >= 0 && i < tx.n ? tx.col[i] : 0, line, col);
          sw->samples_bad++;
          continue;
        }
        int n_ids = off[i + 1] - off[i];
        char *one = malloc((size_t)n_ids * 12 + 2);
        size_t m = 0;
        for (int j = 0; j < n_ids; j++) m += (size_t)sprintf(one + m, j ? " %d" : "%d", ids[off[i] + j]);
        one[m++] = '\n';
        lacos_sha256_buffer(one, (double)m, hex);
        free(one);
        sw->n_samples++;
        const char *want = json_string_value(json_object_get(smp, "sha256"));
        long long want_n = json_integer_value(json_object_get(smp, "n_ids"));
        if ((!want || strcmp(hex, want) || n_ids != want_n) && sw->samples_bad++ < 5) {
          printf("#   %s:%d column %d \"%.*s\"\n#     lacos: %d ids", rel, line, col, (int)fmin(tx.len[i], 120), tx.s[i], n_ids);
          for (int j = 0; j < n_ids && j < 40; j++) printf(" %d", ids[off[i] + j]);
          printf("\n#     the tokenizers library: %lld ids, sha256 %s\n", want_n, want ? want : "?");
        }
      }
      sw->n_texts += tx.n;
      sw->n_tokens += off[tx.n];
      sweep_folder(sw, rel, tx.n, off[tx.n]);
    }
    sw->n_files++;
    texts_free(&tx);
    mem_free(buf);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  sw->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  json_decref(sources);
  json_decref(expected);
}

#endif
