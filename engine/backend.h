/* backend.h: what a device implements for the engine, as one table of
   function pointers (ggml's backend interface, reduced to what lacos runs).

   Three tables exist: the CPU (engine/cpu/backend_cpu.c, wrapping the
   reference layers of engine/cpu/), CUDA (kernels/backend.cu, the twins of
   those layers) and, in the tests, a host emulation of a device
   (tests/c/cuda_emul.h). The model machinery (model.c, bloom.c), LoRA, the
   optimizer and device tensors call only this table, so every pass is
   written once for every device.

   Rules every entry follows:
   - a fallible entry returns a status (LACOS_OK, or fail() with a message
     naming the device call and its reason); nothing aborts;
   - pointers are in the backend's memory (host memory for the CPU); the
     table's upload and download cross between host and device;
   - work is ordered: entries run in call order on one stream, so a later
     download sees every earlier result; sync() reports errors of work
     still in flight;
   - layers never allocate: an entry that needs scratch takes a `scratch`
     the caller sized with the matching *_scratch query;
   - backward entries ACCUMULATE (+=) into their gradient outputs, and a
     NULL gradient output means "not needed";
   - shapes as in engine/cpu/layers.h: B batch, T tokens, C channels, NH
     heads, N = B·T rows. */
#ifndef LACOS_BACKEND_H
#define LACOS_BACKEND_H
#ifdef __cplusplus
extern "C" {   /* the engine is C: kernels/ (C++) includes it with C linkage */
#endif
#include "engine.h"
#include "ops.h"
#include "math/gelu.h"

/* Operations a backend may lack (the `supports` query). */
enum backend_op { OP_GEMM = 0, OP_EMBEDDING = 1, OP_POOLING = 2, OP_ATTENTION = 3 };

typedef struct backend {
  const char *name;          /* "cpu", "cuda", ... */
  int device;                /* lacos_device */
  bool host_memory;          /* buffers are host memory: a model needs no second copy */

  /* ---- the device ---- */
  /* 1 when usable; otherwise 0 and the reason in why. Never fails. */
  int (*available)(char *why, size_t n);
  int (*info)(char *name, size_t n, int *cc_major, int *cc_minor, int *sms, double *free_bytes, double *total_bytes);
  int (*sync)(void);
  /* Which of the backend's devices this process uses: each rank of a job on
     a host takes its own before the first use (LACOS_ESTATE after it).
     device_count is 0 when there is none. */
  int (*device_count)(void);
  int (*select)(int index);
  int (*selected)(void);
  /* The native compute stream (a cudaStream_t; NULL on the CPU), for a
     library that queues work on it (NCCL), and whether that work is done:
     1 done, 0 still running, -status on an error (recorded). */
  void *(*stream)(void);
  int (*poll)(void);
  /* Can this backend run op on data of dtype (OP_GEMM, OP_EMBEDDING), or on
     rows of `size` tokens (OP_POOLING, OP_ATTENTION)? */
  bool (*supports)(int op, int64_t size);

  /* ---- memory (counted per device; refused past lacos_memory_set_limit) ---- */
  int (*alloc)(void **p, size_t bytes, const char *what);
  void (*free)(void *p, size_t bytes);
  int (*zero)(void *p, size_t bytes);
  int (*copy)(void *dst, const void *src, size_t bytes);       /* within the device */
  int (*upload)(void *dst, const void *src, size_t bytes);     /* host → device; src reusable on return */
  int (*download)(void *dst, const void *src, size_t bytes);   /* device → host */

  /* ---- layers ---- */
  // out (N,C), mean, rstd (N) or NULL, inp (N,C), weight, bias (C); out may be inp
  int (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int64_t N, int C, float eps);
  int (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int64_t N, int C);
  // kind GELU_TANH (BLOOM) or GELU_ERF (BERT), math/gelu.h
  int (*gelu_forward)(float *out, const float *inp, int64_t n, int kind);
  int (*gelu_backward)(float *dinp, const float *inp, const float *dout, int64_t n, int kind);
  // out (B,T,C), probs (B,NH,T,T) or NULL, qkv (B,T,3C) in [Q|K|V] blocks, mask (B,T), slopes (NH) or NULL
  // (no position bias); causal: BLOOM's decoder mask, else every real key is seen (BERT)
  int (*attention_forward)(float *out, float *probs, const float *qkv, const int32_t *mask, const float *slopes,
                           bool causal, int B, int T, int C, int NH, scratch ws);
  int (*attention_backward)(float *dqkv, const float *dout, const float *probs, const float *qkv,
                            const int32_t *mask, bool causal, int B, int T, int C, int NH, scratch ws);
  size_t (*attention_scratch)(int B, int T, int C, int NH, bool probs, bool backward);
  // out (B,C), inp (B,T,C), mask (B,T), mode POOL_*; the backward reads inp for POOL_MAX only; the first
  // skip real tokens of each row are attended to but not pooled (math/pooling_weights.h)
  int (*pooling_forward)(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode, int skip);
  int (*pooling_backward)(float *dinp, const float *dout, const float *inp, const int32_t *mask, int B, int T, int C,
                          int mode, int skip);
  int (*residual_forward)(float *out, const float *a, const float *b, int64_t n);
  int (*add_inplace)(float *acc, const float *x, int64_t n);
  // out (N,C) = rows ids of a (V,C) table of dtype f32/f16/bf16, or int8 with row scales; ids valid
  int (*embedding_forward)(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                           const float *row_scale, int V, int C);

  /* ---- linear products ---- */
  /* LLM.int8 row quantisation (engine/cpu/linear.c); cols: C ints in device
     memory for the outlier columns, *ncols (host) their count. */
  int (*quantize_rows)(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold, int *cols,
                       int *ncols, scratch ws);
  /* out (N,out) = inp (N,in)·Wᵀ + b; records l->outliers. */
  int (*linear_forward)(float *out, const float *inp, linear *l, int64_t N, float threshold, scratch ws);
  /* linear_forward with an epilogue on its rows (linear_epilogue, ops.h):
     the same bits as linear_forward then gelu_forward and add_inplace, and
     linear_forward's scratch. Optional (NULL: the pass makes those calls):
     the CPU applies the epilogue to each row of the int8 products while it
     is in cache, in the parallel region of the product. */
  int (*linear_forward_fused)(float *out, const float *inp, linear *l, int64_t N, float threshold,
                              const linear_epilogue *ep, scratch ws);
  /* dinp (N,in) += dout (N,out)·W: exact f32, or (fast_int8, int8 weights)
     int8 products with per-row quantised gradients. */
  int (*linear_backward_input)(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                               scratch ws);
  /* Bytes of scratch for linear_forward on N rows of this linear (with
     outlier columns when `outliers`), and for the input gradient too when
     `backward` (in its fast_int8 form or not). */
  size_t (*linear_scratch)(int64_t N, int in, int out, int kind, bool outliers, bool backward, bool fast_int8);
  /* Once a model's weights are final (loaded, read from the int8 cache or
     generated): rewrites an int8 linear's codes in place into the layout
     this backend's products read fastest, with what they need beside it
     (l->packed, l->packed_bytes). A no-op for f32 weights and where the
     backend has no such layout; NULL entries mean the backend always reads
     the plain codes. linear_release frees what linear_prepare added (the
     codes stay packed). */
  int (*linear_prepare)(linear *l);
  void (*linear_release)(linear *l);
  /* int32 c (M,N) = a (M,K)·op(b), row-major, op(b) = bᵀ (b (N,K)) when trans_b, else b (K,N). */
  int (*gemm_s8)(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda, const int8_t *b,
                 int64_t ldb, int32_t *c, int64_t ldc, scratch ws);
  size_t (*gemm_s8_scratch)(int64_t M, int64_t N, int64_t K);
  /* Row-major c (M,N) = alpha·op(a)·op(b) + beta·c with a, b of dtype (f32;
     f16, bf16 where supports(OP_GEMM, dtype)), f32 accumulation, c f32;
     lda/ldb/ldc are row strides. The batched form repeats it `batch` times
     with element strides between the matrices. */
  int (*gemm)(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
              const void *b, int ldb, float beta, float *c, int ldc);
  int (*gemm_batched)(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
                      int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, float *c, int ldc,
                      int64_t stride_c, int batch);

  /* ---- LoRA (engine/cpu/lora.c, kernels/lora.cu) ---- */
  /* y (N,out) += s·drop(x)·Aᵀ·Bᵀ; h (N,r) receives drop(x)·Aᵀ; drop NULL or
     drop->call 0: no dropout; xd holds N·in floats when it drops. */
  int (*lora_forward)(const lora_hyper *hp, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                      const lora_dropout *drop, float *xd);
  /* dx (N,in) += (dx may be NULL), dA, dB +=; h from the forward; dh scratch (N,r). */
  int (*lora_backward)(const lora_hyper *hp, const lora_slot *sl, float *dx, const float *dy, const float *x,
                       const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd);

  /* ---- optimizers and reductions (engine/cpu/optim.c, kernels/optim.cu) ---- */
  /* One step over the work items (an array in the backend's memory). kind:
     lacos_optim_kind. *nonfinite (host) counts non-finite gradient elements. */
  int (*optim_step)(const optim_item *items, int64_t nitems, const optim_consts *k, int kind, uint8_t *codes1,
                    uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m, float *mom_v, scratch ws,
                    double *nonfinite);
  /* partials[i] (host) = Σ g² of item i, in double. */
  int (*optim_sumsq)(double *partials, const optim_item *items, int64_t nitems, scratch ws);
  size_t (*optim_scratch)(int64_t nitems);
  int (*scale)(float *x, int64_t n, float k);
} backend;

/* ---- the registry (backend.c) ---- */

/* The backend of a device: the CPU's, or CUDA's when one is compiled in and
   usable; otherwise LACOS_EDEVICE, "device cuda requested, but <why>". */
int backend_get(const backend **out, int device);
/* The table serving device whether or not a device answers (NULL: none
   compiled in), for questions that must not fail: how many GPUs. */
const backend *backend_table(int device);
/* 1 when device can be used, else 0 and why. */
int backend_available(int device, char *why, size_t n);
/* Tests: serve `device` with another table (the host emulation); NULL restores. */
void backend_install(int device, const backend *be);
/* The CPU table, always there. */
const backend *backend_cpu(void);
#ifdef LACOS_HAVE_CUDA
const backend *backend_cuda(void);
#endif

/* ---- workspaces: backend memory reused across calls (backend.c) ---- */

typedef struct workspace { void *p; size_t bytes; } workspace;
/* At least `bytes`, in the backend's memory (contents are not kept when it grows). */
int workspace_reserve(const backend *be, workspace *w, size_t bytes, const char *what);
void workspace_free(const backend *be, workspace *w);

/* A bump allocator over a region (any memory: it never dereferences),
   handing out pieces aligned to 256 bytes. */
typedef struct arena { char *p; size_t bytes, used; } arena;
static inline size_t arena_round(size_t bytes) { return (bytes + 255) & ~(size_t)255; }
static inline arena arena_over(workspace w) { return (arena){ (char *)w.p, w.bytes, 0 }; }
int arena_take(arena *a, void *out, size_t bytes, const char *what);

/* Row-major f32 products through a backend (linear.c's classic names). */
static inline int be_sgemm_nt(const backend *be, float *c, const float *a, const float *b, int M, int N, int K,
                              float alpha, float beta) {
  return be->gemm(LACOS_F32, false, true, M, N, K, alpha, a, K, b, K, beta, c, N);
}
static inline int be_sgemm_nn(const backend *be, float *c, const float *a, const float *b, int M, int N, int K,
                              float alpha, float beta) {
  return be->gemm(LACOS_F32, false, false, M, N, K, alpha, a, K, b, N, beta, c, N);
}
static inline int be_sgemm_tn(const backend *be, float *c, const float *a, const float *b, int M, int N, int K,
                              float alpha, float beta) {
  return be->gemm(LACOS_F32, true, false, M, N, K, alpha, a, M, b, N, beta, c, N);   /* A (K,M)ᵀ · B (K,N) */
}
#ifdef __cplusplus
}
#endif
#endif
