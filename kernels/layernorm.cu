/* layernorm.cu: twin of engine/cpu/layernorm.c. One block per row; the
   mean and variance are summed in double as on the CPU (two passes, the
   difference x − mean rounded to float first), so the statistics agree to
   the last bit except where the double sums round differently. Parameter
   gradients run one thread per column over the rows in order, the CPU's
   serial order. */
#include "common.cuh"

// out (N,C), mean (N), rstd (N), inp (N,C), weight (C), bias (C); out may be inp
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, int C, float eps) {
  __shared__ double red[32];
  int64_t i = blockIdx.x;
  const float *x = inp + i * C;
  float *y = out + i * C;
  double s = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) s += x[c];
  s = block_sum(s, red);
  float m = (float)(s / C);
  double v = 0;
  for (int c = threadIdx.x; c < C; c += blockDim.x) { double d = x[c] - m; v += d * d; }
  v = block_sum(v, red);   /* its barrier also ends every read of x before y is written */
  float r = (float)(1.0 / sqrt(v / C + eps));
  for (int c = threadIdx.x; c < C; c += blockDim.x) y[c] = (x[c] - m) * r * weight[c] + bias[c];
  if (threadIdx.x == 0) {
    if (mean) mean[i] = m;
    if (rstd) rstd[i] = r;
  }
}

// dinp (N,C) +=; dout may alias nothing else
__global__ void layernorm_backward_kernel(float *dinp, const float *dout, const float *inp, const float *weight,
                                          const float *mean, const float *rstd, int C) {
  __shared__ double red[32];
  int64_t i = blockIdx.x;
  const float *x = inp + i * C, *dy = dout + i * C;
  float *dx = dinp + i * C;
  float m = mean[i], r = rstd[i];
  double a = 0, b = 0;   /* mean(dnorm), mean(dnorm·norm) */
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float norm = (x[c] - m) * r, dn = weight[c] * dy[c];
    a += dn;
    b += (double)dn * norm;
  }
  a = block_sum(a, red);
  b = block_sum(b, red);
  float fa = (float)(a / C), fb = (float)(b / C);
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float norm = (x[c] - m) * r, dn = weight[c] * dy[c];
    dx[c] += (dn - fa - norm * fb) * r;
  }
}

__global__ void layernorm_param_grad_kernel(float *dweight, float *dbias, const float *dout, const float *inp,
                                            const float *mean, const float *rstd, int64_t N, int C) {
  int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int64_t i = 0; i < N; i++) {
    float dy = dout[i * C + c];
    if (dweight) dweight[c] += (inp[i * C + c] - mean[i]) * rstd[i] * dy;
    if (dbias) dbias[c] += dy;
  }
}

extern "C" int layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                                      const float *bias, int64_t N, int C, float eps) {
  if (N == 0) return LACOS_OK;
  TRY(cuda_init());
  layernorm_forward_kernel<<<(unsigned)N, THREADS, 0, cuda_stream()>>>(out, mean, rstd, inp, weight, bias, C, eps);
  LAUNCH_CHECK("layernorm_forward_kernel");
  return LACOS_OK;
}

extern "C" int layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                                       const float *inp, const float *weight, const float *mean, const float *rstd,
                                       int64_t N, int C) {
  if (N == 0) return LACOS_OK;
  TRY(cuda_init());
  layernorm_backward_kernel<<<(unsigned)N, THREADS, 0, cuda_stream()>>>(dinp, dout, inp, weight, mean, rstd, C);
  LAUNCH_CHECK("layernorm_backward_kernel");
  if (dweight || dbias) {
    layernorm_param_grad_kernel<<<(C + THREADS - 1) / THREADS, THREADS, 0, cuda_stream()>>>(dweight, dbias, dout,
                                                                                            inp, mean, rstd, N, C);
    LAUNCH_CHECK("layernorm_param_grad_kernel");
  }
  return LACOS_OK;
}
