/* fuzz_replay.h: runs a libFuzzer target's LLVMFuzzerTestOneInput in the
   normal test suite (and so under `make SAN=1 test` and valgrind). A
   tests/c/test_fuzz_<name>.c includes tests/fuzz/fuzz_<name>.c, then this
   file, and calls fuzz_replay_main: the corpus is built by
   tests/fuzz/seed.sh exactly as `make fuzz` seeds it (fixtures, hand-made
   edge cases, the committed minimised corpus, every saved finding) and each
   input is replayed, then every truncation of a few of them. A finding
   aborts the program, which the runner reports as a failure. */
#ifndef LACOS_FUZZ_REPLAY_H
#define LACOS_FUZZ_REPLAY_H
#include "test.h"
#include <dirent.h>
#include <sys/stat.h>

static char replay_root[1024];

static unsigned char *replay_slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) { *n = 0; return NULL; }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)len + 1);
  *n = b ? fread(b, 1, (size_t)len, f) : 0;
  fclose(f);
  return b;
}

static int replay_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Names of the regular files of dir, sorted; returns how many (at most cap). */
static int replay_list(const char *dir, char **names, int cap) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < cap) if (de->d_name[0] != '.') names[n++] = strdup(de->d_name);
  closedir(d);
  qsort(names, (size_t)n, sizeof *names, replay_cmp);
  return n;
}

static const char *replay_target;
static int replay_min_inputs;
static char replay_corpus[1100];
static int replay_count, replay_found;

static void corpus_replays_cleanly(void) {
  snprintf(replay_corpus, sizeof replay_corpus, "%s/fuzz-corpus-%s", test_tmpdir(), replay_target);
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && bash '%s/tests/fuzz/seed.sh' %s '%s'", replay_corpus, replay_root, replay_target,
           replay_corpus);
  CHECK(system(cmd) == 0);
  enum { CAP = 8192 };
  char **names = malloc(sizeof *names * CAP);
  int n = replay_list(replay_corpus, names, CAP);
  for (int i = 0; i < n; i++) {
    char p[2400];
    snprintf(p, sizeof p, "%s/%s", replay_corpus, names[i]);
    size_t len;
    unsigned char *b = replay_slurp(p, &len);
    if (b) {
      FUZZ_TRACE("%s\n", names[i]);
      LLVMFuzzerTestOneInput(b, len);
      replay_count++;
      if (strstr(names[i], "regressions")) replay_found++;
    }
    free(b);
    free(names[i]);
  }
  free(names);
  CHECK(replay_count >= replay_min_inputs);
  printf("#   fuzz_%s: replayed %d inputs (%d saved findings)\n", replay_target, replay_count, replay_found);
}

/* Every prefix of the hand-made seeds (sorted, the first few): a file cut
   short anywhere must fail cleanly. */
static void truncations_fail_cleanly(void) {
  char dir[1200];
  snprintf(dir, sizeof dir, "%s/tests/fuzz/seeds/%s", replay_root, replay_target);
  char *names[512];
  int n = replay_list(dir, names, 512), runs = 0;
  for (int i = 0; i < n; i++) {
    char p[2400];
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    size_t len;
    unsigned char *b = i < 4 ? replay_slurp(p, &len) : NULL;
    if (b) {
      size_t step = len > 400 ? len / 200 : 1;
      for (size_t k = 0; k < len; k += step) { LLVMFuzzerTestOneInput(b, k); runs++; }
    }
    free(b);
    free(names[i]);
  }
  CHECK(n == 0 || runs > 0);
  printf("#   %d truncated inputs\n", runs);
}

static int fuzz_replay_main(const char *target, int min_inputs) {
  const char *r = getenv("LACOS_ROOT");
  snprintf(replay_root, sizeof replay_root, "%s", r ? r : ".");
  replay_target = target;
  replay_min_inputs = min_inputs;
  LLVMFuzzerInitialize(NULL, NULL);
  RUN(corpus_replays_cleanly);
  RUN(truncations_fail_cleanly);
  fuzz_remove_dir();
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", replay_corpus);
  if (system(cmd) != 0) printf("# could not remove %s\n", replay_corpus);
  TEST_EXIT();
}
#endif
