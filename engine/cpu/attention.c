/* attention.c: self-attention over a fused qkv buffer, causal with ALiBi
   (BLOOM) or bidirectional without a position bias (BERT).

   Matches transformers' BloomAttention: scores = alibi + (1/√HD)·q·kᵀ, a
   causal and a padding mask filled with the f32 minimum (finite, so a row
   with no visible key — a left-padding query — softmaxes to uniform weights
   instead of NaN), softmax in f32, then ·v. ALiBi positions follow
   build_alibi_tensor: pos = (cumsum(mask) − 1)·mask over the keys, so left
   padding gives the first real token position 0. The qkv buffer holds
   [Q | K | V] blocks per row (bloom.c undoes the checkpoint's per-head
   interleave once at load). With causal false every query sees every real
   key and slopes may be NULL (no bias): BertSelfAttention with its additive
   padding mask, which softmaxes to the same exact zeros. */
#include "layers.h"
#include "../math/fastexp.h"
#include <float.h>
#include <math.h>

void alibi_slopes(float *slopes, int NH) {
  /* build_alibi_tensor: c = 2^floor(log2 NH), base 2^(-8/c), powers 1..c;
     the remaining heads take odd powers of 2^(-4/c). */
  int c = 1;
  while (c * 2 <= NH) c *= 2;
  float base = (float)pow(2.0, -8.0 / c), extra = (float)pow(2.0, -4.0 / c);
  for (int h = 0; h < c; h++) slopes[h] = powf(base, (float)(h + 1));
  for (int h = c; h < NH; h++) slopes[h] = powf(extra, (float)(2 * (h - c) + 1));
}

static void key_positions(float *pos, const int32_t *mask, int T) {
  int run = 0;
  for (int j = 0; j < T; j++) {
    run += mask[j] != 0;
    pos[j] = mask[j] ? (float)(run - 1) : 0.0f;
  }
}

/* The forward works on four queries at a time (QR) and VL = 16 keys or
   features (one AVX-512 register of floats): the 4 × 16 partial sums live
   in local arrays the compiler keeps in registers, each key vector loaded
   once serves the four queries, and the four chains of fused multiply-adds
   (fmaf: one rounding per term) overlap instead of each waiting for the one
   before. */
enum { VL = 16, QR = 4 };

/* Rows of the transposed keys (or values) and of a block's scores: T
   rounded up past the last block of queries to whole vectors. */
static int key_stride(int T) { return (T + QR + VL - 1) / VL * VL; }
/* One thread's buffers in floats: forward key positions (T), keys
   transposed (HD, ld), values (T, HD), scores (QR, ld) and outputs (QR, HD);
   backward values transposed (HD, ld), keys, dk, dv (T, HD each), p, dp, ds
   (QR, ld each) and dq (QR, HD). */
static size_t forward_floats(int T, int HD) {
  size_t ld = (size_t)key_stride(T);
  return (size_t)T + (size_t)HD * ld + (size_t)T * HD + QR * ld + (size_t)QR * HD;
}
static size_t backward_floats(int T, int HD) {
  size_t ld = (size_t)key_stride(T);
  return (size_t)HD * ld + 3 * (size_t)T * HD + 3 * QR * ld + (size_t)QR * HD;
}

// s (QR, ld) = q_r · kt[:, j] for keys j < n (rounded up to VL), q_r = q + r·ldq for r < rows
// (rows beyond repeat the last one), kt (HD, ld)
static void block_scores(float *s, const float *q, int64_t ldq, int rows, const float *kt, int ld, int HD, int n) {
  const float *q0 = q, *q1 = q + (rows > 1 ? 1 : 0) * ldq, *q2 = q + (rows > 2 ? 2 : rows - 1) * ldq,
              *q3 = q + (rows > 3 ? 3 : rows - 1) * ldq;
  for (int j0 = 0; j0 < n; j0 += VL) {
    float a0[VL] = {0}, a1[VL] = {0}, a2[VL] = {0}, a3[VL] = {0};
    for (int e = 0; e < HD; e++) {
      const float *k = kt + (int64_t)e * ld + j0;
      float x0 = q0[e], x1 = q1[e], x2 = q2[e], x3 = q3[e];
      #pragma omp simd
      for (int jj = 0; jj < VL; jj++) {
        a0[jj] = fmaf(x0, k[jj], a0[jj]);
        a1[jj] = fmaf(x1, k[jj], a1[jj]);
        a2[jj] = fmaf(x2, k[jj], a2[jj]);
        a3[jj] = fmaf(x3, k[jj], a3[jj]);
      }
    }
    memcpy(s + j0, a0, sizeof a0);
    memcpy(s + ld + j0, a1, sizeof a1);
    memcpy(s + 2 * ld + j0, a2, sizeof a2);
    memcpy(s + 3 * ld + j0, a3, sizeof a3);
  }
}

// o_r (HD) = Σ_{j<n} p_r[j] · v_j, o_r = o + r·ldo, p (QR, ld), v (n, HD)
static void block_output(float *o, int64_t ldo, const float *p, int ld, const float *v, int HD, int n) {
  int e0 = 0;
  for (; e0 + VL <= HD; e0 += VL) {
    float a0[VL] = {0}, a1[VL] = {0}, a2[VL] = {0}, a3[VL] = {0};
    for (int j = 0; j < n; j++) {
      const float *vj = v + (int64_t)j * HD + e0;
      float x0 = p[j], x1 = p[ld + j], x2 = p[2 * ld + j], x3 = p[3 * ld + j];
      #pragma omp simd
      for (int ee = 0; ee < VL; ee++) {
        a0[ee] = fmaf(x0, vj[ee], a0[ee]);
        a1[ee] = fmaf(x1, vj[ee], a1[ee]);
        a2[ee] = fmaf(x2, vj[ee], a2[ee]);
        a3[ee] = fmaf(x3, vj[ee], a3[ee]);
      }
    }
    memcpy(o + e0, a0, sizeof a0);
    memcpy(o + ldo + e0, a1, sizeof a1);
    memcpy(o + 2 * ldo + e0, a2, sizeof a2);
    memcpy(o + 3 * ldo + e0, a3, sizeof a3);
  }
  /* a head size that is not a multiple of VL: the last features */
  for (int r = 0; r < QR && e0 < HD; r++)
    for (int e = e0; e < HD; e++) {
      float a = 0;
      for (int j = 0; j < n; j++) a = fmaf(p[(int64_t)r * ld + j], v[(int64_t)j * HD + e], a);
      o[r * ldo + e] = a;
    }
}

/* Softmax of one query's scores p over its keys (causal: j < i + 1; else
   all T) with ALiBi and the padding mask; after it p holds the weights of
   keys j < max(upto, n), 0 beyond the causal keys. Returns n, how many
   leading keys can weigh: i + 1 (causal) or T, and T for a query with no
   visible key (a left-padding query), whose scores are all the fill value,
   the future keys' too, so its softmax is uniform over all T keys. */
static int softmax_row(float *p, const int32_t *mb, const float *pos, float scale, float slope, bool causal, int i, int T,
                       int upto) {
  int n = causal ? i + 1 : T;
  float mx = -FLT_MAX;
  #pragma omp simd reduction(max:mx)
  for (int j = 0; j < n; j++) {
    float s = mb[j] ? p[j] * scale + slope * pos[j] : -FLT_MAX;
    p[j] = s;
    mx = s > mx ? s : mx;
  }
  if (mx == -FLT_MAX && n < T) {   /* blind and causal: the future keys join with the fill value */
    for (int j = n; j < T; j++) p[j] = -FLT_MAX;
    n = T;
  }
  /* exp and sum in whole vectors of VL (p has room up to T rounded up): a
     blind query's future keys hold the fill value like the others, the
     keys past n hold -inf and weigh 0 */
  int nv = (n + VL - 1) / VL * VL;
  for (int j = n; j < nv; j++) p[j] = -INFINITY;
  float acc[VL] = {0};
  for (int j0 = 0; j0 < nv; j0 += VL) {
    #pragma omp simd
    for (int jj = 0; jj < VL; jj++) {
      p[j0 + jj] = fast_expf(p[j0 + jj] - mx);
      acc[jj] += p[j0 + jj];
    }
  }
  float sum = 0;
  for (int jj = 0; jj < VL; jj++) sum += acc[jj];
  float inv = 1.0f / sum;
  for (int j0 = 0; j0 < nv; j0 += VL) {
    #pragma omp simd
    for (int jj = 0; jj < VL; jj++) p[j0 + jj] *= inv;
  }
  for (int j = nv; j < upto; j++) p[j] = 0;
  return n;
}

// out (B,T,C), probs (B,NH,T,T) or NULL, qkv (B,T,3C), mask (B,T), slopes (NH) or NULL
// Per (batch, head): the keys are copied transposed (kt (HD,T)) so that
// scores are vector operations along the keys, and the values next to each
// other (vh (T,HD)), out of qkv's rows 3C apart. Only the causal keys of a
// block of queries are computed: the later ones would weigh exactly 0 after
// softmax's max (exp of the fill value minus a real score).
int attention_forward(float *out, float *probs, const float *qkv, const int32_t *mask,
                      const float *slopes, bool causal, int B, int T, int C, int NH, scratch ws) {
  if (B == 0 || T == 0) return LACOS_OK;
  int HD = C / NH, C3 = 3 * C, ld = key_stride(T);
  float scale = 1.0f / sqrtf((float)HD);
  size_t per = forward_floats(T, HD) * sizeof(float);
  int nt = scratch_threads(ws, per);
  if (nt < 1) return fail(LACOS_ELIMIT, "attention: %zu bytes of scratch cannot hold one head's keys (%zu bytes)",
                          ws.bytes, per);
  /* small problems run on one thread: a parallel region costs more than it
     saves. The (batch, head) pairs go to the threads as they come free: on
     a shared machine a thread that lost its core leaves its pairs to the
     other instead of holding it at the end. */
  #pragma omp parallel num_threads(nt) if ((int64_t)B * NH * T * T * HD > 262144)
  {
    float *pos = (float *)((char *)ws.p + per * (size_t)omp_get_thread_num());
    float *kt = pos + T, *vh = kt + (size_t)HD * ld, *sc = vh + (size_t)T * HD, *ob = sc + (size_t)QR * ld;
    #pragma omp for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++) {
      for (int h = 0; h < NH; h++) {
        const int32_t *mb = mask + (int64_t)b * T;
        key_positions(pos, mb, T);
        float slope = slopes ? slopes[h] : 0.0f;
        for (int j = 0; j < T; j++) {
          const float *k = qkv + ((int64_t)b * T + j) * C3 + C + h * HD;
          for (int e = 0; e < HD; e++) kt[(int64_t)e * ld + j] = k[e];
          memcpy(vh + (int64_t)j * HD, k + C, sizeof(float) * (size_t)HD);
        }
        for (int e = 0; e < HD; e++)
          for (int j = T; j < ld; j++) kt[(int64_t)e * ld + j] = 0;
        for (int i0 = 0; i0 < T; i0 += QR) {
          int rows = T - i0 < QR ? T - i0 : QR;   /* the last block may hold fewer queries */
          const float *q = qkv + ((int64_t)b * T + i0) * C3 + h * HD;
          block_scores(sc, q, C3, rows, kt, ld, HD, causal ? i0 + QR : T);
          int upto = causal ? i0 + rows : T;
          int nr[QR], n = upto;   /* the keys each query, and the block, can weigh */
          for (int r = 0; r < rows; r++) {
            nr[r] = softmax_row(sc + (int64_t)r * ld, mb, pos, scale, slope, causal, i0 + r, T, upto);
            if (nr[r] > n) n = nr[r];   /* T: a blind query */
          }
          for (int r = 0; r < rows; r++) {
            float *pr = sc + (int64_t)r * ld;
            if (nr[r] < n) memset(pr + upto, 0, sizeof(float) * (size_t)(n - upto));
            if (probs) {
              float *dst = probs + (((int64_t)b * NH + h) * T + i0 + r) * T;
              memcpy(dst, pr, sizeof(float) * (size_t)n);
              memset(dst + n, 0, sizeof(float) * (size_t)(T - n));
            }
          }
          for (int r = rows; r < QR; r++) memset(sc + (int64_t)r * ld, 0, sizeof(float) * (size_t)n);
          if (rows == QR) block_output(out + ((int64_t)b * T + i0) * C + h * HD, C, sc, ld, vh, HD, n);
          else {
            block_output(ob, HD, sc, ld, vh, HD, n);
            for (int r = 0; r < rows; r++)
              memcpy(out + ((int64_t)b * T + i0 + r) * C + h * HD, ob + (int64_t)r * HD, sizeof(float) * (size_t)HD);
          }
        }
      }
    }
  }
  return LACOS_OK;
}

// dqkv (B,T,3C) +=, dout (B,T,C), probs (B,NH,T,T), qkv (B,T,3C), mask (B,T)
// A query row with no visible key had constant (masked) scores: it passes
// gradient to the values it averaged but none to its query or the keys.
// Per (batch, head), four queries at a time, with the forward's kernels:
//   dp_r = dout_r · vᵀ (block_scores over the values transposed, vt (HD,T))
//   ds_r = p_r ∘ (dp_r − p_r·dp_r) / √HD (0 for a blind query)
//   dq_r += Σ_j ds_r[j] k_j (block_output over the keys, kh (T,HD))
//   dv_j += Σ_r p_r[j] dout_r,  dk_j += Σ_r ds_r[j] q_r (into dvh, dkh (T,HD),
//   added to dqkv once per head).
int attention_backward(float *dqkv, const float *dout, const float *probs, const float *qkv,
                       const int32_t *mask, bool causal, int B, int T, int C, int NH, scratch ws) {
  if (B == 0 || T == 0) return LACOS_OK;
  int HD = C / NH, C3 = 3 * C, ld = key_stride(T);
  float scale = 1.0f / sqrtf((float)HD);
  size_t per = backward_floats(T, HD) * sizeof(float);
  int nt = scratch_threads(ws, per);
  if (nt < 1) return fail(LACOS_ELIMIT, "attention: %zu bytes of scratch cannot hold one head's keys (%zu bytes)",
                          ws.bytes, per);
  #pragma omp parallel num_threads(nt) if ((int64_t)B * NH * T * T * HD > 262144)
  {
    size_t th = (size_t)T * HD;
    float *vt = (float *)((char *)ws.p + per * (size_t)omp_get_thread_num());
    float *kh = vt + (size_t)HD * ld, *dkh = kh + th, *dvh = dkh + th;
    float *pb = dvh + th, *dp = pb + (size_t)QR * ld, *ds = dp + (size_t)QR * ld, *dqb = ds + (size_t)QR * ld;
    #pragma omp for collapse(2) schedule(dynamic)   /* as the forward's */
    for (int b = 0; b < B; b++) {
      for (int h = 0; h < NH; h++) {
        const int32_t *mb = mask + (int64_t)b * T;
        int first = 0;
        while (first < T && !mb[first]) first++;
        for (int j = 0; j < T; j++) {
          const float *k = qkv + ((int64_t)b * T + j) * C3 + C + h * HD;
          memcpy(kh + (int64_t)j * HD, k, sizeof(float) * (size_t)HD);
          for (int e = 0; e < HD; e++) vt[(int64_t)e * ld + j] = k[C + e];
        }
        for (int e = 0; e < HD; e++)
          for (int j = T; j < ld; j++) vt[(int64_t)e * ld + j] = 0;
        memset(dkh, 0, sizeof(float) * 2 * th);
        for (int i0 = 0; i0 < T; i0 += QR) {
          int rows = T - i0 < QR ? T - i0 : QR;
          /* keys with weight: all T without the causal mask or for a blind query */
          int n = !causal || first > i0 ? T : i0 + rows;
          int nv = (n + VL - 1) / VL * VL;
          memset(pb, 0, sizeof(float) * (size_t)QR * ld);
          for (int r = 0; r < rows; r++)
            memcpy(pb + (int64_t)r * ld, probs + (((int64_t)b * NH + h) * T + i0 + r) * T, sizeof(float) * (size_t)n);
          const float *go = dout + ((int64_t)b * T + i0) * C + h * HD;
          block_scores(dp, go, C, rows, vt, ld, HD, n);
          memset(ds, 0, sizeof(float) * (size_t)QR * ld);
          for (int r = 0; r < rows; r++) {
            if (causal ? first > i0 + r : first == T) continue;   /* blind: no gradient to q or k */
            const float *pr = pb + (int64_t)r * ld, *dpr = dp + (int64_t)r * ld;
            float *dsr = ds + (int64_t)r * ld, pdp = 0;
            for (int j = 0; j < n; j++) pdp += pr[j] * dpr[j];
            #pragma omp simd
            for (int j = 0; j < nv; j++) dsr[j] = pr[j] * (dpr[j] - pdp) * scale;
          }
          /* dq of the block's queries */
          block_output(dqb, HD, ds, ld, kh, HD, n);
          for (int r = 0; r < rows; r++) {
            float *dq = dqkv + ((int64_t)b * T + i0 + r) * C3 + h * HD;
            #pragma omp simd
            for (int e = 0; e < HD; e++) dq[e] += dqb[(int64_t)r * HD + e];
          }
          /* dv and dk of the keys they weighed (rows past the last query weigh 0) */
          const float *g[QR], *q[QR];
          for (int r = 0; r < QR; r++) {
            int rr = r < rows ? r : 0;
            g[r] = go + (int64_t)rr * C;
            q[r] = qkv + ((int64_t)b * T + i0 + rr) * C3 + h * HD;
          }
          for (int j = 0; j < n; j++) {
            float p0 = pb[j], p1 = pb[ld + j], p2 = pb[2 * ld + j], p3 = pb[3 * ld + j];
            float s0 = ds[j], s1 = ds[ld + j], s2 = ds[2 * ld + j], s3 = ds[3 * ld + j];
            float *dv = dvh + (int64_t)j * HD, *dk = dkh + (int64_t)j * HD;
            #pragma omp simd
            for (int e = 0; e < HD; e++) {
              dv[e] += p0 * g[0][e] + p1 * g[1][e] + p2 * g[2][e] + p3 * g[3][e];
              dk[e] += s0 * q[0][e] + s1 * q[1][e] + s2 * q[2][e] + s3 * q[3][e];
            }
          }
        }
        for (int j = 0; j < T; j++) {
          float *d = dqkv + ((int64_t)b * T + j) * C3 + C + h * HD;
          #pragma omp simd
          for (int e = 0; e < HD; e++) { d[e] += dkh[(int64_t)j * HD + e]; d[C + e] += dvh[(int64_t)j * HD + e]; }
        }
      }
    }
  }
  return LACOS_OK;
}

/* Per thread: the forward's or the backward's buffers of one (batch, head)
   (forward_floats, backward_floats), for every thread the engine runs. */
size_t attention_scratch(int B, int T, int C, int NH, bool probs, bool backward) {
  (void)B; (void)probs;
  int HD = NH > 0 ? C / NH : 0;
  size_t per = backward ? backward_floats(T, HD) : forward_floats(T, HD);
  return sizeof(float) * per * (size_t)threads_count();
}
