/* lacos.h: the public C API of the lacos engine.

   This file is read twice: by the C compiler (through engine.h, which includes
   <stdint.h>/<stddef.h> first) and verbatim by LuaJIT's ffi.cdef, which has no
   preprocessor. So: no #include, no #define, no macros; constants are enums.
   Enum values are stored in files and databases: only ever append to them.

   Conventions
   - Every function is lacos_<object>_<verb>.
   - Out-parameters that receive a new object or tensor come first.
   - Functions that can fail return an int status (LACOS_OK = 0) and write
     their results through out-parameters. On failure lacos_last_error()
     describes the cause (naming the file and line where there is one).
     The engine never aborts or longjmps on bad input.
   - Objects are opaque handles, created by the _new, _load and _open functions and
     released by the matching _free. lacos_tensor is the one exception: its header is visible so
     that Lua can index it without a call; treat its fields as read-only.
   - Byte counts crossing the API are doubles (exact below 2^53) so that
     LuaJIT does not box them. */

/* ===== status and errors (error.c) ===== */

typedef enum lacos_status {
  LACOS_OK = 0,
  LACOS_EINVAL = 1,        /* bad argument or option */
  LACOS_ENOMEM = 2,        /* allocation failed */
  LACOS_EIO = 3,           /* file system or network error */
  LACOS_EFORMAT = 4,       /* malformed file contents */
  LACOS_ENOTFOUND = 5,     /* missing file, tensor, key */
  LACOS_EUNSUPPORTED = 6,  /* valid but not supported here (dtype, device) */
  LACOS_EDEVICE = 7,       /* accelerator unavailable or failed */
  LACOS_EINTERRUPTED = 8,  /* stopped by a signal */
  LACOS_EDB = 9,           /* results database error */
  LACOS_ELIMIT = 10,       /* a resource limit would be exceeded */
  LACOS_ENUMERIC = 11,     /* non-finite values where finite ones are required */
  LACOS_ESTATE = 12        /* object used in the wrong state */
} lacos_status;

const char *lacos_last_error(void);
int lacos_last_status(void);
const char *lacos_status_name(int status);
void lacos_error_clear(void);
/* Lets a caller (the Lua layer, a test) report through the same channel. */
int lacos_error_set(int status, const char *message);

/* ===== build, threads and interruption (engine.c) ===== */

const char *lacos_version(void);
/* One line: compiler, CPU features, OpenMP, BLAS, oneDNN, CUDA. */
const char *lacos_build_info(void);
int lacos_threads_get(void);
int lacos_threads_set(int n);
/* Long loops poll this flag; a signal handler sets it with lacos_interrupt_request,
   which is async-signal-safe. */
void lacos_interrupt_request(int level);
int lacos_interrupt_pending(void);
void lacos_interrupt_clear(void);

/* A uniform double in [0, 1) from a counter-based stream: value `counter` of
   stream `seed` (exact for seeds and counters below 2^53). Scripts use it
   for reproducible shuffles that do not depend on Lua's own generator. */
double lacos_random_uniform(double seed, double counter);

/* ===== memory accounting (memory.c) ===== */

typedef enum lacos_device {
  LACOS_CPU = 0,
  LACOS_CUDA = 1
} lacos_device;

/* Bytes currently held by engine allocations on a device, and the peak since
   the last reset. Memory-mapped checkpoint files are counted separately. */
double lacos_memory_allocated(int device);
double lacos_memory_peak(int device);
void lacos_memory_reset_peak(int device);
double lacos_memory_mapped(void);
/* Process-wide peak resident set size in bytes (getrusage). */
double lacos_memory_peak_rss(void);
double lacos_memory_current_rss(void);
/* A soft cap on engine allocations per device (0 = none); allocations past
   it fail with LACOS_ELIMIT instead of risking the machine's OOM killer. */
void lacos_memory_set_limit(int device, double bytes);
double lacos_memory_get_limit(int device);

/* ===== hashing (hash.c) ===== */

/* SHA-256 as 64 lowercase hex characters plus NUL (hex must hold 65 bytes). */
int lacos_sha256_file(const char *path, char *hex);
int lacos_sha256_buffer(const void *data, double nbytes, char *hex);

/* ===== tensors (tensor.c, the cpu/ ops) ===== */

typedef enum lacos_dtype {
  LACOS_F32 = 0,
  LACOS_F16 = 1,
  LACOS_BF16 = 2,
  LACOS_I8 = 3,
  LACOS_I32 = 4,
  LACOS_U8 = 5,
  LACOS_I64 = 6,
  LACOS_F64 = 7,
  LACOS_DTYPE_COUNT = 8
} lacos_dtype;

typedef struct lacos_storage lacos_storage;

/* A strided view of up to 4 dimensions onto a reference-counted storage.
   shape/stride entries past ndim are 1/0. Strides count elements, not bytes.
   data points at element (0,0,0,0) of this view. */
typedef struct lacos_tensor {
  void *data;
  int64_t shape[4];
  int64_t stride[4];
  int32_t ndim;
  int32_t dtype;
  int32_t device;
  int32_t flags;
  lacos_storage *storage;
} lacos_tensor;

/* A value type holding one tensor reference. Bindings attach methods and
   indexing to it (LuaJIT indexes a bare pointer with a number as an array,
   so a pointer cannot carry t[i]); the engine itself never uses it. */
typedef struct lacos_tensor_ref {
  lacos_tensor *t;
} lacos_tensor_ref;

const char *lacos_dtype_name(int dtype);
int lacos_dtype_from_name(const char *name);   /* -1 if unknown */
int lacos_dtype_size(int dtype);

/* Creation. The new tensor is contiguous and owned by the caller. */
int lacos_tensor_new(lacos_tensor **out, int dtype, int device, int ndim, const int64_t *shape);  /* zeros */
int lacos_tensor_empty(lacos_tensor **out, int dtype, int device, int ndim, const int64_t *shape);
int lacos_tensor_full(lacos_tensor **out, int dtype, int ndim, const int64_t *shape, double value);
/* dist: 0 = uniform [a, b), 1 = normal (mean a, std b). Reproducible for a
   given seed whatever the thread count. */
int lacos_tensor_rand(lacos_tensor **out, int dtype, int ndim, const int64_t *shape,
                      double seed, int dist, double a, double b);
int lacos_tensor_arange(lacos_tensor **out, int dtype, double start, double stop, double step);
/* Copies n = numel elements of src (given in src_dtype) into a new tensor. */
int lacos_tensor_from_buffer(lacos_tensor **out, int dtype, int ndim, const int64_t *shape,
                             const void *src, int src_dtype);
/* Frees this header and drops its reference to the storage. NULL is allowed. */
void lacos_tensor_free(lacos_tensor *t);
/* Drops the storage now but keeps the header (flags gets LACOS_TENSOR_RELEASED,
   numel becomes 0), so a stale reference fails cleanly instead of reading
   freed memory; the header itself goes with lacos_tensor_free. */
void lacos_tensor_release(lacos_tensor *t);
enum { LACOS_TENSOR_RELEASED = 1 };

/* Views (share storage, never copy). */
int lacos_tensor_view(lacos_tensor **out, const lacos_tensor *t, int ndim, const int64_t *shape);
int lacos_tensor_slice(lacos_tensor **out, const lacos_tensor *t, int dim,
                       int64_t start, int64_t stop, int64_t step);
int lacos_tensor_select(lacos_tensor **out, const lacos_tensor *t, int dim, int64_t index);
int lacos_tensor_transpose(lacos_tensor **out, const lacos_tensor *t, int dim0, int dim1);
int lacos_tensor_unsqueeze(lacos_tensor **out, const lacos_tensor *t, int dim);
int lacos_tensor_expand(lacos_tensor **out, const lacos_tensor *t, int ndim, const int64_t *shape);

/* Queries. */
int64_t lacos_tensor_numel(const lacos_tensor *t);
int lacos_tensor_is_contiguous(const lacos_tensor *t);
double lacos_tensor_nbytes(const lacos_tensor *t);
int lacos_tensor_get(const lacos_tensor *t, const int64_t *index, double *value);
int lacos_tensor_set(lacos_tensor *t, const int64_t *index, double value);
/* Copies all elements, converted, into dst (numel doubles/floats). */
int lacos_tensor_read_f64(const lacos_tensor *t, double *dst, int64_t n);
int lacos_tensor_read_f32(const lacos_tensor *t, float *dst, int64_t n);

/* Copies and conversions. */
int lacos_tensor_contiguous(lacos_tensor **out, const lacos_tensor *t);
int lacos_tensor_clone(lacos_tensor **out, const lacos_tensor *t);
int lacos_tensor_to_dtype(lacos_tensor **out, const lacos_tensor *t, int dtype);
int lacos_tensor_to_device(lacos_tensor **out, const lacos_tensor *t, int device);
/* dst and src have the same shape (or src broadcasts to dst); dtypes may differ. */
int lacos_tensor_copy(lacos_tensor *dst, const lacos_tensor *src);
int lacos_tensor_fill(lacos_tensor *t, double value);
int lacos_tensor_cat(lacos_tensor **out, lacos_tensor *const *parts, int n, int dim);

/* Elementwise arithmetic with NumPy broadcasting. The result dtype is the
   wider float of the operands (f32 for integer operands). */
typedef enum lacos_binop {
  LACOS_ADD = 0, LACOS_SUB = 1, LACOS_MUL = 2, LACOS_DIV = 3,
  LACOS_MAX = 4, LACOS_MIN = 5, LACOS_POW = 6,
  LACOS_EQ = 7, LACOS_NE = 8, LACOS_LT = 9, LACOS_LE = 10, LACOS_GT = 11, LACOS_GE = 12
} lacos_binop;
typedef enum lacos_unop {
  LACOS_NEG = 0, LACOS_ABS = 1, LACOS_EXP = 2, LACOS_LOG = 3, LACOS_SQRT = 4,
  LACOS_TANH = 5, LACOS_SIGMOID = 6, LACOS_RELU = 7, LACOS_GELU_TANH = 8,
  LACOS_SQUARE = 9, LACOS_ISFINITE = 10
} lacos_unop;
int lacos_tensor_binary(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b, int op);
int lacos_tensor_scalar(lacos_tensor **out, const lacos_tensor *a, double s, int op, int reversed);
int lacos_tensor_unary(lacos_tensor **out, const lacos_tensor *a, int op);
/* In place: a = a op b (b broadcasts to a). */
int lacos_tensor_binary_(lacos_tensor *a, const lacos_tensor *b, int op);

/* Reductions over one dimension (dim >= 0) or everything (dim = -1).
   Sums accumulate in double. */
typedef enum lacos_reduce_op {
  LACOS_SUM = 0, LACOS_MEAN = 1, LACOS_RMAX = 2, LACOS_RMIN = 3,
  LACOS_ARGMAX = 4, LACOS_ARGMIN = 5, LACOS_NORM2 = 6, LACOS_VAR = 7, LACOS_STD = 8
} lacos_reduce_op;
int lacos_tensor_reduce(lacos_tensor **out, const lacos_tensor *t, int op, int dim, int keepdim);

/* Matrix product of the last two dimensions, batched over a leading one:
   (n,k)x(k,m), (b,n,k)x(b,k,m) or (b,n,k)x(k,m). f32 result through BLAS. */
int lacos_tensor_matmul(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b);
/* Row-wise L2 normalisation and cosine-similarity matrix of two (n,d),(m,d). */
int lacos_tensor_normalize(lacos_tensor **out, const lacos_tensor *t, double eps);
int lacos_tensor_cosine(lacos_tensor **out, const lacos_tensor *a, const lacos_tensor *b);
/* Maximum absolute difference between two same-shaped tensors. */
int lacos_tensor_maxdiff(const lacos_tensor *a, const lacos_tensor *b, double *out);

/* NumPy .npy files (little-endian, C order; f32, f64, f16, i8, u8, i32, i64). */
int lacos_tensor_save_npy(const lacos_tensor *t, const char *path);
int lacos_tensor_load_npy(lacos_tensor **out, const char *path);

/* Each subsystem's declarations sit between its two markers below. */

/* ===== safetensors (safetensors.c: validated memory-mapped reader, sharded index, writer) ===== */

typedef struct lacos_safetensors lacos_safetensors;

/* Opens a .safetensors file, a model.safetensors.index.json, or a checkpoint
   directory holding model.safetensors (preferred, as transformers does) or
   model.safetensors.index.json with its shards. Every header is validated
   before anything is used: the length (at most 100,000,000 bytes and inside
   the file), a JSON object without duplicate keys, known dtypes, shapes
   whose element count × dtype size equals the data_offsets span, tensors
   tiling the data buffer from 0 to the end of the file with no hole or
   overlap; a sharded checkpoint must have every tensor of its weight_map in
   the shard named there and no tensor in two shards. Each file is
   memory-mapped once. Tensors are numbered 0..count-1 in name order. */
int lacos_safetensors_open(lacos_safetensors **out, const char *path);
void lacos_safetensors_free(lacos_safetensors *st);
int lacos_safetensors_count(const lacos_safetensors *st);
const char *lacos_safetensors_name(const lacos_safetensors *st, int i);
/* Index of a tensor by name; a "transformer." prefix may be present on
   either side ("h.0.input_layernorm.weight" finds
   "transformer.h.0.input_layernorm.weight"). -1 when absent, -2 when both
   spellings are in the checkpoint (ambiguous; the last error says so). */
int lacos_safetensors_find(const lacos_safetensors *st, const char *name);
/* dtype is a lacos_dtype, or -1 for a valid safetensors dtype the engine
   does not hold (BOOL, I16, U16, U32, U64, C64, F8_*, F6_*, F4); ndim is the
   true rank; shape receives the first min(ndim, max_dims) sizes. */
int lacos_safetensors_info(const lacos_safetensors *st, int i, int *dtype, int *ndim, int64_t *shape, int max_dims);
/* The file's dtype string ("F32", "BOOL", ...) and data byte count of tensor i. */
const char *lacos_safetensors_dtype_string(const lacos_safetensors *st, int i);
double lacos_safetensors_nbytes(const lacos_safetensors *st, int i);
/* Tensor `name` (found as lacos_safetensors_find does) in the file's dtype:
   a zero-copy view on the mapping, which stays alive while any view does
   (the checkpoint itself may be freed first). Writing to a view changes this
   process's copy only (copy-on-write), never the file. A tensor whose data
   is not aligned to its element size (old writers) comes back as a copy.
   Unsupported dtypes and ranks above 4 fail here, naming file and tensor. */
int lacos_safetensors_get(lacos_tensor **out, lacos_safetensors *st, const char *name);
/* The file tensor i lives in (a shard, for messages) and what was opened. */
const char *lacos_safetensors_file(const lacos_safetensors *st, int i);
const char *lacos_safetensors_path(const lacos_safetensors *st);
/* __metadata__ strings (NULL if absent). For a sharded checkpoint: the
   index's "metadata" strings and integers (total_size as decimal text), then
   the shards' __metadata__ keys not already present. */
const char *lacos_safetensors_metadata(const lacos_safetensors *st, const char *key);
int lacos_safetensors_metadata_count(const lacos_safetensors *st);
const char *lacos_safetensors_metadata_key(const lacos_safetensors *st, int i);

/* Writes tensors (any engine dtype, any strides) and optional string
   metadata to one file, atomically (temporary file, fsync, rename). The
   layout is upstream's: header space-padded to a multiple of 8, data ordered
   by descending dtype (upstream's alignment order) then name, so every
   tensor is aligned in a mapped copy and the bytes equal those of
   safetensors' save_file for the same tensors and metadata. */
int lacos_safetensors_write(const char *path, int n, const char *const *names, lacos_tensor *const *tensors,
                            int nmeta, const char *const *meta_keys, const char *const *meta_values);
/* Sharded as huggingface_hub splits state dicts: greedy in the given order
   by tensor bytes, at most max_shard_bytes of data per shard (0 = the hub's
   default 5,000,000,000), a tensor larger than that alone in its own shard;
   files model-00001-of-00003.safetensors ... plus
   model.safetensors.index.json ({"metadata": {"total_size": N, ...},
   "weight_map": {...}}), or one plain model.safetensors when everything
   fits. Every file carries the metadata format = "pt"; the caller's
   metadata goes into the single file, or into the index's "metadata" when
   sharded. Afterwards, files of this naming (model-NNNNN-of-NNNNN.safetensors,
   and the other layout's model.safetensors or index) that the save did not
   write are removed, so no stale file shadows the new checkpoint. */
int lacos_safetensors_write_sharded(const char *dir, int n, const char *const *names, lacos_tensor *const *tensors,
                                    double max_shard_bytes, int nmeta, const char *const *meta_keys,
                                    const char *const *meta_values);

/* ----- end safetensors ----- */

/* ===== tokenizer (tokenizer.c: Hugging Face tokenizer.json byte-level BPE) ===== */

/* ----- end tokenizer ----- */

/* ===== bloom (bloom.c and the cpu/ layers: config, weights, forward/backward, int8, pooling) ===== */

typedef struct lacos_bloom lacos_bloom;

/* The fields of a BLOOM config.json that shape the network. */
typedef struct lacos_bloom_config {
  int vocab_size;           /* embedding rows (250,880 for the released models) */
  int hidden_size;          /* C */
  int n_layer;
  int n_head;
  double layer_norm_epsilon;
  int max_length;           /* longest accepted sequence (seq_length, 2048) */
  int bos_token_id, eos_token_id, pad_token_id;
} lacos_bloom_config;

typedef enum lacos_quant { LACOS_QUANT_F32 = 0, LACOS_QUANT_INT8 = 1 } lacos_quant;
typedef enum lacos_pooling {
  LACOS_POOL_MEAN = 0, LACOS_POOL_WEIGHTEDMEAN = 1, LACOS_POOL_LASTTOKEN = 2
} lacos_pooling;

typedef struct lacos_bloom_options {
  int quant;            /* lacos_quant */
  double threshold;     /* LLM.int8 outlier threshold; 0 = no decomposition, 6.0 = the common default */
  int device;           /* lacos_device */
  int embedding_dtype;  /* table dtype for random models: f16 (default), f32, bf16, i8 */
} lacos_bloom_options;

void lacos_bloom_options_init(lacos_bloom_options *opt);
/* bloom-560m, bloom-1b1, bloom-1b7, bloom-3b, bloom-7b1 (the released shapes)
   and the tiny test ladder tiny-xs, tiny-s, tiny-m, tiny-l. */
int lacos_bloom_config_named(lacos_bloom_config *cfg, const char *name);
/* A ';'-separated list of the names lacos_bloom_config_named knows. */
const char *lacos_bloom_config_names(void);
int lacos_bloom_config_read(lacos_bloom_config *cfg, const char *path);
int lacos_bloom_config_write(const lacos_bloom_config *cfg, const char *path);
double lacos_bloom_config_params(const lacos_bloom_config *cfg);

/* Loads a Hugging Face BLOOM checkpoint directory (config.json +
   model.safetensors or shards + index). */
int lacos_bloom_load(lacos_bloom **out, const char *dir, const lacos_bloom_options *opt);
/* Random weights (N(0, 0.02)-like, uniform codes per row), generated straight
   into the chosen quantisation: an int8 model never holds an f32 copy. */
int lacos_bloom_random(lacos_bloom **out, const lacos_bloom_config *cfg, double seed,
                       const lacos_bloom_options *opt);
/* Writes config.json and model.safetensors (or shards past max_shard_bytes,
   0 = the hub default 5 GB) in dtype f32, f16 or bf16. */
int lacos_bloom_save(lacos_bloom *m, const char *dir, int dtype, double max_shard_bytes);
void lacos_bloom_free(lacos_bloom *m);
int lacos_bloom_get_config(const lacos_bloom *m, lacos_bloom_config *cfg);
int lacos_bloom_quant(const lacos_bloom *m);
double lacos_bloom_weight_bytes(const lacos_bloom *m);

/* ids, mask: (B,T) i32. hidden: (B,T,C) f32, or with all_layers the
   L+1 states of transformers' output_hidden_states as (L+1,B,T,C). */
int lacos_bloom_forward(lacos_tensor **hidden, lacos_bloom *m, const lacos_tensor *ids, const lacos_tensor *mask,
                        int all_layers);
/* Pooled sentence embeddings (B,C) f32. */
int lacos_bloom_encode(lacos_tensor **embeddings, lacos_bloom *m, const lacos_tensor *ids,
                       const lacos_tensor *mask, int pooling);
/* The checkpoint's tensors by name (transformers' BloomModel names), as f32
   in the checkpoint layout (int8 weights dequantised). */
int lacos_bloom_weight_count(const lacos_bloom *m);
const char *lacos_bloom_weight_name(const lacos_bloom *m, int i);
int lacos_bloom_weight(lacos_tensor **out, lacos_bloom *m, const char *name);
/* Outlier feature columns seen by the four linears of a layer in the last
   forward (qkv, dense, h_to_4h, 4h_to_h); 0 when the threshold is 0. */
int lacos_bloom_outliers(const lacos_bloom *m, int layer, int *counts);

/* Training. A forward pass that keeps what the backward pass needs (all
   activations, or with checkpointing only each block's input, recomputing
   the rest), then the backward pass from the embeddings' gradient into the
   LoRA gradients (accumulated). The base weights stay frozen. stream selects
   the LoRA dropout masks (0 = no dropout, as in evaluation). */
typedef struct lacos_bloom_batch lacos_bloom_batch;
int lacos_bloom_forward_train(lacos_tensor **embeddings, lacos_bloom_batch **batch, lacos_bloom *m,
                              const lacos_tensor *ids, const lacos_tensor *mask, int pooling, double stream);
int lacos_bloom_backward(lacos_bloom *m, lacos_bloom_batch *batch, const lacos_tensor *d_embeddings);
void lacos_bloom_batch_free(lacos_bloom_batch *batch);
double lacos_bloom_batch_bytes(const lacos_bloom_batch *batch);
/* Recompute block activations in the backward pass instead of keeping them. */
int lacos_bloom_set_checkpointing(lacos_bloom *m, int on);
/* Input gradients through int8 linears as int8 products (faster, ~1% noise)
   instead of exact f32 products with the dequantised weights. */
int lacos_bloom_set_fast_backward(lacos_bloom *m, int on);
/* Predicted bytes of a training forward+backward's activations for B
   sequences of T tokens (the memory planner). */
double lacos_bloom_train_activation_bytes(const lacos_bloom_config *cfg, int B, int T, int lora_r,
                                          int lora_targets, int checkpointing);

/* ----- end bloom ----- */

/* ===== lora (lora.c: adapters, merge, PEFT import/export) ===== */

/* Linears a LoRA adapter can target (bit flags; PEFT's module names in comments). */
typedef enum lacos_lora_target {
  LACOS_LORA_QKV = 1,        /* self_attention.query_key_value (PEFT's BLOOM default) */
  LACOS_LORA_DENSE = 2,      /* self_attention.dense */
  LACOS_LORA_H_TO_4H = 4,    /* mlp.dense_h_to_4h */
  LACOS_LORA_4H_TO_H = 8     /* mlp.dense_4h_to_h */
} lacos_lora_target;

typedef struct lacos_lora_config {
  int r;               /* rank */
  double alpha;        /* scaling = alpha / r (alpha / sqrt(r) with use_rslora) */
  double dropout;      /* on the adapter input, as PEFT's lora_dropout */
  int targets;         /* lacos_lora_target bits */
  int use_rslora;
  double seed;         /* initialisation and dropout stream */
} lacos_lora_config;

/* PEFT's LoraConfig defaults: r 8, alpha 8, dropout 0, query_key_value. */
void lacos_lora_config_init(lacos_lora_config *c);
/* Adds adapters (A Kaiming-uniform with a = sqrt(5), B = 0, so the model's
   output is unchanged until training moves B). Replaces existing ones. */
int lacos_lora_attach(lacos_bloom *m, const lacos_lora_config *c);
int lacos_lora_detach(lacos_bloom *m);
int lacos_lora_set_enabled(lacos_bloom *m, int on);
int lacos_lora_get_config(const lacos_bloom *m, lacos_lora_config *c);
double lacos_lora_param_count(const lacos_bloom *m);
/* Adapted linears are numbered 0..count-1 (layer-major). */
int lacos_lora_slot_count(const lacos_bloom *m);
int lacos_lora_slot_info(const lacos_bloom *m, int slot, int *layer, int *target);
/* Views (sharing the model's memory; valid while the adapter exists) of a
   slot's tensors. which: 0 = A (r,in), 1 = B (out,r), 2 = grad A, 3 = grad B. */
int lacos_lora_tensor(lacos_tensor **out, lacos_bloom *m, int slot, int which);
int lacos_lora_zero_grad(lacos_bloom *m);

/* ----- end lora ----- */

/* ===== optim (optim.c: AdamW and 8-bit blockwise Adam) ===== */

/* ----- end optim ----- */

/* ===== loss (loss.c: MNRL, CoSENT, softmax classifier) ===== */

/* Each loss returns its value and writes the gradient with respect to its
   inputs into the given tensors (same shapes, f32, overwritten; NULL to
   skip). Embeddings are (n, d) f32 tensors. */

/* MultipleNegativesRankingLoss (sentence-transformers): candidates are the B
   positives followed by any hard negatives (B·(1+k) rows); anchor i's positive
   is candidate i, every other candidate is a negative. loss = mean cross-
   entropy of scale·cos(anchor, candidates). symmetric adds the
   positive→anchor direction and averages the two (MNSRL). */
int lacos_loss_mnrl(const lacos_tensor *anchors, const lacos_tensor *candidates, double scale, int symmetric,
                    double *loss, lacos_tensor *d_anchors, lacos_tensor *d_candidates);
/* CoSENTLoss: log(1 + Σ_{label_i < label_j} exp(scale·(cos_i − cos_j))), cos_i = cos(u_i, v_i). */
int lacos_loss_cosent(const lacos_tensor *u, const lacos_tensor *v, const lacos_tensor *labels, double scale,
                      double *loss, lacos_tensor *du, lacos_tensor *dv);
/* SBERT's SoftmaxLoss: logits = W·[u; v; |u−v|] + b, mean cross-entropy over
   integer labels (i32, 0..n_labels−1). W (n_labels, 3d), b (n_labels). */
int lacos_loss_softmax(const lacos_tensor *u, const lacos_tensor *v, const lacos_tensor *labels,
                       const lacos_tensor *W, const lacos_tensor *b, double *loss,
                       lacos_tensor *du, lacos_tensor *dv, lacos_tensor *dW, lacos_tensor *db);

/* ----- end loss ----- */

/* ===== train (train.c, checkpoint.c: training steps and run checkpoints) ===== */

/* ----- end train ----- */

/* ===== datasets (datasets.c: STS, NLI and pair readers) ===== */

/* ----- end datasets ----- */

/* ===== sts (sts.c: cosine scores, Spearman, Pearson) ===== */

/* ----- end sts ----- */

/* ===== results (results.c: the SQLite results database) ===== */

/* ----- end results ----- */

/* ===== download (download.c: resumable verified HTTP downloads) ===== */

/* ----- end download ----- */

/* ===== cuda (cuda.c: device discovery and the CUDA backend) ===== */

/* ----- end cuda ----- */

