/* optim.cu: engine/optim.c's update on the device — 8-bit blockwise Adam
   as bitsandbytes' kOptimizerStatic8bit2StateBlockwise (one block of 256
   threads per 256-element block: moments, block absmax, parameter, codes),
   f32-state Adam for small tensors and torch's AdamW, over optim.c's work
   list. The arithmetic is optim_math.h, shared with the host check; the
   block absmax is a max, exact in any order, so a step gives optim.c's bits.
   The nonfinite count and the gradient norm's partial sums come back to the
   host. */
#include "common.cuh"
#include "optim_math.h"

__constant__ float c_map1[256], c_map2[256], c_mid1[256], c_mid2[256];

static int maps_ready;

static int maps_upload(void) {
  if (maps_ready) return LACOS_OK;
  float mid1[256], mid2[256];
  const float *m1 = lacos_optim_dynamic_map(1), *m2 = lacos_optim_dynamic_map(0);
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

extern "C" int optim_step_cuda(const optim_item *items, int64_t nitems, const optim_consts *k, int kind,
                               uint8_t *codes1, uint8_t *codes2, float *absmax1, float *absmax2, float *mom_m,
                               float *mom_v, double *nonfinite) {
  *nonfinite = 0;
  if (nitems == 0) return LACOS_OK;
  if (nitems > 0x7fffffff) return fail(LACOS_ELIMIT, "optimizer: %lld work items are too many for one launch", (long long)nitems);
  TRY(cuda_init());
  TRY(maps_upload());
  unsigned long long *bad = (unsigned long long *)dev_alloc(sizeof *bad, "optimizer counters");
  if (!bad) return lacos_last_status();
  unsigned long long host_bad = 0;
  int st = dev_zero(bad, sizeof *bad);
  if (!st) {
    optim_kernel<<<(unsigned)nitems, 256, 0, cuda_stream()>>>(items, *k, kind, codes1, codes2, absmax1, absmax2, mom_m,
                                                              mom_v, bad);
    cudaError_t e = cudaGetLastError();
    st = e != cudaSuccess ? cuda_fail(e, "launch of optim_kernel", __FILE__, __LINE__)
                          : dev_download(&host_bad, bad, sizeof host_bad);
  }
  dev_free(bad, sizeof *bad);
  *nonfinite = (double)host_bad;
  return st;
}

__global__ void sumsq_kernel(double *partials, const optim_item *items) {
  __shared__ double red[32];
  const optim_item it = items[blockIdx.x];
  double s = 0;
  for (int j = threadIdx.x; j < it.len; j += blockDim.x) s += (double)it.g[j] * (double)it.g[j];
  s = block_sum(s, red);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

extern "C" int optim_sumsq_cuda(double *partials, const optim_item *items, int64_t nitems) {
  if (nitems == 0) return LACOS_OK;
  if (nitems > 0x7fffffff) return fail(LACOS_ELIMIT, "gradient norm: %lld chunks are too many for one launch", (long long)nitems);
  TRY(cuda_init());
  size_t bytes = sizeof(double) * (size_t)nitems;
  double *dev = (double *)dev_alloc(bytes, "gradient norm partials");
  if (!dev) return lacos_last_status();
  sumsq_kernel<<<(unsigned)nitems, 256, 0, cuda_stream()>>>(dev, items);
  cudaError_t e = cudaGetLastError();
  int st = e != cudaSuccess ? cuda_fail(e, "launch of sumsq_kernel", __FILE__, __LINE__)
                            : dev_download(partials, dev, bytes);
  dev_free(dev, bytes);
  return st;
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
