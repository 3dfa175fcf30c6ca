/* attention.cu: twin of engine/cpu/attention.c — BLOOM self-attention over
   the fused [Q | K | V] buffer: scores = (1/√HD)·q·k + slope·pos(key), the
   causal and padding masks filled with −FLT_MAX (a query with no visible key
   softmaxes to uniform weights, as on the CPU), softmax through the CPU's
   polynomial exp, then ·v. ALiBi positions are the mask's running count
   from the first real token, found with warp ballots.

   One warp per query row (b, h, i): lanes take keys for the scores and
   head channels for the output. The backward pass runs in two kernels so no
   two warps write one element: per query row (dp = dout·v, Σ p·dp, dq),
   then per key row (dv, dk, which need the rows' Σ p·dp from the first).
   Sums over keys run in ascending order like the CPU's loops; dot products
   over the head channels are ordered differently (the CPU vectorises them),
   so results agree to rounding, not to the bit. */
#include "common.cuh"

enum { FULL = 0xffffffffu };

/* Warps per block: 4 where the per-warp shared memory allows, else 1. */
static int attention_warps(size_t per_warp_floats, int *warps) {
  size_t limit = 48 * 1024;
  if (4 * per_warp_floats * sizeof(float) <= limit) *warps = 4;
  else if (per_warp_floats * sizeof(float) <= limit) *warps = 1;
  else return fail(LACOS_ELIMIT, "attention on CUDA: %zu floats of shared memory per query row exceed 48 KiB "
                                 "(sequence too long for these kernels)", per_warp_floats);
  return LACOS_OK;
}

// out (B,T,C), probs (B,NH,T,T) or NULL, qkv (B,T,3C), mask (B,T), slopes (NH)
__global__ void attention_forward_kernel(float *out, float *probs, const float *qkv, const int32_t *mask,
                                         const float *slopes, int B, int T, int C, int NH, float scale) {
  extern __shared__ float sm[];
  int HD = C / NH, C3 = 3 * C;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + warp;
  if (row >= (int64_t)B * NH * T) return;   /* whole warps leave together */
  float *q = sm + (size_t)warp * (HD + T), *p = q + HD;
  int i = (int)(row % T), h = (int)((row / T) % NH), b = (int)(row / ((int64_t)T * NH));
  const int32_t *mb = mask + (int64_t)b * T;
  const float *qrow = qkv + ((int64_t)b * T + i) * C3 + h * HD;
  for (int e = lane; e < HD; e += 32) q[e] = qrow[e];
  __syncwarp();
  float slope = slopes[h], mx = -FLT_MAX;
  int run = 0;   /* real keys before this chunk */
  for (int j0 = 0; j0 < T; j0 += 32) {
    int j = j0 + lane;
    int mj = j < T && mb[j] != 0;
    unsigned bal = __ballot_sync(FULL, mj);
    float pos = mj ? (float)(run + __popc(bal & ((1u << lane) - 1))) : 0.0f;
    run += __popc(bal);
    if (j < T) {
      float s = -FLT_MAX;
      if (j <= i && mj) {
        const float *k = qkv + ((int64_t)b * T + j) * C3 + C + h * HD;
        float d = 0;
        for (int e = 0; e < HD; e++) d += q[e] * k[e];
        s = d * scale + slope * pos;
      }
      p[j] = s;
      mx = s > mx ? s : mx;
    }
  }
  mx = warp_max(mx);
  float sum = 0;
  for (int j = lane; j < T; j += 32) { float x = fast_expf_dev(p[j] - mx); p[j] = x; sum += x; }
  sum = warp_sum(sum);
  float inv = 1.0f / sum;
  for (int j = lane; j < T; j += 32) {
    p[j] *= inv;
    if (probs) probs[row * T + j] = p[j];
  }
  __syncwarp();
  float *o = out + ((int64_t)b * T + i) * C + h * HD;
  for (int e = lane; e < HD; e += 32) {
    float acc = 0;
    for (int j = 0; j < T; j++) {
      float pj = p[j];
      if (pj == 0.0f) continue;
      acc += pj * qkv[((int64_t)b * T + j) * C3 + 2 * C + h * HD + e];
    }
    o[e] = acc;
  }
}

/* First real token of a sequence (T when none), the same in every lane. */
__device__ int first_token(const int32_t *mb, int T) {
  int lane = threadIdx.x & 31;
  for (int j0 = 0; j0 < T; j0 += 32) {
    int j = j0 + lane;
    unsigned bal = __ballot_sync(FULL, j < T && mb[j] != 0);
    if (bal) return j0 + __ffs(bal) - 1;
  }
  return T;
}

/* Per query row: dp_j = dout_i·v_j (kept in shared memory), pdp = Σ_j p_ij·dp_j
   (to scratch), and, unless the row saw no real key, dq_i += Σ_j ds_ij·k_j. */
__global__ void attention_backward_rows_kernel(float *dqkv, float *pdp_out, const float *dout, const float *probs,
                                               const float *qkv, const int32_t *mask, int B, int T, int C, int NH,
                                               float scale) {
  extern __shared__ float sm[];
  int HD = C / NH, C3 = 3 * C;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int64_t row = (int64_t)blockIdx.x * (blockDim.x >> 5) + warp;
  if (row >= (int64_t)B * NH * T) return;
  float *go = sm + (size_t)warp * (HD + T), *dp = go + HD;
  int i = (int)(row % T), h = (int)((row / T) % NH), b = (int)(row / ((int64_t)T * NH));
  const float *grow = dout + ((int64_t)b * T + i) * C + h * HD;
  for (int e = lane; e < HD; e += 32) go[e] = grow[e];
  __syncwarp();
  bool blind = first_token(mask + (int64_t)b * T, T) > i;
  const float *p = probs + row * T;
  float part = 0;
  for (int j = lane; j < T; j += 32) {
    float pj = p[j], d = 0;
    if (pj != 0.0f) {
      const float *v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + h * HD;
      for (int e = 0; e < HD; e++) d += go[e] * v[e];
    }
    dp[j] = d;
    part += pj * d;
  }
  float pdp = warp_sum(part);
  if (lane == 0) pdp_out[row] = pdp;
  if (blind) return;
  __syncwarp();
  float *dq = dqkv + ((int64_t)b * T + i) * C3 + h * HD;
  for (int e = lane; e < HD; e += 32) {
    float acc = 0;
    for (int j = 0; j < T; j++) {
      float pj = p[j];
      if (pj == 0.0f) continue;
      float ds = pj * (dp[j] - pdp) * scale;
      acc += ds * qkv[((int64_t)b * T + j) * C3 + C + h * HD + e];
    }
    dq[e] += acc;
  }
}

/* Per key row j: dv_j += Σ_i p_ij·dout_i (every row, blind ones too) and
   dk_j += Σ_i ds_ij·q_i over the rows that saw a real key. */
__global__ void attention_backward_keys_kernel(float *dqkv, const float *pdp, const float *dout, const float *probs,
                                               const float *qkv, const int32_t *mask, int B, int T, int C, int NH,
                                               float scale) {
  int HD = C / NH, C3 = 3 * C;
  int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  int64_t key = (int64_t)blockIdx.x * (blockDim.x >> 5) + warp;
  if (key >= (int64_t)B * NH * T) return;
  int j = (int)(key % T), h = (int)((key / T) % NH), b = (int)(key / ((int64_t)T * NH));
  int first = first_token(mask + (int64_t)b * T, T);
  const float *v = qkv + ((int64_t)b * T + j) * C3 + 2 * C + h * HD;
  float *dk = dqkv + ((int64_t)b * T + j) * C3 + C + h * HD;
  float *dv = dqkv + ((int64_t)b * T + j) * C3 + 2 * C + h * HD;
  int64_t rows = ((int64_t)b * NH + h) * T;
  for (int i = 0; i < T; i++) {
    float pij = probs[(rows + i) * T + j];
    if (pij == 0.0f) continue;
    const float *go = dout + ((int64_t)b * T + i) * C + h * HD;
    float d = 0;
    for (int e = lane; e < HD; e += 32) {
      dv[e] += pij * go[e];
      d += go[e] * v[e];
    }
    if (first > i) continue;
    float ds = pij * (warp_sum(d) - pdp[rows + i]) * scale;
    const float *q = qkv + ((int64_t)b * T + i) * C3 + h * HD;
    for (int e = lane; e < HD; e += 32) dk[e] += ds * q[e];
  }
}

extern "C" int attention_forward_cuda(float *out, float *probs, const float *qkv, const int32_t *mask,
                                      const float *slopes, int B, int T, int C, int NH) {
  int64_t rows = (int64_t)B * NH * T;
  if (rows == 0) return LACOS_OK;
  int HD = C / NH, warps = 1;
  TRY(attention_warps((size_t)HD + T, &warps));
  TRY(cuda_init());
  unsigned blocks = (unsigned)((rows + warps - 1) / warps);
  size_t shared = sizeof(float) * (size_t)warps * (HD + T);
  attention_forward_kernel<<<blocks, 32 * warps, shared, cuda_stream()>>>(out, probs, qkv, mask, slopes, B, T, C, NH,
                                                                          1.0f / sqrtf((float)HD));
  LAUNCH_CHECK("attention_forward_kernel");
  return LACOS_OK;
}

extern "C" int attention_backward_cuda(float *dqkv, const float *dout, const float *probs, const float *qkv,
                                       const int32_t *mask, int B, int T, int C, int NH, float *scratch) {
  int64_t rows = (int64_t)B * NH * T;
  if (rows == 0) return LACOS_OK;
  int HD = C / NH, warps = 1;
  TRY(attention_warps((size_t)HD + T, &warps));
  TRY(cuda_init());
  float scale = 1.0f / sqrtf((float)HD);
  unsigned blocks = (unsigned)((rows + warps - 1) / warps);
  size_t shared = sizeof(float) * (size_t)warps * (HD + T);
  attention_backward_rows_kernel<<<blocks, 32 * warps, shared, cuda_stream()>>>(dqkv, scratch, dout, probs, qkv, mask,
                                                                                B, T, C, NH, scale);
  LAUNCH_CHECK("attention_backward_rows_kernel");
  attention_backward_keys_kernel<<<(unsigned)((rows + 3) / 4), 128, 0, cuda_stream()>>>(dqkv, scratch, dout, probs,
                                                                                        qkv, mask, B, T, C, NH, scale);
  LAUNCH_CHECK("attention_backward_keys_kernel");
  return LACOS_OK;
}
