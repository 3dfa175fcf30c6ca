/* cuda_emul.h: a third backend table (engine/backend.h), a host emulation
   of a device, installed as the CUDA backend of the including test before
   main runs (tests/c/test_cuda_emul.c; `make check-cuda-harness` includes
   it into test_cuda_ops.c too). "Device" memory is host memory from a
   registry of allocations (counted in the LACOS_CUDA slot like the real
   one, with its own copies and transfers), and each op is the CPU table's —
   except the optimizer step, which runs math/optim_math.h's search-based
   code selection, the CUDA kernel's own.

   What this checks: everything around the ops — the one block forward and
   backward, the LoRA and optimizer device paths, tensor transfers, the
   scratch sizes callers reserve — computes exactly what the CPU engine
   computes on a backend whose memory is not the host's, and never hands an
   op a host pointer or a copy the wrong direction (each call checks its
   pointers against the registry). What it cannot check: the kernels
   themselves and cuBLASLt; tests/c/test_cuda_ops.c compares those on a GPU. */
#include "../../engine/backend.h"
#include "../../engine/cpu/layers.h"
#include "../../engine/math/optim_math.h"

/* ---- the registry of device allocations ---- */

enum { EMUL_MAX = 4096 };
static struct { char *p; size_t n; } emul_blocks[EMUL_MAX];
static int emul_count;
static int emul_violations;   /* pointer mix-ups seen (each also fails the call) */

static bool emul_is_dev(const void *p) {
  const char *c = p;
  for (int i = 0; i < emul_count; i++)
    if (c >= emul_blocks[i].p && c < emul_blocks[i].p + emul_blocks[i].n) return true;
  return false;
}

/* Every non-NULL pointer must lie in device memory. */
static int emul_dev_args(const char *fn, const void *const *ptrs, int n) {
  for (int i = 0; i < n; i++)
    if (ptrs[i] && !emul_is_dev(ptrs[i])) {
      emul_violations++;
      return fail(LACOS_EINVAL, "emulated device: %s got a host pointer as argument %d", fn, i + 1);
    }
  return LACOS_OK;
}
#define DEV_ARGS(...) TRY(emul_dev_args(__func__, (const void *const[]){__VA_ARGS__}, \
                                        (int)(sizeof((const void *const[]){__VA_ARGS__}) / sizeof(void *))))

static int cuda_available(char *why, size_t n) { if (why && n) why[0] = 0; return 1; }
static int cuda_device_count(void) { return 1; }
static int cuda_select_device(int index) {
  return index == 0 ? LACOS_OK : fail(LACOS_EDEVICE, "there is no CUDA device %d", index);
}
static int cuda_selected_device(void) { return 0; }
static void *cuda_stream_handle(void) { return NULL; }
static int cuda_stream_poll(void) { return 1; }
static int cuda_device_info(char *name, size_t n, int *cc_major, int *cc_minor, int *sms, double *free_bytes,
                            double *total_bytes) {
  if (name) snprintf(name, n, "emulated device");
  if (cc_major) *cc_major = 9;
  if (cc_minor) *cc_minor = 0;
  if (sms) *sms = 1;
  if (free_bytes) *free_bytes = 64.0 * 1073741824.0 - lacos_memory_allocated(LACOS_CUDA);
  if (total_bytes) *total_bytes = 64.0 * 1073741824.0;
  return LACOS_OK;
}
static int cuda_sync(void) { return LACOS_OK; }
static bool emul_supports(int op, int64_t size) { return backend_cpu()->supports(op, size); }

static void *dev_alloc(size_t bytes, const char *what) {
  if (bytes == 0) bytes = 256;
  if (emul_count == EMUL_MAX) { fail(LACOS_ENOMEM, "%s: emulated device registry full", what); return NULL; }
  if (mem_charge(LACOS_CUDA, bytes, what)) return NULL;
  char *p = aligned_alloc(256, (bytes + 255) & ~(size_t)255);
  if (!p) { mem_uncharge(LACOS_CUDA, bytes); fail(LACOS_ENOMEM, "%s: out of memory", what); return NULL; }
  memset(p, 0xA5, bytes);   /* garbage, as cudaMalloc gives: reads before writes show */
  emul_blocks[emul_count].p = p;
  emul_blocks[emul_count].n = bytes;
  emul_count++;
  return p;
}
static int emul_alloc(void **p, size_t bytes, const char *what) {
  *p = dev_alloc(bytes, what);
  return *p ? LACOS_OK : lacos_last_status();
}

static void dev_free(void *p, size_t bytes) {
  if (!p) return;
  if (bytes == 0) bytes = 256;
  for (int i = 0; i < emul_count; i++)
    if (emul_blocks[i].p == p) {
      if (emul_blocks[i].n != bytes) emul_violations++;   /* freed with the wrong size: the count would drift */
      emul_blocks[i] = emul_blocks[--emul_count];
      free(p);
      mem_uncharge(LACOS_CUDA, bytes);
      return;
    }
  emul_violations++;   /* not a device allocation */
}

static int dev_upload(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  if (!emul_is_dev(dst) || emul_is_dev(src)) { emul_violations++; return fail(LACOS_EINVAL, "emulated device: upload direction"); }
  memcpy(dst, src, bytes);
  return LACOS_OK;
}
static int dev_download(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  if (emul_is_dev(dst) || !emul_is_dev(src)) { emul_violations++; return fail(LACOS_EINVAL, "emulated device: download direction"); }
  memcpy(dst, src, bytes);
  return LACOS_OK;
}
static int dev_copy(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  DEV_ARGS(dst, src);
  memmove(dst, src, bytes);
  return LACOS_OK;
}
static int dev_zero(void *p, size_t bytes) {
  if (!bytes) return LACOS_OK;
  DEV_ARGS(p);
  memset(p, 0, bytes);
  return LACOS_OK;
}

/* ---- layers: the CPU's, on device pointers ---- */

static int layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                  const float *bias, int64_t N, int C, float eps) {
  DEV_ARGS(out, mean, rstd, inp, weight, bias);
  return layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps);
}
static int layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                                   const float *weight, const float *mean, const float *rstd, int64_t N, int C) {
  DEV_ARGS(dinp, dweight, dbias, dout, inp, weight, mean, rstd);
  return layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N, C);
}
static int gelu_forward_cuda(float *out, const float *inp, int64_t n, int kind) {
  DEV_ARGS(out, inp);
  return gelu_forward(out, inp, n, kind);
}
static int gelu_backward_cuda(float *dinp, const float *inp, const float *dout, int64_t n, int kind) {
  DEV_ARGS(dinp, inp, dout);
  return gelu_backward(dinp, inp, dout, n, kind);
}
static int attention_forward_cuda(float *out, float *probs, const float *qkv, const int32_t *mask, const float *slopes,
                                  bool causal, int B, int T, int C, int NH, scratch ws) {
  DEV_ARGS(out, probs, qkv, mask, slopes, ws.p);
  return attention_forward(out, probs, qkv, mask, slopes, causal, B, T, C, NH, ws);
}
static int attention_backward_cuda(float *dqkv, const float *dout, const float *probs, const float *qkv,
                                   const int32_t *mask, bool causal, int B, int T, int C, int NH, scratch ws) {
  DEV_ARGS(dqkv, dout, probs, qkv, mask, ws.p);
  return attention_backward(dqkv, dout, probs, qkv, mask, causal, B, T, C, NH, ws);
}
static int pooling_forward_cuda(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode,
                                int skip) {
  DEV_ARGS(out, inp, mask);
  return pooling_forward(out, inp, mask, B, T, C, mode, skip);
}
static int pooling_backward_cuda(float *dinp, const float *dout, const float *inp, const int32_t *mask, int B, int T,
                                 int C, int mode, int skip) {
  DEV_ARGS(dinp, dout, inp, mask);
  return pooling_backward(dinp, dout, inp, mask, B, T, C, mode, skip);
}
static int residual_forward_cuda(float *out, const float *a, const float *b, int64_t n) {
  DEV_ARGS(out, a, b);
  return residual_forward(out, a, b, n);
}
static int add_inplace_cuda(float *acc, const float *x, int64_t n) { DEV_ARGS(acc, x); return add_inplace(acc, x, n); }
static int embedding_forward_cuda(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                                  const float *row_scale, int V, int C) {
  DEV_ARGS(out, ids, table, row_scale);
  return embedding_forward(out, ids, N, table, dtype, row_scale, V, C);
}
static int quantize_rows_cuda(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold, int *cols,
                              int *ncols, scratch ws) {
  DEV_ARGS(q, absmax, x, cols, ws.p);
  return quantize_rows(q, absmax, x, N, C, threshold, cols, ncols, ws);
}
static int linear_forward_cuda(float *out, const float *inp, linear *l, int64_t N, float threshold, scratch ws) {
  DEV_ARGS(out, inp, l->w, l->q, l->scale, l->bias, ws.p);
  return linear_forward(out, inp, l, N, threshold, ws);
}
static int linear_backward_input_cuda(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                                      scratch ws) {
  DEV_ARGS(dinp, dout, l->w, l->q, l->scale, ws.p);
  return linear_backward_input(dinp, dout, l, N, fast_int8, ws);
}
static int gemm_s8_cuda(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda, const int8_t *b,
                        int64_t ldb, int32_t *c, int64_t ldc, scratch ws) {
  DEV_ARGS(a, b, c);
  (void)ws;
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      int32_t acc = 0;
      for (int64_t k = 0; k < K; k++) acc += a[i * lda + k] * (trans_b ? b[j * ldb + k] : b[k * ldb + j]);
      c[i * ldc + j] = acc;
    }
  return LACOS_OK;
}
static size_t gemm_s8_scratch_emul(int64_t M, int64_t N, int64_t K) { (void)M; (void)N; (void)K; return 0; }
static int gemm_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
                     const void *b, int ldb, float beta, float *c, int ldc) {
  DEV_ARGS(a, b, c);
  if (dtype != LACOS_F32 && dtype != LACOS_F16 && dtype != LACOS_BF16)
    return fail(LACOS_EUNSUPPORTED, "GEMM inputs must be f32, f16 or bf16, got %s", lacos_dtype_name(dtype));
  /* f16/bf16 operands widen exactly to f32 first (f32 accumulation, as cuBLASLt's) */
  int64_t na = (int64_t)(trans_a ? K : M) * lda, nb = (int64_t)(trans_b ? N : K) * ldb;
  float *fa = (float *)a, *fb = (float *)b;
  if (dtype != LACOS_F32) {
    fa = malloc(sizeof(float) * (size_t)(na ? na : 1));
    fb = malloc(sizeof(float) * (size_t)(nb ? nb : 1));
    dtype_convert(fa, LACOS_F32, a, dtype, na);
    dtype_convert(fb, LACOS_F32, b, dtype, nb);
  }
  int s = gemm(LACOS_F32, trans_a, trans_b, M, N, K, alpha, fa, lda, fb, ldb, beta, c, ldc);
  if (dtype != LACOS_F32) { free(fa); free(fb); }
  return s;
}
static int gemm_batched_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a,
                             int lda, int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, float *c,
                             int ldc, int64_t stride_c, int batch) {
  size_t esz = dtype == LACOS_F32 ? 4 : 2;
  for (int i = 0; i < batch; i++)
    TRY(gemm_cuda(dtype, trans_a, trans_b, M, N, K, alpha, (const char *)a + i * stride_a * esz, lda,
                  (const char *)b + i * stride_b * esz, ldb, beta, c + i * stride_c, ldc));
  return LACOS_OK;
}
static int lora_forward_cuda(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                             const lora_dropout *drop, float *xd) {
  if (drop && drop->call) DEV_ARGS(drop->row_key, drop->row_start);
  DEV_ARGS(sl->A, sl->B, y, x, h, xd);
  return lora_forward(hp, sl, y, x, h, N, drop, xd);
}
static int lora_backward_cuda(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy, const float *x,
                              const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd) {
  if (drop && drop->call) DEV_ARGS(drop->row_key, drop->row_start);
  DEV_ARGS(sl->A, sl->B, sl->dA, sl->dB, dx, dy, x, h, dh, xd);
  return lora_backward(hp, sl, dx, dy, x, h, dh, N, drop, xd);
}

/* ---- the optimizer: the kernel's arithmetic (optim_math.h with the code
   search), one item at a time, the block absmax as a plain max ---- */

static int optim_step_cuda(const optim_item *items, int64_t nitems, const optim_consts *k, int kind, uint8_t *codes1,
                           uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m, float *mom_v, scratch ws,
                           double *nonfinite) {
  DEV_ARGS(items, codes1, codes2, absmax1, absmax2, mom_m, mom_v, ws.p);
  const float *map1 = optim_map_signed, *map2 = optim_map_unsigned;
  float mid1[256], mid2[256];
  for (int i = 0; i < 255; i++) { mid1[i] = (map1[i] + map1[i + 1]) * 0.5f; mid2[i] = (map2[i] + map2[i + 1]) * 0.5f; }
  mid1[255] = mid2[255] = INFINITY;
  double bad = 0;
  for (int64_t w = 0; w < nitems; w++) {
    optim_item it = items[w];
    DEV_ARGS(it.p, it.g);
    if (it.eight_bit) {
      float m[256], v[256], nm1 = 0, nm2 = 0;
      int fin[256];
      for (int j = 0; j < it.len; j++) {
        int64_t e = it.state + j;
        fin[j] = optim_adam8_moments(k, it.g[j], map1[codes1[e]], map2[codes2[e]], absmax1[it.block], absmax2[it.block],
                                     &m[j], &v[j]);
        bad += !fin[j];
      }
      for (int j = 0; j < it.len; j++) {
        float a1 = fabsf(m[j]), a2 = fabsf(v[j]);
        nm1 = a1 > nm1 ? a1 : nm1;
        nm2 = a2 > nm2 ? a2 : nm2;
      }
      absmax1[it.block] = nm1;
      absmax2[it.block] = nm2;
      for (int j = 0; j < it.len; j++) {
        it.p[j] = optim_adam8_param(k, it.p[j], m[j], v[j], fin[j]);
        optim_adam8_codes(map1, mid1, mid2, m[j], v[j], nm1, nm2, &codes1[it.state + j], &codes2[it.state + j]);
      }
    } else {
      for (int j = 0; j < it.len; j++) {
        int64_t e = it.state + j;
        int fin = kind == LACOS_OPTIM_ADAM8BIT ? optim_adam32(k, &it.p[j], it.g[j], &mom_m[e], &mom_v[e])
                                               : optim_adamw(k, &it.p[j], it.g[j], &mom_m[e], &mom_v[e]);
        bad += !fin;
      }
    }
  }
  *nonfinite = bad;
  return LACOS_OK;
}

static int optim_sumsq_cuda(double *partials, const optim_item *items, int64_t nitems, scratch ws) {
  DEV_ARGS(items, ws.p);
  if (emul_is_dev(partials)) { emul_violations++; return fail(LACOS_EINVAL, "emulated device: partials must be host memory"); }
  for (int64_t w = 0; w < nitems; w++) {
    DEV_ARGS(items[w].g);
    double s = 0;
    for (int j = 0; j < items[w].len; j++) s += (double)items[w].g[j] * (double)items[w].g[j];
    partials[w] = s;
  }
  return LACOS_OK;
}

/* As the kernels: a device counter or the device partial sums. */
static size_t optim_scratch_emul(int64_t nitems) {
  size_t partials = sizeof(double) * (size_t)nitems;
  return partials > 8 ? partials : 8;
}

static int scale_cuda(float *x, int64_t n, float k) {
  DEV_ARGS(x);
  for (int64_t i = 0; i < n; i++) x[i] = x[i] * k;
  return LACOS_OK;
}

static const backend emul_table = {
  .name = "emulated cuda",
  .device = LACOS_CUDA,
  .host_memory = false,
  .available = cuda_available,
  .info = cuda_device_info,
  .sync = cuda_sync,
  .device_count = cuda_device_count,
  .select = cuda_select_device,
  .selected = cuda_selected_device,
  .stream = cuda_stream_handle,
  .poll = cuda_stream_poll,
  .supports = emul_supports,
  .alloc = emul_alloc,
  .free = dev_free,
  .zero = dev_zero,
  .copy = dev_copy,
  .upload = dev_upload,
  .download = dev_download,
  .layernorm_forward = layernorm_forward_cuda,
  .layernorm_backward = layernorm_backward_cuda,
  .gelu_forward = gelu_forward_cuda,
  .gelu_backward = gelu_backward_cuda,
  .attention_forward = attention_forward_cuda,
  .attention_backward = attention_backward_cuda,
  .attention_scratch = attention_scratch,
  .pooling_forward = pooling_forward_cuda,
  .pooling_backward = pooling_backward_cuda,
  .residual_forward = residual_forward_cuda,
  .add_inplace = add_inplace_cuda,
  .embedding_forward = embedding_forward_cuda,
  .quantize_rows = quantize_rows_cuda,
  .linear_forward = linear_forward_cuda,
  .linear_backward_input = linear_backward_input_cuda,
  .linear_scratch = linear_scratch,
  .gemm_s8 = gemm_s8_cuda,
  .gemm_s8_scratch = gemm_s8_scratch_emul,
  .gemm = gemm_cuda,
  .gemm_batched = gemm_batched_cuda,
  .lora_forward = lora_forward_cuda,
  .lora_backward = lora_backward_cuda,
  .optim_step = optim_step_cuda,
  .optim_sumsq = optim_sumsq_cuda,
  .optim_scratch = optim_scratch_emul,
  .scale = scale_cuda,
};

/* The including test's device is this table from before main. */
__attribute__((constructor)) static void emul_install(void) { backend_install(LACOS_CUDA, &emul_table); }
