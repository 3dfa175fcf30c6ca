/* test_limits.c: resource limits of the loaders. Files that claim far more
   than they hold, or that are simply enormous, must fail fast with a clear
   error and without the memory they claim: a safetensors header claiming an
   enormous tensor, a .npy header claiming a terabyte, a checkpoint whose
   zstd frame claims a terabyte, a config.json claiming a model far larger
   than the weights beside it, a tokenizer.json with three million merges,
   and a dataset file with a 1 GB line (a sparse file: nothing is written).
   Each case checks the status, the message, the time taken and that the
   process's peak resident memory grew by less than a bound (getrusage). The
   Lua heap limit of the lacos executable is tested in
   tests/lua/test_limits.lua. */
#include "test.h"
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

static char dir[1024];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

static const char *path_of(const char *name) {
  static char p[1200];
  snprintf(p, sizeof p, "%s/%s", dir, name);
  return p;
}

static void put(const char *name, const void *data, size_t n) {
  FILE *f = fopen(path_of(name), "wb");
  CHECK(f != NULL);
  if (!f) return;
  CHECK(fwrite(data, 1, n, f) == n);
  fclose(f);
}

static void put_safetensors(const char *name, const char *header, size_t data_bytes) {
  size_t hl = strlen(header);
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(hl >> (8 * i));
  FILE *f = fopen(path_of(name), "wb");
  CHECK(f != NULL);
  if (!f) return;
  fwrite(len, 1, 8, f);
  fwrite(header, 1, hl, f);
  for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
  fclose(f);
}

/* A bound on what one case may add to the peak RSS: far below every claim. */
enum { BOUND_MIB = 64 };

/* Under valgrind (make check-valgrind) time and resident memory are
   valgrind's: the bounds are checked by the native run. */
static bool under_valgrind(void) { const char *v = getenv("LACOS_UNDER_VALGRIND"); return v && *v && strcmp(v, "0"); }
#define LIMIT_CASE(expr, status, needle, seconds, mib) do { \
  double t0_ = now(), m0_ = peak_mib(); \
  CHECK_FAIL(expr, status, needle); \
  double dt_ = now() - t0_, dm_ = peak_mib() - m0_; \
  printf("#   %s: %.3f s, peak RSS +%.1f MiB%s\n", #expr, dt_, dm_, under_valgrind() ? " (valgrind: not judged)" : ""); \
  if (!under_valgrind()) { CHECK(dt_ < (seconds)); CHECK(dm_ < (mib)); } } while (0)

static void safetensors_enormous_tensor(void) {
  /* 2^40 f32 elements claimed, 16 bytes present */
  put_safetensors("huge.safetensors",
                  "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776],\"data_offsets\":[0,4398046511104]}}", 16);
  lacos_safetensors *st = NULL;
  LIMIT_CASE(lacos_safetensors_open(&st, path_of("huge.safetensors")), LACOS_EFORMAT, "huge.safetensors", 1.0, BOUND_MIB);
  /* a shape whose element count overflows 64 bits */
  put_safetensors("overflow.safetensors",
                  "{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8);
  LIMIT_CASE(lacos_safetensors_open(&st, path_of("overflow.safetensors")), LACOS_EFORMAT, "overflow.safetensors", 1.0,
             BOUND_MIB);
  /* a header length of 2^62 */
  unsigned char hdr[16] = {0, 0, 0, 0, 0, 0, 0, 0x40, '{', '}'};
  put("len.safetensors", hdr, sizeof hdr);
  LIMIT_CASE(lacos_safetensors_open(&st, path_of("len.safetensors")), LACOS_EFORMAT, "header length", 1.0, BOUND_MIB);
}

static void npy_enormous_array(void) {
  const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }";
  char header[128];
  int hl = snprintf(header, sizeof header, "%s", h);
  int pad = (64 - (10 + hl + 1) % 64) % 64;
  memset(header + hl, ' ', (size_t)pad);
  header[hl + pad] = '\n';
  hl += pad + 1;
  unsigned char buf[256] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)hl, 0};
  memcpy(buf + 10, header, (size_t)hl);
  put("huge.npy", buf, 10 + (size_t)hl + 16);
  lacos_tensor *t = NULL;
  LIMIT_CASE(lacos_tensor_load_npy(&t, path_of("huge.npy")), LACOS_EFORMAT, "shorter than its header", 1.0, BOUND_MIB);
}

static void checkpoint_enormous_frame(void) {
  /* a real checkpoint, then its zstd frame header rewritten to claim 1 TB */
  lacos_tensor *a = NULL;
  int64_t shape[1] = {4};
  CHECK_OK(lacos_tensor_full(&a, LACOS_F32, 1, shape, 1.5));
  const char *names[1] = {"a"};
  CHECK_OK(lacos_checkpoint_save(dir, 1, 1, names, &a, "{\"step\": 1}"));
  lacos_tensor_free(a);
  char ck[1200];
  snprintf(ck, sizeof ck, "%s/ckpt-00000001", dir);
  lacos_checkpoint *c = NULL;
  CHECK_OK(lacos_checkpoint_open(&c, ck));
  lacos_checkpoint_free(c);
  /* the manifest records the size and hash: a frame claiming more is refused before anything is allocated */
  char z[1300];
  snprintf(z, sizeof z, "%s/tensors.safetensors.zst", ck);
  unsigned char frame[] = {0x28, 0xb5, 0x2f, 0xfd, 0xe4, 0, 0, 0, 0, 0, 1, 0, 0};   /* 8-byte content size: 2^40 */
  FILE *f = fopen(z, "wb");
  CHECK(f != NULL);
  if (f) { fwrite(frame, 1, sizeof frame, f); fclose(f); }
  LIMIT_CASE(lacos_checkpoint_open(&c, ck), LACOS_EFORMAT, "tensors.safetensors.zst", 1.0, BOUND_MIB);
}

static void config_claims_a_bigger_model(void) {
  /* a tiny model saved, then its config.json swapped for a 7b1-sized one */
  lacos_bloom_config cfg;
  CHECK_OK(lacos_bloom_config_named(&cfg, "tiny-xs"));
  lacos_bloom_options opt;
  lacos_bloom_options_init(&opt);
  opt.quant = LACOS_QUANT_F32;
  opt.cache = 0;
  lacos_bloom *m = NULL;
  CHECK_OK(lacos_bloom_random(&m, &cfg, 1, &opt));
  char md[1200];
  snprintf(md, sizeof md, "%s/model", dir);
  CHECK_OK(lacos_bloom_save(m, md, LACOS_F16, 0));
  lacos_bloom_free(m);
  lacos_bloom_config big;
  CHECK_OK(lacos_bloom_config_named(&big, "bloom-7b1"));
  char cp[1300];
  snprintf(cp, sizeof cp, "%s/config.json", md);
  CHECK_OK(lacos_bloom_config_write(&big, cp));
  LIMIT_CASE(lacos_bloom_load(&m, md, &opt), LACOS_EFORMAT, "config.json implies", 2.0, BOUND_MIB);
  opt.quant = LACOS_QUANT_INT8;
  LIMIT_CASE(lacos_bloom_load(&m, md, &opt), LACOS_EFORMAT, "config.json implies", 2.0, BOUND_MIB);
}

static void tokenizer_with_millions_of_merges(void) {
  /* 3,000,000 merges (the loader allows 2,000,000; BLOOM has 250,000) */
  FILE *f = fopen(path_of("merges.json"), "wb");
  CHECK(f != NULL);
  if (!f) return;
  fputs("{\"version\":\"1.0\",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[", f);
  for (int i = 0; i < 3000000; i++) fputs(i ? ",\"a b\"" : "\"a b\"", f);
  fputs("]}}", f);
  fclose(f);
  lacos_tokenizer *t = NULL;
  /* the whole JSON is parsed before the count is known: bounded by the 256 MB
     file cap, about 6x the file here (40 MB, +250 MiB measured) */
  LIMIT_CASE(lacos_tokenizer_load(&t, path_of("merges.json")), LACOS_ELIMIT, "model.merges has 3000000 entries", 20.0, 512);
  unlink(path_of("merges.json"));
}

/* one good line, then a line of 1 GB (a sparse file: the file system
   stores no data for it, and the reader must not either) */
static void put_1gb_line(const char *name, const char *first) {
  put(name, first, strlen(first));
  int fd = open(path_of(name), O_WRONLY);
  CHECK(fd >= 0);
  if (fd < 0) return;
  CHECK(ftruncate(fd, (off_t)strlen(first) + (1LL << 30)) == 0);
  close(fd);
}

static void dataset_with_a_1gb_line(void) {
  put_1gb_line("big.tsv", "a\tb\t1.0\n");
  put_1gb_line("big.csv", "a,b,1.0\n\"");   /* and a quoted field that runs on */
  lacos_pairset *s = NULL;
  CHECK_OK(lacos_pairset_new(&s));
  lacos_read_spec spec;
  lacos_read_spec_init(&spec);
  spec.col_s1 = 1;
  spec.col_s2 = 2;
  spec.col_score = 3;
  LIMIT_CASE(lacos_pairset_read_tsv(s, path_of("big.tsv"), &spec), LACOS_ELIMIT, "big.tsv:2: line is longer than the limit", 2.0,
             BOUND_MIB);
  CHECK(lacos_pairset_size(s) == 0);
  /* the same with the CSV reader and a record that never ends */
  LIMIT_CASE(lacos_pairset_read_csv(s, path_of("big.csv"), &spec), LACOS_ELIMIT, "big.csv:2:", 2.0, BOUND_MIB);
  CHECK(lacos_pairset_size(s) == 0);
  /* the file-size cap */
  spec.max_file_bytes = 1 << 20;
  LIMIT_CASE(lacos_pairset_read_tsv(s, path_of("big.tsv"), &spec), LACOS_ELIMIT, "max_file_bytes", 1.0, BOUND_MIB);
  lacos_pairset_free(s);
  unlink(path_of("big.tsv"));
  unlink(path_of("big.csv"));
}

int main(void) {
  snprintf(dir, sizeof dir, "%s/limits", test_tmpdir());
  mkdir(dir, 0700);
  setenv("LACOS_CACHE", dir, 1);
  RUN(safetensors_enormous_tensor);
  RUN(npy_enormous_array);
  RUN(checkpoint_enormous_frame);
  RUN(config_claims_a_bigger_model);
  RUN(dataset_with_a_1gb_line);
  RUN(tokenizer_with_millions_of_merges);
  TEST_EXIT();
}
