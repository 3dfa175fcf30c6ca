/* memory.cu: device memory, the memory entries of the CUDA backend table.
   Every cudaMalloc of the engine goes through cuda_alloc, which counts the
   bytes in memory.c's LACOS_CUDA slot (so lacos.memory("cuda"), the soft
   limit and the fault hook see them) and names the allocation, the
   device's free memory and CUDA's reason when it fails. Copies run on the
   compute stream; uploads and downloads wait for it, so the host buffer is
   free to reuse (and a download sees every earlier kernel) when they
   return. */
#include "common.cuh"

extern "C" int cuda_alloc(void **out, size_t bytes, const char *what) {
  *out = NULL;
  TRY(cuda_init());
  if (bytes == 0) bytes = 256;
  TRY(mem_charge(LACOS_CUDA, bytes, what));
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    mem_uncharge(LACOS_CUDA, bytes);
    cudaGetLastError();
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    return fail(e == cudaErrorMemoryAllocation ? LACOS_ENOMEM : LACOS_EDEVICE,
                "%s: cannot allocate %.1f MiB on the GPU (%.1f MiB free of %.1f MiB): %s", what, bytes / 1048576.0,
                fr / 1048576.0, tot / 1048576.0, cudaGetErrorString(e));
  }
  *out = p;
  return LACOS_OK;
}

extern "C" void cuda_free(void *p, size_t bytes) {
  if (!p) return;
  if (bytes == 0) bytes = 256;
  /* work queued on the compute stream may still use the buffer (a scratch
     buffer grown between two launches, a batch freed after its last
     kernel): wait for it rather than rely on cudaFree's own waiting */
  cudaStreamSynchronize(cuda_stream());
  cudaFree(p);
  mem_uncharge(LACOS_CUDA, bytes);
}

extern "C" int cuda_upload(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  return LACOS_OK;
}

extern "C" int cuda_download(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  return LACOS_OK;
}

extern "C" int cuda_copy(void *dst, const void *src, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
  return LACOS_OK;
}

extern "C" int cuda_zero(void *p, size_t bytes) {
  if (!bytes) return LACOS_OK;
  TRY(cuda_init());
  CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
  return LACOS_OK;
}
