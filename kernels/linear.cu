/* linear.cu: twin of engine/cpu/linear.c — y = x·Wᵀ + b with f32 or
   LLM.int8 weights, the input gradient, and the GEMMs under them.

   int8 (bitsandbytes int8_vectorwise_quant + int8_scaled_mm): activation
   rows are quantised with their own absmax (half to even, __float2int_rn =
   rintf), multiplied against the int8 weight codes by cuBLASLt in int32
   (CUBLAS_COMPUTE_32I, plain column-major layouts, A transposed: the "TN"
   form Hopper supports; never the COL32/COL4_4R2_8C transforms), and
   dequantised with out = C·absmax_row·scale_col/(127·127). The quantiser
   and the integer product are exact, so they give the CPU's bits; the
   dequantisation multiplies in the CPU's order. Outlier feature columns
   (threshold > 0) go through an f32 product against the dequantised weight
   columns, added before the bias as on the CPU.

   f32/f16/bf16 products use cuBLASLt with f32 accumulation
   (CUBLAS_COMPUTE_32F, no TF32), descriptors built per call as in llm.c
   (llmc/matmul.cuh); pointer alignments are passed to the heuristic because
   its default assumes 256-byte aligned buffers, which views into a batch's
   activations are not. */
#include "common.cuh"
#include <pthread.h>

/* ---- cuBLASLt ---- */

static uint32_t alignment_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uint32_t al = 256;
  while (al > 1 && a % al) al >>= 1;
  return al;
}

/* Heuristic answers, kept: asking cuBLASLt for an algorithm costs tens of
   microseconds of host time, and a training step asks the same few shapes
   thousands of times. Keyed by everything the answer depends on. */
typedef struct lt_key {
  int compute, scale_type, ab_type, c_type, ta, tb, batch;
  int64_t m, n, k, lda, ldb, ldc, sa, sb, sc;
  uint32_t al_a, al_b, al_c;
} lt_key;
typedef struct lt_entry { lt_key key; cublasLtMatmulAlgo_t algo; int found; } lt_entry;
enum { LT_CACHE = 256 };
static lt_entry lt_cache[LT_CACHE];
static int lt_cached, lt_next;
static pthread_mutex_t lt_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool lt_lookup(const lt_key *key, lt_entry *out) {
  bool hit = false;
  pthread_mutex_lock(&lt_cache_lock);
  for (int i = 0; i < lt_cached && !hit; i++)
    if (!memcmp(&lt_cache[i].key, key, sizeof *key)) { *out = lt_cache[i]; hit = true; }
  pthread_mutex_unlock(&lt_cache_lock);
  return hit;
}

static void lt_store(const lt_entry *e) {
  pthread_mutex_lock(&lt_cache_lock);
  lt_cache[lt_next] = *e;
  lt_next = (lt_next + 1) % LT_CACHE;
  if (lt_cached < LT_CACHE) lt_cached++;
  pthread_mutex_unlock(&lt_cache_lock);
}

/* Column-major C (m×n, ldc) = alpha·op(A)·op(B) + beta·C, `batch` times
   with the given element strides between the matrices (batch 1: strides
   unused). With *unsupported given, "no algorithm for this shape" sets it
   and returns LACOS_OK instead of failing (the int8 product then takes its
   own kernel). */
static int lt_matmul(cublasComputeType_t compute, cudaDataType_t scale_type, cudaDataType_t ab_type,
                     cudaDataType_t c_type, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *alpha,
                     const void *A, int64_t lda, int64_t sa, const void *B, int64_t ldb, int64_t sb, const void *beta,
                     void *C, int64_t ldc, int64_t sc, int batch, bool *unsupported) {
  const lt_api *lt;
  TRY(lt_get(&lt));
  cublasLtMatmulDesc_t desc = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
  cublasLtMatmulPreference_t pref = NULL;
  cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  lt_key key;
  memset(&key, 0, sizeof key);   /* padding too: the key is compared with memcmp */
  key.compute = (int)compute; key.scale_type = (int)scale_type; key.ab_type = (int)ab_type; key.c_type = (int)c_type;
  key.ta = ta; key.tb = tb; key.batch = batch; key.m = m; key.n = n; key.k = k; key.lda = lda; key.ldb = ldb;
  key.ldc = ldc;
  if (batch > 1) { key.sa = sa; key.sb = sb; key.sc = sc; }
  key.al_a = alignment_of(A); key.al_b = alignment_of(B); key.al_c = alignment_of(C);
  lt_entry e;
  bool cached = lt_lookup(&key, &e);
  int st = LACOS_OK;
  cublasStatus_t cs;
#define LT(call) do { if ((cs = (call)) != CUBLAS_STATUS_SUCCESS) { st = cublas_fail(cs, #call, __FILE__, __LINE__); goto done; } } while (0)
  LT(lt->MatmulDescCreate(&desc, compute, scale_type));
  LT(lt->MatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
  LT(lt->MatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
  LT(lt->MatrixLayoutCreate(&la, ab_type, ta ? k : m, ta ? m : k, lda));
  LT(lt->MatrixLayoutCreate(&lb, ab_type, tb ? n : k, tb ? k : n, ldb));
  LT(lt->MatrixLayoutCreate(&lc, c_type, m, n, ldc));
  if (batch > 1) {
    int32_t count = batch;
    cublasLtMatrixLayout_t ls[3] = {la, lb, lc};
    int64_t strides[3] = {sa, sb, sc};
    for (int i = 0; i < 3; i++) {
      LT(lt->MatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
      LT(lt->MatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]));
    }
  }
  if (!cached) {
    cublasLtMatmulHeuristicResult_t heur;
    int found = 0;
    LT(lt->MatmulPreferenceCreate(&pref));
    LT(lt->MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &lt->workspace_bytes,
                                        sizeof lt->workspace_bytes));
    LT(lt->MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &key.al_a, sizeof key.al_a));
    LT(lt->MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &key.al_b, sizeof key.al_b));
    LT(lt->MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &key.al_c, sizeof key.al_c));
    LT(lt->MatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &key.al_c, sizeof key.al_c));
    cs = lt->MatmulAlgoGetHeuristic(lt->handle, desc, la, lb, lc, lc, pref, 1, &heur, &found);
    if (cs != CUBLAS_STATUS_SUCCESS && cs != CUBLAS_STATUS_NOT_SUPPORTED) {
      st = cublas_fail(cs, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
      goto done;
    }
    memset(&e, 0, sizeof e);
    e.key = key;
    e.found = cs == CUBLAS_STATUS_SUCCESS && found > 0;
    if (e.found) e.algo = heur.algo;
    lt_store(&e);
  }
  if (!e.found) {
    if (unsupported) { *unsupported = true; goto done; }
    st = fail(LACOS_EUNSUPPORTED, "cuBLASLt has no algorithm for a %lldx%lldx%lld product (types %d/%d)",
              (long long)m, (long long)n, (long long)k, (int)ab_type, (int)c_type);
    goto done;
  }
  cs = lt->Matmul(lt->handle, desc, alpha, A, la, B, lb, beta, C, lc, C, lc, &e.algo, lt->workspace,
                  lt->workspace_bytes, cuda_stream());
  if (cs == CUBLAS_STATUS_NOT_SUPPORTED && unsupported) *unsupported = true;
  else if (cs != CUBLAS_STATUS_SUCCESS) st = cublas_fail(cs, "cublasLtMatmul", __FILE__, __LINE__);
#undef LT
done:
  if (pref) lt->MatmulPreferenceDestroy(pref);
  if (lc) lt->MatrixLayoutDestroy(lc);
  if (lb) lt->MatrixLayoutDestroy(lb);
  if (la) lt->MatrixLayoutDestroy(la);
  if (desc) lt->MatmulDescDestroy(desc);
  return st;
}

__global__ void scale_matrix_kernel(float *c, int64_t ldc, int64_t rows, int64_t cols, float beta) {
  GRID_STRIDE(k, rows * cols) {
    float *x = c + (k / cols) * ldc + k % cols;
    *x = beta == 0.0f ? 0.0f : *x * beta;
  }
}

/* Row-major C (M,N) = alpha·op(A)·op(B) + beta·C is column-major
   Cᵀ = op(B)ᵀ·op(A)ᵀ: swap the operands and keep the flags. */
extern "C" int gemm_batched_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a,
                                 int lda, int64_t stride_a, const void *b, int ldb, int64_t stride_b, float beta,
                                 float *c, int ldc, int64_t stride_c, int batch) {
  if (M == 0 || N == 0 || batch <= 0) return LACOS_OK;
  TRY(cuda_init());
  if (K == 0) {   /* no product: C = beta·C, as BLAS */
    for (int i = 0; i < batch; i++) {
      scale_matrix_kernel<<<grid_for((int64_t)M * N), THREADS, 0, cuda_stream()>>>(c + i * stride_c, ldc, M, N, beta);
      LAUNCH_CHECK("scale_matrix_kernel");
    }
    return LACOS_OK;
  }
  cudaDataType_t t;
  switch (dtype) {
  case LACOS_F32: t = CUDA_R_32F; break;
  case LACOS_F16: t = CUDA_R_16F; break;
  case LACOS_BF16: t = CUDA_R_16BF; break;
  default: return fail(LACOS_EUNSUPPORTED, "GEMM inputs must be f32, f16 or bf16, got %s", lacos_dtype_name(dtype));
  }
  return lt_matmul(CUBLAS_COMPUTE_32F, CUDA_R_32F, t, CUDA_R_32F, trans_b, trans_a, N, M, K, &alpha, b, ldb, stride_b,
                   a, lda, stride_a, &beta, c, ldc, stride_c, batch, NULL);
}

extern "C" int gemm_cuda(int dtype, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const void *a,
                         int lda, const void *b, int ldb, float beta, float *c, int ldc) {
  return gemm_batched_cuda(dtype, trans_a, trans_b, M, N, K, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

/* ---- int8 × int8 → int32 ---- */

/* The exact fallback: 16×16 tiles through shared memory. */
__global__ void gemm_s8_kernel(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda,
                               const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc) {
  __shared__ int32_t As[16][17], Bs[16][17];
  int tx = threadIdx.x, ty = threadIdx.y;
  int64_t i = (int64_t)blockIdx.y * 16 + ty, j = (int64_t)blockIdx.x * 16 + tx;
  int32_t acc = 0;
  for (int64_t k0 = 0; k0 < K; k0 += 16) {
    int64_t ka = k0 + tx, kb = k0 + ty;
    As[ty][tx] = i < M && ka < K ? a[i * lda + ka] : 0;
    Bs[ty][tx] = j < N && kb < K ? (trans_b ? b[j * ldb + kb] : b[kb * ldb + j]) : 0;
    __syncthreads();
    for (int kk = 0; kk < 16; kk++) acc += As[ty][kk] * Bs[kk][tx];
    __syncthreads();
  }
  if (i < M && j < N) c[i * ldc + j] = acc;
}

/* Exact either way: no scratch. */
extern "C" size_t gemm_s8_scratch_cuda(int64_t M, int64_t N, int64_t K) { (void)M; (void)N; (void)K; return 0; }

extern "C" int gemm_s8_cuda(bool trans_b, int64_t M, int64_t N, int64_t K, const int8_t *a, int64_t lda,
                            const int8_t *b, int64_t ldb, int32_t *c, int64_t ldc, scratch ws) {
  (void)ws;
  if (M == 0 || N == 0) return LACOS_OK;
  TRY(cuda_init());
  /* IMMA needs m and k multiples of 4 and 4-byte aligned operands. */
  bool try_lt = K > 0 && K % 4 == 0 && N % 4 == 0 && lda % 4 == 0 && ldb % 4 == 0 && ldc % 4 == 0 &&
                alignment_of(a) >= 4 && alignment_of(b) >= 4 && alignment_of(c) >= 4;
  bool unsupported = !try_lt;
  if (try_lt) {
    int32_t one = 1, zero = 0;
    TRY(lt_matmul(CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I, trans_b, false, N, M, K, &one, b, ldb, 0, a,
                  lda, 0, &zero, c, ldc, 0, 1, &unsupported));
  }
  if (unsupported) {
    if (M > 65535 * 16) return fail(LACOS_ELIMIT, "int8 product with %lld rows is too large for the fallback kernel", (long long)M);
    dim3 grid((unsigned)((N + 15) / 16), (unsigned)((M + 15) / 16)), block(16, 16);
    gemm_s8_kernel<<<grid, block, 0, cuda_stream()>>>(trans_b, M, N, K, a, lda, b, ldb, c, ldc);
    LAUNCH_CHECK("gemm_s8_kernel");
  }
  return LACOS_OK;
}

/* ---- quantisation ---- */

// q (N,C) int8, absmax (N), x (N,C): one block per row
__global__ void quantize_rows_kernel(int8_t *q, float *absmax, const float *x, int C, float threshold) {
  __shared__ float red[32];
  int64_t i = blockIdx.x;
  const float *xi = x + i * C;
  int8_t *qi = q + i * C;
  float m = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float a = fabsf(xi[c]);
    if (threshold > 0 ? a < threshold && a > m : a > m) m = a;
  }
  m = block_max(m, red);
  if (threadIdx.x == 0) absmax[i] = m;
  float k = m > 0 ? 127.0f / m : 0.0f;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float v = xi[c];
    if (threshold > 0 && fabsf(v) >= threshold) v = 0;
    qi[c] = (int8_t)__float2int_rn(v * k);
  }
}

/* flags[c] = 1 when some row holds |x| >= threshold in column c. */
__global__ void outlier_flags_kernel(int *flags, const float *x, int64_t N, int C, float threshold) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  int hit = 0;
  for (int64_t i = 0; i < N && !hit; i++) hit = fabsf(x[i * C + c]) >= threshold;
  flags[c] = hit;
}

/* One warp, in place: cols holds the flags on entry and the flagged column
   indices, ascending, on exit; *count their number. A chunk of 32 flags is
   read (ballot) before any of its indices are written, and indices land at
   or before the chunk they come from. */
__global__ void outlier_compact_kernel(int *cols, int C, int *count) {
  int lane = threadIdx.x, n = 0;
  for (int c0 = 0; c0 < C; c0 += 32) {
    int c = c0 + lane, f = c < C ? cols[c] : 0;
    unsigned bal = __ballot_sync(0xffffffffu, f);
    __syncwarp();
    if (f) cols[n + __popc(bal & ((1u << lane) - 1))] = c;
    n += __popc(bal);
    __syncwarp();
  }
  if (lane == 0) *count = n;
}

__global__ void zero_columns_kernel(int8_t *q, int64_t N, int C, const int *cols, int nc) {
  GRID_STRIDE(k, N * nc) q[(k / nc) * C + cols[k % nc]] = 0;
}

/* ws: 4 bytes of device memory for the outlier count (threshold > 0). */
extern "C" int quantize_rows_cuda(int8_t *q, float *absmax, const float *x, int64_t N, int C, float threshold,
                                  int *cols, int *ncols, scratch ws) {
  int nc = 0;
  if (ncols) *ncols = 0;
  if (N == 0) return LACOS_OK;
  TRY(cuda_init());
  if (threshold > 0 && cols) {
    /* The column count sizes the outlier product, so it comes to the host. */
    if (ws.bytes < sizeof(int)) return fail(LACOS_ELIMIT, "quantize_rows on CUDA: no scratch for the outlier count");
    outlier_flags_kernel<<<(C + THREADS - 1) / THREADS, THREADS, 0, cuda_stream()>>>(cols, x, N, C, threshold);
    LAUNCH_CHECK("outlier_flags_kernel");
    outlier_compact_kernel<<<1, 32, 0, cuda_stream()>>>(cols, C, (int *)ws.p);
    LAUNCH_CHECK("outlier_compact_kernel");
    TRY(cuda_download(&nc, ws.p, sizeof nc));
  }
  if (ncols) *ncols = nc;
  quantize_rows_kernel<<<(unsigned)N, THREADS, 0, cuda_stream()>>>(q, absmax, x, C, threshold);
  LAUNCH_CHECK("quantize_rows_kernel");
  if (nc > 0 && N > 1) {
    zero_columns_kernel<<<grid_for(N * nc), THREADS, 0, cuda_stream()>>>(q, N, C, cols, nc);
    LAUNCH_CHECK("zero_columns_kernel");
  }
  return LACOS_OK;
}

/* ---- the linear layer ---- */

#define DEQ (1.0f / 16129.0f)   /* 1/(127·127), folded to linear.c's float constant */

// out (N,K_out) = C·(rs_i·DEQ)·sc_j (+ bias_j when given)
__global__ void dequant_kernel(float *out, const int32_t *c, const float *rs, const float *sc, const float *bias,
                               int64_t N, int K_out) {
  GRID_STRIDE(k, N * K_out) {
    int64_t i = k / K_out;
    int j = (int)(k % K_out);
    float v = (float)c[k] * (rs[i] * DEQ) * sc[j];
    if (bias) v += bias[j];
    out[k] = v;
  }
}

__global__ void add_bias_kernel(float *out, const float *bias, int64_t N, int K_out) {
  GRID_STRIDE(k, N * K_out) out[k] += bias[k % K_out];
}

// xa (N,nc) = inp[:, cols[0..nc)]; wa (K_out,nc) = dequantised W[:, cols[0..nc)]
__global__ void gather_outliers_kernel(float *xa, float *wa, const float *inp, const int8_t *q, const float *sc,
                                       const int *cols, int64_t N, int K_in, int K_out, int nc) {
  GRID_STRIDE(k, (N + K_out) * nc) {
    int64_t r = k / nc;
    int j = (int)(k % nc);
    if (r < N) xa[k] = inp[r * K_in + cols[j]];
    else {
      int64_t o = r - N;
      wa[o * nc + j] = q[o * K_in + cols[j]] * (sc[o] / 127.0f);
    }
  }
}

// wt (nr,K_in) = rows r0.. of W dequantised (linear_weight_row)
__global__ void dequant_rows_kernel(float *wt, const int8_t *q, const float *scale, int r0, int nr, int K_in) {
  GRID_STRIDE(k, (int64_t)nr * K_in) {
    int64_t r = r0 + k / K_in;
    wt[k] = q[r * K_in + k % K_in] * (scale[r] / 127.0f);
  }
}

// g (N,K_out) = dout · diag(sc)
__global__ void scale_columns_kernel(float *g, const float *dout, const float *sc, int64_t N, int K_out) {
  GRID_STRIDE(k, N * K_out) g[k] = dout[k] * sc[k % K_out];
}

// qt (cols,rows) = q (rows,cols)ᵀ, through 32×32 tiles in shared memory
__global__ void transpose_s8_kernel(int8_t *qt, const int8_t *q, int rows, int cols) {
  __shared__ int8_t tile[32][33];
  int c0 = blockIdx.x * 32, r0 = blockIdx.y * 32;
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    int r = r0 + k, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[k][threadIdx.x] = q[(int64_t)r * cols + c];
  }
  __syncthreads();
  for (int k = threadIdx.y; k < 32; k += blockDim.y) {
    int c = c0 + k, r = r0 + threadIdx.x;
    if (r < rows && c < cols) qt[(int64_t)c * rows + r] = tile[threadIdx.x][k];
  }
}

// dinp (N,K_in) += C·(rs_i·DEQ)
__global__ void accumulate_int32_kernel(float *dinp, const int32_t *c, const float *rs, int64_t N, int K_in) {
  GRID_STRIDE(k, N * K_in) dinp[k] += (float)c[k] * (rs[k / K_in] * DEQ);
}

/* ---- scratch: pieces of the caller's region, 256-byte aligned ---- */

static size_t piece(size_t bytes) { return (bytes + 255) & ~(size_t)255; }

typedef struct carve { char *p; size_t used, bytes; } carve;

static int take(carve *k, void *out, size_t bytes, const char *what) {
  if (k->used + piece(bytes) > k->bytes)
    return fail(LACOS_ELIMIT, "int8 linear on CUDA: %s do not fit the %zu bytes of scratch given (%zu used)", what,
                k->bytes, k->used);
  *(void **)out = k->p + k->used;
  k->used += piece(bytes);
  return LACOS_OK;
}

static scratch rest_of(const carve *k) { return scratch{k->p + k->used, k->bytes - k->used}; }

/* Outlier columns go through the f32 product this many at a time. */
enum { OUTLIER_COLS = 256 };
/* Rows of dequantised weights per product in the exact input gradient:
   at most 64 MiB of them. */
static int exact_rows(int in, int out) {
  int rows = (int)((16u << 20) / (unsigned)in);
  if (rows < 1) rows = 1;
  return rows > out ? out : rows;
}

/* What each entry carves, in order (bytes): the forward's outlier columns
   come after its count. */
static size_t forward_parts(int64_t N, int in, int out, bool outliers) {
  size_t n = (size_t)N, cols = outliers ? (size_t)(in < OUTLIER_COLS ? in : OUTLIER_COLS) : 0;
  return piece(n * (size_t)in) + piece(4 * n) + piece(4 * n * (size_t)out) + piece(4 * (size_t)in) + piece(4) +
         (outliers ? piece(4 * (n + (size_t)out) * cols) : 0);
}
static size_t backward_parts(int64_t N, int in, int out, bool fast) {
  size_t n = (size_t)N;
  if (!fast) return piece(4 * (size_t)exact_rows(in, out) * (size_t)in);
  return piece(4 * n * (size_t)out) + piece(n * (size_t)out) + piece(4 * n) + piece(4 * n * (size_t)in) +
         piece((size_t)out * (size_t)in);
}

extern "C" size_t linear_scratch_cuda(int64_t N, int in, int out, int kind, bool outliers, bool backward,
                                      bool fast_int8) {
  if (kind != LINEAR_INT8 || N == 0) return 0;
  size_t f = forward_parts(N, in, out, outliers), b = backward ? backward_parts(N, in, out, fast_int8) : 0;
  return f > b ? f : b;
}

extern "C" int linear_forward_cuda(float *out, const float *inp, linear *l, int64_t N, float threshold, scratch ws) {
  int K_in = l->in, K_out = l->out;
  l->outliers = 0;
  if (N == 0) return LACOS_OK;
  TRY(cuda_init());
  bool bias_done = false;
  if (l->kind == LINEAR_F32) {
    TRY(sgemm_nt_cuda(out, inp, l->w, (int)N, K_out, K_in, 1.0f, 0.0f));
  } else {
    carve k = { (char *)ws.p, 0, ws.bytes };
    int8_t *a = NULL;
    float *rs = NULL;
    int32_t *c = NULL;
    int *cols = NULL;
    TRY(take(&k, &a, (size_t)N * K_in, "int8 activations"));
    TRY(take(&k, &rs, sizeof(float) * (size_t)N, "activation scales"));
    TRY(take(&k, &c, sizeof(int32_t) * (size_t)N * K_out, "int32 products"));
    TRY(take(&k, &cols, sizeof(int) * (size_t)K_in, "outlier columns"));
    int *count = NULL;
    TRY(take(&k, &count, sizeof(int), "outlier count"));
    int nc = 0;
    TRY(quantize_rows_cuda(a, rs, inp, N, K_in, threshold, cols, &nc, scratch{count, sizeof(int)}));
    TRY(gemm_s8_cuda(true, N, K_out, K_in, a, K_in, l->q, K_in, c, K_out, rest_of(&k)));
    bias_done = nc == 0 && l->bias;   /* no outlier term: the bias joins the dequantisation */
    dequant_kernel<<<grid_for(N * K_out), THREADS, 0, cuda_stream()>>>(out, c, rs, l->scale,
                                                                       bias_done ? l->bias : NULL, N, K_out);
    LAUNCH_CHECK("dequant_kernel");
    l->outliers = nc;
    if (nc > 0) {
      /* out += x[:, cols] · Wdeq[:, cols]ᵀ, up to OUTLIER_COLS columns per product */
      int step = nc < OUTLIER_COLS ? nc : OUTLIER_COLS;
      float *xa = NULL;
      TRY(take(&k, &xa, sizeof(float) * ((size_t)N + (size_t)K_out) * (size_t)step, "outlier columns"));
      float *wa = xa + (size_t)N * step;
      for (int j0 = 0; j0 < nc; j0 += step) {
        int m = nc - j0 < step ? nc - j0 : step;
        gather_outliers_kernel<<<grid_for((N + K_out) * m), THREADS, 0, cuda_stream()>>>(xa, wa, inp, l->q, l->scale,
                                                                                        cols + j0, N, K_in, K_out, m);
        LAUNCH_CHECK("gather_outliers_kernel");
        TRY(sgemm_nt_cuda(out, xa, wa, (int)N, K_out, m, 1.0f, 1.0f));
      }
    }
  }
  if (l->bias && !bias_done) {
    add_bias_kernel<<<grid_for(N * K_out), THREADS, 0, cuda_stream()>>>(out, l->bias, N, K_out);
    LAUNCH_CHECK("add_bias_kernel");
  }
  return LACOS_OK;
}

extern "C" int linear_backward_input_cuda(float *dinp, const float *dout, const linear *l, int64_t N, bool fast_int8,
                                          scratch ws) {
  int K_in = l->in, K_out = l->out;
  if (N == 0) return LACOS_OK;
  TRY(cuda_init());
  if (l->kind == LINEAR_F32) return sgemm_nn_cuda(dinp, dout, l->w, (int)N, K_in, K_out, 1.0f, 1.0f);
  carve k = { (char *)ws.p, 0, ws.bytes };
  if (fast_int8) {
    /* The weight row scales go into the gradient columns, the gradient rows
       are quantised, and the codes multiply in int8 (exact, either kernel). */
    float *g = NULL, *rs = NULL;
    int8_t *a = NULL, *qt = NULL;
    int32_t *c = NULL;
    TRY(take(&k, &g, sizeof(float) * (size_t)N * K_out, "scaled gradients"));
    TRY(take(&k, &a, (size_t)N * K_out, "int8 gradients"));
    TRY(take(&k, &rs, sizeof(float) * (size_t)N, "gradient scales"));
    TRY(take(&k, &c, sizeof(int32_t) * (size_t)N * K_in, "int32 products"));
    /* cuBLASLt's int8 kernels take only the "TN" form, so the product
       dout·Q runs against Qᵀ, transposed here into scratch (one linear's
       codes, 64 MiB at most for bloom-7b1: far less than a second copy of
       every weight) */
    TRY(take(&k, &qt, (size_t)K_out * K_in, "transposed weight codes"));
    scale_columns_kernel<<<grid_for(N * K_out), THREADS, 0, cuda_stream()>>>(g, dout, l->scale, N, K_out);
    LAUNCH_CHECK("scale_columns_kernel");
    TRY(quantize_rows_cuda(a, rs, g, N, K_out, 0, NULL, NULL, scratch{NULL, 0}));
    dim3 tgrid((unsigned)((K_in + 31) / 32), (unsigned)((K_out + 31) / 32)), tblock(32, 8);
    transpose_s8_kernel<<<tgrid, tblock, 0, cuda_stream()>>>(qt, l->q, K_out, K_in);
    LAUNCH_CHECK("transpose_s8_kernel");
    TRY(gemm_s8_cuda(true, N, K_in, K_out, a, K_out, qt, K_out, c, K_in, rest_of(&k)));
    accumulate_int32_kernel<<<grid_for(N * K_in), THREADS, 0, cuda_stream()>>>(dinp, c, rs, N, K_in);
    LAUNCH_CHECK("accumulate_int32_kernel");
    return LACOS_OK;
  }
  /* Exact: dequantise blocks of weight rows and accumulate f32 products, as
     the CPU does with blocks of 256 rows. */
  int rows = exact_rows(K_in, K_out);
  float *wt = NULL;
  TRY(take(&k, &wt, sizeof(float) * (size_t)rows * K_in, "dequantised weights"));
  for (int r0 = 0; r0 < K_out; r0 += rows) {
    int nr = K_out - r0 < rows ? K_out - r0 : rows;
    dequant_rows_kernel<<<grid_for((int64_t)nr * K_in), THREADS, 0, cuda_stream()>>>(wt, l->q, l->scale, r0, nr, K_in);
    LAUNCH_CHECK("dequant_rows_kernel");
    TRY(gemm_cuda(LACOS_F32, false, false, (int)N, K_in, nr, 1.0f, dout + r0, K_out, wt, K_in, 1.0f, dinp, K_in));
  }
  return LACOS_OK;
}
