/* test_safetensors.c: the safetensors reader and writer against files written
   by the reference libraries (tests/fixtures/safetensors, made by
   tests/reference/make_safetensors.py with safetensors' save_file and
   huggingface_hub's save_torch_state_dict): values, dtypes, shapes,
   metadata, shards; byte-identical output of lacos' writers; and every kind
   of malformed file and index the loader must refuse with a message naming
   the file and the cause. */
#include "test.h"
#include <jansson.h>
#include <sys/stat.h>
#include <dirent.h>

static char fixdir[1024];
static json_t *expected;

/* dir/name in a ring of buffers (the tests keep a few such paths at a time). */
static char *path_in(const char *dir, const char *name) {
  static char buf[256][2048];
  static int k;
  char joined[2048];
  if (snprintf(joined, sizeof joined, "%s/%s", dir, name) >= (int)sizeof joined) {
    fprintf(stderr, "path_in: %s/%s is too long for the test's buffers\n", dir, name);
    exit(1);
  }
  char *p = buf[k++ % 256];
  memcpy(p, joined, sizeof joined);
  return p;
}
static const char *tmp(const char *name) { return path_in(test_tmpdir(), name); }

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { *n = 0; return NULL; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  *n = fread(b, 1, (size_t)len, f);
  fclose(f);
  return b;
}

static bool same_bytes(const char *a, const char *b) {
  size_t na, nb;
  unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
  bool eq = x && y && na == nb && memcmp(x, y, na) == 0;
  if (!eq) printf("#   %s (%zu bytes) and %s (%zu bytes) differ\n", a, na, b, nb);
  free(x);
  free(y);
  return eq;
}

/* Writes a safetensors file by hand: the 8-byte header length N, the header
   text, then ndata bytes 0, 1, 2, ... make_file takes N from the header
   when len < 0. */
static const char *make_raw(const char *name, uint64_t n, const char *header, size_t ndata) {
  const char *p = tmp(name);
  FILE *f = fopen(p, "wb");
  unsigned char b[8];
  for (int i = 0; i < 8; i++) b[i] = (unsigned char)(n >> (8 * i));
  fwrite(b, 1, 8, f);
  fwrite(header, 1, strlen(header), f);
  for (size_t i = 0; i < ndata; i++) fputc((int)(i & 0xff), f);
  fclose(f);
  return p;
}
static const char *make_file(const char *name, long long len, const char *header, size_t ndata) {
  return make_raw(name, len < 0 ? strlen(header) : (uint64_t)len, header, ndata);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  fputs(text, f);
  fclose(f);
}

/* Opening `path` must fail with `status`, a message containing `needle`
   and naming `file` (the file at fault), and leave nothing behind. */
static void expect_bad(const char *path, int status, const char *needle, const char *file) {
  lacos_safetensors *st = (lacos_safetensors *)1;
  double mapped = lacos_memory_mapped();
  CHECK_FAIL(lacos_safetensors_open(&st, path), status, needle);
  CHECK(st == NULL);
  if (file && !strstr(lacos_last_error(), file)) {
    printf("#   message \"%s\" does not name %s\n", lacos_last_error(), file);
    test_failed_now = 1;
  }
  CHECK(lacos_memory_mapped() == mapped);
}

/* Compares a tensor's values with expected.json's sum/first/last. */
static void check_values(const char *what, lacos_tensor *t, json_t *exp) {
  int64_t n = lacos_tensor_numel(t);
  double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
  CHECK_OK(lacos_tensor_read_f64(t, v, n));
  double sum = 0;
  for (int64_t i = 0; i < n; i++) sum += v[i];
  double want = json_real_value(json_object_get(exp, "sum"));
  if (json_is_integer(json_object_get(exp, "sum"))) want = (double)json_integer_value(json_object_get(exp, "sum"));
  if (!(fabs(sum - want) <= 1e-12 * fmax(1, fabs(want)))) {
    printf("#   %s: sum %.17g, expected %.17g\n", what, sum, want);
    test_failed_now = 1;
  }
  json_t *first = json_object_get(exp, "first");
  for (size_t i = 0; i < json_array_size(first) && (int64_t)i < n; i++) CHECK_NEAR(v[i], json_number_value(json_array_get(first, i)), 0);
  if (n > 0) CHECK_NEAR(v[n - 1], json_number_value(json_object_get(exp, "last")), 0);
  free(v);
}

static int dtype_of_string(const char *s) {
  static const char *names[] = {"F32", "F16", "BF16", "I8", "I32", "U8", "I64", "F64"};
  for (int i = 0; i < 8; i++) if (strcmp(s, names[i]) == 0) return i;
  return -1;
}

/* Every tensor of st against expected.json's entry for it. */
static void check_against(lacos_safetensors *st, json_t *tensors) {
  const char *name;
  json_t *exp;
  CHECK(lacos_safetensors_count(st) == (int)json_object_size(tensors));
  json_object_foreach(tensors, name, exp) {
    int i = lacos_safetensors_find(st, name);
    CHECK(i >= 0);
    if (i < 0) { printf("#   %s missing\n", name); continue; }
    int dtype, ndim;
    int64_t shape[8];
    CHECK_OK(lacos_safetensors_info(st, i, &dtype, &ndim, shape, 8));
    const char *ds = json_string_value(json_object_get(exp, "dtype"));
    CHECK(strcmp(lacos_safetensors_dtype_string(st, i), ds) == 0);
    CHECK(dtype == dtype_of_string(ds));
    json_t *sh = json_object_get(exp, "shape");
    CHECK(ndim == (int)json_array_size(sh));
    for (int d = 0; d < ndim && d < 8; d++) CHECK(shape[d] == json_integer_value(json_array_get(sh, (size_t)d)));
    CHECK(lacos_safetensors_nbytes(st, i) == (double)json_integer_value(json_object_get(exp, "nbytes")));
    if (!json_object_get(exp, "sum") || ndim > 4) continue;   /* a dtype or rank lacos does not hold */
    lacos_tensor *t = NULL;
    CHECK_OK(lacos_safetensors_get(&t, st, name));
    if (!t) continue;
    CHECK(t->dtype == dtype && t->ndim == ndim);
    for (int d = 0; d < ndim; d++) CHECK(t->shape[d] == shape[d]);
    check_values(name, t, exp);
    lacos_tensor_free(t);
  }
}

static json_t *file_expect(const char *file) { return json_object_get(json_object_get(expected, "files"), file); }

/* ------------------------------------------------------------- reading reference files */

static void reads_reference_dtypes(void) {
  lacos_safetensors *st = NULL;
  double mapped0 = lacos_memory_mapped(), alloc0 = lacos_memory_allocated(LACOS_CPU);
  const char *path = path_in(fixdir, "dtypes.safetensors");
  CHECK_OK(lacos_safetensors_open(&st, path));
  if (!st) return;
  struct stat sb;
  stat(path, &sb);
  CHECK(lacos_memory_mapped() - mapped0 == (double)sb.st_size);
  json_t *fe = file_expect("dtypes.safetensors");
  check_against(st, json_object_get(fe, "tensors"));
  /* names come sorted */
  for (int i = 1; i < lacos_safetensors_count(st); i++)
    CHECK(strcmp(lacos_safetensors_name(st, i - 1), lacos_safetensors_name(st, i)) < 0);
  CHECK(strcmp(lacos_safetensors_metadata(st, "format"), "pt") == 0);
  CHECK(lacos_safetensors_metadata_count(st) == 1);
  CHECK(lacos_safetensors_metadata(st, "nope") == NULL);
  CHECK(strcmp(lacos_safetensors_file(st, 0), path) == 0);
  /* views allocate nothing: every tensor is aligned in a save_file file */
  lacos_tensor *a = NULL, *b = NULL;
  CHECK_OK(lacos_safetensors_get(&a, st, "f32"));
  CHECK_OK(lacos_safetensors_get(&b, st, "f64"));
  CHECK(lacos_memory_allocated(LACOS_CPU) == alloc0);
  CHECK(a && (uintptr_t)a->data % 4 == 0 && b && (uintptr_t)b->data % 8 == 0);
  lacos_tensor_free(a);
  lacos_tensor_free(b);
  /* the "transformer." prefix is optional on either side */
  CHECK(lacos_safetensors_find(st, "h.0.w") == lacos_safetensors_find(st, "transformer.h.0.w"));
  CHECK(lacos_safetensors_find(st, "h.0.w") >= 0);
  CHECK(lacos_safetensors_find(st, "transformer.f32") == lacos_safetensors_find(st, "f32"));
  CHECK(lacos_safetensors_find(st, "transformer.transformer.f32") == -1);
  lacos_tensor *t = NULL;
  CHECK_OK(lacos_safetensors_get(&t, st, "h.0.w"));
  double v = 0;
  int64_t idx[4] = {3, 0, 0, 0};
  if (t) lacos_tensor_get(t, idx, &v);
  CHECK(v == 1.5);
  lacos_tensor_free(t);
  CHECK_FAIL(lacos_safetensors_get(&t, st, "h.9.w"), LACOS_ENOTFOUND, "no tensor named \"h.9.w\" (nor \"transformer.h.9.w\")");
  CHECK(strstr(lacos_last_error(), path) != NULL);
  CHECK(t == NULL);
  lacos_safetensors_free(st);
  CHECK(lacos_memory_mapped() == mapped0);
}

static void unsupported_dtypes_and_ranks_fail_on_request(void) {
  lacos_safetensors *st = NULL;
  const char *path = path_in(fixdir, "exotic.safetensors");
  CHECK_OK(lacos_safetensors_open(&st, path));
  if (!st) return;
  json_t *fe = file_expect("exotic.safetensors");
  check_against(st, json_object_get(fe, "tensors"));
  lacos_tensor *t = NULL;
  CHECK_FAIL(lacos_safetensors_get(&t, st, "bool"), LACOS_EUNSUPPORTED, "unsupported dtype BOOL for tensor \"bool\"");
  CHECK(strstr(lacos_last_error(), path) != NULL);
  CHECK_FAIL(lacos_safetensors_get(&t, st, "f8_e4m3"), LACOS_EUNSUPPORTED, "unsupported dtype F8_E4M3");
  CHECK_FAIL(lacos_safetensors_get(&t, st, "u64"), LACOS_EUNSUPPORTED, "unsupported dtype U64");
  CHECK_FAIL(lacos_safetensors_get(&t, st, "rank5"), LACOS_EUNSUPPORTED, "has 5 dimensions");
  int dtype, ndim;
  int64_t shape[3] = {-7, -7, -7};
  CHECK_OK(lacos_safetensors_info(st, lacos_safetensors_find(st, "rank5"), &dtype, &ndim, shape, 2));
  CHECK(dtype == LACOS_F32 && ndim == 5 && shape[0] == 1 && shape[1] == 1 && shape[2] == -7);
  CHECK_OK(lacos_safetensors_info(st, lacos_safetensors_find(st, "c64"), &dtype, &ndim, shape, 3));
  CHECK(dtype == -1 && ndim == 1 && shape[0] == 1);
  CHECK_FAIL(lacos_safetensors_info(st, 99, &dtype, &ndim, shape, 3), LACOS_EINVAL, "out of range");
  /* metadata: all three keys, unicode and empty values intact */
  json_t *meta = json_object_get(fe, "metadata");
  CHECK(lacos_safetensors_metadata_count(st) == (int)json_object_size(meta));
  const char *k;
  json_t *v;
  json_object_foreach(meta, k, v) {
    const char *got = lacos_safetensors_metadata(st, k);
    CHECK(got && strcmp(got, json_string_value(v)) == 0);
  }
  lacos_safetensors_free(st);
}

static void reads_hub_shards(void) {
  json_t *sh = json_object_get(expected, "sharded");
  const char *dir = path_in(fixdir, json_string_value(json_object_get(sh, "dir")));
  char idx[2100];
  snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
  const char *targets[2] = {dir, idx};
  for (int w = 0; w < 2; w++) {
    lacos_safetensors *st = NULL;
    double mapped0 = lacos_memory_mapped();
    CHECK_OK(lacos_safetensors_open(&st, targets[w]));
    if (!st) continue;
    check_against(st, json_object_get(sh, "tensors"));
    const char *name;
    json_t *file;
    json_object_foreach(json_object_get(sh, "weight_map"), name, file) {
      const char *f = lacos_safetensors_file(st, lacos_safetensors_find(st, name));
      CHECK(f && strcmp(strrchr(f, '/') + 1, json_string_value(file)) == 0);
    }
    char total[32];
    snprintf(total, sizeof total, "%lld", (long long)json_integer_value(json_object_get(sh, "total_size")));
    CHECK(lacos_safetensors_metadata(st, "total_size") && strcmp(lacos_safetensors_metadata(st, "total_size"), total) == 0);
    CHECK(lacos_safetensors_metadata(st, "format") && strcmp(lacos_safetensors_metadata(st, "format"), "pt") == 0);
    /* each shard mapped once */
    double bytes = 0;
    for (size_t i = 0; i < json_array_size(json_object_get(sh, "files")); i++) {
      const char *f = json_string_value(json_array_get(json_object_get(sh, "files"), i));
      struct stat sb;
      if (strstr(f, ".index.json")) continue;
      stat(path_in(dir, f), &sb);
      bytes += (double)sb.st_size;
    }
    CHECK(lacos_memory_mapped() - mapped0 == bytes);
    lacos_safetensors_free(st);
  }
  /* the transformers-saved BLOOM shards of the bloom fixtures */
  char bdir[1100];
  snprintf(bdir, sizeof bdir, "%s/../bloom/tiny-sharded", fixdir);
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, bdir));
  json_error_t je;
  json_t *index = json_load_file(path_in(bdir, "model.safetensors.index.json"), 0, &je);
  if (st && index) {
    CHECK(lacos_safetensors_count(st) == (int)json_object_size(json_object_get(index, "weight_map")));
    lacos_tensor *t = NULL;
    CHECK_OK(lacos_safetensors_get(&t, st, "h.0.self_attention.query_key_value.weight"));
    lacos_tensor_free(t);
  }
  json_decref(index);
  lacos_safetensors_free(st);
}

static void views_outlive_the_checkpoint(void) {
  lacos_safetensors *st = NULL;
  double mapped0 = lacos_memory_mapped();
  const char *path = path_in(fixdir, "dtypes.safetensors");
  CHECK_OK(lacos_safetensors_open(&st, path));
  if (!st) return;
  lacos_tensor *t = NULL, *u = NULL;
  CHECK_OK(lacos_safetensors_get(&t, st, "transformer.h.0.w"));
  CHECK_OK(lacos_safetensors_get(&u, st, "f16"));
  lacos_safetensors_free(st);
  CHECK(lacos_memory_mapped() > mapped0);   /* the views hold the mapping */
  float v[4] = {0};
  if (t) CHECK_OK(lacos_tensor_read_f32(t, v, 4));
  CHECK(v[0] == -1.5f && v[3] == 1.5f);
  /* writing to a view is private to this process: the file stays as it was */
  size_t n0, n1;
  unsigned char *before = slurp(path, &n0);
  if (t) CHECK_OK(lacos_tensor_fill(t, 42));
  if (t) CHECK_OK(lacos_tensor_read_f32(t, v, 4));
  CHECK(v[0] == 42 && v[3] == 42);
  unsigned char *after = slurp(path, &n1);
  CHECK(n0 == n1 && memcmp(before, after, n0) == 0);
  free(before);
  free(after);
  lacos_tensor_free(t);
  CHECK(lacos_memory_mapped() > mapped0);
  lacos_tensor_free(u);
  CHECK(lacos_memory_mapped() == mapped0);
}

static void misaligned_tensors_come_back_as_copies(void) {
  /* header length 10: data starts at byte 18, so an F32 at offset 0 is misaligned */
  const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
  size_t hl = strlen(hdr), pad = (2 + 8 - hl % 8) % 8;   /* N ≡ 2 (mod 8): data at an address ≡ 2 (mod 4) */
  char padded[256];
  snprintf(padded, sizeof padded, "%s%.*s", hdr, (int)pad, "        ");
  const char *p = tmp("misaligned.safetensors");
  FILE *f = fopen(p, "wb");
  uint64_t N = strlen(padded);
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(N >> (8 * i));
  fwrite(len, 1, 8, f);
  fwrite(padded, 1, N, f);
  float vals[2] = {1.25f, -3.5f};
  fwrite(vals, 4, 2, f);
  fwrite("xyz", 1, 3, f);
  fclose(f);
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, p));
  if (!st) return;
  double alloc0 = lacos_memory_allocated(LACOS_CPU);
  lacos_tensor *a = NULL, *b = NULL;
  CHECK_OK(lacos_safetensors_get(&a, st, "a"));
  CHECK(lacos_memory_allocated(LACOS_CPU) > alloc0);   /* copied */
  float got[2] = {0};
  if (a) { CHECK((uintptr_t)a->data % 4 == 0); lacos_tensor_read_f32(a, got, 2); }
  CHECK(got[0] == 1.25f && got[1] == -3.5f);
  CHECK_OK(lacos_safetensors_get(&b, st, "b"));
  double v = 0;
  int64_t idx[4] = {2, 0, 0, 0};
  if (b) lacos_tensor_get(b, idx, &v);
  CHECK(v == 'z');
  lacos_tensor_free(a);
  lacos_tensor_free(b);
  lacos_safetensors_free(st);
}

/* ------------------------------------------------------------- writing */

static lacos_tensor *from(int dtype, int ndim, const int64_t *shape, const double *v) {
  lacos_tensor *t = NULL;
  lacos_tensor_from_buffer(&t, dtype, ndim, shape, v, LACOS_F64);
  return t;
}

static void writer_matches_save_file_bytes(void) {
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, path_in(fixdir, "dtypes.safetensors")));
  if (!st) return;
  int n = lacos_safetensors_count(st);
  const char *names[32];
  lacos_tensor *ts[32] = {0};
  /* reversed, to show the writer orders the data itself */
  for (int i = 0; i < n; i++) {
    names[i] = lacos_safetensors_name(st, n - 1 - i);
    CHECK_OK(lacos_safetensors_get(&ts[i], st, names[i]));
  }
  const char *mk[1] = {"format"}, *mv[1] = {"pt"};
  const char *out = tmp("rewritten.safetensors");
  CHECK_OK(lacos_safetensors_write(out, n, names, ts, 1, mk, mv));
  CHECK(same_bytes(out, path_in(fixdir, "dtypes.safetensors")));
  for (int i = 0; i < n; i++) lacos_tensor_free(ts[i]);
  lacos_safetensors_free(st);
}

static void sharded_writer_matches_the_hub(void) {
  json_t *sh = json_object_get(expected, "sharded");
  const char *ref = path_in(fixdir, json_string_value(json_object_get(sh, "dir")));
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, ref));
  if (!st) return;
  json_t *order = json_object_get(sh, "order");
  int n = (int)json_array_size(order);
  const char *names[16];
  lacos_tensor *ts[16] = {0};
  for (int i = 0; i < n; i++) {
    names[i] = json_string_value(json_array_get(order, (size_t)i));
    CHECK_OK(lacos_safetensors_get(&ts[i], st, names[i]));
  }
  const char *out = tmp("hub-like");
  double limit = (double)json_integer_value(json_object_get(sh, "max_shard_size"));
  CHECK_OK(lacos_safetensors_write_sharded(out, n, names, ts, limit, 0, NULL, NULL));
  json_t *files = json_object_get(sh, "files");
  for (size_t i = 0; i < json_array_size(files); i++) {
    const char *f = json_string_value(json_array_get(files, i));
    if (strstr(f, ".index.json")) continue;
    CHECK(same_bytes(path_in(out, f), path_in(ref, f)));
  }
  json_error_t je;
  json_t *mine = json_load_file(path_in(out, "model.safetensors.index.json"), 0, &je);
  json_t *theirs = json_load_file(path_in(ref, "model.safetensors.index.json"), 0, &je);
  CHECK(mine && theirs && json_equal(mine, theirs));
  json_decref(mine);
  json_decref(theirs);
  for (int i = 0; i < n; i++) lacos_tensor_free(ts[i]);
  lacos_safetensors_free(st);
}

static void every_engine_dtype_round_trips(void) {
  static const double vals[12] = {0, 1, -2, 3.5, 100, -128, 127, 255, 0.125, -0.75, 7, 9};
  int64_t s23[2] = {2, 3}, s0[1] = {0}, s4[4] = {1, 2, 1, 3};
  const char *names[12];
  lacos_tensor *ts[12] = {0};
  char namebuf[12][16];
  int n = 0;
  for (int d = 0; d < LACOS_DTYPE_COUNT; d++) {
    snprintf(namebuf[n], 16, "t_%s", lacos_dtype_name(d));
    names[n] = namebuf[n];
    ts[n++] = from(d, 2, s23, vals + (d == LACOS_U8 ? 6 : 0));
  }
  names[n] = "scalar"; ts[n++] = from(LACOS_F64, 0, NULL, vals + 3);
  names[n] = "empty"; ts[n++] = from(LACOS_F32, 1, s0, vals);
  names[n] = "rank4"; ts[n++] = from(LACOS_BF16, 4, s4, vals);
  /* a transposed (non-contiguous) view is written in its logical order */
  lacos_tensor *tr = NULL;
  CHECK_OK(lacos_tensor_transpose(&tr, ts[0], 0, 1));
  names[n] = "transposed"; ts[n++] = tr;
  const char *mk[2] = {"b", "a"}, *mv[2] = {"two words", ""};
  const char *out = tmp("all.safetensors");
  CHECK_OK(lacos_safetensors_write(out, n, names, ts, 2, mk, mv));
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, out));
  if (!st) return;
  CHECK(lacos_safetensors_count(st) == n);
  for (int i = 0; i < n; i++) {
    lacos_tensor *t = NULL;
    CHECK_OK(lacos_safetensors_get(&t, st, names[i]));
    if (!t) continue;
    CHECK(t->dtype == ts[i]->dtype && t->ndim == ts[i]->ndim);
    double diff = -1;
    if (t->ndim > 0) CHECK_OK(lacos_tensor_maxdiff(t, ts[i], &diff));
    else { lacos_tensor_get(t, NULL, &diff); diff -= 3.5; }
    if (lacos_tensor_numel(t) > 0) CHECK(diff == 0);
    CHECK((uintptr_t)t->data % (uintptr_t)lacos_dtype_size(t->dtype) == 0);
    lacos_tensor_free(t);
  }
  CHECK(strcmp(lacos_safetensors_metadata(st, "b"), "two words") == 0);
  CHECK(strcmp(lacos_safetensors_metadata(st, "a"), "") == 0);
  lacos_safetensors_free(st);
  /* the header is padded to a multiple of 8 */
  size_t len;
  unsigned char *b = slurp(out, &len);
  uint64_t N = 0;
  for (int i = 0; i < 8; i++) N |= (uint64_t)b[i] << (8 * i);
  CHECK(N % 8 == 0 && (b[8 + N - 1] == ' ' || b[8 + N - 1] == '}'));
  free(b);
  for (int i = 0; i < n; i++) lacos_tensor_free(ts[i]);
}

static int count_files(const char *dir, const char *needle) {
  DIR *d = opendir(dir);
  int k = 0;
  struct dirent *de;
  while (d && (de = readdir(d))) if (strstr(de->d_name, needle)) k++;
  if (d) closedir(d);
  return k;
}

static void writer_refuses_bad_input_without_output(void) {
  int64_t s2[1] = {2};
  double v[2] = {1, 2};
  lacos_tensor *a = from(LACOS_F32, 1, s2, v), *b = from(LACOS_F32, 1, s2, v), *freed = from(LACOS_F32, 1, s2, v);
  lacos_tensor_release(freed);
  lacos_tensor *ts[2] = {a, b};
  const char *out = tmp("refused.safetensors");
  const char *dup[2] = {"x", "x"}, *meta_name[2] = {"x", "__metadata__"}, *bad_utf8[2] = {"x", "\xff\xfe"};
  CHECK_FAIL(lacos_safetensors_write(out, 2, dup, ts, 0, NULL, NULL), LACOS_EINVAL, "\"x\" appears twice");
  CHECK_FAIL(lacos_safetensors_write(out, 2, meta_name, ts, 0, NULL, NULL), LACOS_EINVAL, "__metadata__");
  CHECK_FAIL(lacos_safetensors_write(out, 2, bad_utf8, ts, 0, NULL, NULL), LACOS_EINVAL, "not valid UTF-8");
  const char *ok[2] = {"x", "y"};
  lacos_tensor *with_null[2] = {a, NULL}, *with_freed[2] = {a, freed};
  CHECK_FAIL(lacos_safetensors_write(out, 2, ok, with_null, 0, NULL, NULL), LACOS_EINVAL, "\"y\" is missing");
  CHECK_FAIL(lacos_safetensors_write(out, 2, ok, with_freed, 0, NULL, NULL), LACOS_ESTATE, "\"y\" was freed");
  const char *mk[2] = {"k", "k"}, *mv[2] = {"1", "2"}, *mk1[1] = {"k"}, *badv[1] = {"\xc3"};
  CHECK_FAIL(lacos_safetensors_write(out, 2, ok, ts, 2, mk, mv), LACOS_EINVAL, "metadata key \"k\" appears twice");
  CHECK_FAIL(lacos_safetensors_write(out, 2, ok, ts, 1, mk1, badv), LACOS_EINVAL, "metadata value for \"k\" is not valid UTF-8");
  CHECK_FAIL(lacos_safetensors_write(tmp("no/such/dir/x.safetensors"), 2, ok, ts, 0, NULL, NULL), LACOS_ENOTFOUND, "no/such/dir");
  CHECK_FAIL(lacos_safetensors_write_sharded(tmp("neg"), 2, ok, ts, -1, 0, NULL, NULL), LACOS_EINVAL, "must be positive");
  CHECK_FAIL(lacos_safetensors_write_sharded(tmp("dupsh"), 2, dup, ts, 100, 0, NULL, NULL), LACOS_EINVAL, "appears twice");
  struct stat sb;
  CHECK(stat(out, &sb) != 0);   /* nothing written */
  CHECK(count_files(test_tmpdir(), ".tmp.") == 0);
  CHECK(count_files(tmp("dupsh"), "safetensors") == 0);
  lacos_tensor_free(a);
  lacos_tensor_free(b);
  lacos_tensor_free(freed);
}

static void sharding_plan_and_stale_files(void) {
  /* sizes 400, 400, 4000 (oversize), 400, 400 bytes with a 1000-byte limit:
     the hub gives [big], [a, b], [c, d] -- a shard is numbered when closed */
  int64_t s100[1] = {100}, s1000[1] = {1000};
  lacos_tensor *t[5];
  const char *names[5] = {"a", "b", "big", "c", "d"};
  for (int i = 0; i < 5; i++) CHECK_OK(lacos_tensor_full(&t[i], LACOS_F32, 1, i == 2 ? s1000 : s100, i));
  const char *dir = tmp("plan");
  mkdir(dir, 0777);
  write_text(path_in(dir, "notes.txt"), "keep me");
  write_text(path_in(dir, "model-1-of-2.safetensors"), "not our naming: keep");
  write_text(path_in(dir, "model-00007-of-00009.safetensors"), "stale shard of ours");
  const char *mk[1] = {"run"}, *mv[1] = {"42"};
  CHECK_OK(lacos_safetensors_write_sharded(dir, 5, names, t, 1000, 1, mk, mv));
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, dir));
  if (st) {
    const char *want[5] = {"model-00002-of-00003.safetensors", "model-00002-of-00003.safetensors",
                           "model-00001-of-00003.safetensors", "model-00003-of-00003.safetensors",
                           "model-00003-of-00003.safetensors"};
    for (int i = 0; i < 5; i++) {
      const char *f = lacos_safetensors_file(st, lacos_safetensors_find(st, names[i]));
      CHECK(f && strcmp(strrchr(f, '/') + 1, want[i]) == 0);
    }
    CHECK(lacos_safetensors_metadata(st, "run") && strcmp(lacos_safetensors_metadata(st, "run"), "42") == 0);
    CHECK(lacos_safetensors_metadata(st, "total_size") && strcmp(lacos_safetensors_metadata(st, "total_size"), "5600") == 0);
    lacos_safetensors_free(st);
  }
  struct stat sb;
  CHECK(stat(path_in(dir, "model-00007-of-00009.safetensors"), &sb) != 0);
  CHECK(stat(path_in(dir, "notes.txt"), &sb) == 0 && stat(path_in(dir, "model-1-of-2.safetensors"), &sb) == 0);
  /* everything fits: one model.safetensors, and the shards and index are gone */
  CHECK_OK(lacos_safetensors_write_sharded(dir, 5, names, t, 0, 1, mk, mv));
  CHECK(stat(path_in(dir, "model.safetensors"), &sb) == 0);
  CHECK(stat(path_in(dir, "model.safetensors.index.json"), &sb) != 0);
  CHECK(count_files(dir, "-of-0000") == 0);
  st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, dir));
  if (st) {
    CHECK(lacos_safetensors_count(st) == 5);
    CHECK(strcmp(lacos_safetensors_metadata(st, "format"), "pt") == 0 && strcmp(lacos_safetensors_metadata(st, "run"), "42") == 0);
    lacos_safetensors_free(st);
  }
  /* and back to shards: the single file goes */
  CHECK_OK(lacos_safetensors_write_sharded(dir, 5, names, t, 4800, 0, NULL, NULL));   /* [a, b, big], [c, d] */
  CHECK(stat(path_in(dir, "model.safetensors"), &sb) != 0);
  CHECK(count_files(dir, "-of-00002.safetensors") == 2);
  CHECK(stat(path_in(dir, "notes.txt"), &sb) == 0);
  /* no tensors at all: an empty model.safetensors that opens */
  const char *edir = tmp("empty-ckpt");
  CHECK_OK(lacos_safetensors_write_sharded(edir, 0, NULL, NULL, 0, 0, NULL, NULL));
  st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, edir));
  CHECK(st && lacos_safetensors_count(st) == 0);
  lacos_safetensors_free(st);
  for (int i = 0; i < 5; i++) lacos_tensor_free(t[i]);
}

/* ------------------------------------------------------------- malformed files */

#define T_A "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}"

static void malformed_headers(void) {
  const char *p;
  p = tmp("empty.safetensors");
  write_text(p, "");
  expect_bad(p, LACOS_EFORMAT, "too short", p);
  p = tmp("short.safetensors");
  write_text(p, "\x05\0\0");
  expect_bad(p, LACOS_EFORMAT, "too short", p);
  /* a reference file cut short: the last tensor runs past the end */
  size_t flen;
  unsigned char *whole = slurp(path_in(fixdir, "dtypes.safetensors"), &flen);
  p = tmp("cut.safetensors");
  FILE *cf = fopen(p, "wb");
  fwrite(whole, 1, flen - 3, cf);
  fclose(cf);
  free(whole);
  expect_bad(p, LACOS_EFORMAT, "(truncated file?)", p);
  p = make_file("past_end.safetensors", 1000, "{" T_A "}", 8);
  expect_bad(p, LACOS_EFORMAT, "runs past the end", p);
  p = make_file("huge_len.safetensors", 100000001, "{}", 0);
  expect_bad(p, LACOS_EFORMAT, "100,000,000", p);
  p = make_raw("max_len.safetensors", UINT64_MAX, "{}", 0);   /* 8 + N must not wrap */
  expect_bad(p, LACOS_EFORMAT, "100,000,000", p);
  p = make_raw("wrap_len.safetensors", UINT64_MAX - 7, "{}", 0);
  expect_bad(p, LACOS_EFORMAT, "100,000,000", p);
  p = make_file("zero_len.safetensors", 0, "", 0);
  expect_bad(p, LACOS_EFORMAT, "does not start with '{'", p);
  p = make_file("not_json.safetensors", -1, "{this is not json}", 0);
  expect_bad(p, LACOS_EFORMAT, "not valid JSON", p);
  p = make_file("array.safetensors", -1, "[1, 2]  ", 0);
  expect_bad(p, LACOS_EFORMAT, "does not start with '{'", p);
  p = make_file("leading_space.safetensors", -1, " {}", 0);
  expect_bad(p, LACOS_EFORMAT, "does not start with '{'", p);
  p = make_file("trailing_junk.safetensors", -1, "{} x", 0);
  expect_bad(p, LACOS_EFORMAT, "not valid JSON", p);
  p = make_file("bad_utf8.safetensors", -1, "{\"\xff\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0);
  expect_bad(p, LACOS_EFORMAT, "not valid JSON", p);
  p = make_file("nul_escape.safetensors", -1, "{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0);
  expect_bad(p, LACOS_EFORMAT, "not valid JSON", p);
  p = make_file("duplicate.safetensors", -1, "{" T_A "," T_A "}", 8);
  expect_bad(p, LACOS_EFORMAT, "duplicate", p);
  p = make_file("overlap.safetensors", -1,
                "{" T_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
  expect_bad(p, LACOS_EFORMAT, "overlaps", p);
  p = make_file("hole.safetensors", -1,
                "{" T_A ",\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}", 16);
  expect_bad(p, LACOS_EFORMAT, "4 bytes at data offset 8 before tensor \"b\" belong to no tensor", p);
  p = make_file("hole_first.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "belong to no tensor", p);
  p = make_file("trailing.safetensors", -1, "{" T_A "}", 9);
  expect_bad(p, LACOS_EFORMAT, "1 bytes after the last tensor", p);
  p = make_file("polyglot.safetensors", -1, "{}", 100);
  expect_bad(p, LACOS_EFORMAT, "100 bytes after the last tensor", p);
  p = make_file("size_mismatch.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "hold 8 bytes, but F32 shape [3] needs 12", p);
  p = make_file("negative.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "not a non-negative integer", p);
  p = make_file("real_dim.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "not a non-negative integer", p);
  p = make_file("overflow.safetensors", -1,
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "element count of shape [4294967296, 4294967296, 2] overflows", p);
  p = make_file("overflow_bytes.safetensors", -1,
                "{\"a\":{\"dtype\":\"F64\",\"shape\":[2305843009213693952,2],\"data_offsets\":[0,0]}}", 0);
  expect_bad(p, LACOS_EFORMAT, "byte size", p);
  p = make_file("wrap.safetensors", -1,   /* 2^62 F32 elements = 2^64 bytes would wrap to 0 */
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]}}", 0);
  expect_bad(p, LACOS_EFORMAT, "overflows", p);
  p = make_file("huge_int.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,0]}}", 0);
  expect_bad(p, LACOS_EFORMAT, "not valid JSON", p);
  p = make_file("unknown_dtype.safetensors", -1, "{\"a\":{\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]}}", 16);
  expect_bad(p, LACOS_EFORMAT, "tensor \"a\": unknown dtype \"F128\"", p);
  p = make_file("lower_dtype.safetensors", -1, "{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "unknown dtype \"f32\"", p);
  p = make_file("out_of_range.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "past the 8-byte data buffer", p);
  p = make_file("far_out.safetensors", -1,
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[9223372036854775805,9223372036854775807]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "past the 8-byte data buffer", p);
  p = make_file("reversed.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "end 0 is before begin 8", p);
  p = make_file("negative_offset.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[-8,0]}}", 0);
  expect_bad(p, LACOS_EFORMAT, "non-negative", p);
  p = make_file("three_offsets.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "data_offsets", p);
  p = make_file("no_dtype.safetensors", -1, "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "missing \"dtype\"", p);
  p = make_file("no_shape.safetensors", -1, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8);
  expect_bad(p, LACOS_EFORMAT, "missing \"shape\"", p);
  p = make_file("entry_string.safetensors", -1, "{\"a\":\"F32\"}", 0);
  expect_bad(p, LACOS_EFORMAT, "expected an object", p);
  p = make_file("meta_number.safetensors", -1, "{\"__metadata__\":{\"step\":5}}", 0);
  expect_bad(p, LACOS_EFORMAT, "__metadata__ value for \"step\" is not a string", p);
  p = make_file("meta_array.safetensors", -1, "{\"__metadata__\":[\"x\"]}", 0);
  expect_bad(p, LACOS_EFORMAT, "__metadata__ must be an object", p);
  p = make_file("odd_f4.safetensors", -1, "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2);
  expect_bad(p, LACOS_EFORMAT, "3 elements of F4 do not fill whole bytes", p);
  p = make_file("deep.safetensors", -1,
                "{\"__metadata__\":{\"x\":\"y\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":"
                "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]"
                "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
                8);
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, p));   /* unknown fields are ignored, as upstream */
  lacos_safetensors_free(st);
  /* valid oddities: null metadata, an even F4 count, an empty file with a padded {} */
  p = make_file("null_meta.safetensors", -1, "{\"__metadata__\":null,\"q\":{\"dtype\":\"F4\",\"shape\":[4],\"data_offsets\":[0,2]}}      ", 2);
  st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, p));
  if (st) {
    lacos_tensor *t = NULL;
    CHECK(lacos_safetensors_metadata_count(st) == 0);
    CHECK_FAIL(lacos_safetensors_get(&t, st, "q"), LACOS_EUNSUPPORTED, "unsupported dtype F4 for tensor \"q\"");
    lacos_safetensors_free(st);
  }
  /* not files */
  expect_bad(tmp("does-not-exist.safetensors"), LACOS_ENOTFOUND, "No such file", "does-not-exist");
  const char *d = tmp("empty-dir");
  mkdir(d, 0777);
  expect_bad(d, LACOS_ENOTFOUND, "no model.safetensors or model.safetensors.index.json", d);
  p = tmp("fifo.safetensors");
  if (mkfifo(p, 0600) == 0) expect_bad(p, LACOS_EFORMAT, "not a regular file", p);
}

static void ambiguous_prefix(void) {
  const char *p = make_file("ambiguous.safetensors", -1,
                            "{\"h.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                            "\"transformer.h.w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
                            "\"other\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}",
                            3);
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, p));
  if (!st) return;
  lacos_tensor *t = NULL;
  CHECK(lacos_safetensors_find(st, "h.w") == -2);
  CHECK_FAIL(lacos_safetensors_get(&t, st, "h.w"), LACOS_EFORMAT, "both \"h.w\" and \"transformer.h.w\" are present");
  CHECK(strstr(lacos_last_error(), p) != NULL);
  CHECK_FAIL(lacos_safetensors_get(&t, st, "transformer.h.w"), LACOS_EFORMAT, "ambiguous");
  CHECK_OK(lacos_safetensors_get(&t, st, "transformer.other"));
  lacos_tensor_free(t);
  lacos_safetensors_free(st);
}

/* A directory with shards a and b (tensors x in a; y, z in b) and an index. */
static const char *shard_dir(const char *name, const char *index) {
  const char *d = tmp(name);
  mkdir(d, 0777);
  char buf[2200];
  snprintf(buf, sizeof buf, "%s/a.safetensors", name);
  rename(make_file("shard-a.tmp", -1, "{\"x\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2), tmp(buf));
  snprintf(buf, sizeof buf, "%s/b.safetensors", name);
  rename(make_file("shard-b.tmp", -1,
                   "{\"y\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},\"z\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2),
         tmp(buf));
  write_text(path_in(d, "model.safetensors.index.json"), index);
  return d;
}

static void malformed_indexes(void) {
  const char *d;
  char idx[2100];
#define IDX(d) (snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", d), idx)
  d = shard_dir("ok-index", "{\"metadata\":{\"total_size\":4},\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\",\"z\":\"b.safetensors\"}}");
  lacos_safetensors *st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, d));
  CHECK(st && lacos_safetensors_count(st) == 3);
  lacos_safetensors_free(st);
  /* a shard the index does not name is not opened; a tensor it does not name is still there */
  write_text(path_in(d, "c.safetensors"), "garbage");
  write_text(IDX(d), "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
  st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, d));
  CHECK(st && lacos_safetensors_count(st) == 3 && lacos_safetensors_find(st, "z") >= 0);
  lacos_safetensors_free(st);

  d = shard_dir("missing-shard", "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"gone.safetensors\"}}");
  expect_bad(d, LACOS_ENOTFOUND, "names shard gone.safetensors (for tensor \"y\"), but", IDX(d));
  d = shard_dir("absent-tensor", "{\"weight_map\":{\"x\":\"a.safetensors\",\"w\":\"b.safetensors\"}}");
  expect_bad(d, LACOS_EFORMAT, "puts tensor \"w\" in b.safetensors, which has no such tensor", IDX(d));
  d = shard_dir("wrong-shard", "{\"weight_map\":{\"x\":\"b.safetensors\",\"y\":\"a.safetensors\"}}");
  expect_bad(d, LACOS_EFORMAT, "but it is in", IDX(d));
  d = shard_dir("two-shards", "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
  rename(make_file("dup.tmp", -1, "{\"x\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), path_in(d, "b.safetensors"));
  expect_bad(d, LACOS_EFORMAT, "tensor \"x\" is in two shards, a.safetensors and b.safetensors", d);
  d = shard_dir("bad-json", "{\"weight_map\":{\"x\":\"a.safetensors\",}");
  expect_bad(d, LACOS_EFORMAT, "invalid JSON", IDX(d));
  d = shard_dir("dup-key", "{\"weight_map\":{\"x\":\"a.safetensors\",\"x\":\"a.safetensors\"}}");
  expect_bad(d, LACOS_EFORMAT, "duplicate", IDX(d));
  d = shard_dir("no-map", "{\"metadata\":{}}");
  expect_bad(d, LACOS_EFORMAT, "missing the \"weight_map\" object", IDX(d));
  d = shard_dir("array-index", "[]");
  expect_bad(d, LACOS_EFORMAT, "expected a JSON object", IDX(d));
  d = shard_dir("escape", "{\"weight_map\":{\"x\":\"../ok-index/a.safetensors\"}}");
  expect_bad(d, LACOS_EFORMAT, "plain file names", IDX(d));
  d = shard_dir("dotdot", "{\"weight_map\":{\"x\":\"..\"}}");
  expect_bad(d, LACOS_EFORMAT, "plain file names", IDX(d));
  d = shard_dir("not-string", "{\"weight_map\":{\"x\":3}}");
  expect_bad(d, LACOS_EFORMAT, "weight_map entry \"x\" is not a file name", IDX(d));
  d = shard_dir("bad-meta", "{\"metadata\":5,\"weight_map\":{}}");
  expect_bad(d, LACOS_EFORMAT, "\"metadata\" must be an object", IDX(d));
  d = shard_dir("corrupt-shard", "{\"weight_map\":{\"x\":\"a.safetensors\",\"y\":\"b.safetensors\"}}");
  rename(make_file("corrupt.tmp", -1, "{}", 1), path_in(d, "b.safetensors"));
  expect_bad(d, LACOS_EFORMAT, "1 bytes after the last tensor", path_in(d, "b.safetensors"));
  d = shard_dir("dot", "{\"weight_map\":{\"x\":\".\"}}");
  expect_bad(d, LACOS_EFORMAT, "plain file names", IDX(d));
  d = shard_dir("dir-shard", "{\"weight_map\":{\"x\":\"sub.safetensors\"}}");
  mkdir(path_in(d, "sub.safetensors"), 0777);
  expect_bad(d, LACOS_EFORMAT, "is a directory", path_in(d, "sub.safetensors"));
  /* model.safetensors wins over an index, as in transformers */
  d = shard_dir("both", "{\"weight_map\":{\"x\":\"missing.safetensors\"}}");
  rename(make_file("single.tmp", -1, "{\"only\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), path_in(d, "model.safetensors"));
  st = NULL;
  CHECK_OK(lacos_safetensors_open(&st, d));
  CHECK(st && lacos_safetensors_count(st) == 1 && lacos_safetensors_find(st, "only") == 0);
  lacos_safetensors_free(st);
#undef IDX
}

/* Run checkpoints (engine/checkpoint.c) write an image to a stream and read
   it back from memory: the same validation, views that keep the image. */
static void in_memory_images(void) {
  int64_t s3[1] = {3};
  double v[3] = {1, -2, 4};
  lacos_tensor *a = from(LACOS_F32, 1, s3, v), *b = from(LACOS_I8, 1, s3, v);
  lacos_tensor *ts[2] = {a, b};
  const char *names[2] = {"a", "b"}, *mk[1] = {"k"}, *mv[1] = {"v"};
  char *img = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&img, &n);
  CHECK_OK(safetensors_write_stream(f, "mem", 2, names, ts, 1, mk, mv));
  fclose(f);
  /* the same bytes as the file writer */
  const char *p = tmp("image.safetensors");
  CHECK_OK(lacos_safetensors_write(p, 2, names, ts, 1, mk, mv));
  size_t fn;
  unsigned char *fb = slurp(p, &fn);
  CHECK(fb && fn == n && memcmp(fb, img, n) == 0);
  free(fb);
  lacos_safetensors *st = NULL;
  double mapped = lacos_memory_mapped();
  char *own = NULL;   /* the image as the engine's own memory, which open_buffer takes */
  CHECK_OK(mem_alloc(&own, n, "test image"));
  if (own) memcpy(own, img, n);
  free(img);
  CHECK_OK(safetensors_open_buffer(&st, own, n, "ckpt/tensors.safetensors.zst"));   /* takes own */
  CHECK(lacos_memory_mapped() == mapped);
  lacos_tensor *t = NULL;
  if (st) {
    CHECK(strcmp(lacos_safetensors_metadata(st, "k"), "v") == 0);
    CHECK_OK(lacos_safetensors_get(&t, st, "transformer.a"));
    lacos_tensor *none = NULL;
    CHECK_FAIL(lacos_safetensors_get(&none, st, "c"), LACOS_ENOTFOUND, "ckpt/tensors.safetensors.zst: no tensor named \"c\"");
    lacos_safetensors_free(st);
  }
  double d = 1;
  if (t) CHECK_OK(lacos_tensor_maxdiff(t, a, &d));
  CHECK(d == 0);
  lacos_tensor_free(t);
  /* bad images fail cleanly and are freed (the sanitizer build checks the leak) */
  st = NULL;
  char *shortimg = NULL, *bad = NULL;
  CHECK_OK(mem_alloc(&shortimg, 4, "test image"));
  CHECK_FAIL(safetensors_open_buffer(&st, shortimg, 4, "short-image"), LACOS_EFORMAT, "short-image: image of 4 bytes is too short");
  CHECK_OK(mem_alloc(&bad, 16, "test image"));
  memcpy(bad, "\x08\0\0\0\0\0\0\0{\"a\":1}  ", 16);
  CHECK_FAIL(safetensors_open_buffer(&st, bad, 16, "bad-image"), LACOS_EFORMAT, "bad-image: tensor \"a\": expected an object");
  CHECK(st == NULL);
  f = open_memstream(&img, &n);
  const char *dup[2] = {"a", "a"};
  CHECK_FAIL(safetensors_write_stream(f, "mem", 2, dup, ts, 0, NULL, NULL), LACOS_EINVAL, "appears twice");
  fclose(f);
  free(img);
  lacos_tensor_free(a);
  lacos_tensor_free(b);
}

static void null_arguments(void) {
  lacos_safetensors *st = NULL;
  lacos_tensor *t = NULL;
  CHECK_FAIL(lacos_safetensors_open(&st, NULL), LACOS_EINVAL, "empty path");
  CHECK_FAIL(lacos_safetensors_open(&st, ""), LACOS_EINVAL, "empty path");
  CHECK_FAIL(lacos_safetensors_get(&t, NULL, "x"), LACOS_EINVAL, NULL);
  CHECK(lacos_safetensors_count(NULL) == 0 && lacos_safetensors_name(NULL, 0) == NULL && lacos_safetensors_find(NULL, "x") == -1);
  lacos_safetensors_free(NULL);
}

int main(void) {
  const char *root = getenv("LACOS_ROOT");
  snprintf(fixdir, sizeof fixdir, "%s/tests/fixtures/safetensors", root ? root : ".");
  json_error_t je;
  expected = json_load_file(path_in(fixdir, "expected.json"), 0, &je);
  if (!expected) {
    printf("not ok - fixtures\n#   %s/expected.json: %s\n", fixdir, je.text);
    return 1;
  }
  RUN(reads_reference_dtypes);
  RUN(unsupported_dtypes_and_ranks_fail_on_request);
  RUN(reads_hub_shards);
  RUN(views_outlive_the_checkpoint);
  RUN(misaligned_tensors_come_back_as_copies);
  RUN(writer_matches_save_file_bytes);
  RUN(sharded_writer_matches_the_hub);
  RUN(every_engine_dtype_round_trips);
  RUN(writer_refuses_bad_input_without_output);
  RUN(sharding_plan_and_stale_files);
  RUN(malformed_headers);
  RUN(ambiguous_prefix);
  RUN(malformed_indexes);
  RUN(in_memory_images);
  RUN(null_arguments);
  json_decref(expected);
  TEST_EXIT();
}
