/* optim.c: AdamW and 8-bit blockwise Adam over f32 parameters.

   Which semantics, and why
   ------------------------
   LACOS_OPTIM_ADAM8BIT follows bitsandbytes' CUDA kernel
   kOptimizerStatic8bit2StateBlockwise (bitsandbytes-foundation/bitsandbytes:
   csrc/kernels.cu), not its CPU fallback (bitsandbytes/backends/cpu/ops.py,
   _optimizer_update_8bit_blockwise_cpu). The kernel is what GPU users of
   Adam8bit run and what lacos' CUDA twin will run, so CPU and GPU share one
   definition. Per block of 256 elements, in float32, in this order:
     1. m = qmap1[c1]*absmax1, v = qmap2[c2]*absmax2 (signed / unsigned map);
     2. finite g: v = v*b2 + ((1-b2)*g)*g, m = m*b1 + (1-b1)*g;
        g NaN or infinite: m = v = 0 and the element's parameter is not touched;
     3. absmax1, absmax2 = max |m|, max |v| over the block;
     4. p = p + step_size * (m / (sqrt(v) + c2*eps)), step_size = (-lr*c2)/c1,
        c1 = 1 - b1^t, c2 = sqrt(1 - b2^t)  (= Adam's m̂/(sqrt(v̂) + eps));
     5. then, if wd > 0, p = p * (1 - lr*wd): decoupled decay AFTER the update;
     6. codes = nearest code to m*(1/absmax1), v*(1/absmax2);
     7. momentum never flips sign: if the code's sign differs from m's, move
        one code towards m (the kernel's sign fix).
   The CPU fallback differs: decay before the update, a 65,536-entry lookup
   table instead of the nearest code, no sign fix, NaN gradients poison the
   whole block. Tests compare with both where they agree.
   Where lacos pins down what the kernel leaves loose:
   - scalars c1, c2 are computed in double from the float-rounded betas and
     rounded to float (the kernel uses __powf); lr, betas, eps, wd are
     float-rounded as the kernel receives them;
   - the state is scaled by 1/absmax, one IEEE division per block (the kernel
     approximates a division with __fdividef; bitsandbytes' quantize_blockwise
     multiplies by 1/absmax as here), and the nearest code is found on the
     code midpoints (c[i]+c[i+1])*0.5f with a tie going to the lower code
     (bucketize; the kernel's binary search breaks ties by search path);
   - an all-zero block (absmax 0) stores the code of 0 (the kernel divides
     0/0 and stores code 255 for m, 0 for v: the same value, 0);
   - absmax is taken over the block's real elements (the kernel's padding
     lanes of a partial last block contribute |qmap1[128]*absmax1*b1|).
   Tensors under min_8bit_size elements keep f32 states and follow
   kOptimizer32bit2State (v = v*b2 + (1-b2)*(g*g), same eps placement and
   decay order) plus the non-finite rule above (the 32-bit kernel would write
   NaN into p, m and v).

   LACOS_OPTIM_ADAMW follows torch.optim.AdamW's single-tensor CPU path
   (pytorch/pytorch: torch/optim/adam.py, _single_tensor_adam with
   decoupled_weight_decay): p *= 1 - lr*wd; m = lerp(m, g, 1-b1);
   v = v*b2 + (1-b2)*g*g; p += -(lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps),
   scalars in double as Python computes them. Non-finite gradient elements
   get the rule above instead of torch's NaN propagation, so both optimizers
   treat them alike.

   State layout: one allocation per class of state (all m codes, all v codes,
   all absmax values, all f32 moments), each a refcounted tensor so exported
   views stay valid. Work is split into fixed items (one 256-block of an
   8-bit tensor, or 4,096 elements of an f32-state tensor) processed in
   parallel with no shared accumulators, so results do not depend on the
   thread count. Float contraction is off: every product and sum is rounded
   as written, which the NumPy model in tests/reference/make_optim.py
   reproduces bit for bit.

   On the GPU: parameters and gradients on "cuda" (a device model's LoRA
   tensors) keep their state on the device too, and each step runs
   kernels/optim.cu over the same work list with the same scalars; the
   per-element arithmetic there is kernels/optim_math.h, optim.c's
   expressions in optim.c's order. */
#include "device.h"
#include <math.h>
#include <pthread.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__GNUC__) && !defined(__clang__)
/* sqrtf of a non-negative float needs no errno path; without it the loops vectorise */
#pragma GCC optimize("no-math-errno")
#endif

enum { BLOCK = 256, F32_ITEM = 4096, DEFAULT_MIN_8BIT = 4096, NAME_MAX_LEN = 400 };

/* bitsandbytes-foundation/bitsandbytes: bitsandbytes/functional.py,
   create_dynamic_map(signed=True) and (signed=False), max_exponent_bits 7:
   per decade 10^(i-6), i = 0..6, the midpoints of 2^i+1 (signed) or
   2^(i+1)+1 (unsigned) points of linspace(0.1, 1), plus 0 and 1, sorted.
   Golden-tested against the function's output (tests/fixtures/optim). */
static const float map_signed[256] = {
  -0.992968738f, -0.978906274f, -0.96484375f, -0.950781226f, -0.936718762f, -0.922656238f,
  -0.908593774f, -0.89453125f, -0.880468726f, -0.866406262f, -0.852343738f, -0.838281274f,
  -0.82421875f, -0.810156226f, -0.796093762f, -0.782031238f, -0.767968774f, -0.75390625f,
  -0.739843726f, -0.725781262f, -0.711718798f, -0.697656274f, -0.68359375f, -0.669531226f,
  -0.655468762f, -0.641406298f, -0.627343774f, -0.61328125f, -0.599218726f, -0.585156262f,
  -0.571093798f, -0.557031274f, -0.54296875f, -0.528906226f, -0.514843702f, -0.500781238f,
  -0.486718714f, -0.47265625f, -0.458593726f, -0.444531262f, -0.430468738f, -0.416406244f,
  -0.40234375f, -0.388281226f, -0.374218762f, -0.360156238f, -0.346093744f, -0.33203125f,
  -0.317968726f, -0.303906262f, -0.289843738f, -0.275781274f, -0.26171875f, -0.247656241f,
  -0.233593747f, -0.219531253f, -0.205468744f, -0.19140625f, -0.177343756f, -0.163281247f,
  -0.149218753f, -0.135156244f, -0.12109375f, -0.107031256f, -0.0985937491f, -0.0957812592f,
  -0.0929687545f, -0.0901562497f, -0.0873437524f, -0.0845312476f, -0.0817187577f, -0.078906253f,
  -0.0760937482f, -0.0732812509f, -0.0704687461f, -0.0676562563f, -0.0648437515f, -0.0620312504f,
  -0.0592187531f, -0.0564062484f, -0.053593751f, -0.05078125f, -0.047968749f, -0.0451562516f,
  -0.0423437469f, -0.0395312496f, -0.0367187522f, -0.0339062512f, -0.0310937501f, -0.028281251f,
  -0.0254687499f, -0.0226562507f, -0.0198437516f, -0.0170312505f, -0.0142187504f, -0.0114062503f,
  -0.00971874967f, -0.00915624946f, -0.00859375019f, -0.00803124998f, -0.00746874977f, -0.00690625003f,
  -0.00634374982f, -0.00578125007f, -0.00521875033f, -0.00465624966f, -0.00409374991f, -0.00353124971f,
  -0.00296874996f, -0.00240624999f, -0.00184375001f, -0.00128124992f, -0.000943750085f, -0.000831249985f,
  -0.00071875006f, -0.000606250076f, -0.000493750034f, -0.000381250022f, -0.000268750038f, -0.000156250011f,
  -8.87499991e-5f, -6.62500024e-5f, -4.37499984e-5f, -2.12499981e-5f, -7.7499999e-6f, -3.25000019e-6f,
  -5.50000038e-7f, 0.0f, 5.50000038e-7f, 3.25000019e-6f, 7.7499999e-6f, 2.12499981e-5f,
  4.37499984e-5f, 6.62500024e-5f, 8.87499991e-5f, 0.000156250011f, 0.000268750038f, 0.000381250022f,
  0.000493750034f, 0.000606250076f, 0.00071875006f, 0.000831249985f, 0.000943750085f, 0.00128124992f,
  0.00184375001f, 0.00240624999f, 0.00296874996f, 0.00353124971f, 0.00409374991f, 0.00465624966f,
  0.00521875033f, 0.00578125007f, 0.00634374982f, 0.00690625003f, 0.00746874977f, 0.00803124998f,
  0.00859375019f, 0.00915624946f, 0.00971874967f, 0.0114062503f, 0.0142187504f, 0.0170312505f,
  0.0198437516f, 0.0226562507f, 0.0254687499f, 0.028281251f, 0.0310937501f, 0.0339062512f,
  0.0367187522f, 0.0395312496f, 0.0423437469f, 0.0451562516f, 0.047968749f, 0.05078125f,
  0.053593751f, 0.0564062484f, 0.0592187531f, 0.0620312504f, 0.0648437515f, 0.0676562563f,
  0.0704687461f, 0.0732812509f, 0.0760937482f, 0.078906253f, 0.0817187577f, 0.0845312476f,
  0.0873437524f, 0.0901562497f, 0.0929687545f, 0.0957812592f, 0.0985937491f, 0.107031256f,
  0.12109375f, 0.135156244f, 0.149218753f, 0.163281247f, 0.177343756f, 0.19140625f,
  0.205468744f, 0.219531253f, 0.233593747f, 0.247656241f, 0.26171875f, 0.275781274f,
  0.289843738f, 0.303906262f, 0.317968726f, 0.33203125f, 0.346093744f, 0.360156238f,
  0.374218762f, 0.388281226f, 0.40234375f, 0.416406244f, 0.430468738f, 0.444531262f,
  0.458593726f, 0.47265625f, 0.486718714f, 0.500781238f, 0.514843702f, 0.528906226f,
  0.54296875f, 0.557031274f, 0.571093798f, 0.585156262f, 0.599218726f, 0.61328125f,
  0.627343774f, 0.641406298f, 0.655468762f, 0.669531226f, 0.68359375f, 0.697656274f,
  0.711718798f, 0.725781262f, 0.739843726f, 0.75390625f, 0.767968774f, 0.782031238f,
  0.796093762f, 0.810156226f, 0.82421875f, 0.838281274f, 0.852343738f, 0.866406262f,
  0.880468726f, 0.89453125f, 0.908593774f, 0.922656238f, 0.936718762f, 0.950781226f,
  0.96484375f, 0.978906274f, 0.992968738f, 1.0f,
};
static const float map_unsigned[256] = {
  0.0f, 3.2500003e-7f, 7.7499999e-7f, 2.12499981e-6f, 4.37499966e-6f, 6.62499997e-6f,
  8.87499937e-6f, 1.56249989e-5f, 2.68750009e-5f, 3.81249993e-5f, 4.93749976e-5f, 6.06250032e-5f,
  7.18750016e-5f, 8.31249927e-5f, 9.43749983e-5f, 0.000128125001f, 0.000184375007f, 0.000240625013f,
  0.00029687502f, 0.000353124982f, 0.000409375032f, 0.000465625024f, 0.000521875045f, 0.000578125007f,
  0.000634375028f, 0.000690625049f, 0.000746875012f, 0.000803125091f, 0.000859375054f, 0.000915625016f,
  0.000971875037f, 0.00114062498f, 0.00142187497f, 0.00170312496f, 0.00198437506f, 0.00226562493f,
  0.00254687481f, 0.00282812491f, 0.00310937478f, 0.00339062512f, 0.00367187499f, 0.00395312486f,
  0.0042343745f, 0.00451562507f, 0.00479687471f, 0.00507812481f, 0.00535937492f, 0.00564062456f,
  0.00592187513f, 0.00620312477f, 0.00648437487f, 0.00676562544f, 0.00704687461f, 0.00732812518f,
  0.00760937436f, 0.00789062493f, 0.00817187503f, 0.0084531242f, 0.00873437524f, 0.00901562441f,
  0.00929687452f, 0.00957812555f, 0.00985937472f, 0.010703126f, 0.0121093756f, 0.0135156242f,
  0.0149218757f, 0.0163281243f, 0.0177343767f, 0.0191406254f, 0.020546874f, 0.0219531264f,
  0.0233593751f, 0.0247656237f, 0.0261718761f, 0.0275781285f, 0.0289843734f, 0.0303906258f,
  0.0317968726f, 0.033203125f, 0.0346093737f, 0.036015626f, 0.0374218784f, 0.0388281234f,
  0.0402343757f, 0.0416406244f, 0.0430468731f, 0.0444531254f, 0.0458593741f, 0.0472656265f,
  0.0486718714f, 0.0500781238f, 0.0514843725f, 0.0528906249f, 0.0542968772f, 0.0557031296f,
  0.057109382f, 0.0585156269f, 0.0599218719f, 0.0613281243f, 0.0627343804f, 0.0641406327f,
  0.0655468777f, 0.0669531226f, 0.068359375f, 0.0697656274f, 0.0711718798f, 0.0725781247f,
  0.0739843771f, 0.0753906295f, 0.0767968819f, 0.0782031268f, 0.0796093792f, 0.0810156241f,
  0.0824218765f, 0.0838281289f, 0.0852343738f, 0.0866406262f, 0.0880468711f, 0.0894531235f,
  0.0908593759f, 0.0922656283f, 0.0936718807f, 0.0950781256f, 0.096484378f, 0.0978906304f,
  0.0992968753f, 0.103515625f, 0.110546872f, 0.117578126f, 0.124609374f, 0.131640613f,
  0.138671875f, 0.145703137f, 0.152734369f, 0.159765631f, 0.166796863f, 0.173828125f,
  0.180859387f, 0.187890619f, 0.194921881f, 0.201953113f, 0.208984375f, 0.216015637f,
  0.223046869f, 0.230078131f, 0.237109363f, 0.244140625f, 0.251171857f, 0.258203119f,
  0.265234381f, 0.272265613f, 0.279296875f, 0.286328137f, 0.293359369f, 0.300390601f,
  0.307421863f, 0.314453125f, 0.321484387f, 0.328515619f, 0.335546851f, 0.342578113f,
  0.349609375f, 0.356640637f, 0.363671869f, 0.370703101f, 0.377734363f, 0.384765625f,
  0.391796887f, 0.398828119f, 0.405859351f, 0.412890613f, 0.419921875f, 0.426953137f,
  0.433984369f, 0.441015601f, 0.448046863f, 0.455078125f, 0.462109387f, 0.469140619f,
  0.476171851f, 0.483203113f, 0.490234375f, 0.497265607f, 0.504296899f, 0.511328101f,
  0.518359363f, 0.525390625f, 0.532421827f, 0.539453149f, 0.546484351f, 0.553515673f,
  0.560546875f, 0.567578137f, 0.574609399f, 0.581640601f, 0.588671923f, 0.595703125f,
  0.602734387f, 0.609765649f, 0.616796851f, 0.623828173f, 0.630859375f, 0.637890637f,
  0.644921899f, 0.651953101f, 0.658984423f, 0.666015625f, 0.673046887f, 0.680078149f,
  0.687109351f, 0.694140673f, 0.701171875f, 0.708203137f, 0.715234399f, 0.722265601f,
  0.729296923f, 0.736328125f, 0.743359387f, 0.750390649f, 0.757421851f, 0.764453173f,
  0.771484375f, 0.778515577f, 0.785546899f, 0.792578101f, 0.799609423f, 0.806640625f,
  0.813671827f, 0.820703149f, 0.827734351f, 0.834765673f, 0.841796875f, 0.848828077f,
  0.855859399f, 0.862890601f, 0.869921923f, 0.876953125f, 0.883984327f, 0.891015649f,
  0.898046851f, 0.905078173f, 0.912109375f, 0.919140577f, 0.926171899f, 0.933203101f,
  0.940234423f, 0.947265625f, 0.954296827f, 0.961328149f, 0.968359351f, 0.975390673f,
  0.982421875f, 0.989453077f, 0.996484399f, 1.0f,
};

const float *lacos_optim_dynamic_map(int is_signed) { return is_signed ? map_signed : map_unsigned; }

/* ---- nearest code ---- */

/* The nearest code to x is the number of code midpoints (map[i]+map[i+1])*0.5f
   strictly below x: ties go to the lower code (torch.bucketize on the
   midpoints, bitsandbytes' reference quantize_blockwise). NaN gives 0.

   The definition is the binary search over the midpoints below. The step
   uses an equivalent lookup: a float's sign, exponent and top 7 mantissa bits
   select a bucket of magnitudes; for |x| in [2^-23, 1) a bucket holds at most
   one midpoint, so the count is the bucket's base count plus one comparison.
   Below 2^-23 (no midpoint is that small) and from 1 up (all midpoints are
   below 1) the count is constant. The tables are built from the search once
   and every bucket is verified; if one held two midpoints the step would
   fall back to the search (test_optim checks it does not). */
enum {
  TINY_BITS = 0x34000000,     /* 2^-23 */
  ONE_BITS = 0x3F800000,      /* 1.0f */
  INF_BITS = 0x7F800000,
  KEYS = (ONE_BITS >> 16) - (TINY_BITS >> 16)
};

typedef struct code_index {
  float mid[256];             /* mid[255] = +inf */
  uint8_t base[2][KEYS];      /* [sign][bucket]: midpoints below the bucket */
  uint8_t tiny[2], big[2];    /* [sign]: |x| < 2^-23, |x| >= 1 */
  int ok;                     /* every bucket verified */
} code_index;

static code_index code_signed, code_unsigned;
static pthread_once_t code_once = PTHREAD_ONCE_INIT;

static inline unsigned code_search(const float *mid, float x) {
  unsigned i = 0;
  i += mid[i + 127] < x ? 128u : 0u;
  i += mid[i + 63] < x ? 64u : 0u;
  i += mid[i + 31] < x ? 32u : 0u;
  i += mid[i + 15] < x ? 16u : 0u;
  i += mid[i + 7] < x ? 8u : 0u;
  i += mid[i + 3] < x ? 4u : 0u;
  i += mid[i + 1] < x ? 2u : 0u;
  i += mid[i] < x ? 1u : 0u;
  return i;
}

static float float_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static void code_index_build(code_index *t, const float *map) {
  for (int i = 0; i < 255; i++) t->mid[i] = (map[i] + map[i + 1]) * 0.5f;
  t->mid[255] = INFINITY;
  t->ok = 1;
  for (uint32_t s = 0; s < 2; s++) {
    uint32_t sb = s << 31;
    /* |x| < 2^-23: from the smallest magnitude (0) to the largest */
    t->tiny[s] = (uint8_t)code_search(t->mid, float_of(sb));
    t->ok &= code_search(t->mid, float_of(sb | (TINY_BITS - 1))) == t->tiny[s];
    t->big[s] = (uint8_t)code_search(t->mid, float_of(sb | ONE_BITS));
    t->ok &= code_search(t->mid, float_of(sb | INF_BITS)) == t->big[s];
    for (uint32_t k = 0; k < KEYS; k++) {
      uint32_t lo = TINY_BITS + (k << 16), hi = lo + 0xFFFF;     /* magnitudes in the bucket */
      float first = float_of(sb | (s ? hi : lo)), last = float_of(sb | (s ? lo : hi));   /* smallest, largest x */
      unsigned b = code_search(t->mid, first);
      t->base[s][k] = (uint8_t)b;
      t->ok &= code_search(t->mid, last) <= b + 1;
    }
  }
}

static void code_index_init(void) {
  code_index_build(&code_signed, map_signed);
  code_index_build(&code_unsigned, map_unsigned);
}

static const code_index *code_index_get(int is_signed) {
  pthread_once(&code_once, code_index_init);
  return is_signed ? &code_signed : &code_unsigned;
}

static inline unsigned nearest_code(const code_index *t, float x) {
  if (!t->ok) return code_search(t->mid, x);
  uint32_t u;
  memcpy(&u, &x, 4);
  uint32_t mag = u & 0x7FFFFFFFu, sign = u >> 31;
  if (mag < TINY_BITS) return t->tiny[sign];
  if (mag >= ONE_BITS) return mag > INF_BITS ? 0u : t->big[sign];
  unsigned b = t->base[sign][(mag >> 16) - (TINY_BITS >> 16)];
  return b + (t->mid[b] < x);
}

/* For tests: the lookup, the search it must equal, and whether the lookup is in use. */
unsigned optim_code_lookup(int is_signed, float x) { return nearest_code(code_index_get(is_signed), x); }
unsigned optim_code_search(int is_signed, float x) {
  const code_index *t = code_index_get(is_signed);
  return x != x ? 0u : code_search(t->mid, x);
}
int optim_code_lookup_ok(void) { return code_index_get(1)->ok && code_index_get(0)->ok; }

enum { ZERO_CODE_SIGNED = 127, ZERO_CODE_UNSIGNED = 0 };

/* ---- standalone blockwise quantisation ---- */

static int block_size_ok(int b) {
  if (b < 64 || b > 4096 || (b & (b - 1)))
    return fail(LACOS_EINVAL, "block size must be a power of two from 64 to 4096, got %d", b);
  return LACOS_OK;
}

// codes (n) u8, absmax (ceil(n/block)) f32, x (n) f32
static void quantize_blockwise(uint8_t *codes, float *absmax, const float *x, int64_t n, int is_signed, int block) {
  const code_index *t = code_index_get(is_signed);
  int64_t nb = (n + block - 1) / block;
  #pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < nb; b++) {
    int64_t s = b * block, e = s + block < n ? s + block : n;
    float am = 0.0f;
    for (int64_t i = s; i < e; i++) { float a = fabsf(x[i]); am = a > am ? a : am; }
    absmax[b] = am;
    if (am == 0.0f) {
      memset(codes + s, is_signed ? ZERO_CODE_SIGNED : ZERO_CODE_UNSIGNED, (size_t)(e - s));
      continue;
    }
    float inv = 1.0f / am;
    for (int64_t i = s; i < e; i++) codes[i] = (uint8_t)nearest_code(t, x[i] * inv);
  }
}

static void dequantize_blockwise(float *x, const uint8_t *codes, const float *absmax, int64_t n, int is_signed,
                                 int block) {
  const float *map = is_signed ? map_signed : map_unsigned;
  #pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; i++) x[i] = map[codes[i]] * absmax[i / block];
}

/* A parameter or gradient: contiguous, of dtype, on the optimizer's device
   (the first parameter's: all live on one device). */
static int param_tensor_ok(const lacos_tensor *t, const char *what, int device) {
  if (!t) return fail(LACOS_EINVAL, "%s: tensor is missing", what);
  if (t->flags & LACOS_TENSOR_RELEASED) return fail(LACOS_ESTATE, "%s: tensor was freed", what);
  if (t->dtype != LACOS_F32) return fail(LACOS_EINVAL, "%s: expected dtype f32, got %s", what, lacos_dtype_name(t->dtype));
  if (device >= 0 && t->device != device)
    return fail(LACOS_EDEVICE, "%s: the optimizer's tensors are on %s, this one is on %s", what,
                device == LACOS_CUDA ? "cuda" : "cpu", t->device == LACOS_CUDA ? "cuda" : "cpu");
  if (t->device != LACOS_CPU && t->device != LACOS_CUDA) return fail(LACOS_EDEVICE, "%s: unknown device %d", what, t->device);
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EINVAL, "%s: tensor is not contiguous", what);
  return LACOS_OK;
}

static int cpu_contiguous(const lacos_tensor *t, const char *what, int dtype) {
  TRY(tensor_check(t, what, dtype, -1));
  if (t->device != LACOS_CPU) return fail(LACOS_EDEVICE, "%s: the optimizer runs on CPU tensors", what);
  if (!lacos_tensor_is_contiguous(t)) return fail(LACOS_EINVAL, "%s: tensor is not contiguous", what);
  return LACOS_OK;
}

int lacos_optim_quantize(lacos_tensor **codes, lacos_tensor **absmax, const lacos_tensor *x, int is_signed,
                         int block_size) {
  *codes = *absmax = NULL;
  TRY(cpu_contiguous(x, "quantize input", LACOS_F32));
  TRY(block_size_ok(block_size));
  int64_t n = lacos_tensor_numel(x), nb = (n + block_size - 1) / block_size;
  TRY(lacos_tensor_empty(codes, LACOS_U8, LACOS_CPU, x->ndim, x->shape));
  int s = lacos_tensor_empty(absmax, LACOS_F32, LACOS_CPU, 1, &nb);
  if (s) { lacos_tensor_free(*codes); *codes = NULL; return s; }
  quantize_blockwise((*codes)->data, (*absmax)->data, x->data, n, is_signed != 0, block_size);
  return LACOS_OK;
}

int lacos_optim_dequantize(lacos_tensor **x, const lacos_tensor *codes, const lacos_tensor *absmax, int is_signed,
                           int block_size) {
  *x = NULL;
  TRY(cpu_contiguous(codes, "dequantize codes", LACOS_U8));
  TRY(cpu_contiguous(absmax, "dequantize absmax", LACOS_F32));
  TRY(block_size_ok(block_size));
  int64_t n = lacos_tensor_numel(codes), nb = (n + block_size - 1) / block_size;
  if (lacos_tensor_numel(absmax) != nb)
    return fail(LACOS_EINVAL, "dequantize: %lld codes in blocks of %d need %lld absmax values, got %lld",
                (long long)n, block_size, (long long)nb, (long long)lacos_tensor_numel(absmax));
  TRY(lacos_tensor_empty(x, LACOS_F32, LACOS_CPU, codes->ndim, codes->shape));
  dequantize_blockwise((*x)->data, codes->data, absmax->data, n, is_signed != 0, block_size);
  return LACOS_OK;
}

/* ---- the optimizer object ---- */

typedef struct optim_param {
  char *name;
  lacos_tensor *p, *g;      /* our views: the storages stay referenced */
  int64_t n;
  int eight_bit;
  int64_t off;              /* into the code buffers (8-bit) or the f32 moments */
  int64_t boff, nblocks;    /* into the absmax buffer (8-bit) */
} optim_param;

typedef struct work_item { int32_t param; int64_t start, len; } work_item;

struct lacos_optim {
  lacos_optim_config cfg;
  optim_param *params;
  int nparams, cap;
  int64_t n8, nf, nblocks, numel;
  /* One tensor per class of state, allocated on first use. */
  lacos_tensor *codes1, *codes2;   /* u8 (n8) */
  lacos_tensor *absmax;            /* f32 (2*nblocks): absmax1 then absmax2 */
  lacos_tensor *moments;           /* f32 (2*nf): m then v */
  work_item *work;
  int64_t nwork;
  char **state_names;
  int nstate;
  int step;
  double nonfinite;
  int ready;
  int device;                      /* of every parameter; -1 before the first */
  optim_item *items; int64_t nitems;     /* CUDA: the work list on the device */
  optim_item *chunks; int64_t nchunks;   /* CUDA: 4,096-element chunks for the gradient norm */
};

void lacos_optim_config_init(lacos_optim_config *c, int kind) {
  memset(c, 0, sizeof *c);
  c->lr = 1e-3;
  c->beta1 = 0.9;
  c->beta2 = 0.999;
  c->eps = 1e-8;
  if (kind == LACOS_OPTIM_ADAM8BIT) {
    c->kind = kind;
    c->block_size = BLOCK;
    c->min_8bit_size = DEFAULT_MIN_8BIT;
  } else if (kind == LACOS_OPTIM_ADAMW) {
    c->kind = kind;
    c->weight_decay = 0.01;
  } else {
    c->kind = -1;
  }
}

static int config_check(const lacos_optim_config *c) {
  if (c->kind != LACOS_OPTIM_ADAMW && c->kind != LACOS_OPTIM_ADAM8BIT)
    return fail(LACOS_EINVAL, "optimizer kind must be %d (AdamW) or %d (Adam8bit), got %d", LACOS_OPTIM_ADAMW,
                LACOS_OPTIM_ADAM8BIT, c->kind);
  if (!isfinite(c->lr) || c->lr < 0) return fail(LACOS_EINVAL, "invalid learning rate %g (must be >= 0)", c->lr);
  if (!isfinite(c->eps) || c->eps < 0) return fail(LACOS_EINVAL, "invalid eps %g (must be >= 0)", c->eps);
  if (!(c->beta1 >= 0 && c->beta1 < 1)) return fail(LACOS_EINVAL, "invalid beta1 %g (must be in [0, 1))", c->beta1);
  if (!(c->beta2 >= 0 && c->beta2 < 1)) return fail(LACOS_EINVAL, "invalid beta2 %g (must be in [0, 1))", c->beta2);
  if (!isfinite(c->weight_decay) || c->weight_decay < 0)
    return fail(LACOS_EINVAL, "invalid weight_decay %g (must be >= 0)", c->weight_decay);
  if (c->kind == LACOS_OPTIM_ADAM8BIT) {
    if (c->block_size != BLOCK)
      return fail(LACOS_EINVAL, "Adam8bit quantises its states in blocks of %d (bitsandbytes' block size), got block_size %d",
                  BLOCK, c->block_size);
    if (c->min_8bit_size < 0) return fail(LACOS_EINVAL, "min_8bit_size must be >= 0, got %d", c->min_8bit_size);
  } else {
    if (c->block_size != 0) return fail(LACOS_EINVAL, "block_size applies to Adam8bit only (AdamW keeps f32 states)");
    if (c->min_8bit_size != 0) return fail(LACOS_EINVAL, "min_8bit_size applies to Adam8bit only (AdamW keeps f32 states)");
  }
  return LACOS_OK;
}

int lacos_optim_new(lacos_optim **out, const lacos_optim_config *cfg) {
  *out = NULL;
  if (!cfg) return fail(LACOS_EINVAL, "optimizer config is missing");
  TRY(config_check(cfg));
  lacos_optim *o = calloc(1, sizeof *o);
  if (!o) return fail(LACOS_ENOMEM, "out of memory creating an optimizer");
  o->cfg = *cfg;
  o->device = -1;
  *out = o;
  return LACOS_OK;
}

void lacos_optim_free(lacos_optim *o) {
  if (!o) return;
  for (int i = 0; i < o->nparams; i++) {
    free(o->params[i].name);
    lacos_tensor_free(o->params[i].p);
    lacos_tensor_free(o->params[i].g);
  }
  free(o->params);
  lacos_tensor_free(o->codes1);
  lacos_tensor_free(o->codes2);
  lacos_tensor_free(o->absmax);
  lacos_tensor_free(o->moments);
  free(o->work);
  dev_free(o->items, sizeof(optim_item) * (size_t)o->nitems);
  dev_free(o->chunks, sizeof(optim_item) * (size_t)o->nchunks);
  if (o->state_names)
    for (int i = 0; i < o->nstate; i++) free(o->state_names[i]);
  free(o->state_names);
  free(o);
}

int lacos_optim_get_config(const lacos_optim *o, lacos_optim_config *cfg) {
  if (!o || !cfg) return fail(LACOS_EINVAL, "optimizer or config is missing");
  *cfg = o->cfg;
  return LACOS_OK;
}

static int ranges_overlap(const lacos_tensor *a, const lacos_tensor *b) {
  const char *a0 = a->data, *b0 = b->data;
  const char *a1 = a0 + (size_t)lacos_tensor_nbytes(a), *b1 = b0 + (size_t)lacos_tensor_nbytes(b);
  return a0 < b1 && b0 < a1;
}

static optim_param *param_named(const lacos_optim *o, const char *name) {
  for (int i = 0; i < o->nparams; i++)
    if (!strcmp(o->params[i].name, name)) return &o->params[i];
  return NULL;
}

int lacos_optim_add(lacos_optim *o, const char *name, const lacos_tensor *param, const lacos_tensor *grad) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  if (!name || !name[0]) return fail(LACOS_EINVAL, "optimizer parameter needs a non-empty name");
  if (strlen(name) > NAME_MAX_LEN) return fail(LACOS_EINVAL, "optimizer parameter name is longer than %d bytes", NAME_MAX_LEN);
  if (o->ready)
    return fail(LACOS_ESTATE, "%s: parameters can only be added before the optimizer's first step or state access", name);
  if (param_named(o, name)) return fail(LACOS_EINVAL, "%s: a parameter of this name is already registered", name);
  int s = param_tensor_ok(param, "parameter", o->device);
  if (!s) s = param_tensor_ok(grad, "gradient", param->device);
  if (s) return fail_context("%s", name);
  int64_t n = lacos_tensor_numel(param);
  if (n < 1) return fail(LACOS_EINVAL, "%s: parameter has no elements", name);
  bool same = param->ndim == grad->ndim;
  for (int d = 0; same && d < param->ndim; d++) same = param->shape[d] == grad->shape[d];
  if (!same) {
    char ps[64], gs[64];
    tensor_shape_str(param, ps, sizeof ps);
    tensor_shape_str(grad, gs, sizeof gs);
    return fail(LACOS_EINVAL, "%s: gradient shape %s differs from the parameter's %s", name, gs, ps);
  }
  if (ranges_overlap(param, grad)) return fail(LACOS_EINVAL, "%s: parameter and gradient share memory", name);
  for (int i = 0; i < o->nparams; i++) {
    const optim_param *q = &o->params[i];
    if (ranges_overlap(param, q->p) || ranges_overlap(param, q->g) || ranges_overlap(grad, q->p) ||
        ranges_overlap(grad, q->g))
      return fail(LACOS_EINVAL, "%s: memory overlaps the registered parameter %s or its gradient", name, q->name);
  }
  if (o->nparams == o->cap) {
    int cap = o->cap ? o->cap * 2 : 16;
    optim_param *np = realloc(o->params, (size_t)cap * sizeof *np);
    if (!np) return fail(LACOS_ENOMEM, "out of memory registering %s", name);
    o->params = np;
    o->cap = cap;
  }
  optim_param *q = &o->params[o->nparams];
  memset(q, 0, sizeof *q);
  q->name = strdup(name);
  if (!q->name) return fail(LACOS_ENOMEM, "out of memory registering %s", name);
  if ((s = lacos_tensor_view(&q->p, param, param->ndim, param->shape)) != LACOS_OK ||
      (s = lacos_tensor_view(&q->g, grad, grad->ndim, grad->shape)) != LACOS_OK) {
    lacos_tensor_free(q->p);
    free(q->name);
    return fail_context("%s", name);
  }
  q->n = n;
  q->eight_bit = o->cfg.kind == LACOS_OPTIM_ADAM8BIT && n >= o->cfg.min_8bit_size;
  if (q->eight_bit) {
    q->off = o->n8;
    q->nblocks = (n + BLOCK - 1) / BLOCK;
    q->boff = o->nblocks;
    o->n8 += n;
    o->nblocks += q->nblocks;
  } else {
    q->off = o->nf;
    o->nf += n;
  }
  o->numel += n;
  o->nparams++;
  o->device = param->device;
  return LACOS_OK;
}

int lacos_optim_param_count(const lacos_optim *o) { return o ? o->nparams : 0; }
double lacos_optim_numel(const lacos_optim *o) { return o ? (double)o->numel : 0; }
int lacos_optim_step_count(const lacos_optim *o) { return o ? o->step : 0; }
double lacos_optim_nonfinite(const lacos_optim *o) { return o ? o->nonfinite : 0; }

double lacos_optim_state_bytes(const lacos_optim *o) {
  if (!o) return 0;
  return 2.0 * (double)o->n8 + 2.0 * 4.0 * (double)o->nblocks + 2.0 * 4.0 * (double)o->nf;
}

static const char *state_suffix[4] = { ".state1", ".state2", ".absmax1", ".absmax2" };

static int state_alloc(lacos_tensor **t, int dtype, int device, int64_t n, const char *what) {
  if (n == 0) return LACOS_OK;
  if (lacos_tensor_new(t, dtype, device, 1, &n)) return fail_context("optimizer state (%s)", what);
  return LACOS_OK;
}

/* CUDA: the work list and the gradient-norm chunks as device arrays of
   optim_item (device pointers into the parameters and gradients). */
static int device_lists(lacos_optim *o, const work_item *work, int64_t nwork) {
  int64_t nchunks = 0;
  for (int i = 0; i < o->nparams; i++) nchunks += (o->params[i].n + F32_ITEM - 1) / F32_ITEM;
  optim_item *items = calloc((size_t)nwork, sizeof *items), *chunks = calloc((size_t)nchunks, sizeof *chunks);
  int s = items && chunks ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory preparing the optimizer");
  for (int64_t w = 0; w < nwork && !s; w++) {
    const optim_param *q = &o->params[work[w].param];
    items[w] = (optim_item){ (float *)q->p->data + work[w].start, (const float *)q->g->data + work[w].start,
                             q->off + work[w].start, q->eight_bit ? q->boff + work[w].start / BLOCK : 0,
                             (int32_t)work[w].len, q->eight_bit };
  }
  int64_t c = 0;
  for (int i = 0; i < o->nparams && !s; i++)
    for (int64_t st = 0; st < o->params[i].n; st += F32_ITEM)
      chunks[c++] = (optim_item){ (float *)o->params[i].p->data + st, (const float *)o->params[i].g->data + st, 0, 0,
                                  (int32_t)(o->params[i].n - st < F32_ITEM ? o->params[i].n - st : F32_ITEM), 0 };
  size_t ib = sizeof(optim_item) * (size_t)nwork, cb = sizeof(optim_item) * (size_t)nchunks;
  if (!s && !(o->items = dev_alloc(ib, "optimizer work list"))) s = lacos_last_status();
  if (!s) { o->nitems = nwork; s = dev_upload(o->items, items, ib); }
  if (!s && !(o->chunks = dev_alloc(cb, "optimizer norm chunks"))) s = lacos_last_status();
  if (!s) { o->nchunks = nchunks; s = dev_upload(o->chunks, chunks, cb); }
  free(items);
  free(chunks);
  return s;
}

/* Allocates the state and the work list once the parameter set is final. */
static int optim_ready(lacos_optim *o) {
  if (o->ready) return LACOS_OK;
  if (o->nparams == 0) return fail(LACOS_ESTATE, "the optimizer has no parameters (add them with lacos_optim_add)");
  int64_t nwork = 0;
  for (int i = 0; i < o->nparams; i++) {
    const optim_param *q = &o->params[i];
    nwork += q->eight_bit ? q->nblocks : (q->n + F32_ITEM - 1) / F32_ITEM;
  }
  int nstate = 1;
  for (int i = 0; i < o->nparams; i++) nstate += o->params[i].eight_bit ? 4 : 2;
  work_item *work = malloc((size_t)nwork * sizeof *work);
  char **names = calloc((size_t)nstate, sizeof *names);
  if (!work || !names) { free(work); free(names); return fail(LACOS_ENOMEM, "out of memory preparing the optimizer"); }
  int64_t w = 0;
  int k = 0;
  bool names_ok = true;
  for (int i = 0; i < o->nparams; i++) {
    const optim_param *q = &o->params[i];
    int64_t item = q->eight_bit ? BLOCK : F32_ITEM;
    for (int64_t s = 0; s < q->n; s += item)
      work[w++] = (work_item){ i, s, q->n - s < item ? q->n - s : item };
    for (int j = 0; j < (q->eight_bit ? 4 : 2); j++) {
      size_t len = strlen(q->name) + strlen(state_suffix[j]) + 1;
      names[k] = malloc(len);
      if (!names[k]) { names_ok = false; break; }
      snprintf(names[k++], len, "%s%s", q->name, state_suffix[j]);
    }
  }
  if (names_ok) names[k] = strdup("step");
  if (!names_ok || !names[nstate - 1]) {
    for (int i = 0; i < nstate; i++) free(names[i]);
    free(names);
    free(work);
    return fail(LACOS_ENOMEM, "out of memory preparing the optimizer");
  }
  int dev = o->device;
  int s = state_alloc(&o->codes1, LACOS_U8, dev, o->n8, "first-moment codes");
  if (!s) s = state_alloc(&o->codes2, LACOS_U8, dev, o->n8, "second-moment codes");
  if (!s) s = state_alloc(&o->absmax, LACOS_F32, dev, 2 * o->nblocks, "block absmax");
  if (!s) s = state_alloc(&o->moments, LACOS_F32, dev, 2 * o->nf, "f32 moments");
  if (!s && dev == LACOS_CUDA) s = device_lists(o, work, nwork);
  if (s) {
    dev_free(o->items, sizeof(optim_item) * (size_t)o->nitems);
    dev_free(o->chunks, sizeof(optim_item) * (size_t)o->nchunks);
    o->items = o->chunks = NULL;
    o->nitems = o->nchunks = 0;
    lacos_tensor_free(o->codes1); lacos_tensor_free(o->codes2);
    lacos_tensor_free(o->absmax); lacos_tensor_free(o->moments);
    o->codes1 = o->codes2 = o->absmax = o->moments = NULL;
    for (int i = 0; i < nstate; i++) free(names[i]);
    free(names);
    free(work);
    return s;
  }
  o->work = work;
  o->nwork = nwork;
  o->state_names = names;
  o->nstate = nstate;
  o->ready = 1;
  return LACOS_OK;
}

/* ---- the update ---- */

typedef struct step_consts {
  /* 8-bit and 32-bit kernels (float-rounded inputs, as bitsandbytes passes them) */
  float b1, b2, omb1, omb2, step_size, eps_c2, decay;
  int decay_on;
  /* AdamW (torch: Python doubles, rounded where they meet float tensors) */
  float w_b2, w_omb1, w_omb2, w_decay, w_neg_step, w_bc2_sqrt, w_eps;
  int w_decay_on;
  const code_index *t1, *t2;
} step_consts;

static void consts_init(step_consts *k, const lacos_optim_config *c, double lr, int t) {
  float lrf = (float)lr, b1 = (float)c->beta1, b2 = (float)c->beta2, eps = (float)c->eps, wd = (float)c->weight_decay;
  float c1 = (float)(1.0 - pow((double)b1, t));
  float c2 = (float)sqrt(1.0 - pow((double)b2, t));
  k->b1 = b1;
  k->b2 = b2;
  k->omb1 = 1.0f - b1;
  k->omb2 = 1.0f - b2;
  k->step_size = (-lrf * c2) / c1;
  k->eps_c2 = c2 * eps;
  k->decay = 1.0f - lrf * wd;
  k->decay_on = wd > 0.0f;
  double bc1 = 1.0 - pow(c->beta1, t), bc2 = 1.0 - pow(c->beta2, t);
  k->w_b2 = (float)c->beta2;
  k->w_omb1 = (float)(1.0 - c->beta1);
  k->w_omb2 = (float)(1.0 - c->beta2);
  k->w_decay = (float)(1.0 - lr * c->weight_decay);
  k->w_decay_on = c->weight_decay != 0;
  k->w_neg_step = (float)(-(lr / bc1));
  k->w_bc2_sqrt = (float)sqrt(bc2);
  k->w_eps = (float)c->eps;
  k->t1 = code_index_get(1);
  k->t2 = code_index_get(0);
}

/* One block of an 8-bit tensor (kOptimizerStatic8bit2StateBlockwise).
   p, g (len) f32; c1, c2 (len) codes; a1, a2 the block's absmax. */
static int64_t adam8bit_block(const step_consts *k, float *p, const float *g, uint8_t *c1, uint8_t *c2, float *a1,
                              float *a2, int64_t len) {
  float m[BLOCK], v[BLOCK];
  const float am1 = *a1, am2 = *a2;
  float nm1 = 0.0f, nm2 = 0.0f;
  int64_t bad = 0;
  for (int64_t j = 0; j < len; j++) {
    /* branch-free: a non-finite gradient computes with 0 and is then masked */
    float gj = g[j];
    int fin = isfinite(gj);
    float g0 = fin ? gj : 0.0f;
    float vj = map_unsigned[c2[j]] * am2;
    vj = vj * k->b2 + (k->omb2 * g0) * g0;
    float mj = map_signed[c1[j]] * am1;
    mj = mj * k->b1 + k->omb1 * g0;
    m[j] = fin ? mj : 0.0f;
    v[j] = fin ? vj : 0.0f;
    bad += !fin;
  }
  /* max as fmaxf (a NaN never replaces the running max), without the libm call */
  for (int64_t j = 0; j < len; j++) {
    float am = fabsf(m[j]), av = fabsf(v[j]);
    nm1 = am > nm1 ? am : nm1;
    nm2 = av > nm2 ? av : nm2;
  }
  *a1 = nm1;
  *a2 = nm2;
  for (int64_t j = 0; j < len; j++) {
    float pj = p[j] + k->step_size * (m[j] / (sqrtf(v[j]) + k->eps_c2));
    if (k->decay_on) pj = pj * k->decay;
    p[j] = isfinite(g[j]) ? pj : p[j];
  }
  float inv1 = nm1 > 0.0f ? 1.0f / nm1 : 0.0f, inv2 = nm2 > 0.0f ? 1.0f / nm2 : 0.0f;
  for (int64_t j = 0; j < len; j++) {
    unsigned q1 = nm1 > 0.0f ? nearest_code(k->t1, m[j] * inv1) : ZERO_CODE_SIGNED;
    if (signbit(map_signed[q1]) != signbit(m[j])) q1 = m[j] > 0.0f ? q1 + 1 : q1 - 1;
    c1[j] = (uint8_t)q1;
    c2[j] = (uint8_t)(nm2 > 0.0f ? nearest_code(k->t2, v[j] * inv2) : ZERO_CODE_UNSIGNED);
  }
  return bad;
}

/* f32 states of a small Adam8bit tensor (kOptimizer32bit2State, Adam). */
static int64_t adam32_range(const step_consts *k, float *p, const float *g, float *m, float *v, int64_t len) {
  int64_t bad = 0;
  for (int64_t j = 0; j < len; j++) {
    float gj = g[j];
    int fin = isfinite(gj);
    float g0 = fin ? gj : 0.0f;
    float mj = m[j] * k->b1 + k->omb1 * g0;
    float vj = v[j] * k->b2 + k->omb2 * (g0 * g0);
    float pj = p[j] + k->step_size * (mj / (sqrtf(vj) + k->eps_c2));
    if (k->decay_on) pj = pj * k->decay;
    m[j] = fin ? mj : 0.0f;
    v[j] = fin ? vj : 0.0f;
    p[j] = fin ? pj : p[j];
    bad += !fin;
  }
  return bad;
}

/* torch.optim.AdamW, single-tensor path. */
static int64_t adamw_range(const step_consts *k, float *p, const float *g, float *m, float *v, int64_t len) {
  int64_t bad = 0;
  for (int64_t j = 0; j < len; j++) {
    float gj = g[j];
    int fin = isfinite(gj);
    float g0 = fin ? gj : 0.0f;
    float pj = p[j];
    if (k->w_decay_on) pj = pj * k->w_decay;
    float mj = m[j] + k->w_omb1 * (g0 - m[j]);
    float vj = v[j] * k->w_b2 + (k->w_omb2 * g0) * g0;
    float denom = sqrtf(vj) / k->w_bc2_sqrt + k->w_eps;
    pj = pj + k->w_neg_step * (mj / denom);
    m[j] = fin ? mj : 0.0f;
    v[j] = fin ? vj : 0.0f;
    p[j] = fin ? pj : p[j];
    bad += !fin;
  }
  return bad;
}

int lacos_optim_step(lacos_optim *o, double lr) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  if (isnan(lr) || isinf(lr)) return fail(LACOS_EINVAL, "optimizer step: learning rate %g is not finite", lr);
  if (lr < 0) lr = o->cfg.lr;
  if (o->step == INT32_MAX) return fail(LACOS_ELIMIT, "optimizer step count would overflow");
  TRY(optim_ready(o));
  int t = o->step + 1;
  step_consts k;
  consts_init(&k, &o->cfg, lr, t);
  const int kind = o->cfg.kind;
  if (o->device == LACOS_CUDA) {
    optim_consts dk = { k.b1, k.b2, k.omb1, k.omb2, k.step_size, k.eps_c2, k.decay, k.decay_on,
                        k.w_b2, k.w_omb1, k.w_omb2, k.w_decay, k.w_neg_step, k.w_bc2_sqrt, k.w_eps, k.w_decay_on };
    float *a1 = o->absmax ? o->absmax->data : NULL, *mm = o->moments ? o->moments->data : NULL;
    double bad = 0;
    TRY(optim_step_cuda(o->items, o->nitems, &dk, kind, o->codes1 ? o->codes1->data : NULL,
                        o->codes2 ? o->codes2->data : NULL, a1, a1 ? a1 + o->nblocks : NULL, mm, mm ? mm + o->nf : NULL,
                        &bad));
    o->nonfinite = bad;
    o->step = t;
    return LACOS_OK;
  }
  uint8_t *codes1 = o->codes1 ? o->codes1->data : NULL, *codes2 = o->codes2 ? o->codes2->data : NULL;
  float *absmax1 = o->absmax ? o->absmax->data : NULL, *absmax2 = absmax1 ? absmax1 + o->nblocks : NULL;
  float *mom_m = o->moments ? o->moments->data : NULL, *mom_v = mom_m ? mom_m + o->nf : NULL;
  const optim_param *params = o->params;
  const work_item *work = o->work;
  int64_t bad = 0;
  #pragma omp parallel for schedule(static) reduction(+:bad) if (o->numel > 32768)
  for (int64_t w = 0; w < o->nwork; w++) {
    const work_item *it = &work[w];
    const optim_param *q = &params[it->param];
    float *p = (float *)q->p->data + it->start;
    const float *g = (const float *)q->g->data + it->start;
    if (q->eight_bit) {
      int64_t b = q->boff + it->start / BLOCK, e = q->off + it->start;
      bad += adam8bit_block(&k, p, g, codes1 + e, codes2 + e, absmax1 + b, absmax2 + b, it->len);
    } else if (kind == LACOS_OPTIM_ADAM8BIT) {
      bad += adam32_range(&k, p, g, mom_m + q->off + it->start, mom_v + q->off + it->start, it->len);
    } else {
      bad += adamw_range(&k, p, g, mom_m + q->off + it->start, mom_v + q->off + it->start, it->len);
    }
  }
  o->nonfinite = (double)bad;
  o->step = t;
  return LACOS_OK;
}

int lacos_optim_zero_grad(lacos_optim *o) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  for (int i = 0; i < o->nparams; i++) {
    size_t bytes = (size_t)o->params[i].n * sizeof(float);
    if (o->device == LACOS_CUDA) TRY(dev_zero(o->params[i].g->data, bytes));
    else memset(o->params[i].g->data, 0, bytes);
  }
  return LACOS_OK;
}

/* Sum of squares per fixed chunk, then the chunks in order: the same bits
   whatever the thread count. */
int lacos_optim_grad_norm(lacos_optim *o, double *norm) {
  if (!o || !norm) return fail(LACOS_EINVAL, "optimizer or norm is missing");
  *norm = 0;
  if (o->device == LACOS_CUDA) {
    TRY(optim_ready(o));
    double *part = malloc(sizeof(double) * (size_t)(o->nchunks ? o->nchunks : 1));
    if (!part) return fail(LACOS_ENOMEM, "out of memory computing the gradient norm");
    int s = optim_sumsq_cuda(part, o->chunks, o->nchunks);
    double total = 0;
    for (int64_t w = 0; w < o->nchunks && !s; w++) total += part[w];
    free(part);
    TRY(s);
    *norm = sqrt(total);
    return LACOS_OK;
  }
  int64_t nchunks = 0;
  for (int i = 0; i < o->nparams; i++) nchunks += (o->params[i].n + F32_ITEM - 1) / F32_ITEM;
  if (nchunks == 0) return LACOS_OK;
  double *part = malloc((size_t)nchunks * sizeof *part);
  work_item *chunk = malloc((size_t)nchunks * sizeof *chunk);
  if (!part || !chunk) { free(part); free(chunk); return fail(LACOS_ENOMEM, "out of memory computing the gradient norm"); }
  int64_t c = 0;
  for (int i = 0; i < o->nparams; i++)
    for (int64_t s = 0; s < o->params[i].n; s += F32_ITEM)
      chunk[c++] = (work_item){ i, s, o->params[i].n - s < F32_ITEM ? o->params[i].n - s : F32_ITEM };
  #pragma omp parallel for schedule(static) if (o->numel > 65536)
  for (int64_t w = 0; w < nchunks; w++) {
    const float *g = (const float *)o->params[chunk[w].param].g->data + chunk[w].start;
    double s = 0;
    for (int64_t j = 0; j < chunk[w].len; j++) s += (double)g[j] * (double)g[j];
    part[w] = s;
  }
  double total = 0;
  for (int64_t w = 0; w < nchunks; w++) total += part[w];
  free(part);
  free(chunk);
  *norm = sqrt(total);
  return LACOS_OK;
}

int lacos_optim_clip_grad_norm(lacos_optim *o, double max_norm, double *norm_before) {
  if (!o || !norm_before) return fail(LACOS_EINVAL, "optimizer or norm is missing");
  if (!(max_norm > 0))
    return fail(LACOS_EINVAL, "clip_grad_norm: max_norm must be a positive number (inf only measures the norm), got %g",
                max_norm);
  TRY(lacos_optim_grad_norm(o, norm_before));
  double norm = *norm_before;
  if (!isfinite(norm)) return LACOS_OK;
  double coef = max_norm / (norm + 1e-6);
  if (coef >= 1.0) return LACOS_OK;
  float cf = (float)coef;
  if (o->device == LACOS_CUDA) {
    for (int i = 0; i < o->nparams; i++) TRY(scale_cuda(o->params[i].g->data, o->params[i].n, cf));
    return LACOS_OK;
  }
  for (int i = 0; i < o->nparams; i++) {
    float *g = o->params[i].g->data;
    int64_t n = o->params[i].n;
    #pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t j = 0; j < n; j++) g[j] = g[j] * cf;
  }
  return LACOS_OK;
}

/* ---- state export and import ---- */

typedef struct state_ref {
  int kind;             /* 0..3 = state1, state2, absmax1, absmax2; 4 = step */
  optim_param *q;
} state_ref;

static state_ref state_at(lacos_optim *o, int i) {
  int k = 0;
  for (int j = 0; j < o->nparams; j++) {
    int per = o->params[j].eight_bit ? 4 : 2;
    if (i < k + per) return (state_ref){ i - k, &o->params[j] };
    k += per;
  }
  return (state_ref){ 4, NULL };
}

int lacos_optim_state_count(lacos_optim *o, int *count) {
  if (!o || !count) return fail(LACOS_EINVAL, "optimizer or count is missing");
  *count = 0;
  TRY(optim_ready(o));
  *count = o->nstate;
  return LACOS_OK;
}

const char *lacos_optim_state_name(lacos_optim *o, int i) {
  if (!o || optim_ready(o) || i < 0 || i >= o->nstate) return NULL;
  return o->state_names[i];
}

/* A view of [off, off+n) of a flat state tensor, in the given shape. */
static int flat_view(lacos_tensor **out, lacos_tensor *flat, int64_t off, int64_t n, int ndim, const int64_t *shape) {
  lacos_tensor *s;
  TRY(lacos_tensor_slice(&s, flat, 0, off, off + n, 1));
  int st = lacos_tensor_view(out, s, ndim, shape);
  lacos_tensor_free(s);
  return st;
}

int lacos_optim_state_tensor(lacos_tensor **out, lacos_optim *o, int i) {
  *out = NULL;
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  TRY(optim_ready(o));
  if (i < 0 || i >= o->nstate) return fail(LACOS_EINVAL, "optimizer state index %d out of range (0..%d)", i, o->nstate - 1);
  state_ref r = state_at(o, i);
  if (r.kind == 4) {
    int64_t one = 1, step = o->step;
    return lacos_tensor_from_buffer(out, LACOS_I64, 1, &one, &step, LACOS_I64);
  }
  const optim_param *q = r.q;
  if (q->eight_bit) {
    switch (r.kind) {
    case 0: return flat_view(out, o->codes1, q->off, q->n, q->p->ndim, q->p->shape);
    case 1: return flat_view(out, o->codes2, q->off, q->n, q->p->ndim, q->p->shape);
    case 2: return flat_view(out, o->absmax, q->boff, q->nblocks, 1, &q->nblocks);
    default: return flat_view(out, o->absmax, o->nblocks + q->boff, q->nblocks, 1, &q->nblocks);
    }
  }
  return flat_view(out, o->moments, (r.kind == 0 ? 0 : o->nf) + q->off, q->n, q->p->ndim, q->p->shape);
}

static int check_values(const lacos_tensor *t, const char *name, bool nonneg) {
  int64_t n = lacos_tensor_numel(t);
  for (int64_t j = 0; j < n; j++) {
    int64_t idx[4] = { 0, 0, 0, 0 }, rest = j;
    for (int d = t->ndim - 1; d >= 0; d--) { idx[d] = rest % t->shape[d]; rest /= t->shape[d]; }
    const char *base = t->data;
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    double x = dtype_load(base, off, t->dtype);
    if (!isfinite(x)) return fail(LACOS_ENUMERIC, "optimizer state %s: element %lld is %g", name, (long long)j, x);
    if (nonneg && x < 0) return fail(LACOS_ENUMERIC, "optimizer state %s: element %lld is negative (%g)", name, (long long)j, x);
  }
  return LACOS_OK;
}

/* dtype and shape an entry must have */
static void state_expect(state_ref r, int *dtype, int *ndim, const int64_t **shape) {
  static const int64_t one = 1;
  if (r.kind == 4) { *dtype = LACOS_I64; *ndim = 1; *shape = &one; return; }
  if (r.q->eight_bit && r.kind >= 2) { *dtype = LACOS_F32; *ndim = 1; *shape = &r.q->nblocks; return; }
  *dtype = r.q->eight_bit ? LACOS_U8 : LACOS_F32;
  *ndim = r.q->p->ndim;
  *shape = r.q->p->shape;
}

static int state_entry_check(lacos_optim *o, int i, const lacos_tensor *t, int64_t *step) {
  const char *name = o->state_names[i];
  state_ref r = state_at(o, i);
  int dtype, ndim;
  const int64_t *shape;
  state_expect(r, &dtype, &ndim, &shape);
  TRY(tensor_check(t, name, dtype, -1));
  if (t->device != LACOS_CPU) return fail(LACOS_EDEVICE, "optimizer state %s: expected a CPU tensor", name);
  bool same = t->ndim == ndim;
  for (int d = 0; same && d < ndim; d++) same = t->shape[d] == shape[d];
  if (!same) {
    char got[64], want[64];
    tensor_shape_str(t, got, sizeof got);
    int len = snprintf(want, sizeof want, "(");
    for (int d = 0; d < ndim; d++) len += snprintf(want + len, sizeof want - (size_t)len, d ? ", %lld" : "%lld", (long long)shape[d]);
    snprintf(want + len, sizeof want - (size_t)len, ")");
    return fail(LACOS_EINVAL, "optimizer state %s: shape %s, expected %s", name, got, want);
  }
  if (r.kind == 4) {
    *step = (int64_t)dtype_load(t->data, 0, LACOS_I64);
    if (*step < 0 || *step >= INT32_MAX) return fail(LACOS_EINVAL, "optimizer state step: %lld is out of range", (long long)*step);
    return LACOS_OK;
  }
  if (dtype == LACOS_F32) return check_values(t, name, r.kind != 0);   /* m may be negative; v, absmax not */
  return LACOS_OK;
}

int lacos_optim_state_load(lacos_optim *o, int n, const char *const *names, lacos_tensor *const *tensors) {
  if (!o) return fail(LACOS_EINVAL, "optimizer is missing");
  if (n < 0 || (n > 0 && (!names || !tensors))) return fail(LACOS_EINVAL, "optimizer state: bad entry list");
  TRY(optim_ready(o));
  int *src = malloc((size_t)o->nstate * sizeof *src);
  if (!src) return fail(LACOS_ENOMEM, "out of memory loading optimizer state");
  for (int i = 0; i < o->nstate; i++) src[i] = -1;
  int st = LACOS_OK;
  /* Validate everything before touching the state: first the names... */
  for (int k = 0; k < n && !st; k++) {
    if (!names[k]) { st = fail(LACOS_EINVAL, "optimizer state: entry %d has no name", k); break; }
    int i = 0;
    while (i < o->nstate && strcmp(o->state_names[i], names[k])) i++;
    if (i == o->nstate)
      st = fail(LACOS_EINVAL, "optimizer state: unknown entry '%s' (this optimizer expects %d entries, e.g. '%s')",
                names[k], o->nstate, o->state_names[0]);
    else if (src[i] >= 0)
      st = fail(LACOS_EINVAL, "optimizer state: entry '%s' given twice", names[k]);
    else
      src[i] = k;
  }
  for (int i = 0; i < o->nstate && !st; i++)
    if (src[i] < 0) st = fail(LACOS_ENOTFOUND, "optimizer state: entry '%s' is missing", o->state_names[i]);
  /* ...then each tensor's dtype, shape and values. */
  int64_t step = 0;
  for (int i = 0; i < o->nstate && !st; i++) st = state_entry_check(o, i, tensors[src[i]], &step);
  for (int i = 0; i < o->nstate && !st; i++) {
    if (state_at(o, i).kind == 4) continue;
    lacos_tensor *dst;
    if ((st = lacos_optim_state_tensor(&dst, o, i))) break;
    if (dst->data != tensors[src[i]]->data) st = lacos_tensor_copy(dst, tensors[src[i]]);
    lacos_tensor_free(dst);
  }
  if (!st) o->step = (int)step;
  free(src);
  return st;
}

int lacos_optim_moments(lacos_tensor **m, lacos_tensor **v, lacos_optim *o, const char *name) {
  *m = *v = NULL;
  if (!o || !name) return fail(LACOS_EINVAL, "optimizer or parameter name is missing");
  optim_param *q = param_named(o, name);
  if (!q) return fail(LACOS_ENOTFOUND, "optimizer has no parameter '%s'", name);
  TRY(optim_ready(o));
  TRY(lacos_tensor_empty(m, LACOS_F32, LACOS_CPU, q->p->ndim, q->p->shape));
  int st = lacos_tensor_empty(v, LACOS_F32, LACOS_CPU, q->p->ndim, q->p->shape);
  if (st) { lacos_tensor_free(*m); *m = NULL; return st; }
  if (q->eight_bit) {
    const float *a1 = (const float *)o->absmax->data + q->boff, *a2 = (const float *)o->absmax->data + o->nblocks + q->boff;
    const uint8_t *c1 = (const uint8_t *)o->codes1->data + q->off, *c2 = (const uint8_t *)o->codes2->data + q->off;
    /* On the GPU: this parameter's codes and absmax come to the host first. */
    size_t cb = (size_t)q->n, ab = sizeof(float) * (size_t)q->nblocks;
    float *h = o->device == LACOS_CUDA ? malloc(2 * ab + 2 * cb) : NULL;   /* absmax first: aligned */
    if (o->device == LACOS_CUDA) {
      uint8_t *hc = (uint8_t *)(h + 2 * q->nblocks);
      st = h ? LACOS_OK : fail(LACOS_ENOMEM, "out of memory reading optimizer state");
      if (!st) st = dev_download(h, a1, ab);
      if (!st) st = dev_download(h + q->nblocks, a2, ab);
      if (!st) st = dev_download(hc, c1, cb);
      if (!st) st = dev_download(hc + cb, c2, cb);
      a1 = h; a2 = h + q->nblocks; c1 = hc; c2 = hc + cb;
    }
    if (!st) {
      dequantize_blockwise((*m)->data, c1, a1, q->n, 1, BLOCK);
      dequantize_blockwise((*v)->data, c2, a2, q->n, 0, BLOCK);
    }
    free(h);
  } else {
    const float *mm = (const float *)o->moments->data + q->off;
    size_t bytes = (size_t)q->n * sizeof(float);
    if (o->device == LACOS_CUDA) {
      st = dev_download((*m)->data, mm, bytes);
      if (!st) st = dev_download((*v)->data, mm + o->nf, bytes);
    } else {
      memcpy((*m)->data, mm, bytes);
      memcpy((*v)->data, mm + o->nf, bytes);
    }
  }
  if (st) { lacos_tensor_free(*m); lacos_tensor_free(*v); *m = *v = NULL; }
  return st;
}
