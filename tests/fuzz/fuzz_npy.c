/* fuzz_npy.c: libFuzzer target for the NumPy .npy reader
   (lacos_tensor_load_npy, engine/npy.c).

   Input: one .npy file. When it loads, the tensor must be contiguous with a
   sane shape, every value readable, and writing it with lacos' writer and
   reading that back must give the same dtype, shape and bytes. A header
   that claims more data than the file holds must fail before allocating
   it. tests/c/test_fuzz_npy.c replays the corpus in `make test`. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_make_dir("npy");
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_clear();
  fuzz_put("x.npy", data, size);
  char path[1024], back[1024];
  fuzz_path(path, sizeof path, "x.npy");
  fuzz_path(back, sizeof back, "back.npy");
  double before = lacos_memory_allocated(LACOS_CPU);
  lacos_tensor *t = (lacos_tensor *)1;
  int s = lacos_tensor_load_npy(&t, path);
  if (s) {
    fuzz_require_error(s);
    FUZZ_REQUIRE(t == NULL && strstr(lacos_last_error(), "x.npy"));
    FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
    return 0;
  }
  FUZZ_TRACE("  loaded %s, %d dims\n", lacos_dtype_name(t->dtype), t->ndim);
  FUZZ_REQUIRE(t && t->ndim >= 0 && t->ndim <= 4 && lacos_tensor_is_contiguous(t));
  double nbytes = lacos_tensor_nbytes(t);
  FUZZ_REQUIRE(nbytes >= 0 && nbytes <= (double)size);   /* the data came from the file */
  int64_t n = lacos_tensor_numel(t);
  double *v = malloc(sizeof *v * (size_t)(n ? n : 1));
  FUZZ_REQUIRE(v && lacos_tensor_read_f64(t, v, n) == LACOS_OK);
  free(v);
  FUZZ_REQUIRE(lacos_tensor_save_npy(t, back) == LACOS_OK);
  lacos_tensor *u = NULL;
  FUZZ_REQUIRE(lacos_tensor_load_npy(&u, back) == LACOS_OK);
  FUZZ_REQUIRE(u->dtype == t->dtype && u->ndim == t->ndim);
  for (int d = 0; d < t->ndim; d++) FUZZ_REQUIRE(u->shape[d] == t->shape[d]);
  FUZZ_REQUIRE(nbytes == 0 || memcmp(u->data, t->data, (size_t)nbytes) == 0);
  lacos_tensor_free(u);
  lacos_tensor_free(t);
  FUZZ_REQUIRE(lacos_memory_allocated(LACOS_CPU) == before);
  return 0;
}
