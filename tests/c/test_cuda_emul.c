/* test_cuda_emul.c: the CUDA path of the engine without a GPU. The CUDA
   backend table (engine/backend.h) is replaced by a host emulation
   (cuda_emul.h: host memory in a registry, each op the CPU table's, the
   optimizer step the CUDA kernel's own arithmetic), and the parity tests of
   cuda_parity.h run the one block forward and backward, the LoRA and
   optimizer device paths and the tensor transfers against the CPU engine. Because the same
   functions compute on both sides, every result must agree bit for bit, and
   no kernel may receive a host pointer. The kernels themselves are compared
   on a GPU by test_cuda_ops.c. */
#include "test.h"
#include "cuda_emul.h"

static const double LIM_MODEL = 0, LIM_STEP = 0;
#define PARITY_CFG_HIDDEN 24
#define PARITY_CFG_HEADS 3
#include "cuda_parity.h"

/* The emulation's own checks can fail: a host pointer handed to a kernel and
   a download into device memory are caught. */
static void emulation_catches_mixups(void) {
  float host[8] = {0};
  float *dev = dev_alloc(sizeof host, "probe");
  int before = emul_violations;
  CHECK_FAIL(gelu_forward_cuda(dev, host, 8, GELU_TANH), LACOS_EINVAL, "host pointer as argument 2");
  CHECK_FAIL(dev_download(dev, host, sizeof host), LACOS_EINVAL, "download direction");
  CHECK(emul_violations == before + 2);
  emul_violations = before;
  dev_free(dev, sizeof host);
}

static void no_pointer_mixups(void) {
  CHECK(emul_violations == 0);
  if (emul_violations) printf("#   %d device pointer mix-ups during the parity tests\n", emul_violations);
}

int main(void) {
  RUN(emulation_catches_mixups);
#define RUN_ONE(fn) RUN(fn);
  PARITY_TESTS(RUN_ONE)
  RUN(no_pointer_mixups);
  TEST_EXIT();
}
