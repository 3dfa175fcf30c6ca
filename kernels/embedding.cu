/* embedding.cu: twin of engine/cpu/embedding.c — rows of a (V,C) table in
   f32, f16, bf16 or int8 with per-row scales, converted to f32 as they are
   gathered (f16 and bf16 convert exactly; int8 as q · (scale/127), the CPU's
   two roundings). Ids are checked by the caller on the host; an id outside
   the table gives a zero row here instead of a read out of bounds. */
#include "common.cuh"

__global__ void embedding_forward_kernel(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                                         const float *row_scale, int V, int C) {
  GRID_STRIDE(k, N * C) {
    int64_t i = k / C;
    int c = (int)(k % C);
    int32_t id = ids[i];
    float v = 0.0f;
    if (id >= 0 && id < V) {
      int64_t at = (int64_t)id * C + c;
      switch (dtype) {
      case LACOS_F32: v = ((const float *)table)[at]; break;
      case LACOS_F16: v = __half2float(((const __half *)table)[at]); break;
      case LACOS_BF16: v = __uint_as_float((uint32_t)((const uint16_t *)table)[at] << 16); break;
      case LACOS_I8: v = ((const int8_t *)table)[at] * (row_scale[id] / 127.0f); break;
      }
    }
    out[k] = v;
  }
}

extern "C" int embedding_forward_cuda(float *out, const int32_t *ids, int64_t N, const void *table, int dtype,
                                      const float *row_scale, int V, int C) {
  if (dtype != LACOS_F32 && dtype != LACOS_F16 && dtype != LACOS_BF16 && dtype != LACOS_I8)
    return fail(LACOS_EUNSUPPORTED, "embedding table dtype %s is not supported on CUDA", lacos_dtype_name(dtype));
  if (N == 0) return LACOS_OK;
  TRY(cuda_init());
  embedding_forward_kernel<<<grid_for(N * C), THREADS, 0, cuda_stream()>>>(out, ids, N, table, dtype, row_scale, V, C);
  LAUNCH_CHECK("embedding_forward_kernel");
  return LACOS_OK;
}
