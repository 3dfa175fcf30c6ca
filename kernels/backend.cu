/* backend.cu: the CUDA backend table (engine/backend.h). Each entry is the
   twin, in kernels/<op>.cu, of the CPU layer in engine/cpu/<op>.c. */
#include "common.cuh"

/* What the kernels cannot take: f16/bf16 GEMMs and every embedding dtype
   are fine; pooling keeps a sequence's weights in 40 KiB of shared memory,
   attention one head's T×T scores in 1 GiB (kernels/pooling.cu, attention.cu). */
static bool cuda_supports(int op, int64_t size) {
  switch (op) {
  case OP_GEMM: return size == LACOS_F32 || size == LACOS_F16 || size == LACOS_BF16;
  case OP_EMBEDDING: return size == LACOS_F32 || size == LACOS_F16 || size == LACOS_BF16 || size == LACOS_I8;
  case OP_POOLING: return size * (int64_t)sizeof(float) <= 40 * 1024;
  case OP_ATTENTION: return size * size * (int64_t)sizeof(float) <= ((int64_t)1 << 30);
  }
  return false;
}

static backend make_table(void) {
  backend b;
  memset(&b, 0, sizeof b);
  b.name = "cuda";
  b.device = LACOS_CUDA;
  b.host_memory = false;
  b.available = cuda_available;
  b.info = cuda_device_info;
  b.sync = cuda_sync;
  b.device_count = cuda_device_count;
  b.select = cuda_select_device;
  b.selected = cuda_selected_device;
  b.stream = cuda_stream_handle;
  b.poll = cuda_stream_poll;
  b.supports = cuda_supports;
  b.alloc = cuda_alloc;
  b.free = cuda_free;
  b.zero = cuda_zero;
  b.copy = cuda_copy;
  b.upload = cuda_upload;
  b.download = cuda_download;
  b.layernorm_forward = layernorm_forward_cuda;
  b.layernorm_backward = layernorm_backward_cuda;
  b.gelu_forward = gelu_forward_cuda;
  b.gelu_backward = gelu_backward_cuda;
  b.attention_forward = attention_forward_cuda;
  b.attention_backward = attention_backward_cuda;
  b.attention_scratch = attention_scratch_cuda;
  b.pooling_forward = pooling_forward_cuda;
  b.pooling_backward = pooling_backward_cuda;
  b.residual_forward = residual_forward_cuda;
  b.add_inplace = add_inplace_cuda;
  b.embedding_forward = embedding_forward_cuda;
  b.quantize_rows = quantize_rows_cuda;
  b.linear_forward = linear_forward_cuda;
  b.linear_backward_input = linear_backward_input_cuda;
  b.linear_scratch = linear_scratch_cuda;
  b.gemm_s8 = gemm_s8_cuda;
  b.gemm_s8_scratch = gemm_s8_scratch_cuda;
  b.gemm = gemm_cuda;
  b.gemm_batched = gemm_batched_cuda;
  b.lora_forward = lora_forward_cuda;
  b.lora_backward = lora_backward_cuda;
  b.optim_step = optim_step_cuda;
  b.optim_sumsq = optim_sumsq_cuda;
  b.optim_scratch = optim_scratch_cuda;
  b.scale = scale_cuda;
  return b;
}

static const backend cuda_table = make_table();

extern "C" const backend *backend_cuda(void) { return &cuda_table; }
