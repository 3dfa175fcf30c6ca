/* dtype.c: the element types (lacos_dtype): names and sizes, element access
   in double, and conversion of contiguous runs between types (f16/bf16 round
   to nearest even, integers saturate and round half to even). A leaf: the
   tensors, the backends and the file formats all use it. */
#include "engine.h"
#include <math.h>

static const struct { const char *name; int size; } dtype_traits[LACOS_DTYPE_COUNT] = {
  [LACOS_F32] = {"f32", 4}, [LACOS_F16] = {"f16", 2}, [LACOS_BF16] = {"bf16", 2},
  [LACOS_I8] = {"i8", 1},   [LACOS_I32] = {"i32", 4}, [LACOS_U8] = {"u8", 1},
  [LACOS_I64] = {"i64", 8}, [LACOS_F64] = {"f64", 8},
};

static bool dtype_ok(int d) { return d >= 0 && d < LACOS_DTYPE_COUNT; }
const char *lacos_dtype_name(int d) { return dtype_ok(d) ? dtype_traits[d].name : "?"; }
int lacos_dtype_size(int d) { return dtype_ok(d) ? dtype_traits[d].size : 0; }
int lacos_dtype_from_name(const char *name) {
  if (!name) return -1;
  for (int d = 0; d < LACOS_DTYPE_COUNT; d++)
    if (strcmp(name, dtype_traits[d].name) == 0) return d;
  if (!strcmp(name, "float32") || !strcmp(name, "float")) return LACOS_F32;
  if (!strcmp(name, "float16") || !strcmp(name, "half")) return LACOS_F16;
  if (!strcmp(name, "bfloat16")) return LACOS_BF16;
  if (!strcmp(name, "int8")) return LACOS_I8;
  if (!strcmp(name, "int32")) return LACOS_I32;
  if (!strcmp(name, "uint8")) return LACOS_U8;
  if (!strcmp(name, "int64")) return LACOS_I64;
  if (!strcmp(name, "float64") || !strcmp(name, "double")) return LACOS_F64;
  return -1;
}

/* ---- element access ---- */

double dtype_load(const void *base, int64_t i, int dtype) {
  switch (dtype) {
  case LACOS_F32: return ((const float *)base)[i];
  case LACOS_F16: return f16_to_f32(((const uint16_t *)base)[i]);
  case LACOS_BF16: return bf16_to_f32(((const uint16_t *)base)[i]);
  case LACOS_I8: return ((const int8_t *)base)[i];
  case LACOS_I32: return ((const int32_t *)base)[i];
  case LACOS_U8: return ((const uint8_t *)base)[i];
  case LACOS_I64: return (double)((const int64_t *)base)[i];
  case LACOS_F64: return ((const double *)base)[i];
  }
  return 0;
}

static double saturate(double v, double lo, double hi) {
  if (isnan(v)) return 0;
  v = nearbyint(v);   /* round half to even under the default rounding mode */
  return v < lo ? lo : v > hi ? hi : v;
}

void dtype_store(void *base, int64_t i, int dtype, double v) {
  switch (dtype) {
  case LACOS_F32: ((float *)base)[i] = (float)v; break;
  case LACOS_F16: ((uint16_t *)base)[i] = f32_to_f16((float)v); break;
  case LACOS_BF16: ((uint16_t *)base)[i] = f32_to_bf16((float)v); break;
  case LACOS_I8: ((int8_t *)base)[i] = (int8_t)saturate(v, -128, 127); break;
  case LACOS_I32: ((int32_t *)base)[i] = (int32_t)saturate(v, -2147483648.0, 2147483647.0); break;
  case LACOS_U8: ((uint8_t *)base)[i] = (uint8_t)saturate(v, 0, 255); break;
  case LACOS_I64: ((int64_t *)base)[i] = (int64_t)saturate(v, -9.2233720368547758e18, 9.2233720368547748e18); break;
  case LACOS_F64: ((double *)base)[i] = v; break;
  }
}

void dtype_convert(void *dst, int dd, const void *src, int sd, int64_t n) {
  if (dd == sd) { memcpy(dst, src, (size_t)n * (size_t)dtype_traits[dd].size); return; }
  if (dd == LACOS_F32 && sd == LACOS_F16) {
    const uint16_t *s = src; float *d = dst;
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) d[i] = f16_to_f32(s[i]);
    return;
  }
  if (dd == LACOS_F32 && sd == LACOS_BF16) {
    const uint16_t *s = src; float *d = dst;
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) d[i] = bf16_to_f32(s[i]);
    return;
  }
  if (dd == LACOS_F16 && sd == LACOS_F32) {
    const float *s = src; uint16_t *d = dst;
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_f16(s[i]);
    return;
  }
  if (dd == LACOS_BF16 && sd == LACOS_F32) {
    const float *s = src; uint16_t *d = dst;
    #pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16(s[i]);
    return;
  }
  #pragma omp parallel for if (n > 65536) schedule(static)
  for (int64_t i = 0; i < n; i++) dtype_store(dst, i, dd, dtype_load(src, i, sd));
}

