/* matmul.c: tensor-level matrix products (BLAS sgemm/dgemm), row
   normalisation and cosine-similarity matrices. The model's own linears
   live in linear.c; this file serves the Lua tensor API. */
#include "../engine.h"
#include <math.h>
#include <cblas.h>

int lacos_tensor_matmul(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b) {
  *out = NULL;
  TRY(tensor_on_cpu(a, "matmul"));
  TRY(tensor_on_cpu(b, "matmul"));
  if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3)
    return fail(LACOS_EINVAL, "matmul: operands must be 2-d or 3-d, got %d-d and %d-d", a->ndim, b->ndim);
  if (b->ndim == 3 && a->ndim == 2) return fail(LACOS_EINVAL, "matmul: a 2-d left operand needs a 2-d right operand");
  int64_t batch = a->ndim == 3 ? a->shape[0] : 1;
  int64_t n = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
  int64_t kb = b->shape[b->ndim - 2], m = b->shape[b->ndim - 1];
  if (k != kb) {
    char as[96], bs[96];
    tensor_shape_str(a, as, sizeof as);
    tensor_shape_str(b, bs, sizeof bs);
    return fail(LACOS_EINVAL, "matmul: inner sizes differ (%lld vs %lld) for shapes %s and %s", (long long)k, (long long)kb, as, bs);
  }
  if (b->ndim == 3 && b->shape[0] != batch)
    return fail(LACOS_EINVAL, "matmul: batch sizes differ (%lld vs %lld)", (long long)batch, (long long)b->shape[0]);
  bool f64 = a->dtype == LACOS_F64 || b->dtype == LACOS_F64;
  int dt = f64 ? LACOS_F64 : LACOS_F32;
  lacos_tensor *ac = NULL, *bc = NULL;
  int s = lacos_tensor_to_dtype(&ac, a, dt);
  if (!s) s = lacos_tensor_to_dtype(&bc, b, dt);
  int64_t oshape[3] = {batch, n, m};
  if (!s) s = a->ndim == 3 ? lacos_tensor_empty(out, dt, LACOS_CPU, 3, oshape)
                          : lacos_tensor_empty(out, dt, LACOS_CPU, 2, oshape + 1);
  if (s) { lacos_tensor_free(ac); lacos_tensor_free(bc); return s; }
  threads_count();
  for (int64_t i = 0; i < batch; i++) {
    int64_t bo = b->ndim == 3 ? i * k * m : 0;
    if (f64)
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)k, 1.0,
                  (double *)ac->data + i * n * k, (int)k, (double *)bc->data + bo, (int)m, 0.0,
                  (double *)(*out)->data + i * n * m, (int)m);
    else
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)m, (int)k, 1.0f,
                  (float *)ac->data + i * n * k, (int)k, (float *)bc->data + bo, (int)m, 0.0f,
                  (float *)(*out)->data + i * n * m, (int)m);
  }
  lacos_tensor_free(ac);
  lacos_tensor_free(bc);
  return LACOS_OK;
}

int lacos_tensor_normalize(lacos_tensor **out, const lacos_tensor *t, double eps) {
  *out = NULL;
  TRY(tensor_on_cpu(t, "normalize"));
  if (t->ndim != 2) return fail(LACOS_EINVAL, "normalize: expected a 2-d (n, d) tensor, got %d-d", t->ndim);
  TRY(lacos_tensor_to_dtype(out, t, LACOS_F32));
  float *x = (*out)->data;
  int64_t n = t->shape[0], d = t->shape[1];
  for (int64_t i = 0; i < n; i++) {
    double ss = 0;
    for (int64_t j = 0; j < d; j++) ss += (double)x[i * d + j] * x[i * d + j];
    double norm = sqrt(ss);
    float inv = (float)(1.0 / (norm > eps ? norm : eps));   /* F.normalize: x / max(|x|, eps) */
    for (int64_t j = 0; j < d; j++) x[i * d + j] *= inv;
  }
  return LACOS_OK;
}

int lacos_tensor_cosine(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b) {
  *out = NULL;
  if (a->ndim != 2 || b->ndim != 2 || a->shape[1] != b->shape[1]) {
    char as[96], bs[96];
    tensor_shape_str(a, as, sizeof as);
    tensor_shape_str(b, bs, sizeof bs);
    return fail(LACOS_EINVAL, "cosine: expected (n, d) and (m, d) tensors, got %s and %s", as, bs);
  }
  lacos_tensor *an = NULL, *bn = NULL;
  int s = lacos_tensor_normalize(&an, a, 1e-12);
  if (!s) s = lacos_tensor_normalize(&bn, b, 1e-12);
  int64_t shape[2] = {a->shape[0], b->shape[0]};
  if (!s) s = lacos_tensor_empty(out, LACOS_F32, LACOS_CPU, 2, shape);
  if (!s) {
    threads_count();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)shape[0], (int)shape[1], (int)a->shape[1], 1.0f,
                an->data, (int)a->shape[1], bn->data, (int)a->shape[1], 0.0f, (*out)->data, (int)shape[1]);
  }
  lacos_tensor_free(an);
  lacos_tensor_free(bn);
  return s;
}

int lacos_tensor_maxdiff(const lacos_tensor *a, const lacos_tensor *b, double *out) {
  *out = 0;
  TRY(tensor_on_cpu(a, "maxdiff"));
  TRY(tensor_on_cpu(b, "maxdiff"));
  int64_t n = lacos_tensor_numel(a);
  if (n != lacos_tensor_numel(b) || a->ndim != b->ndim)
    return fail(LACOS_EINVAL, "maxdiff: tensors have different shapes");
  for (int d = 0; d < a->ndim; d++)
    if (a->shape[d] != b->shape[d]) return fail(LACOS_EINVAL, "maxdiff: tensors have different shapes");
  lacos_tensor *ac = NULL, *bc = NULL;
  int s = lacos_tensor_to_dtype(&ac, a, LACOS_F64);
  if (!s) s = lacos_tensor_to_dtype(&bc, b, LACOS_F64);
  if (!s) {
    const double *x = ac->data, *y = bc->data;
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
      double d = fabs(x[i] - y[i]);
      if (d > m || isnan(d)) m = d;
    }
    *out = m;
  }
  lacos_tensor_free(ac);
  lacos_tensor_free(bc);
  return s;
}
