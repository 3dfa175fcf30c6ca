"""Benchmark engine: llama.cpp (through llama-cpp-python's ctypes binding of
its C API) encoding the same batch of token ids with the GGUF Q8_0 of the
checkpoint (tests/bench/convert_gguf.py). Speaks the protocol of
tests/bench/encode.lua (driven by encode_compare.py).

One llama_decode per encode: every sequence of the batch is its own seq_id
(0..B-1) in one llama_batch of explicit token ids and positions, so that
llama.cpp attends within each sequence only; the context holds exactly B
sequences of T tokens, its memory is cleared before each encode.

The language-model head is left out, as the encoders around it do: llama.cpp's
BLOOM graph multiplies every token's final hidden state by the 250880-row
token embedding (the logits) even when only embeddings are asked for, and
that product alone is about as much work as the 24 blocks of bloom-560m. The
engine asks llama.cpp's eval callback to stop the graph after the final
layer norm: returning false after a node is computed is the
callback's documented way to cancel the rest of the graph. The token
embeddings that llama.cpp hands back are then mean-pooled here, over the
tokens the mask keeps (llama.cpp's own mean pooling comes after the logits in
its graph). LACOS_LLAMACPP_LM_HEAD=1 runs the whole graph with llama.cpp's
mean pooling instead, to see what the head costs.

usage: encode_llamacpp.py MODEL.gguf THREADS IDS.npy MASK.npy EMB.npy"""
import ctypes
import json
import os
import resource
import sys
import time

import numpy as np


def say(obj):
    print(json.dumps(obj), flush=True)


class Encoder:
    def __init__(self, llama, path, threads, batch, seq_len, with_head):
        self.llama, self.with_head, self.batch_size, self.seq_len = llama, with_head, batch, seq_len
        mparams = llama.llama_model_default_params()
        mparams.n_gpu_layers = 0
        self.model = llama.llama_model_load_from_file(path.encode(), mparams)
        if not self.model:
            raise RuntimeError(f"{path}: llama.cpp could not load it")
        n = batch * seq_len
        cparams = llama.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n
        cparams.n_seq_max = batch
        cparams.kv_unified = False          # B streams of T cells: attention within a sequence only
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.embeddings = True
        cparams.pooling_type = llama.LLAMA_POOLING_TYPE_MEAN if with_head else llama.LLAMA_POOLING_TYPE_NONE
        if not with_head:
            self.callback = self.stop_after_norm_callback(llama)
            cparams.cb_eval = self.callback
        self.ctx = llama.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RuntimeError(f"{path}: llama.cpp could not make a context (n_ctx {n}, n_seq_max {batch})")
        self.n_embd = llama.llama_model_n_embd(self.model)
        self.batch = llama.llama_batch_init(n, 0, 1)

    def stop_after_norm_callback(self, llama):
        lib = os.path.join(os.path.dirname(llama.__file__), "lib")
        ggml = ctypes.CDLL(os.path.join(lib, "libggml-base.so"))
        ggml.ggml_get_name.restype = ctypes.c_char_p
        ggml.ggml_get_name.argtypes = [ctypes.c_void_p]
        self.seen_norm = False

        # the final LayerNorm's output is named result_norm, then (pooling
        # none hands it on as is) renamed result_embd_pooled; the logits
        # (result_output) come after it in the graph
        last = (b"result_norm", b"result_embd_pooled")

        def callback(tensor, ask, _user):
            name = ggml.ggml_get_name(tensor)
            if name not in last:
                return False                # not needed: computed together with the next needed node
            if ask:
                return True                 # needed: the nodes up to it are computed, then we are told
            self.seen_norm = True
            return False                    # after it: cancel the rest of the graph (result_output, the logits)

        return llama.ggml_backend_sched_eval_callback(callback)

    def fill(self, ids, mask):
        """The batch, once: token ids, positions, one seq_id per sentence."""
        b = self.batch
        self.lengths = mask.sum(1).astype(int)
        k = 0
        for s in range(ids.shape[0]):
            for t in range(self.lengths[s]):   # right padding: the kept tokens come first
                b.token[k], b.pos[k], b.n_seq_id[k], b.logits[k] = int(ids[s, t]), t, 1, 1
                b.seq_id[k][0] = s
                k += 1
        b.n_tokens = k

    def encode(self):
        llama = self.llama
        llama.llama_memory_clear(llama.llama_get_memory(self.ctx), True)
        if not self.with_head:
            self.seen_norm = False
        rc = llama.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        if self.with_head:
            return np.stack([np.ctypeslib.as_array(llama.llama_get_embeddings_seq(self.ctx, s), (self.n_embd,))
                             for s in range(len(self.lengths))]).copy()
        if not self.seen_norm:
            raise RuntimeError("llama.cpp's graph has no node named result_norm: the lm_head was not skipped")
        n = self.batch.n_tokens
        tok = np.ctypeslib.as_array(llama.llama_get_embeddings(self.ctx), (n, self.n_embd))
        ends = np.cumsum(self.lengths)
        return np.stack([tok[e - m:e].mean(0) for e, m in zip(ends, self.lengths)])


def main():
    path, threads, ids_path, mask_path, emb_path = sys.argv[1:6]
    try:
        import llama_cpp as llama
    except ImportError as e:
        say({"event": "error", "error": f"llama-cpp-python is not installed ({e}); make bench builds it"})
        return 1
    if not os.path.isfile(path):
        say({"event": "error", "error": f"{path}: no such GGUF model (tests/bench/convert_gguf.py writes it when "
                                        f"llama.cpp's sources are unpacked; a failed conversion leaves {path}.log)"})
        return 1

    def log(level, text, _user):            # llama.cpp's errors only (GGML_LOG_LEVEL_ERROR)
        if level == 4:
            sys.stderr.write(text.decode(errors="replace"))

    log_callback = llama.llama_log_callback(log)
    llama.llama_log_set(log_callback, None)
    llama.llama_backend_init()
    ids, mask = np.load(ids_path), np.load(mask_path)
    with_head = os.environ.get("LACOS_LLAMACPP_LM_HEAD") == "1"
    t0 = time.perf_counter()
    enc = Encoder(llama, path, int(threads), ids.shape[0], ids.shape[1], with_head)
    enc.fill(ids, mask)
    load_s = time.perf_counter() - t0
    np.save(emb_path, enc.encode().astype(np.float32))
    say({"event": "ready", "impl": "llama.cpp", "quant": "q8_0", "load_seconds": load_s, "threads": int(threads),
         "llama_cpp_python": llama.__version__, "lm_head": with_head,
         "llama_cpp_system": llama.llama_print_system_info().decode().strip()})
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        t1, c1 = time.perf_counter(), time.process_time()
        enc.encode()
        say({"seconds": time.perf_counter() - t1, "cpu_seconds": time.process_time() - c1})
    say({"event": "done", "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024})
    return 0


if __name__ == "__main__":
    sys.exit(main())
