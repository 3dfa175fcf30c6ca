/* fuzz_tsv.c: libFuzzer target for lacos_pairset_read_tsv (engine/datasets.c);
   input layout, invariants and replay: see fuzz_datasets.h. */
#define FUZZ_READER READ_TSV
#include "fuzz_datasets.h"
