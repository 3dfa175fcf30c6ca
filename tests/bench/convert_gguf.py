"""GGUF Q8_0 of a benchmark checkpoint for the llama.cpp engine
(tests/bench/encode_llamacpp.py), written by llama.cpp's own converter
(convert_hf_to_gguf.py and gguf-py from the vendor/llama.cpp folder of the
llama-cpp-python sdist that make bench builds llama.cpp from).

The random checkpoints carry no tokenizer: the benchmark feeds every engine
the same token ids. The converter's BLOOM class reads a tokenizer for the
vocabulary it writes, so here the vocabulary is llama.cpp's "none" type with
the checkpoint's vocab_size, which llama.cpp loads as that many nameless
tokens: every id below vocab_size is accepted, and no text is ever tokenised.
Everything else (the fused QKV reordering, Q8_0 of every weight matrix) is
the converter's.

usage: convert_gguf.py LLAMA_CPP_DIR MODEL_DIR OUT.gguf"""
import os
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, model, out = sys.argv[1:4]
    script = os.path.join(src, "convert_hf_to_gguf.py")
    if not os.path.isfile(script):
        sys.exit(f"convert_gguf.py: {script}: no such file (expected llama.cpp's converter in the sdist)")
    sys.path[:0] = [src, os.path.join(src, "gguf-py")]
    import convert_hf_to_gguf
    from conversion.bloom import BloomModel

    def set_vocab(self):
        self.gguf_writer.add_tokenizer_model("none")
        self.gguf_writer.add_vocab_size(self.hparams["vocab_size"])

    BloomModel.set_vocab = set_vocab
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = out + ".part"
    sys.argv = [script, model, "--outtype", "q8_0", "--outfile", tmp]
    convert_hf_to_gguf.main()
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
