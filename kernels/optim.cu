/* optim.cu: engine/optim.c's update on the device — 8-bit blockwise Adam
   as bitsandbytes' kOptimizerStatic8bit2StateBlockwise (one block of 256
   threads per 256-element block: moments, block absmax, parameter, codes),
   f32-state Adam for small tensors and torch's AdamW, over optim.c's work
   list. The arithmetic is engine/math/optim_math.h, the CPU step's own; the
   block absmax is a max, exact in any order, so a step gives optim.c's bits.
   The nonfinite count and the gradient norm's partial sums come back to the
   host. */
#include "common.cuh"
#include "../engine/math/optim_math.h"

__constant__ float c_map1[256], c_map2[256], c_mid1[256], c_mid2[256];

static int maps_ready;

static int maps_upload(void) {
  if (maps_ready) return LACOS_OK;
  float mid1[256], mid2[256];
  const float *m1 = optim_map_signed, *m2 = optim_map_unsigned;
  for (int i = 0; i < 255; i++) {
    mid1[i] = (m1[i] + m1[i + 1]) * 0.5f;
    mid2[i] = (m2[i] + m2[i + 1]) * 0.5f;
  }
  mid1[255] = mid2[255] = INFINITY;
  /* on the compute stream: the legacy stream is not ordered with it */
  CUDA_CHECK(cudaMemcpyToSymbolAsync(c_map1, m1, sizeof mid1, 0, cudaMemcpyHostToDevice, cuda_stream()));
  CUDA_CHECK(cudaMemcpyToSymbolAsync(c_map2, m2, sizeof mid2, 0, cudaMemcpyHostToDevice, cuda_stream()));
  CUDA_CHECK(cudaMemcpyToSymbolAsync(c_mid1, mid1, sizeof mid1, 0, cudaMemcpyHostToDevice, cuda_stream()));
  CUDA_CHECK(cudaMemcpyToSymbolAsync(c_mid2, mid2, sizeof mid2, 0, cudaMemcpyHostToDevice, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));   /* mid1, mid2 are on this stack frame */
  maps_ready = 1;
  return LACOS_OK;
}

__global__ void optim_kernel(const optim_item *items, optim_consts k, int kind, uint8_t *codes1, uint8_t *codes2,
                             float *absmax1, float *absmax2, float *mom_m, float *mom_v, unsigned long long *bad) {
  __shared__ float red[32];
  __shared__ int redi[32];
  const optim_item it = items[blockIdx.x];
  int nbad = 0;
  if (it.eight_bit) {
    int j = threadIdx.x;
    bool in = j < it.len;
    float am1 = absmax1[it.block], am2 = absmax2[it.block];   /* read before thread 0 rewrites them */
    float m = 0.0f, v = 0.0f;
    int fin = 1;
    if (in) {
      int64_t e = it.state + j;
      fin = optim_adam8_moments(&k, it.g[j], c_map1[codes1[e]], c_map2[codes2[e]], am1, am2, &m, &v);
      nbad = !fin;
    }
    /* optim.c's running max starts at 0 and never takes a NaN */
    float a1 = fabsf(m), a2 = fabsf(v);
    float nm1 = block_max(a1 == a1 ? a1 : 0.0f, red);
    float nm2 = block_max(a2 == a2 ? a2 : 0.0f, red);
    if (j == 0) {
      absmax1[it.block] = nm1;
      absmax2[it.block] = nm2;
    }
    if (in) {
      int64_t e = it.state + j;
      it.p[j] = optim_adam8_param(&k, it.p[j], m, v, fin);
      optim_adam8_codes(c_map1, c_mid1, c_mid2, m, v, nm1, nm2, &codes1[e], &codes2[e]);
    }
  } else {
    for (int j = threadIdx.x; j < it.len; j += blockDim.x) {
      int64_t e = it.state + j;
      int fin = kind == LACOS_OPTIM_ADAM8BIT ? optim_adam32(&k, &it.p[j], it.g[j], &mom_m[e], &mom_v[e])
                                             : optim_adamw(&k, &it.p[j], it.g[j], &mom_m[e], &mom_v[e]);
      nbad += !fin;
    }
  }
  nbad = block_sum(nbad, redi);
  if (threadIdx.x == 0 && nbad) atomicAdd(bad, (unsigned long long)nbad);
}

/* The scratch of a step (the non-finite counter) or of a norm (its
   partial sums). */
extern "C" size_t optim_scratch_cuda(int64_t nitems) {
  size_t partials = sizeof(double) * (size_t)nitems;
  return partials > sizeof(unsigned long long) ? partials : sizeof(unsigned long long);
}

extern "C" int optim_step_cuda(const optim_item *items, int64_t nitems, const optim_consts *k, int kind,
                               uint8_t *codes1, uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m,
                               float *mom_v, scratch ws, double *nonfinite) {
  *nonfinite = 0;
  if (nitems == 0) return LACOS_OK;
  if (nitems > 0x7fffffff) return fail(LACOS_ELIMIT, "optimizer: %lld work items are too many for one launch", (long long)nitems);
  if (ws.bytes < sizeof(unsigned long long)) return fail(LACOS_ELIMIT, "optimizer on CUDA: no scratch for the counter");
  TRY(cuda_init());
  TRY(maps_upload());
  unsigned long long *bad = (unsigned long long *)ws.p, host_bad = 0;
  TRY(cuda_zero(bad, sizeof *bad));
  optim_kernel<<<(unsigned)nitems, 256, 0, cuda_stream()>>>(items, *k, kind, codes1, codes2, absmax1, absmax2, mom_m,
                                                            mom_v, bad);
  LAUNCH_CHECK("optim_kernel");
  TRY(cuda_download(&host_bad, bad, sizeof host_bad));
  *nonfinite = (double)host_bad;
  return LACOS_OK;
}

__global__ void sumsq_kernel(double *partials, const optim_item *items) {
  __shared__ double red[32];
  const optim_item it = items[blockIdx.x];
  double s = 0;
  for (int j = threadIdx.x; j < it.len; j += blockDim.x) s += (double)it.g[j] * (double)it.g[j];
  s = block_sum(s, red);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

extern "C" int optim_sumsq_cuda(double *partials, const optim_item *items, int64_t nitems, scratch ws) {
  if (nitems == 0) return LACOS_OK;
  if (nitems > 0x7fffffff) return fail(LACOS_ELIMIT, "gradient norm: %lld chunks are too many for one launch", (long long)nitems);
  size_t bytes = sizeof(double) * (size_t)nitems;
  if (ws.bytes < bytes) return fail(LACOS_ELIMIT, "gradient norm on CUDA: no scratch for %lld partial sums", (long long)nitems);
  TRY(cuda_init());
  sumsq_kernel<<<(unsigned)nitems, 256, 0, cuda_stream()>>>((double *)ws.p, items);
  LAUNCH_CHECK("sumsq_kernel");
  return cuda_download(partials, ws.p, bytes);
}

__global__ void scale_kernel(float *x, int64_t n, float k) {
  GRID_STRIDE(i, n) x[i] = x[i] * k;
}

extern "C" int scale_cuda(float *x, int64_t n, float k) {
  if (n == 0) return LACOS_OK;
  TRY(cuda_init());
  scale_kernel<<<grid_for(n), THREADS, 0, cuda_stream()>>>(x, n, k);
  LAUNCH_CHECK("scale_kernel");
  return LACOS_OK;
}
