/* pooling.cu: twin of engine/cpu/pooling.c (mean, weightedmean with weights
   counted from the first real token, lasttoken, cls, mean_sqrt_len; max as
   a scan per channel, first maximum on ties; skip leaves each row's first
   real tokens out). One block per sequence:
   one thread derives the T weights and their total with the CPU's
   functions (math/pooling_weights.h), then
   the threads share the channels, each summing over t in ascending order as
   the CPU does, so the results are the CPU's bits. */
#include "common.cuh"

/* The weights of math/pooling_weights.h: w (T) and total into shared memory. */
__device__ void pool_weights(float *w, float *total, const int32_t *m, int T, int mode, int skip) {
  if (threadIdx.x == 0) {
    int last, run = 0;
    *total = pool_total(m, T, mode, skip, &last);
    for (int t = 0; t < T; t++) {
      run += m[t] != 0;
      w[t] = pool_weight(mode, m[t], run, t, last, skip);
    }
  }
  __syncthreads();
}

// out (B,C), inp (B,T,C), mask (B,T); the first skip real tokens of a row are not pooled
__global__ void pooling_forward_kernel(float *out, const float *inp, const int32_t *mask, int T, int C, int mode,
                                       int skip) {
  extern __shared__ float w[];
  __shared__ float total;
  int b = blockIdx.x;
  if (mode == POOL_MAX) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      int t = pool_max_position(inp, mask + (int64_t)b * T, b, T, C, c, skip);
      out[(int64_t)b * C + c] = t < 0 ? 0.0f : inp[((int64_t)b * T + t) * C + c];
    }
    return;
  }
  pool_weights(w, &total, mask + (int64_t)b * T, T, mode, skip);
  float inv = total > 0 ? 1.0f / total : 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float o = 0;
    for (int t = 0; t < T; t++) {
      if (w[t] == 0) continue;
      float wt = w[t] * inv;
      o += wt * inp[((int64_t)b * T + t) * C + c];
    }
    out[(int64_t)b * C + c] = o;
  }
}

// dinp (B,T,C) +=, dout (B,C); inp (B,T,C) read by max only
__global__ void pooling_backward_kernel(float *dinp, const float *dout, const float *inp, const int32_t *mask, int T,
                                        int C, int mode, int skip) {
  extern __shared__ float w[];
  __shared__ float total;
  int b = blockIdx.x;
  if (mode == POOL_MAX) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      int t = pool_max_position(inp, mask + (int64_t)b * T, b, T, C, c, skip);
      if (t >= 0) dinp[((int64_t)b * T + t) * C + c] += dout[(int64_t)b * C + c];
    }
    return;
  }
  pool_weights(w, &total, mask + (int64_t)b * T, T, mode, skip);
  float inv = total > 0 ? 1.0f / total : 0.0f;
  for (int t = 0; t < T; t++) {
    if (w[t] == 0) continue;
    float wt = w[t] * inv;
    float *dx = dinp + ((int64_t)b * T + t) * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dx[c] += wt * dout[(int64_t)b * C + c];
  }
}

static int pooling_shape_ok(int T) {
  if ((size_t)T * sizeof(float) > 40 * 1024)
    return fail(LACOS_ELIMIT, "pooling on CUDA takes at most %d tokens per sequence, got %d", 40 * 1024 / 4, T);
  return LACOS_OK;
}

extern "C" int pooling_forward_cuda(float *out, const float *inp, const int32_t *mask, int B, int T, int C, int mode,
                                    int skip) {
  if (B == 0) return LACOS_OK;
  TRY(pooling_shape_ok(T));
  TRY(cuda_init());
  pooling_forward_kernel<<<B, THREADS, sizeof(float) * (size_t)T, cuda_stream()>>>(out, inp, mask, T, C, mode, skip);
  LAUNCH_CHECK("pooling_forward_kernel");
  return LACOS_OK;
}

extern "C" int pooling_backward_cuda(float *dinp, const float *dout, const float *inp, const int32_t *mask, int B,
                                     int T, int C, int mode, int skip) {
  if (B == 0) return LACOS_OK;
  TRY(pooling_shape_ok(T));
  TRY(cuda_init());
  pooling_backward_kernel<<<B, THREADS, sizeof(float) * (size_t)T, cuda_stream()>>>(dinp, dout, inp, mask, T, C, mode,
                                                                                   skip);
  LAUNCH_CHECK("pooling_backward_kernel");
  return LACOS_OK;
}
