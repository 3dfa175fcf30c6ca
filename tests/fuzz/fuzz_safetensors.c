/* fuzz_safetensors.c: libFuzzer target for the safetensors loader
   (engine/safetensors.c), built by `make fuzz` with
   -fsanitize=fuzzer,address,undefined against the engine sources.

   An input is either one .safetensors file, or a sharded checkpoint packed
   as  INDEX-JSON SEP SHARD1 SEP SHARD2 ...  (SEP: the 9 bytes "\n\0SHARD\0\n"),
   written as model.safetensors.index.json and model-0000i-of-0000n.safetensors
   in a scratch directory (tests/fuzz/seed.sh packs checkpoint directories so).
   A single file is also opened as an in-memory image (safetensors_open_buffer). The target opens
   it, and for every tensor: info, lookup by name, the tensor itself (all
   values read); then writes everything it could read back with lacos'
   writer, reopens that and requires the same tensors and metadata. A
   mismatch aborts (a finding); an error return is fine; a crash, leak or
   undefined behaviour is a finding.

   The same file, compiled into tests/c/test_fuzz_safetensors.c, replays the
   seeds and every saved crash (tests/fuzz/regressions/safetensors/) in the
   normal test suite. */
#include "engine.h"
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static const char SEP[] = "\n\0SHARD\0\n";   /* 9 bytes: sizeof SEP - 1 */
enum { SEPLEN = sizeof SEP - 1, MAX_SHARDS = 8 };

static char fuzz_dir[512];

static void clear_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  char p[1024];
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    if (unlink(p) != 0) { clear_dir(p); rmdir(p); }
  }
  closedir(d);
}
static void fuzz_clear(void) { clear_dir(fuzz_dir); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(fuzz_dir, sizeof fuzz_dir, "%s/lacos-fuzz-st.XXXXXX", base);
  if (!mkdtemp(fuzz_dir)) { perror("mkdtemp"); abort(); }
  return 0;
}

static void put(const char *name, const uint8_t *d, size_t n) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", fuzz_dir, name);
  FILE *f = fopen(p, "wb");
  if (!f) abort();
  if (n && fwrite(d, 1, n, f) != n) abort();
  fclose(f);
}

static const uint8_t *find_sep(const uint8_t *d, size_t n) {
  for (size_t i = 0; i + SEPLEN <= n; i++)
    if (d[i] == '\n' && memcmp(d + i, SEP, SEPLEN) == 0) return d + i;
  return NULL;
}

#define FUZZ_REQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "fuzz invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); abort(); } } while (0)

/* Everything a caller can do with an open checkpoint. Returns how many
   tensors were read; fills names/tensors with them (owned by the caller). */
static int exercise(lacos_safetensors *st, const char **names, lacos_tensor **tensors, int cap) {
  int n = lacos_safetensors_count(st), got = 0;
  for (int i = 0; i < n; i++) {
    const char *name = lacos_safetensors_name(st, i);
    FUZZ_REQUIRE(name != NULL);
    FUZZ_REQUIRE(lacos_safetensors_file(st, i) != NULL && lacos_safetensors_dtype_string(st, i) != NULL);
    int dtype = -5, ndim = -5;
    int64_t shape[8];
    FUZZ_REQUIRE(lacos_safetensors_info(st, i, &dtype, &ndim, shape, 8) == LACOS_OK);
    FUZZ_REQUIRE(ndim >= 0 && dtype >= -1 && dtype < LACOS_DTYPE_COUNT);
    double nbytes = lacos_safetensors_nbytes(st, i);
    int at = lacos_safetensors_find(st, name);
    FUZZ_REQUIRE(at == i || at == -2);
    lacos_tensor *t = NULL;
    int s = lacos_safetensors_get(&t, st, name);
    if (s != LACOS_OK) {
      FUZZ_REQUIRE(t == NULL && lacos_last_error()[0] != 0);
      continue;
    }
    FUZZ_REQUIRE(t->dtype == dtype && t->ndim == ndim && lacos_tensor_nbytes(t) == nbytes);
    int64_t numel = lacos_tensor_numel(t);
    double *v = malloc(sizeof *v * (size_t)(numel ? numel : 1));
    FUZZ_REQUIRE(v && lacos_tensor_read_f64(t, v, numel) == LACOS_OK);
    free(v);
    if (got < cap) { names[got] = name; tensors[got++] = t; }
    else lacos_tensor_free(t);
  }
  for (int i = 0; i < lacos_safetensors_metadata_count(st); i++) {
    const char *k = lacos_safetensors_metadata_key(st, i);
    FUZZ_REQUIRE(k && lacos_safetensors_metadata(st, k));
  }
  lacos_safetensors_find(st, "transformer.h.0.input_layernorm.weight");
  return got;
}

/* Writes what was read, reopens it, and requires the same bytes back. */
static void round_trip(lacos_safetensors *st, int n, const char **names, lacos_tensor **tensors) {
  int nm = lacos_safetensors_metadata_count(st);
  const char **mk = malloc(sizeof *mk * (size_t)(nm + 1)), **mv = malloc(sizeof *mv * (size_t)(nm + 1));
  FUZZ_REQUIRE(mk && mv);
  for (int i = 0; i < nm; i++) { mk[i] = lacos_safetensors_metadata_key(st, i); mv[i] = lacos_safetensors_metadata(st, mk[i]); }
  char path[1024];
  snprintf(path, sizeof path, "%s/roundtrip.safetensors", fuzz_dir);
  FUZZ_REQUIRE(lacos_safetensors_write(path, n, names, tensors, nm, mk, mv) == LACOS_OK);
  lacos_safetensors *back = NULL;
  FUZZ_REQUIRE(lacos_safetensors_open(&back, path) == LACOS_OK);
  FUZZ_REQUIRE(lacos_safetensors_count(back) == n && lacos_safetensors_metadata_count(back) == nm);
  for (int i = 0; i < nm; i++) FUZZ_REQUIRE(strcmp(lacos_safetensors_metadata(back, mk[i]), mv[i]) == 0);
  for (int i = 0; i < n; i++) {
    int j = lacos_safetensors_find(back, names[i]);
    lacos_tensor *t = NULL;
    if (j == -2) continue;   /* both spellings present: exact names only below */
    FUZZ_REQUIRE(j >= 0 && strcmp(lacos_safetensors_name(back, j), names[i]) == 0);
    FUZZ_REQUIRE(lacos_safetensors_get(&t, back, names[i]) == LACOS_OK);
    FUZZ_REQUIRE(t->dtype == tensors[i]->dtype && t->ndim == tensors[i]->ndim);
    for (int d = 0; d < t->ndim; d++) FUZZ_REQUIRE(t->shape[d] == tensors[i]->shape[d]);
    FUZZ_REQUIRE(memcmp(t->data, tensors[i]->data, (size_t)lacos_tensor_nbytes(t)) == 0);
    FUZZ_REQUIRE((uintptr_t)t->data % (uintptr_t)lacos_dtype_size(t->dtype) == 0);
    lacos_tensor_free(t);
  }
  lacos_safetensors_free(back);
  /* and sharded, with a limit taken from the data so that the plan varies */
  double limit = n ? lacos_tensor_nbytes(tensors[0]) + (double)(n % 3) : 1;
  if (limit <= 0) limit = 1;
  snprintf(path, sizeof path, "%s/sharded", fuzz_dir);
  FUZZ_REQUIRE(lacos_safetensors_write_sharded(path, n, names, tensors, limit, nm, mk, mv) == LACOS_OK);
  FUZZ_REQUIRE(lacos_safetensors_open(&back, path) == LACOS_OK);
  FUZZ_REQUIRE(lacos_safetensors_count(back) == n);
  for (int i = 0; i < n; i++) {
    lacos_tensor *t = NULL;
    if (lacos_safetensors_find(back, names[i]) == -2) continue;
    FUZZ_REQUIRE(lacos_safetensors_get(&t, back, names[i]) == LACOS_OK);
    FUZZ_REQUIRE(memcmp(t->data, tensors[i]->data, (size_t)lacos_tensor_nbytes(t)) == 0);
    lacos_tensor_free(t);
  }
  lacos_safetensors_free(back);
  free(mk);
  free(mv);
}

static void open_and_check(const char *target) {
  lacos_safetensors *st = NULL;
  double mapped = lacos_memory_mapped();
  int s = lacos_safetensors_open(&st, target);
  if (s != LACOS_OK) {
    FUZZ_REQUIRE(st == NULL && lacos_last_error()[0] != 0);
    FUZZ_REQUIRE(lacos_memory_mapped() == mapped);
    return;
  }
  enum { CAP = 256 };
  const char *names[CAP];
  lacos_tensor *tensors[CAP];
  int n = exercise(st, names, tensors, CAP);
  round_trip(st, n, names, tensors);
  /* views outlive the checkpoint */
  lacos_safetensors_free(st);
  for (int i = 0; i < n; i++) {
    double x;
    if (lacos_tensor_numel(tensors[i]) > 0 && tensors[i]->ndim > 0) {
      int64_t idx[4] = {0, 0, 0, 0};
      FUZZ_REQUIRE(lacos_tensor_get(tensors[i], idx, &x) == LACOS_OK);
    }
    lacos_tensor_free(tensors[i]);
  }
  FUZZ_REQUIRE(lacos_memory_mapped() == mapped);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_clear();
  char target[1024];
  const uint8_t *sep = find_sep(data, size);
  if (!sep) {
    put("model.safetensors", data, size);
    snprintf(target, sizeof target, "%s/model.safetensors", fuzz_dir);
    open_and_check(target);
    /* the same bytes as an in-memory image (run checkpoints decompress into one) */
    void *img = NULL;
    FUZZ_REQUIRE(mem_alloc(&img, size ? size : 1, "fuzz image") == LACOS_OK);
    if (size) memcpy(img, data, size);
    lacos_safetensors *st = NULL;
    if (safetensors_open_buffer(&st, img, size, "image") == LACOS_OK) {
      enum { CAP = 64 };
      const char *names[CAP];
      lacos_tensor *tensors[CAP];
      int n = exercise(st, names, tensors, CAP);
      lacos_safetensors_free(st);   /* the views keep the image */
      for (int i = 0; i < n; i++) lacos_tensor_free(tensors[i]);
    } else FUZZ_REQUIRE(st == NULL);
    return 0;
  }
  /* index, then shards */
  const uint8_t *parts[MAX_SHARDS + 1];
  size_t lens[MAX_SHARDS + 1];
  int np = 0;
  const uint8_t *at = data, *end = data + size;
  while (np < MAX_SHARDS + 1) {
    const uint8_t *s = find_sep(at, (size_t)(end - at));
    parts[np] = at;
    lens[np++] = s ? (size_t)(s - at) : (size_t)(end - at);
    if (!s) break;
    at = s + SEPLEN;
  }
  put("model.safetensors.index.json", parts[0], lens[0]);
  for (int i = 1; i < np; i++) {
    char name[64];
    snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", i, np - 1);
    put(name, parts[i], lens[i]);
  }
  open_and_check(fuzz_dir);
  return 0;
}
