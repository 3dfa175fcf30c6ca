/* fuzz_checkpoint.c: libFuzzer target for training checkpoints
   (lacos_checkpoint_open, engine/checkpoint.c: manifest.json, state.json and
   the zstd-compressed safetensors image, opened with safetensors_open_buffer).

   Input: one control byte, then MANIFEST SEP STATE SEP IMAGE.
   - bit 0 clear: the three files are written as given (the manifest's
     checks against truncated or tampered files are fuzzed);
   - bit 0 set: the harness fixes the manifest first, so that the fuzzer gets
     past the hashes: when the manifest parses as an object, its
     files.<name>.bytes and .sha256 (and raw_bytes, unless bit 2 is set) are
     set to the true values of the files written;
   - bit 1 set: IMAGE is an uncompressed safetensors image and the harness
     compresses it with zstd (level 1); clear: it is written as given.
   Invariants: an open that fails explains itself and frees everything; an
   open checkpoint has its state text and tensors that read fully and round
   trip through lacos_checkpoint_save into an identical checkpoint.
   tests/c/test_fuzz_checkpoint.c replays the corpus in `make test`. */
#include "fuzz_common.h"
#include <jansson.h>
#include <zstd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("ckpt");
  return 0;
}

static void fix_manifest(json_t *man, const char *file, const void *data, size_t n, size_t raw, bool keep_raw) {
  json_t *files = json_object_get(man, "files");
  if (!json_is_object(files)) return;
  json_t *f = json_object_get(files, file);
  if (!json_is_object(f)) return;
  char hex[65];
  FUZZ_REQUIRE(lacos_sha256_buffer(data, (double)n, hex) == LACOS_OK);
  json_object_set_new(f, "sha256", json_string(hex));
  json_object_set_new(f, "bytes", json_integer((json_int_t)n));
  if (raw != (size_t)-1 && !keep_raw) json_object_set_new(f, "raw_bytes", json_integer((json_int_t)raw));
}

static void check_open(lacos_checkpoint *ck) {
  const char *state = lacos_checkpoint_state(ck);
  FUZZ_REQUIRE(state != NULL);
  lacos_safetensors *st = lacos_checkpoint_tensors(ck);
  FUZZ_REQUIRE(st != NULL);
  int n = lacos_safetensors_count(st);
  enum { CAP = 64 };
  const char *names[CAP];
  lacos_tensor *ts[CAP];
  int got = 0;
  for (int i = 0; i < n; i++) {
    const char *name = lacos_safetensors_name(st, i);
    lacos_tensor *t = NULL;
    int s = lacos_safetensors_get(&t, st, name);
    if (s) { fuzz_require_error(s); continue; }
    int64_t k = lacos_tensor_numel(t);
    double *v = malloc(sizeof *v * (size_t)(k ? k : 1));
    FUZZ_REQUIRE(v && lacos_tensor_read_f64(t, v, k) == LACOS_OK);
    free(v);
    if (got < CAP && lacos_safetensors_find(st, name) == i) { names[got] = name; ts[got++] = t; }
    else lacos_tensor_free(t);
  }
  /* what could be read saves into a checkpoint that opens to the same */
  char dir[1024];
  fuzz_path(dir, sizeof dir, "out");
  int s = lacos_checkpoint_save(dir, 3, got, names, ts, state);
  if (s) {
    /* the state text must be JSON for a save; the open does not insist */
    fuzz_require_error(s);
    FUZZ_REQUIRE(s == LACOS_EINVAL);
  } else {
    char path[1100];
    snprintf(path, sizeof path, "%s/ckpt-00000003", dir);
    lacos_checkpoint *back = NULL;
    FUZZ_REQUIRE(lacos_checkpoint_open(&back, path) == LACOS_OK);
    FUZZ_REQUIRE(strcmp(lacos_checkpoint_state(back), state) == 0);
    lacos_safetensors *bst = lacos_checkpoint_tensors(back);
    FUZZ_REQUIRE(lacos_safetensors_count(bst) == got);
    for (int i = 0; i < got; i++) {
      lacos_tensor *t = NULL;
      FUZZ_REQUIRE(lacos_safetensors_get(&t, bst, names[i]) == LACOS_OK);
      FUZZ_REQUIRE(t->dtype == ts[i]->dtype && t->ndim == ts[i]->ndim);
      FUZZ_REQUIRE(memcmp(t->data, ts[i]->data, (size_t)lacos_tensor_nbytes(t)) == 0);
      lacos_tensor_free(t);
    }
    lacos_checkpoint_free(back);
  }
  for (int i = 0; i < got; i++) lacos_tensor_free(ts[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_clear();
  fuzz_bytes in = { data, size };
  unsigned ctl = fuzz_byte(&in);
  const uint8_t *parts[3];
  size_t lens[3] = {0, 0, 0};
  int np = fuzz_split(in.p, in.n, parts, lens, 3);
  char dir[1024];
  fuzz_path(dir, sizeof dir, "ckpt-00000001");
  FUZZ_REQUIRE(mkdir(dir, 0700) == 0);

  const void *img = np > 2 ? parts[2] : NULL;
  size_t img_n = np > 2 ? lens[2] : 0, raw = (size_t)-1;
  void *z = NULL;
  if (np > 2 && (ctl & 2)) {
    size_t cap = ZSTD_compressBound(img_n);
    z = malloc(cap ? cap : 1);
    FUZZ_REQUIRE(z != NULL);
    size_t zn = ZSTD_compress(z, cap, img, img_n, 1);
    FUZZ_REQUIRE(!ZSTD_isError(zn));
    raw = img_n;
    img = z;
    img_n = zn;
  }
  if (np > 1) fuzz_put("ckpt-00000001/state.json", parts[1], lens[1]);
  if (np > 2) fuzz_put("ckpt-00000001/tensors.safetensors.zst", img, img_n);
  json_t *man = (ctl & 1) ? json_loadb((const char *)parts[0], lens[0], JSON_REJECT_DUPLICATES, NULL) : NULL;
  if (man && json_is_object(man)) {
    if (np > 1) fix_manifest(man, "state.json", parts[1], lens[1], (size_t)-1, false);
    if (np > 2) fix_manifest(man, "tensors.safetensors.zst", img, img_n, raw, (ctl & 4) != 0);
    char *text = json_dumps(man, JSON_SORT_KEYS);
    FUZZ_REQUIRE(text != NULL);
    fuzz_put("ckpt-00000001/manifest.json", (const uint8_t *)text, strlen(text));
    free(text);
  } else {
    fuzz_put("ckpt-00000001/manifest.json", parts[0], lens[0]);
  }
  json_decref(man);
  free(z);

  double before = lacos_memory_allocated(LACOS_CPU), mapped = lacos_memory_mapped();
  lacos_checkpoint *ck = (lacos_checkpoint *)1;
  int s = lacos_checkpoint_open(&ck, dir);
  if (s) {
    fuzz_require_error(s);
    FUZZ_REQUIRE(ck == NULL);
  } else {
    FUZZ_TRACE("  checkpoint opened, %d tensors\n", lacos_safetensors_count(lacos_checkpoint_tensors(ck)));
    check_open(ck);
    lacos_checkpoint_free(ck);
  }
  FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before && lacos_memory_mapped() == mapped);
  /* the directory helpers on what is there now */
  char found[1100];
  int step = -1;
  if (lacos_checkpoint_find(fuzz_dir, 0, found, sizeof found, &step) == LACOS_OK) FUZZ_REQUIRE(step >= 0);
  return 0;
}
