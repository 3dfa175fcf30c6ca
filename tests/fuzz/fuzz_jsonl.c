/* fuzz_jsonl.c: libFuzzer target for lacos_pairset_read_jsonl (engine/datasets.c);
   input layout, invariants and replay: see fuzz_datasets.h. */
#define FUZZ_READER READ_JSONL
#include "fuzz_datasets.h"
