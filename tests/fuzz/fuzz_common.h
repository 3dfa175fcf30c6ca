/* fuzz_common.h: what the libFuzzer targets of tests/fuzz share.

   A target turns its input into one or more files in a private scratch
   directory (under /dev/shm when writable, so the file system is not the
   bottleneck) and calls a loader on them. Inputs that stand for several
   files are packed as  PART0 SEP PART1 SEP PART2 ...  with SEP the 9 bytes
   "\n\0SHARD\0\n" (the separator fuzz_safetensors.c introduced; seed.sh packs
   fixture directories so). Several targets also take a few leading control
   bytes that pick options, so that one corpus reaches every branch.

   FUZZ_REQUIRE states an invariant of the loader's contract (an error
   return must come with a message, a success must give consistent
   results); a violation aborts, which libFuzzer reports as a finding and
   the replay tests (tests/c/test_fuzz_*.c) as a failure. */
#ifndef LACOS_FUZZ_COMMON_H
#define LACOS_FUZZ_COMMON_H
#include "engine.h"
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#define FUZZ_REQUIRE(cond) do { if (!(cond)) { \
  fprintf(stderr, "fuzz invariant failed: %s (%s:%d); last error: %s\n", #cond, __FILE__, __LINE__, lacos_last_error()); \
  abort(); } } while (0)

/* FUZZ_TRACE=1 in the environment prints each input's outcome (to check
   that seeds reach the paths they were made for). */
static int fuzz_trace_on = -1;
#define FUZZ_TRACE(...) do { if (fuzz_trace_on < 0) fuzz_trace_on = getenv("FUZZ_TRACE") != NULL; \
  if (fuzz_trace_on) fprintf(stderr, __VA_ARGS__); } while (0)

static const char FUZZ_SEP[] = "\n\0SHARD\0\n";
enum { FUZZ_SEPLEN = sizeof FUZZ_SEP - 1, FUZZ_MAX_PARTS = 8 };

static char fuzz_dir[512];

UNUSED static void fuzz_clear_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *de;
  char p[1024];
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    if (unlink(p) != 0) { fuzz_clear_dir(p); rmdir(p); }
  }
  closedir(d);
}
UNUSED static void fuzz_clear(void) { fuzz_clear_dir(fuzz_dir); }

/* Creates the scratch directory (once per process). */
UNUSED static void fuzz_make_dir(const char *tag) {
  if (fuzz_dir[0]) return;
  const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  snprintf(fuzz_dir, sizeof fuzz_dir, "%s/lacos-fuzz-%s.XXXXXX", base, tag);
  if (!mkdtemp(fuzz_dir)) { perror("mkdtemp"); abort(); }
}

UNUSED static void fuzz_remove_dir(void) {
  if (!fuzz_dir[0]) return;
  fuzz_clear();
  rmdir(fuzz_dir);
  fuzz_dir[0] = 0;
}

/* path of a file in the scratch directory */
UNUSED static const char *fuzz_path(char *buf, size_t cap, const char *name) {
  snprintf(buf, cap, "%s/%s", fuzz_dir, name);
  return buf;
}

UNUSED static void fuzz_put(const char *name, const uint8_t *d, size_t n) {
  char p[1024];
  FILE *f = fopen(fuzz_path(p, sizeof p, name), "wb");
  if (!f) { perror(p); abort(); }
  if (n && fwrite(d, 1, n, f) != n) abort();
  fclose(f);
}

UNUSED static const uint8_t *fuzz_find_sep(const uint8_t *d, size_t n) {
  for (size_t i = 0; i + FUZZ_SEPLEN <= n; i++)
    if (d[i] == '\n' && memcmp(d + i, FUZZ_SEP, FUZZ_SEPLEN) == 0) return d + i;
  return NULL;
}

/* Splits data at SEP into at most max parts (the last one keeps any further
   separators). Returns the number of parts (at least 1). */
UNUSED static int fuzz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *lens, int max) {
  int np = 0;
  const uint8_t *at = data, *end = data + size;
  while (np < max) {
    const uint8_t *s = np + 1 < max ? fuzz_find_sep(at, (size_t)(end - at)) : NULL;
    parts[np] = at;
    lens[np++] = s ? (size_t)(s - at) : (size_t)(end - at);
    if (!s) break;
    at = s + FUZZ_SEPLEN;
  }
  return np;
}

/* A failed call must explain itself. */
UNUSED static void fuzz_require_error(int status) {
  FUZZ_TRACE("  error %d: %s\n", status, lacos_last_error());
  FUZZ_REQUIRE(status > 0 && status <= LACOS_ESTATE);
  FUZZ_REQUIRE(lacos_last_error()[0] != 0);
  FUZZ_REQUIRE(lacos_last_status() == status);
}

/* Takes control bytes from the front of the input (zeros once it runs out). */
typedef struct fuzz_bytes { const uint8_t *p; size_t n; } fuzz_bytes;
UNUSED static unsigned fuzz_byte(fuzz_bytes *b) {
  if (!b->n) return 0;
  b->n--;
  return *b->p++;
}

#endif
