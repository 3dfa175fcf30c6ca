/* attention.cu: twin of engine/cpu/attention.c — self-attention over the
   fused [Q | K | V] buffer: scores = (1/√HD)·q·k + slope·pos(key) (no slope
   term without slopes), the causal (BLOOM; none for BERT) and padding masks filled with −FLT_MAX (a query with no visible key
   softmaxes to uniform weights, as on the CPU), softmax through the CPU's
   polynomial exp, then ·v. ALiBi positions are the mask's running count
   from the first real token, found with warp ballots.

   The products run as strided batched f32 GEMMs (cuBLASLt, no TF32) over
   the B·NH heads: q·kᵀ, p·v, and in the backward pass dout·vᵀ, pᵀ·dout,
   ds·k, dsᵀ·q. A head's rows are strided inside qkv (row stride 3C, head
   offset h·HD), which no single batch stride describes, so the heads are
   first gathered into contiguous (head, T, HD) blocks and the results
   scattered back. The masked softmax and its backward are one warp per
   query row. An earlier version did everything in per-row warps (dot
   products with one key per lane, uncoalesced): on a bloom-7b1 shape it
   was most of a training step.

   Work goes in chunks of heads so that the scratch (gathered q, k, v and
   their gradients, and a T×T score block per head) stays under
   ATTN_CHUNK_BYTES, whatever the batch; the caller owns it, sized by
   attention_scratch_cuda. Sums over the head channels run in
   cuBLAS's order, not the CPU's, so results agree to rounding, not to the
   bit. */
#include "common.cuh"

enum { FULL = 0xffffffffu };
/* scratch per chunk of heads; one head's T×T scores may exceed it alone */
static const size_t ATTN_CHUNK_BYTES = (size_t)256 << 20;
/* longest sequence: one head's T×T f32 scores in at most 1 GiB (T ≈ 16k) */
static const size_t ATTN_HEAD_MAX_BYTES = (size_t)1 << 30;

/* Heads per chunk of ATTN_CHUNK_BYTES for `per_head` floats of scratch each. */
static int64_t attn_chunk_heads(int64_t heads, size_t per_head) {
  int64_t c = (int64_t)(ATTN_CHUNK_BYTES / (per_head * sizeof(float)));
  if (c < 1) c = 1;
  return c > heads ? heads : c;
}

/* Floats of scratch per head: forward q, k, v, out (T·HD each) and, without
   probs, its scores (T·T); backward q, k, v, dout, dq, dk, dv and dp. */
static size_t attn_per_head(int T, int HD, bool probs, bool backward) {
  size_t THD = (size_t)T * HD, TT = (size_t)T * T;
  return backward ? 7 * THD + TT : 4 * THD + (probs ? 0 : TT);
}

extern "C" size_t attention_scratch_cuda(int B, int T, int C, int NH, bool probs, bool backward) {
  int64_t heads = (int64_t)B * NH;
  if (heads == 0 || T == 0) return 0;
  size_t per = attn_per_head(T, C / NH, probs, backward);
  return sizeof(float) * per * (size_t)attn_chunk_heads(heads, per);
}

/* The heads the caller's scratch holds at once (at most a chunk's), and the
   check that one head fits at all. */
static int attn_chunk(scratch ws, int64_t heads, size_t per_head, size_t score_bytes, int64_t *chunk) {
  if (score_bytes > ATTN_HEAD_MAX_BYTES)
    return fail(LACOS_ELIMIT, "attention on CUDA: a %.0f MiB block of scores per head (sequence too long; at most "
                              "about 16k tokens)", score_bytes / 1048576.0);
  int64_t c = (int64_t)(ws.bytes / (per_head * sizeof(float)));
  if (c < 1)
    return fail(LACOS_ELIMIT, "attention on CUDA: %zu bytes of scratch cannot hold one head (%zu needed)", ws.bytes,
                per_head * sizeof(float));
  int64_t most = attn_chunk_heads(heads, per_head);
  *chunk = c > most ? most : c;
  return LACOS_OK;
}

/* dst (G,T,HD) = the heads g0.. of src, whose head g = b·NH + h starts at
   src + b·T·ld + off + h·HD with rows ld apart. */
__global__ void gather_heads_kernel(float *dst, const float *src, int64_t g0, int64_t G, int T, int HD, int NH,
                                    int64_t ld, int64_t off) {
  GRID_STRIDE(k, G * T * HD) {
    int64_t g = g0 + k / ((int64_t)T * HD);
    int t = (int)((k / HD) % T), e = (int)(k % HD);
    int64_t b = g / NH, h = g % NH;
    dst[k] = src[(b * T + t) * ld + off + h * HD + e];
  }
}

/* The inverse: dst (rows ld apart, at off) = or += src (G,T,HD). */
__global__ void scatter_heads_kernel(float *dst, const float *src, int64_t g0, int64_t G, int T, int HD, int NH,
                                     int64_t ld, int64_t off, bool accumulate) {
  GRID_STRIDE(k, G * T * HD) {
    int64_t g = g0 + k / ((int64_t)T * HD);
    int t = (int)((k / HD) % T), e = (int)(k % HD);
    int64_t b = g / NH, h = g % NH;
    float *d = dst + (b * T + t) * ld + off + h * HD + e;
    *d = accumulate ? *d + src[k] : src[k];
  }
}

/* In place over s (G,T,T), one warp per query row i of head g0 + r / T:
   s_ij (already scaled q·k) + slope·pos_j where j ≤ i and key j is real,
   −FLT_MAX elsewhere, then the softmax. */
__global__ void masked_softmax_kernel(float *s, const int32_t *mask, const float *slopes, bool causal, int64_t g0,
                                      int64_t G, int T, int NH) {
  int lane = threadIdx.x & 31;
  int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= G * T) return;   /* whole warps leave together */
  int64_t g = g0 + r / T;
  int i = (int)(r % T), h = (int)(g % NH);
  const int32_t *mb = mask + (g / NH) * T;
  float *p = s + r * T;
  float slope = slopes ? slopes[h] : 0.0f, mx = -FLT_MAX;
  int run = 0;   /* real keys before this chunk of 32 */
  for (int j0 = 0; j0 < T; j0 += 32) {
    int j = j0 + lane;
    int mj = j < T && mb[j] != 0;
    unsigned bal = __ballot_sync(FULL, mj);
    float pos = mj ? (float)(run + __popc(bal & ((1u << lane) - 1))) : 0.0f;
    run += __popc(bal);
    if (j < T) {
      float v = (!causal || j <= i) && mj ? p[j] + slope * pos : -FLT_MAX;
      p[j] = v;
      mx = v > mx ? v : mx;
    }
  }
  mx = warp_max(mx);
  float sum = 0;
  for (int j = lane; j < T; j += 32) { float x = fast_expf(p[j] - mx); p[j] = x; sum += x; }
  sum = warp_sum(sum);
  float inv = 1.0f / sum;
  for (int j = lane; j < T; j += 32) p[j] *= inv;
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

/* Softmax backward in place over dp (G,T,T) = dout·vᵀ, one warp per query
   row: ds_ij = p_ij·(dp_ij − Σ_j p_ij·dp_ij)·scale, and 0 for a row that saw
   no real key (its scores were constant: no gradient to q or k). */
__global__ void softmax_backward_kernel(float *dp, const float *probs, const int32_t *mask, bool causal, int64_t g0,
                                        int64_t G, int T, int NH, float scale) {
  int lane = threadIdx.x & 31;
  int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  if (r >= G * T) return;
  int64_t g = g0 + r / T;
  int i = (int)(r % T);
  int first = first_token(mask + (g / NH) * T, T);
  bool blind = causal ? first > i : first == T;
  float *d = dp + r * T;
  const float *p = probs + r * T;
  float part = 0;
  for (int j = lane; j < T; j += 32) part += p[j] * d[j];
  float pdp = warp_sum(part);
  for (int j = lane; j < T; j += 32) d[j] = blind ? 0.0f : p[j] * (d[j] - pdp) * scale;
}

static int rows_launch(int64_t rows, unsigned *blocks) {
  int64_t b = (rows + 7) / 8;   /* 8 warps per block */
  if (b > 0x7fffffff) return fail(LACOS_ELIMIT, "attention on CUDA: %lld query rows is too many", (long long)rows);
  *blocks = (unsigned)b;
  return LACOS_OK;
}

// out (B,T,C), probs (B,NH,T,T) or NULL, qkv (B,T,3C), mask (B,T), slopes (NH) or NULL
extern "C" int attention_forward_cuda(float *out, float *probs, const float *qkv, const int32_t *mask,
                                      const float *slopes, bool causal, int B, int T, int C, int NH, scratch ws) {
  int64_t heads = (int64_t)B * NH, TT = (int64_t)T * T;
  if (heads == 0 || T == 0) return LACOS_OK;
  int HD = C / NH;
  int64_t THD = (int64_t)T * HD;
  int64_t chunk = 1;
  TRY(attn_chunk(ws, heads, attn_per_head(T, HD, probs != NULL, false), sizeof(float) * (size_t)TT, &chunk));
  TRY(cuda_init());
  float *q = (float *)ws.p, *k = q + chunk * THD, *v = k + chunk * THD, *o = v + chunk * THD, *sc = o + chunk * THD;
  float scale = 1.0f / sqrtf((float)HD);
  cudaStream_t st = cuda_stream();
  for (int64_t g0 = 0; g0 < heads; g0 += chunk) {
    int64_t G = heads - g0 < chunk ? heads - g0 : chunk;
    float *p = probs ? probs + g0 * TT : sc;
    unsigned gb = grid_for(G * THD), rb = 0;
    gather_heads_kernel<<<gb, THREADS, 0, st>>>(q, qkv, g0, G, T, HD, NH, 3 * (int64_t)C, 0);
    gather_heads_kernel<<<gb, THREADS, 0, st>>>(k, qkv, g0, G, T, HD, NH, 3 * (int64_t)C, C);
    gather_heads_kernel<<<gb, THREADS, 0, st>>>(v, qkv, g0, G, T, HD, NH, 3 * (int64_t)C, 2 * (int64_t)C);
    LAUNCH_CHECK("gather_heads_kernel");
    // p (G,T,T) = scale · q·kᵀ
    TRY(gemm_batched_cuda(LACOS_F32, false, true, T, T, HD, scale, q, HD, THD, k, HD, THD, 0.0f, p, T, TT, (int)G));
    TRY(rows_launch(G * T, &rb));
    masked_softmax_kernel<<<rb, 256, 0, st>>>(p, mask, slopes, causal, g0, G, T, NH);
    LAUNCH_CHECK("masked_softmax_kernel");
    // o (G,T,HD) = p·v
    TRY(gemm_batched_cuda(LACOS_F32, false, false, T, HD, T, 1.0f, p, T, TT, v, HD, THD, 0.0f, o, HD, THD, (int)G));
    scatter_heads_kernel<<<gb, THREADS, 0, st>>>(out, o, g0, G, T, HD, NH, C, 0, false);
    LAUNCH_CHECK("scatter_heads_kernel");
  }
  return LACOS_OK;
}

// dqkv (B,T,3C) +=, dout (B,T,C), probs (B,NH,T,T), qkv (B,T,3C), mask (B,T)
extern "C" int attention_backward_cuda(float *dqkv, const float *dout, const float *probs, const float *qkv,
                                       const int32_t *mask, bool causal, int B, int T, int C, int NH, scratch ws) {
  int64_t heads = (int64_t)B * NH, TT = (int64_t)T * T;
  if (heads == 0 || T == 0) return LACOS_OK;
  int HD = C / NH;
  int64_t THD = (int64_t)T * HD, C3 = 3 * (int64_t)C;
  int64_t chunk = 1;
  TRY(attn_chunk(ws, heads, attn_per_head(T, HD, true, true), sizeof(float) * (size_t)TT, &chunk));
  TRY(cuda_init());
  float *q = (float *)ws.p, *k = q + chunk * THD, *v = k + chunk * THD, *go = v + chunk * THD, *dq = go + chunk * THD,
        *dk = dq + chunk * THD, *dv = dk + chunk * THD, *dp = dv + chunk * THD;
  float scale = 1.0f / sqrtf((float)HD);
  cudaStream_t st = cuda_stream();
  for (int64_t g0 = 0; g0 < heads; g0 += chunk) {
    int64_t G = heads - g0 < chunk ? heads - g0 : chunk;
    const float *p = probs + g0 * TT;
    unsigned gb = grid_for(G * THD), rb = 0;
    gather_heads_kernel<<<gb, THREADS, 0, st>>>(q, qkv, g0, G, T, HD, NH, C3, 0);
    gather_heads_kernel<<<gb, THREADS, 0, st>>>(k, qkv, g0, G, T, HD, NH, C3, C);
    gather_heads_kernel<<<gb, THREADS, 0, st>>>(v, qkv, g0, G, T, HD, NH, C3, 2 * (int64_t)C);
    gather_heads_kernel<<<gb, THREADS, 0, st>>>(go, dout, g0, G, T, HD, NH, C, 0);
    LAUNCH_CHECK("gather_heads_kernel");
    // dp (G,T,T) = dout·vᵀ; dv (G,T,HD) = pᵀ·dout
    TRY(gemm_batched_cuda(LACOS_F32, false, true, T, T, HD, 1.0f, go, HD, THD, v, HD, THD, 0.0f, dp, T, TT, (int)G));
    TRY(gemm_batched_cuda(LACOS_F32, true, false, T, HD, T, 1.0f, p, T, TT, go, HD, THD, 0.0f, dv, HD, THD, (int)G));
    TRY(rows_launch(G * T, &rb));
    softmax_backward_kernel<<<rb, 256, 0, st>>>(dp, p, mask, causal, g0, G, T, NH, scale);
    LAUNCH_CHECK("softmax_backward_kernel");
    // dq = ds·k; dk = dsᵀ·q (the scale is in ds)
    TRY(gemm_batched_cuda(LACOS_F32, false, false, T, HD, T, 1.0f, dp, T, TT, k, HD, THD, 0.0f, dq, HD, THD, (int)G));
    TRY(gemm_batched_cuda(LACOS_F32, true, false, T, HD, T, 1.0f, dp, T, TT, q, HD, THD, 0.0f, dk, HD, THD, (int)G));
    scatter_heads_kernel<<<gb, THREADS, 0, st>>>(dqkv, dq, g0, G, T, HD, NH, C3, 0, true);
    scatter_heads_kernel<<<gb, THREADS, 0, st>>>(dqkv, dk, g0, G, T, HD, NH, C3, C, true);
    scatter_heads_kernel<<<gb, THREADS, 0, st>>>(dqkv, dv, g0, G, T, HD, NH, C3, 2 * (int64_t)C, true);
    LAUNCH_CHECK("scatter_heads_kernel");
  }
  return LACOS_OK;
}
