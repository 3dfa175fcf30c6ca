/* device_none.c: the CUDA backend of a build without nvcc. Every function of
   device.h fails with LACOS_EDEVICE and the same message, so callers need no
   #ifdef and a request for CUDA says why it cannot be met. With
   LACOS_HAVE_CUDA the kernels/ directory defines these instead and this file
   compiles to nothing. */
#include "device.h"
#include "comm.h"

#ifndef LACOS_HAVE_CUDA

static const char NO_CUDA[] = "this lacos was built without CUDA support (no nvcc at build time)";

static int no_cuda(void) { return fail(LACOS_EDEVICE, "%s", NO_CUDA); }

int cuda_available(char *why, size_t n) {
  if (why && n) snprintf(why, n, "%s", NO_CUDA);
  return 0;
}
int cuda_init(void) { return no_cuda(); }
int cuda_device_info(char *name, size_t n, int *cc_major, int *cc_minor, int *sms, double *free_bytes,
                     double *total_bytes) {
  (void)name; (void)n; (void)cc_major; (void)cc_minor; (void)sms; (void)free_bytes; (void)total_bytes;
  return no_cuda();
}
int cuda_sync(void) { return no_cuda(); }
int cuda_device_count(void) { return 0; }
int cuda_select_device(int index) { (void)index; return no_cuda(); }
int cuda_selected_device(void) { return 0; }
void *cuda_stream_handle(void) { return NULL; }
int cuda_stream_poll(void) { return -no_cuda(); }

void *dev_alloc(size_t bytes, const char *what) {
  (void)bytes;
  fail(LACOS_EDEVICE, "%s: %s", what, NO_CUDA);
  return NULL;
}
void dev_free(void *p, size_t bytes) { (void)p; (void)bytes; }
int dev_upload(void *dst, const void *src, size_t bytes) { (void)dst; (void)src; (void)bytes; return no_cuda(); }
int dev_download(void *dst, const void *src, size_t bytes) { (void)dst; (void)src; (void)bytes; return no_cuda(); }
int dev_copy(void *dst, const void *src, size_t bytes) { (void)dst; (void)src; (void)bytes; return no_cuda(); }
int dev_zero(void *p, size_t bytes) { (void)p; (void)bytes; return no_cuda(); }

/* The kernels: unreachable without a device buffer, but defined so every
   build links the same way. */
int layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                           const float *bias, int64_t N, int C, float eps) {
  (void)out; (void)mean; (void)rstd; (void)inp; (void)weight; (void)bias; (void)N; (void)C; (void)eps;
  return no_cuda();
}
int layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int64_t N, int C) {
  (void)dinp; (void)dweight; (void)dbias; (void)dout; (void)inp; (void)weight; (void)mean; (void)rstd; (void)N; (void)C;
  return no_cuda();
}
int gelu_forward_cuda(float *out, const float *inp, int64_t n) { (void)out; (void)inp; (void)n; return no_cuda(); }
int gelu_backward_cuda(float *dinp, const float *inp, const float *dout, int64_t n) {
  (void)dinp; (void)inp; (void)dout; (void)n;
  return no_cuda();
}
void attn_scratch_free_cuda(attn_scratch *s) { (void)s; }
int attention_forward_cuda(float *out, float *probs, const float *qkv, const int32_t *mask, const float *slopes,
                           int B, int T, int C, int NH, attn_scratch *s) {
  (void)out; (void)probs; (void)qkv; (void)mask; (void)slopes; (void)B; (void)T; (void)C; (void)NH; (void)s;
  return no_cuda();
}
int attention_backward_cuda(float *dqkv, const float *dout, const float *probs, const float *qkv,
                            const int32_t *mask, int B, int T, int C, int NH, attn_scratch *s) {
  (void)dqkv; (void)dout; (void)probs; (void)qkv; (void)mask; (void)B; (void)T; (void)C; (void)NH; (void)s;
  return no_cuda();
}
int pooling_forward_cuda(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode) {
  (void)out; (void)inp; (void)mask; (void)B; (void)T; (void)C; (void)mode;
  return no_cuda();
}
int pooling_backward_cuda(float *dinp, const float *dout, const int32_t *mask, int B, int T, int C, int mode) {
  (void)dinp; (void)dout; (void)mask; (void)B; (void)T; (void)C; (void)mode;
  return no_cuda();
}
int residual_forward_cuda(float *out, const float *a, const float *b, int64_t n) {
  (void)out; (void)a; (void)b; (void)n;
  return no_cuda();
}
int add_inplace_cuda(float *acc, const float *x, int64_t n) { (void)acc; (void)x; (void)n; return no_cuda(); }
int embedding_forward_cuda(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                           const float *row_scale, int V, int C) {
  (void)out; (void)ids; (void)N; (void)table; (void)dtype; (void)row_scale; (void)V; (void)C;
  return no_cuda();
}
int quantize_rows_cuda(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold, int *cols,
                       int *ncols) {
  (void)q; (void)absmax; (void)x; (void)N; (void)C; (void)threshold; (void)cols; (void)ncols;
  return no_cuda();
}
int linear_forward_cuda(float *out, const float *inp, linear *l, int64_t N, float threshold, int8_scratch *s) {
  (void)out; (void)inp; (void)l; (void)N; (void)threshold; (void)s;
  return no_cuda();
}
int linear_backward_input_cuda(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                               int8_scratch *s) {
  (void)dinp; (void)dout; (void)l; (void)N; (void)fast_int8; (void)s;
  return no_cuda();
}
void int8_scratch_free_cuda(int8_scratch *s) { memset(s, 0, sizeof *s); }
int gemm_s8_cuda(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda, const int8_t *b,
                 int64_t ldb, int32_t *c, int64_t ldc) {
  (void)trans_b; (void)M; (void)N; (void)K; (void)a; (void)lda; (void)b; (void)ldb; (void)c; (void)ldc;
  return no_cuda();
}
int sgemm_nt_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  (void)c; (void)a; (void)b; (void)M; (void)N; (void)K; (void)alpha; (void)beta;
  return no_cuda();
}
int sgemm_nn_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  (void)c; (void)a; (void)b; (void)M; (void)N; (void)K; (void)alpha; (void)beta;
  return no_cuda();
}
int sgemm_tn_cuda(float *c, const float *a, const float *b, int M, int N, int K, float alpha, float beta) {
  (void)c; (void)a; (void)b; (void)M; (void)N; (void)K; (void)alpha; (void)beta;
  return no_cuda();
}
int gemm_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
              const void *b, int ldb, float beta, float *c, int ldc) {
  (void)dtype; (void)trans_a; (void)trans_b; (void)M; (void)N; (void)K; (void)alpha; (void)a; (void)lda; (void)b;
  (void)ldb; (void)beta; (void)c; (void)ldc;
  return no_cuda();
}
int gemm_batched_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a, int lda,
                      int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta, float *c, int ldc,
                      int64_t stride_c, int batch) {
  (void)dtype; (void)trans_a; (void)trans_b; (void)M; (void)N; (void)K; (void)alpha; (void)a; (void)lda;
  (void)stride_a; (void)b; (void)ldb; (void)stride_b; (void)beta; (void)c; (void)ldc; (void)stride_c; (void)batch;
  return no_cuda();
}
int lora_forward_cuda(const lacos_bloom *m, const lora_slot *sl, float *y, const float *x, float *h, int64_t N,
                      const lora_dropout *drop, float *xd_scratch) {
  (void)m; (void)sl; (void)y; (void)x; (void)h; (void)N; (void)drop; (void)xd_scratch;
  return no_cuda();
}
int lora_backward_cuda(const lacos_bloom *m, const lora_slot *sl, float *dx, const float *dy, const float *x,
                       const float *h, float *dh, int64_t N, const lora_dropout *drop, float *xd_scratch) {
  (void)m; (void)sl; (void)dx; (void)dy; (void)x; (void)h; (void)dh; (void)N; (void)drop; (void)xd_scratch;
  return no_cuda();
}
int optim_step_cuda(const optim_item *items, int64_t nitems, const optim_consts *k, int kind, uint8_t *codes1,
                    uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m, float *mom_v, double *nonfinite) {
  (void)items; (void)nitems; (void)k; (void)kind; (void)codes1; (void)codes2; (void)absmax1; (void)absmax2;
  (void)mom_m; (void)mom_v; (void)nonfinite;
  return no_cuda();
}
int optim_sumsq_cuda(double *partials, const optim_item *items, int64_t nitems) {
  (void)partials; (void)items; (void)nitems;
  return no_cuda();
}
int scale_cuda(float *x, int64_t n, float k) { (void)x; (void)n; (void)k; return no_cuda(); }

#endif
