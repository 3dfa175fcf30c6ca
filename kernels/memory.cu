/* memory.cu: device memory. Every cudaMalloc of the engine goes through
   dev_alloc, which counts the bytes in memory.c's LACOS_CUDA slot (so
   lacos.memory("cuda") and the soft limit see them) and names the
   allocation, the device's free memory and CUDA's reason when it fails.
   Copies run on the compute stream; uploads and downloads wait for it, so
   the host buffer is free to reuse (and a download sees every earlier
   kernel) when they return. The arenas on top are in engine/memory.c. */
#include "common.cuh"

extern "C" void *dev_alloc(size_t bytes, const char *what) {
  if (cuda_init()) return NULL;
  if (bytes == 0) bytes = 256;
  if (mem_charge(LACOS_CUDA, bytes, what)) return NULL;
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    mem_uncharge(LACOS_CUDA, bytes);
    cudaGetLastError();
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    fail(e == cudaErrorMemoryAllocation ? LACOS_ENOMEM : LACOS_EDEVICE,
         "%s: cannot allocate %.1f MiB on the GPU (%.1f MiB free of %.1f MiB): %s", what, bytes / 1048576.0,
         fr / 1048576.0, tot / 1048576.0, cudaGetErrorString(e));
    return NULL;
  }
  return p;
}

extern "C" void dev_free(void *p, size_t bytes) {
  if (!p) return;
  if (bytes == 0) bytes = 256;
  /* work queued on the compute stream may still use the buffer (a scratch
     buffer grown between two launches, a batch freed after its last
     kernel): wait for it rather than rely on cudaFree's own waiting */
  cudaStreamSynchronize(cuda_stream());
  cudaFree(p);
  mem_uncharge(LACOS_CUDA, bytes);
}

extern "C" int dev_upload(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  return LACOS_OK;
}

extern "C" int dev_download(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  return LACOS_OK;
}

extern "C" int dev_copy(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
  return LACOS_OK;
}

extern "C" int dev_zero(void *p, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
  return LACOS_OK;
}
