/* device.h: the engine's interface to its CUDA backend.

   Every build has these functions. With nvcc at build time (LACOS_HAVE_CUDA)
   they live in kernels/ (CUDA); otherwise engine/device_none.c defines each one
   to fail with LACOS_EDEVICE ("this lacos was built without CUDA support"),
   so no caller needs an #ifdef. With CUDA compiled in but no usable device or
   driver, the first call fails with "no CUDA device: <CUDA's reason>".

   Device pointers are plain pointers the host never dereferences. Every
   function returns a status (LACOS_OK, or a fail() naming the CUDA call, its
   file:line and CUDA's error string); kernels are launched on one compute
   stream in order, so a later download sees every earlier launch.

   The layer twins take the arguments of their engine/cpu/layers.h originals
   in the same order, with device buffers, and compute the same function;
   backward twins accumulate (+=) like the originals. Where a twin needs
   device scratch the CPU version allocates itself, it is one extra trailing
   argument, documented at the declaration. */
#ifndef LACOS_DEVICE_H
#define LACOS_DEVICE_H
#ifdef __cplusplus
extern "C" {   /* the engine is C: kernels/ (C++) includes it with C linkage */
#endif
#include "bloom_internal.h"

/* ---- the device (kernels/device.cu) ---- */

/* 1 when a CUDA device can be used; otherwise 0 and the reason in why
   ("this lacos was built without CUDA support (no nvcc at build time)",
   "no CUDA device: <cudaGetDeviceCount's error>"). Never fails. */
int cuda_available(char *why, size_t n);
/* Selects device 0 and creates the compute stream, the cuBLASLt handle and
   its 32 MiB workspace on first use; LACOS_EDEVICE with the reason when
   there is no device. Every other function calls it. */
int cuda_init(void);
/* Name, compute capability, multiprocessors, free and total memory. */
int cuda_device_info(char *name, size_t n, int *cc_major, int *cc_minor, int *sms, double *free_bytes,
                     double *total_bytes);
/* Waits for the compute stream and reports any error from earlier launches. */
int cuda_sync(void);

/* ---- device memory (kernels/memory.cu) ---- */

/* cudaMalloc'd memory counted in memory.c's LACOS_CUDA slot (and refused
   past lacos_memory_set_limit(LACOS_CUDA, ...)). NULL with a last error
   naming `what`, the size and the device's free memory on failure. */
void *dev_alloc(size_t bytes, const char *what);
void dev_free(void *p, size_t bytes);
/* Host ↔ device copies; they return when the host buffer may be reused. */
int dev_upload(void *dst, const void *src, size_t bytes);
int dev_download(void *dst, const void *src, size_t bytes);
int dev_copy(void *dst, const void *src, size_t bytes);   /* device → device */
int dev_zero(void *p, size_t bytes);

/* A bump allocator over one dev_alloc: a model's or a batch's buffers come
   from one pool, 256-byte aligned, freed together. */
typedef struct dev_arena { char *base; size_t bytes, used; } dev_arena;
int dev_arena_init(dev_arena *a, size_t bytes, const char *what);
void *dev_arena_take(dev_arena *a, size_t bytes, const char *what);   /* NULL + last error when full */
void dev_arena_free(dev_arena *a);
/* Bytes an arena needs for these take() sizes (each rounded up to 256). */
static inline size_t dev_arena_round(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

/* ---- layers (kernels/<op>.cu, twins of engine/cpu/<op>.c) ---- */

int layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int64_t N, int C, float eps);
int layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int64_t N, int C);
int gelu_forward_cuda(float *out, const float *inp, int64_t n);
int gelu_backward_cuda(float *dinp, const float *inp, const float *dout, int64_t n);
/* The attention twins multiply through batched GEMMs over heads gathered
   into contiguous blocks; s holds those blocks (and the scores when probs is
   NULL), grown on demand, at most about 256 MiB (kernels/attention.cu), and
   freed with attn_scratch_free_cuda. */
typedef struct attn_scratch { float *buf; size_t bytes; } attn_scratch;
void attn_scratch_free_cuda(attn_scratch *s);
int attention_forward_cuda(float *out, float *probs, const float *qkv, const int32_t *mask, const float *slopes,
                           int B, int T, int C, int NH, attn_scratch *s);
int attention_backward_cuda(float *dqkv, const float *dout, const float *probs, const float *qkv,
                            const int32_t *mask, int B, int T, int C, int NH, attn_scratch *s);
int pooling_forward_cuda(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode);
int pooling_backward_cuda(float *dinp, const float *dout, const int32_t *mask, int B, int T, int C, int mode);
int residual_forward_cuda(float *out, const float *a, const float *b, int64_t n);
int add_inplace_cuda(float *acc, const float *x, int64_t n);
/* ids must be valid (0 <= id < V): the CPU twin reports a bad id, a kernel
   cannot, so callers check the host copy before uploading (a bad id would
   give a zero row). */
int embedding_forward_cuda(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                           const float *row_scale, int V, int C);

/* ---- linears and GEMMs (kernels/linear.cu) ---- */

/* quantize_rows on the device. cols: device buffer of C ints that receives
   the outlier column indices (ascending, as on the CPU); *ncols (host) their
   count. Finding them costs one synchronisation, only when threshold > 0. */
int quantize_rows_cuda(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold, int *cols,
                       int *ncols);
/* The linear's pointers (w or q/scale, bias) are device pointers; the
   scratch buffers grow on the device and go with int8_scratch_free_cuda. */
int linear_forward_cuda(float *out, const float *inp, linear *l, int64_t N, float threshold, int8_scratch *s);
int linear_backward_input_cuda(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                               int8_scratch *s);
void int8_scratch_free_cuda(int8_scratch *s);
/* int32 C (M,N) = A (M,K) · op(B), row-major like linear.c's oneDNN call:
   op(B) = Bᵀ with B (N,K) when trans_b, else B (K,N). cuBLASLt
   (CUBLAS_COMPUTE_32I, plain column-major "TN" layouts) where its int8
   kernels take the shape, an exact int32 kernel otherwise. */
int gemm_s8_cuda(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda, const int8_t *b,
                 int64_t ldb, int32_t *c, int64_t ldc);
/* Row-major f32 products, twins of linear.c's (C = alpha·A·op(B) + beta·C). */
int sgemm_nt_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);
int sgemm_nn_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);
int sgemm_tn_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta);
/* The general form through cuBLASLt: A, B of dtype f32, f16 or bf16 (f32
   accumulation, CUBLAS_COMPUTE_32F, no TF32), C f32; row-major, op = ᵀ when
   the flag is set; lda/ldb/ldc are row strides in elements. */
int gemm_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
              const void *b, int ldb, float beta, float *c, int ldc);
/* The same `batch` times, the i-th product on a + i·stride_a, b + i·stride_b,
   c + i·stride_c (strides in elements). */
int gemm_batched_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
                      int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, float *c, int ldc,
                      int64_t stride_c, int batch);

/* ---- LoRA (kernels/lora.cu, twins of lora.c's layer functions) ---- */

/* sl holds device pointers (A, B, dA, dB); m->lora gives r, scaling, dropout
   and seed, and the dropout masks are the CPU's (the same counter-based
   generator), so both devices drop the same elements. */
int lora_forward_cuda(const lacos_bloom *m, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                      const lora_dropout *drop, float *xd_scratch);
int lora_backward_cuda(const lacos_bloom *m, const lora_slot *sl, float *dx, const float *dy, const float *x,
                       const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd_scratch);

/* ---- optimizers (kernels/optim.cu, the update of engine/optim.c) ---- */

/* One work item: a 256-element block of an 8-bit tensor or up to 4,096
   elements of an f32-state tensor (optim.c's work list), with device
   pointers to its first parameter and gradient element. */
typedef struct optim_item {
  float *p;
  const float *g;
  int64_t state;     /* first element in the code buffers (8-bit) or the f32 moments */
  int64_t block;     /* absmax index (8-bit) */
  int32_t len;
  int32_t eight_bit;
} optim_item;

/* The step's scalars, computed on the host exactly as optim.c computes them. */
typedef struct optim_consts {
  float b1, b2, omb1, omb2, step_size, eps_c2, decay;
  int decay_on;
  float w_b2, w_omb1, w_omb2, w_decay, w_neg_step, w_bc2_sqrt, w_eps;
  int w_decay_on;
} optim_consts;

/* One step over nitems items (a device array). kind: lacos_optim_kind.
   *nonfinite receives the count of non-finite gradient elements. */
int optim_step_cuda(const optim_item *items, int64_t nitems, const optim_consts *k, int kind, uint8_t *codes1,
                    uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m, float *mom_v, double *nonfinite);
/* Σ g² in double per item (device items, host partials[nitems]), for the
   gradient norm; the host adds the partials in order. */
int optim_sumsq_cuda(double *partials, const optim_item *items, int64_t nitems);
int scale_cuda(float *x, int64_t n, float k);

#ifdef __cplusplus
}
#endif
#endif
