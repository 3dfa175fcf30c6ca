/* test_fuzz_safetensors.c: the libFuzzer target tests/fuzz/fuzz_safetensors.c
   run inside the normal test suite (and so under `make SAN=1 test`): it
   replays the seeds (tests/fixtures/safetensors, with checkpoint directories
   packed as the target reads them, and the edge cases of
   tests/fuzz/seeds/safetensors/), every saved finding in
   tests/fuzz/regressions/safetensors/, and a deterministic sweep of
   truncations and byte corruptions of a reference file. A finding aborts the
   program, which the runner reports as a failure. */
#include "../fuzz/fuzz_safetensors.c"
#include "test.h"

static char root[1024];

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

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs the target on every regular file of dir; returns how many. */
static int replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  char *names[4096];
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < 4096) if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  int runs = 0;
  for (int i = 0; i < n; i++) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    struct stat sb;
    if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
      size_t len;
      unsigned char *b = slurp(p, &len);
      LLVMFuzzerTestOneInput(b, len);
      free(b);
      runs++;
    }
    free(names[i]);
  }
  return runs;
}

static void seeds(void) {
  char dir[1100];
  snprintf(dir, sizeof dir, "%s/tests/fixtures/safetensors", root);
  int runs = replay_dir(dir);
  CHECK(runs >= 3);
  /* the sharded directory, packed as INDEX SEP SHARD... */
  snprintf(dir, sizeof dir, "%s/tests/fixtures/safetensors/sharded", root);
  size_t total = 0, len;
  unsigned char *packed = malloc(1 << 20);
  char p[1200];
  snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
  unsigned char *b = slurp(p, &len);
  CHECK(b != NULL);
  if (b) { memcpy(packed, b, len); total = len; free(b); }
  for (int i = 1; i <= 3; i++) {
    snprintf(p, sizeof p, "%s/model-%05d-of-00003.safetensors", dir, i);
    b = slurp(p, &len);
    CHECK(b != NULL && total + SEPLEN + len < (1 << 20));
    if (!b) continue;
    memcpy(packed + total, SEP, SEPLEN);
    memcpy(packed + total + SEPLEN, b, len);
    total += SEPLEN + len;
    free(b);
  }
  LLVMFuzzerTestOneInput(packed, total);
  /* the packed index with one shard dropped: a clear error, no finding */
  LLVMFuzzerTestOneInput(packed, total - len - SEPLEN);
  free(packed);
  printf("#   replayed %d seed files and the packed sharded checkpoint\n", runs);
}

static void edge_case_seeds_and_saved_findings(void) {
  char dir[1100];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/seeds/safetensors", root);
  int seeds = replay_dir(dir);
  CHECK(seeds >= 10);
  snprintf(dir, sizeof dir, "%s/tests/fuzz/regressions/safetensors", root);
  int found = replay_dir(dir);
  printf("#   replayed %d hand-made edge cases and %d saved fuzzer findings\n", seeds, found);
}

/* Every truncation of a reference file, and every header byte replaced by a
   few troublesome values: all must fail cleanly or round-trip. */
static void truncations_and_corruptions(void) {
  char p[1100];
  snprintf(p, sizeof p, "%s/tests/fixtures/safetensors/dtypes.safetensors", root);
  size_t len;
  unsigned char *b = slurp(p, &len);
  CHECK(b != NULL);
  if (!b) return;
  for (size_t n = 0; n < len; n++) LLVMFuzzerTestOneInput(b, n);
  uint64_t N = 0;
  for (int i = 0; i < 8; i++) N |= (uint64_t)b[i] << (8 * i);
  static const unsigned char vals[] = {0x00, 0xff, '9', '"', '-', ']'};
  int runs = 0;
  for (size_t i = 0; i < 8 + N && i < len; i++)
    for (size_t k = 0; k < sizeof vals; k++) {
      unsigned char keep = b[i];
      if (keep == vals[k]) continue;
      b[i] = vals[k];
      LLVMFuzzerTestOneInput(b, len);
      b[i] = keep;
      runs++;
    }
  printf("#   %zu truncations and %d corruptions of dtypes.safetensors\n", len, runs);
  free(b);
}

int main(void) {
  const char *r = getenv("LACOS_ROOT");
  snprintf(root, sizeof root, "%s", r ? r : ".");
  LLVMFuzzerInitialize(NULL, NULL);
  RUN(seeds);
  RUN(edge_case_seeds_and_saved_findings);
  RUN(truncations_and_corruptions);
  fuzz_clear();
  rmdir(fuzz_dir);
  TEST_EXIT();
}
