// 3x3 same-size convolutions (stride 1, pad 1) by Winograd's minimal filtering F(2x2, 3x3): the
// direct kernels' fast path for planes whose tiles fill whole vectors (see conv2d_winograd.c).
#ifndef SID_CPU_CONV2D_WINOGRAD_H
#define SID_CPU_CONV2D_WINOGRAD_H
#include <stddef.h>

// Planes of 2x2 tiles that fill 8-lane vectors: 8 tiles of one tile row (W a multiple of 16),
// or 4 tiles each of two tile rows (W = 8, H a multiple of 4).
static inline int sid_wino_fits(int H, int W) { return H > 0 && H % 2 == 0 && (W % 16 == 0 || (W == 8 && H % 4 == 0)); }

// Floats of scratch one sid_wino_conv call needs.
static inline size_t sid_wino_scratch_floats(int cin, int cout, int H, int W) {
    return (size_t)cin * 2 * (H + 2) * (W / 2 + 1) + 16 * ((size_t)(cin + cout) * 16 + 32);
}

// Rows of U, one per Winograd-domain point: cout * cin kernels, then 16 floats of padding, so that
// the 16 rows of a 32 x 32-channel kernel do not start 4 KB apart (the same L1 cache set).
static inline size_t sid_wino_urow(int cin, int cout) { return (size_t)cin * cout + 16; }
static inline size_t sid_wino_weights_floats(int cin, int cout) { return 16 * sid_wino_urow(cin, cout); }

// U [16][urow]: the Winograd-domain kernels (G g G^T) of w [cout][cin][3][3], or with flip of
// the input gradient's kernel, g[co][ci] = w[ci][co] turned by 180 degrees (w is then [cin][cout]).
void sid_wino_weights(float *U, const float *w, int cin, int cout, int flip);

// out [cout][H][W] (+= with accumulate) b + the 3x3 pad-1 correlation of in [cin][H][W] with the
// kernels U came from, for one sample; b may be NULL; sid_wino_fits(H, W) must hold.
void sid_wino_conv(float *out, const float *in, const float *U, const float *b, int cin, int cout, int H, int W,
                   int accumulate, float *scratch);

// The weight gradient, F(2x2, 3x3) backward: dU[e][co][ci] = sum over tiles of (A dY A^T)[e] of
// each output-gradient tile times (B^T d B)[e] of its input tile, then dw = G^T dU G. Vectors run
// over 8 input channels, so cin must be a multiple of 8.
static inline int sid_wino_dw_fits(int cin, int H, int W) { return cin % 8 == 0 && sid_wino_fits(H, W); }

// Floats of scratch sid_wino_dw_accumulate needs for ns samples.
static inline size_t sid_wino_dw_scratch_floats(int ns, int cin, int cout, int H, int W) {
    return (size_t)ns * ((size_t)(H + 2) * (W + 2) * cin + 4 * (size_t)H * W * (cin + cout)) + 2 * 16 * 16;
}

// dU [16][urow] += the Winograd-domain weight gradient of ns samples' inputs in [ns][cin][H][W] and
// output gradients g [ns][cout][H][W].
void sid_wino_dw_accumulate(float *dU, const float *in, const float *g, int ns, int cin, int cout, int H, int W,
                            float *scratch);

// dw [cout][cin][3][3] += G^T dU G.
void sid_wino_dw_finish(float *dw, const float *dU, int cin, int cout);
#endif
