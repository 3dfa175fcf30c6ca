/* backend_cpu.c: the CPU's backend table (backend.h). Its entries are the
   reference layers of this directory themselves; memory is counted host
   memory, and a transfer is a copy. */
#include "layers.h"
#include "../backend.h"
#include <unistd.h>

static int cpu_available(char *why, size_t n) {
  if (why && n) why[0] = 0;
  return 1;
}

static int cpu_info(char *name, size_t n, int *cc_major, int *cc_minor, int *sms, double *free_bytes,
                    double *total_bytes) {
  if (name && n) snprintf(name, n, "cpu");
  if (cc_major) *cc_major = 0;
  if (cc_minor) *cc_minor = 0;
  if (sms) *sms = threads_count();
  long page = sysconf(_SC_PAGESIZE);
  if (free_bytes) *free_bytes = (double)sysconf(_SC_AVPHYS_PAGES) * (double)page;
  if (total_bytes) *total_bytes = (double)sysconf(_SC_PHYS_PAGES) * (double)page;
  return LACOS_OK;
}

static int cpu_sync(void) { return LACOS_OK; }

/* One device, always done: work finishes before an entry returns. */
static int cpu_device_count(void) { return 1; }
static int cpu_select(int index) {
  return index == 0 ? LACOS_OK : fail(LACOS_EDEVICE, "there is no CPU device %d (the CPU is device 0)", index);
}
static int cpu_selected(void) { return 0; }
static void *cpu_stream(void) { return NULL; }
static int cpu_poll(void) { return 1; }

/* Everything but the f16/bf16 products, which only the model's CUDA path uses. */
static bool cpu_supports(int op, int64_t size) {
  if (op == OP_GEMM) return size == LACOS_F32;
  if (op == OP_EMBEDDING) return size == LACOS_F32 || size == LACOS_F16 || size == LACOS_BF16 || size == LACOS_I8;
  return true;
}

static int cpu_alloc(void **p, size_t bytes, const char *what) { return mem_alloc(p, bytes ? bytes : 1, what); }
static void cpu_free(void *p, size_t bytes) { (void)bytes; mem_free(p); }
static int cpu_zero(void *p, size_t bytes) { if (bytes) memset(p, 0, bytes); return LACOS_OK; }
static int cpu_copy(void *dst, const void *src, size_t bytes) { if (bytes) memmove(dst, src, bytes); return LACOS_OK; }

static const backend cpu_table = {
  .name = "cpu",
  .device = LACOS_CPU,
  .host_memory = true,
  .available = cpu_available,
  .info = cpu_info,
  .sync = cpu_sync,
  .device_count = cpu_device_count,
  .select = cpu_select,
  .selected = cpu_selected,
  .stream = cpu_stream,
  .poll = cpu_poll,
  .supports = cpu_supports,
  .alloc = cpu_alloc,
  .free = cpu_free,
  .zero = cpu_zero,
  .copy = cpu_copy,
  .upload = cpu_copy,
  .download = cpu_copy,
  .layernorm_forward = layernorm_forward,
  .layernorm_backward = layernorm_backward,
  .gelu_forward = gelu_forward,
  .gelu_backward = gelu_backward,
  .attention_forward = attention_forward,
  .attention_backward = attention_backward,
  .attention_scratch = attention_scratch,
  .pooling_forward = pooling_forward,
  .pooling_backward = pooling_backward,
  .residual_forward = residual_forward,
  .add_inplace = add_inplace,
  .embedding_forward = embedding_forward,
  .quantize_rows = quantize_rows,
  .linear_forward = linear_forward,
  .linear_forward_fused = linear_forward_fused,
  .linear_backward_input = linear_backward_input,
  .linear_scratch = linear_scratch,
  .linear_prepare = linear_prepare,
  .linear_release = linear_release,
  .gemm_s8 = gemm_s8,
  .gemm_s8_scratch = gemm_s8_scratch,
  .gemm = gemm,
  .gemm_batched = gemm_batched,
  .lora_forward = lora_forward,
  .lora_backward = lora_backward,
  .optim_step = optim_step,
  .optim_sumsq = optim_sumsq,
  .optim_scratch = optim_scratch,
  .scale = scale_f32,
};

const backend *backend_cpu(void) { return &cpu_table; }
