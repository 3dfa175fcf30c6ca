/* elementwise.c: broadcasting binary, scalar and unary tensor arithmetic.
   f32 contiguous operands take a vectorisable fast path; everything else goes
   through doubles, which is exact for every dtype we hold. */
#include "../engine.h"
#include <math.h>

static inline double gelu_tanh(double x) {
  /* BLOOM's tanh approximation (transformers bloom_gelu_forward). */
  return 0.5 * x * (1.0 + tanh(0.79788456 * x * (1.0 + 0.044715 * x * x)));
}

static inline double apply_bin(int op, double a, double b) {
  switch (op) {
  case LACOS_ADD: return a + b;
  case LACOS_SUB: return a - b;
  case LACOS_MUL: return a * b;
  case LACOS_DIV: return a / b;
  case LACOS_MAX: return a > b || isnan(a) ? a : b;
  case LACOS_MIN: return a < b || isnan(a) ? a : b;
  case LACOS_POW: return pow(a, b);
  case LACOS_EQ: return a == b;
  case LACOS_NE: return a != b;
  case LACOS_LT: return a < b;
  case LACOS_LE: return a <= b;
  case LACOS_GT: return a > b;
  case LACOS_GE: return a >= b;
  }
  return NAN;
}

static inline double apply_un(int op, double x) {
  switch (op) {
  case LACOS_NEG: return -x;
  case LACOS_ABS: return fabs(x);
  case LACOS_EXP: return exp(x);
  case LACOS_LOG: return log(x);
  case LACOS_SQRT: return sqrt(x);
  case LACOS_TANH: return tanh(x);
  case LACOS_SIGMOID: return 1.0 / (1.0 + exp(-x));
  case LACOS_RELU: return x > 0 ? x : 0;
  case LACOS_GELU_TANH: return gelu_tanh(x);
  case LACOS_SQUARE: return x * x;
  case LACOS_ISFINITE: return isfinite(x) ? 1 : 0;
  }
  return NAN;
}

static int result_dtype(int a, int b) {
  return a == LACOS_F64 || b == LACOS_F64 ? LACOS_F64 : LACOS_F32;
}

static int broadcast_shape(const lacos_tensor *a, const lacos_tensor *b, int *ndim, int64_t *shape) {
  int n = a->ndim > b->ndim ? a->ndim : b->ndim;
  for (int d = 0; d < n; d++) {
    int da = d - (n - a->ndim), db = d - (n - b->ndim);
    int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
    if (sa != sb && sa != 1 && sb != 1) {
      /* whole shapes: callers count dimensions from 0 (C) or 1 (Lua) */
      char as[96], bs[96];
      tensor_shape_str(a, as, sizeof as);
      tensor_shape_str(b, bs, sizeof bs);
      return fail(LACOS_EINVAL, "shapes %s and %s do not broadcast (sizes %lld and %lld)", as, bs,
                  (long long)sa, (long long)sb);
    }
    shape[d] = sa == 1 ? sb : sa;
  }
  *ndim = n;
  return LACOS_OK;
}

/* out = a op b where out already has the broadcast shape; out may alias a. */
static int binary_into(lacos_tensor *out, const lacos_tensor *a, const lacos_tensor *b, int op) {
  if (op < LACOS_ADD || op > LACOS_GE) return fail(LACOS_EINVAL, "unknown binary operation %d", op);
  TRY(tensor_on_cpu(a, "arithmetic"));
  TRY(tensor_on_cpu(b, "arithmetic"));
  lacos_tensor *av = NULL, *bv = NULL;
  int s = lacos_tensor_expand(&av, a, out->ndim, out->shape);
  if (!s) s = lacos_tensor_expand(&bv, b, out->ndim, out->shape);
  if (s) { lacos_tensor_free(av); return s; }
  int64_t n = lacos_tensor_numel(out);
  if (out->dtype == LACOS_F32 && av->dtype == LACOS_F32 && bv->dtype == LACOS_F32 &&
      lacos_tensor_is_contiguous(out) && lacos_tensor_is_contiguous(av) && lacos_tensor_is_contiguous(bv) &&
      op <= LACOS_DIV) {
    float *o = out->data; const float *x = av->data, *y = bv->data;
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++)
      o[i] = op == LACOS_ADD ? x[i] + y[i] : op == LACOS_SUB ? x[i] - y[i] : op == LACOS_MUL ? x[i] * y[i] : x[i] / y[i];
  } else {
    const int64_t *sh = out->shape;
    int64_t rows = sh[0] * sh[1] * sh[2];
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      int64_t i0 = r / (sh[1] * sh[2]), i1 = (r / sh[2]) % sh[1], i2 = r % sh[2];
      int64_t oo = i0 * out->stride[0] + i1 * out->stride[1] + i2 * out->stride[2];
      int64_t ao = i0 * av->stride[0] + i1 * av->stride[1] + i2 * av->stride[2];
      int64_t bo = i0 * bv->stride[0] + i1 * bv->stride[1] + i2 * bv->stride[2];
      for (int64_t j = 0; j < sh[3]; j++)
        dtype_store(out->data, oo + j * out->stride[3], out->dtype,
                    apply_bin(op, dtype_load(av->data, ao + j * av->stride[3], av->dtype),
                              dtype_load(bv->data, bo + j * bv->stride[3], bv->dtype)));
    }
  }
  lacos_tensor_free(av);
  lacos_tensor_free(bv);
  return LACOS_OK;
}

int lacos_tensor_binary(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b, int op) {
  *out = NULL;
  int ndim = 0;
  int64_t shape[4];
  TRY(broadcast_shape(a, b, &ndim, shape));
  TRY(lacos_tensor_empty(out, result_dtype(a->dtype, b->dtype), LACOS_CPU, ndim, shape));
  int s = binary_into(*out, a, b, op);
  if (s) { lacos_tensor_free(*out); *out = NULL; }
  return s;
}

int lacos_tensor_binary_(lacos_tensor *a, const lacos_tensor *b, int op) { return binary_into(a, a, b, op); }

int lacos_tensor_scalar(lacos_tensor **out, const lacos_tensor *a, double v, int op, int reversed) {
  *out = NULL;
  lacos_tensor *sv;
  int64_t one = 1;
  /* 0-d, so that a 0-d operand gives a 0-d result */
  TRY(lacos_tensor_full(&sv, a->dtype == LACOS_F64 ? LACOS_F64 : LACOS_F32, 0, &one, v));
  int s = reversed ? lacos_tensor_binary(out, sv, a, op) : lacos_tensor_binary(out, a, sv, op);
  lacos_tensor_free(sv);
  return s;
}

int lacos_tensor_unary(lacos_tensor **out, const lacos_tensor *a, int op) {
  *out = NULL;
  if (op < LACOS_NEG || op > LACOS_ISFINITE) return fail(LACOS_EINVAL, "unknown unary operation %d", op);
  TRY(tensor_on_cpu(a, "unary operation"));
  lacos_tensor *c;
  TRY(lacos_tensor_to_dtype(&c, a, result_dtype(a->dtype, a->dtype)));
  int64_t n = lacos_tensor_numel(c);
  if (c->dtype == LACOS_F32) {
    float *x = c->data;
    #pragma omp parallel for if (n > 16384) schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = (float)apply_un(op, x[i]);
  } else {
    double *x = c->data;
    #pragma omp parallel for if (n > 16384) schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = apply_un(op, x[i]);
  }
  *out = c;
  return LACOS_OK;
}
