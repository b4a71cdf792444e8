// 3x3 convolutions (stride 1, pad 1, same size) by Winograd's minimal filtering F(2x2, 3x3)
// (Lavin and Gray, "Fast algorithms for convolutional neural networks", 2016): a 2x2 output tile
// is A^T [ (G g G^T) .* (B^T d B) ] A of its 4x4 input tile d, so each channel pair costs 16
// multiplies per tile instead of the direct kernel's 36. The transforms' constants are 0, +-1 and
// 1/2; the kernels are transformed in double and rounded once (transformed in float, their rounding
// moved the SiD-LSG parity test's generator loss from 1e-6 to 4e-6 of PyTorch's on every variant).
//
// Vectors run over 8 tiles. Their inputs start at every second column, so the padded input is
// first split into its even and odd columns (two planes per channel), where each of a tile's four
// columns is a contiguous load. Per block of one or two tile vectors: the input transform of every
// channel goes to Vt [16][cin][V*8]; then, per register tile of CO output channels, the 16
// products over the input channels (the direct kernel's register scheme: CO x V accumulators, one
// broadcast weight feeding V FMAs) go to Mt, and the output transform adds the bias (or the output
// already there) and writes the tiles' pixels, interleaving the two columns of each tile.
#include "ops/cpu/conv2d_winograd.h"

#include <string.h>

#include "ops/cpu/vec8.h"

#if defined(__AVX512F__)
enum { WINO_CO = 8 };  // 16 accumulators of 32 registers
#else
enum { WINO_CO = 4 };  // 8 of 16
#endif

void sid_wino_weights(float *U, const float *w, int cin, int cout, int flip) {
    const size_t estride = sid_wino_urow(cin, cout);
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            const float *src = w + (flip ? (size_t)ci * cout + co : (size_t)co * cin + ci) * 9;
            double g[3][3], t[4][3];
            for (int k = 0; k < 9; k++) g[k / 3][k % 3] = flip ? src[8 - k] : src[k];
            for (int k = 0; k < 3; k++) {  // G g
                t[0][k] = g[0][k];
                t[1][k] = 0.5 * (g[0][k] + g[1][k] + g[2][k]);
                t[2][k] = 0.5 * (g[0][k] - g[1][k] + g[2][k]);
                t[3][k] = g[2][k];
            }
            float *u = U + (size_t)co * cin + ci;
            for (int i = 0; i < 4; i++) {  // (G g) G^T
                u[(4 * i + 0) * estride] = (float)t[i][0];
                u[(4 * i + 1) * estride] = (float)(0.5 * (t[i][0] + t[i][1] + t[i][2]));
                u[(4 * i + 2) * estride] = (float)(0.5 * (t[i][0] - t[i][1] + t[i][2]));
                u[(4 * i + 3) * estride] = (float)t[i][2];
            }
        }
}

// dst [C][2][H+2][W/2+1]: each channel's zero-padded plane as its even columns, then its odd ones.
static void pad_polyphase(float *dst, const float *src, int C, int H, int W) {
    const int Hp = H + 2, Wh = W / 2 + 1;
    for (int c = 0; c < C; c++) {
        float *E = dst + (size_t)c * 2 * Hp * Wh, *O = E + (size_t)Hp * Wh;
        memset(E, 0, (size_t)Wh * sizeof(float));
        memset(O, 0, (size_t)Wh * sizeof(float));
        memset(E + (size_t)(Hp - 1) * Wh, 0, (size_t)Wh * sizeof(float));
        memset(O + (size_t)(Hp - 1) * Wh, 0, (size_t)Wh * sizeof(float));
        for (int y = 0; y < H; y++) {
            const float *restrict s = src + ((size_t)c * H + y) * W;
            float *restrict e = E + (size_t)(y + 1) * Wh, *restrict o = O + (size_t)(y + 1) * Wh;
            e[0] = 0;  // padded column 0
            for (int i = 0; i < W / 2; i++) {
                o[i] = s[2 * i];      // padded column 2i + 1
                e[i + 1] = s[2 * i + 1];  // padded column 2i + 2
            }
            o[W / 2] = 0;  // padded column W + 1
        }
    }
}

// The first tile of tile vector q: 8 tiles of tile row ty from column tx0, or (half: 8-pixel-wide
// planes) 4 tiles each of tile rows ty and ty + 1.
static inline void tile_origin(int q, int W, int half, int *ty, int *tx0) {
    if (half) {
        *ty = 2 * q, *tx0 = 0;
    } else {
        *ty = q / (W / 16), *tx0 = 8 * (q % (W / 16));
    }
}

// Rows of Vt [16][cin][V*8] and Mt [16][cout][V*8], one per point, sized for V = 2 and padded by
// 16 floats (rows 4 KB apart would share one L1 cache set).
static inline size_t tile_row(int channels) { return (size_t)channels * 16 + 16; }

// u = B^T d B of a 4x4 input tile d[row][column] (vectors of 8 tiles or of 8 channels; of 16
// tiles with AVX-512).
#define INPUT_TILE_TRANSFORM(name, T)                                                                 \
    static inline __attribute__((always_inline)) void name(T u[4][4], const T d[4][4]) {             \
        T t[4][4];                                                                                    \
        for (int c = 0; c < 4; c++) /* B^T d */                                                       \
            t[0][c] = d[0][c] - d[2][c], t[1][c] = d[1][c] + d[2][c], t[2][c] = d[2][c] - d[1][c],    \
            t[3][c] = d[1][c] - d[3][c];                                                              \
        for (int i = 0; i < 4; i++) /* (B^T d) B */                                                   \
            u[i][0] = t[i][0] - t[i][2], u[i][1] = t[i][1] + t[i][2], u[i][2] = t[i][2] - t[i][1],    \
            u[i][3] = t[i][1] - t[i][3];                                                              \
    }
// y[r][k] = (A^T m A)[r][k] + bc: the tile's output pixel (2 ty + r, 2 tx + k).
#define OUTPUT_TILE_TRANSFORM(name, T)                                                                \
    static inline __attribute__((always_inline)) void name(T y[2][2], const T m[4][4], float bc) {   \
        T t[2][4];                                                                                    \
        for (int c = 0; c < 4; c++) /* A^T m */                                                       \
            t[0][c] = m[0][c] + m[1][c] + m[2][c], t[1][c] = m[1][c] - m[2][c] - m[3][c];             \
        for (int r = 0; r < 2; r++) /* (A^T m) A */                                                   \
            y[r][0] = t[r][0] + t[r][1] + t[r][2] + bc, y[r][1] = t[r][1] - t[r][2] - t[r][3] + bc;   \
    }
INPUT_TILE_TRANSFORM(input_tile_transform, v8f)
OUTPUT_TILE_TRANSFORM(output_tile_transform, v8f)
#if defined(__AVX512F__)
INPUT_TILE_TRANSFORM(input_tile_transform16, v16f)
OUTPUT_TILE_TRANSFORM(output_tile_transform16, v16f)
#endif

static inline v8f load_tiles(const float *p, int Wh, const int half) { return half ? load4x2(p, p + 2 * Wh) : load8(p); }

static inline __attribute__((always_inline)) void input_transform(float *Vt, const float *pp, int cin, int H, int W,
                                                                  int q0, const int V, const int half) {
    const int Wh = W / 2 + 1;
    const size_t plane = (size_t)(H + 2) * Wh;
    for (int v = 0; v < V; v++) {
        int ty, tx0;
        tile_origin(q0 + v, W, half, &ty, &tx0);
        for (int ci = 0; ci < cin; ci++) {
            const float *E = pp + (size_t)ci * 2 * plane + (size_t)2 * ty * Wh + tx0, *O = E + plane;
            v8f d[4][4], u[4][4];
            for (int c = 0; c < 4; c++) {  // padded column 2 tx + c: the even or the odd plane
                const float *p = (c & 1 ? O : E) + (c >> 1);
                for (int r = 0; r < 4; r++) d[r][c] = load_tiles(p + r * Wh, Wh, half);
            }
            input_tile_transform(u, d);
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++) store8(Vt + (i * 4 + j) * tile_row(cin) + (size_t)ci * V * 8 + v * 8, u[i][j]);
        }
    }
}

#if defined(__AVX512F__)
// A block's two tile vectors in one tile row (wide16: W a multiple of 32, so q0 even and q0 + 1
// share ty): its 16 tiles as one register in the input and output transforms.
static inline int wide16(int W, const int V, const int half) { return V == 2 && !half && W % 32 == 0; }

static inline __attribute__((always_inline)) void input_transform16(float *Vt, const float *pp, int cin, int H, int W,
                                                                    int q0) {
    const int Wh = W / 2 + 1;
    const size_t plane = (size_t)(H + 2) * Wh;
    int ty, tx0;
    tile_origin(q0, W, 0, &ty, &tx0);
    for (int ci = 0; ci < cin; ci++) {
        const float *E = pp + (size_t)ci * 2 * plane + (size_t)2 * ty * Wh + tx0, *O = E + plane;
        v16f d[4][4], u[4][4];
        for (int c = 0; c < 4; c++) {
            const float *p = (c & 1 ? O : E) + (c >> 1);
            for (int r = 0; r < 4; r++) d[r][c] = load16(p + r * Wh);
        }
        input_tile_transform16(u, d);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) store16(Vt + (i * 4 + j) * tile_row(cin) + (size_t)ci * 16, u[i][j]);
    }
}
#endif

// Mt [16][cout][V*8] = the products of one Winograd-domain point e, summed over the input channels,
// for CO output channels from co.
static inline __attribute__((always_inline, optimize("fp-contract=fast"))) void point_products(
    float *Mt, const float *Vt, const float *U, int cin, int cout, int e, int co, const int V, const int CO) {
#if defined(__AVX512F__)
    if (V == 2) {  // the block's two tile vectors are adjacent in Vt and Mt: one 16-lane register
        v16f acc16[WINO_CO];
        for (int j = 0; j < CO; j++) acc16[j] = (v16f){0};
        const float *vt = Vt + e * tile_row(cin), *u = U + e * sid_wino_urow(cin, cout) + (size_t)co * cin;
        for (int ci = 0; ci < cin; ci++) {
            const v16f iv = load16(vt + (size_t)ci * 16);
            for (int j = 0; j < CO; j++) acc16[j] += iv * u[(size_t)j * cin + ci];
        }
        for (int j = 0; j < CO; j++) store16(Mt + e * tile_row(cout) + (size_t)(co + j) * 16, acc16[j]);
        return;
    }
#endif
    v8f acc[WINO_CO][2];
    for (int j = 0; j < CO; j++)
        for (int v = 0; v < V; v++) acc[j][v] = (v8f){0};
    const float *vt = Vt + e * tile_row(cin), *u = U + e * sid_wino_urow(cin, cout) + (size_t)co * cin;
    for (int ci = 0; ci < cin; ci++) {
        v8f iv[2];
        for (int v = 0; v < V; v++) iv[v] = load8(vt + (size_t)ci * V * 8 + v * 8);
        for (int j = 0; j < CO; j++) {
            const float wj = u[(size_t)j * cin + ci];
            for (int v = 0; v < V; v++) acc[j][v] += iv[v] * wj;
        }
    }
    for (int j = 0; j < CO; j++)
        for (int v = 0; v < V; v++) store8(Mt + e * tile_row(cout) + (size_t)(co + j) * V * 8 + v * 8, acc[j][v]);
}

// The output transform of channel co: its pixels of the block's V tile vectors.
static inline __attribute__((always_inline)) void output_transform(float *out, const float *Mt, const float *b,
                                                                   int cout, int co, int H, int W, int q0,
                                                                   int accumulate, const int V, const int half) {
    const float bc = b ? b[co] : 0.0f;
    for (int v = 0; v < V; v++) {
        int ty, tx0;
        tile_origin(q0 + v, W, half, &ty, &tx0);
        v8f m[4][4];
        for (int i = 0; i < 4; i++)
            for (int c = 0; c < 4; c++) m[i][c] = load8(Mt + (i * 4 + c) * tile_row(cout) + (size_t)co * V * 8 + v * 8);
        v8f y[2][2];
        output_tile_transform(y, m, bc);
        for (int r = 0; r < 2; r++) {  // the tiles' pixels (2 ty + r, 2 tx) and (2 ty + r, 2 tx + 1)
            float *o = out + ((size_t)co * H + 2 * ty + r) * W + 2 * tx0, *o2 = o + (half ? 2 * W : 8);
            v8f lo = interleave_lo(y[r][0], y[r][1]), hi = interleave_hi(y[r][0], y[r][1]);
            if (accumulate) lo += load8(o), hi += load8(o2);
            store8(o, lo);
            store8(o2, hi);
        }
    }
}

#if defined(__AVX512F__)
static inline __attribute__((always_inline)) void output_transform16(float *out, const float *Mt, const float *b,
                                                                     int cout, int co, int H, int W, int q0,
                                                                     int accumulate) {
    const float bc = b ? b[co] : 0.0f;
    int ty, tx0;
    tile_origin(q0, W, 0, &ty, &tx0);
    v16f m[4][4];
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 4; c++) m[i][c] = load16(Mt + (i * 4 + c) * tile_row(cout) + (size_t)co * 16);
    v16f y[2][2];
    output_tile_transform16(y, m, bc);
    for (int r = 0; r < 2; r++) {
        float *o = out + ((size_t)co * H + 2 * ty + r) * W + 2 * tx0;
        v16f lo = interleave16_lo(y[r][0], y[r][1]), hi = interleave16_hi(y[r][0], y[r][1]);
        if (accumulate) lo += load16(o), hi += load16(o + 16);
        store16(o, lo);
        store16(o + 16, hi);
    }
}
#endif

// One point at a time over all output channels, so that its slices of Vt and U stay in L1 (the whole
// Vt of 48-64 input channels does not).
static inline __attribute__((always_inline)) void wino_block(float *out, const float *pp, const float *U,
                                                             const float *b, float *Vt, float *Mt, int cin, int cout,
                                                             int H, int W, int q0, int accumulate, const int V,
                                                             const int half) {
#if defined(__AVX512F__)
    if (wide16(W, V, half)) input_transform16(Vt, pp, cin, H, W, q0);
    else
#endif
        input_transform(Vt, pp, cin, H, W, q0, V, half);
    for (int e = 0; e < 16; e++) {
        int co = 0;
        for (; co + WINO_CO <= cout; co += WINO_CO) point_products(Mt, Vt, U, cin, cout, e, co, V, WINO_CO);
        for (; co < cout; co++) point_products(Mt, Vt, U, cin, cout, e, co, V, 1);
    }
#if defined(__AVX512F__)
    if (wide16(W, V, half)) {
        for (int co = 0; co < cout; co++) output_transform16(out, Mt, b, cout, co, H, W, q0, accumulate);
        return;
    }
#endif
    for (int co = 0; co < cout; co++) output_transform(out, Mt, b, cout, co, H, W, q0, accumulate, V, half);
}

void sid_wino_conv(float *out, const float *in, const float *U, const float *b, int cin, int cout, int H, int W,
                   int accumulate, float *scratch) {
    float *pp = scratch, *Vt = pp + (size_t)cin * 2 * (H + 2) * (W / 2 + 1), *Mt = Vt + 16 * tile_row(cin);
    pad_polyphase(pp, in, cin, H, W);
    const int half = W == 8, nq = H * W / 32;  // tile vectors: 8 tiles, 32 pixels each
    // blocks of two tile vectors, so that each broadcast weight feeds two FMAs
    for (int q0 = 0; q0 < nq; q0 += 2) {
        const int two = q0 + 2 <= nq;
        if (half && two) wino_block(out, pp, U, b, Vt, Mt, cin, cout, H, W, q0, accumulate, 2, 1);
        else if (half) wino_block(out, pp, U, b, Vt, Mt, cin, cout, H, W, q0, accumulate, 1, 1);
        else if (two) wino_block(out, pp, U, b, Vt, Mt, cin, cout, H, W, q0, accumulate, 2, 0);
        else wino_block(out, pp, U, b, Vt, Mt, cin, cout, H, W, q0, accumulate, 1, 0);
    }
}

// ---------------------------------------------------------------- weight gradient
// Rows of VT [16][T][cin] and GT [16][cout][T], one per point, padded by 16 floats like U's.
static inline size_t dw_vrow(size_t T, int cin) { return T * cin + 16; }
static inline size_t dw_grow(size_t T, int cout) { return (size_t)cout * T + 16; }
// The padded input channel-last, dst [H+2][W+2][C] of src [C][H][W], so that 8 channels of one
// pixel are one load.
static void pad_channels_last(float *dst, const float *src, int C, int H, int W) {
    const int Wp = W + 2;
    memset(dst, 0, (size_t)Wp * C * sizeof(float));
    memset(dst + (size_t)(H + 1) * Wp * C, 0, (size_t)Wp * C * sizeof(float));
    for (int y = 0; y < H; y++) {
        float *line = dst + (size_t)(y + 1) * Wp * C;
        memset(line, 0, (size_t)C * sizeof(float));
        memset(line + (size_t)(W + 1) * C, 0, (size_t)C * sizeof(float));
        for (int c = 0; c < C; c++) {
            const float *restrict s = src + ((size_t)c * H + y) * W;
            float *restrict d = line + C + c;
            for (int x = 0; x < W; x++) d[(size_t)x * C] = s[x];
        }
    }
}

// The tile of lane l of tile vector q.
static inline void lane_tile(int q, int l, int W, int half, int *ty, int *tx) {
    tile_origin(q, W, half, ty, tx);
    if (half && l >= 4) *ty += 1, *tx += l - 4;
    else *tx += l;
}

// VT [16][T][cin] (T tiles: sample-major, then tile vectors and lanes as in the forward) of the
// channel-last padded inputs xl [ns][H+2][W+2][cin].
static void input_transform_channels(float *VT, const float *xl, int ns, int cin, int H, int W, size_t T) {
    const int Wp = W + 2, half = W == 8, nq = H * W / 32;
    for (int n = 0; n < ns; n++)
        for (int q = 0; q < nq; q++)
            for (int l = 0; l < 8; l++) {
                int ty, tx;
                lane_tile(q, l, W, half, &ty, &tx);
                const size_t t = ((size_t)n * nq + q) * 8 + l;
                const float *p0 = xl + (((size_t)n * (H + 2) + 2 * ty) * Wp + 2 * tx) * cin;
                for (int c0 = 0; c0 < cin; c0 += 8) {
                    v8f d[4][4], u[4][4];
                    for (int r = 0; r < 4; r++)
                        for (int c = 0; c < 4; c++) d[r][c] = load8(p0 + ((size_t)r * Wp + c) * cin + c0);
                    input_tile_transform(u, d);
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) store8(VT + (i * 4 + j) * dw_vrow(T, cin) + t * cin + c0, u[i][j]);
                }
            }
}

// GT [16][cout][T]: A dY A^T of every output-gradient tile, 8 tiles a vector (each tile's two
// columns taken apart from two 8-pixel loads).
static void gradient_transform(float *GT, const float *g, int ns, int cout, int H, int W, size_t T) {
    const int half = W == 8, nq = H * W / 32;
    for (int n = 0; n < ns; n++)
        for (int q = 0; q < nq; q++) {
            int ty, tx0;
            tile_origin(q, W, half, &ty, &tx0);
            const size_t t = ((size_t)n * nq + q) * 8;
            for (int co = 0; co < cout; co++) {
                const float *row = g + (((size_t)n * cout + co) * H + 2 * ty) * W + 2 * tx0;
                v8f gt[2][2];
                for (int r = 0; r < 2; r++) {
                    const v8f lo = load8(row + (size_t)r * W), hi = load8(row + (size_t)r * W + (half ? 2 * W : 8));
                    gt[r][0] = deinterleave_even(lo, hi);
                    gt[r][1] = deinterleave_odd(lo, hi);
                }
                v8f h[4][2];
                for (int c = 0; c < 2; c++)  // A dY
                    h[0][c] = gt[0][c], h[1][c] = gt[0][c] + gt[1][c], h[2][c] = gt[0][c] - gt[1][c], h[3][c] = -gt[1][c];
                for (int i = 0; i < 4; i++) {  // (A dY) A^T
                    const v8f m[4] = {h[i][0], h[i][0] + h[i][1], h[i][0] - h[i][1], -h[i][1]};
                    for (int j = 0; j < 4; j++) store8(GT + (i * 4 + j) * dw_grow(T, cout) + co * T + t, m[j]);
                }
            }
        }
}

// dU[e][co..co+CO][ci0..ci0+8V] += sum over tiles [t0, t1) of the T: the forward's register scheme
// with the tiles as the summed axis (CO x V accumulators, one broadcast gradient feeding V FMAs).
static inline __attribute__((always_inline, optimize("fp-contract=fast"))) void dw_point_products(
    float *dU, const float *VT, const float *GT, int cin, int cout, int e, int co, int ci0, size_t T, size_t t0,
    size_t t1, const int V, const int CO) {
#if defined(__AVX512F__)
    if (V == 2) {  // 16 adjacent input channels: one 16-lane register
        v16f acc16[WINO_CO];
        for (int j = 0; j < CO; j++) acc16[j] = (v16f){0};
        const float *vt = VT + e * dw_vrow(T, cin) + ci0, *gt = GT + e * dw_grow(T, cout) + co * T;
        for (size_t t = t0; t < t1; t++) {
            const v16f iv = load16(vt + t * cin);
            for (int j = 0; j < CO; j++) acc16[j] += iv * gt[(size_t)j * T + t];
        }
        float *d = dU + e * sid_wino_urow(cin, cout) + (size_t)co * cin + ci0;
        for (int j = 0; j < CO; j++) store16(d + (size_t)j * cin, load16(d + (size_t)j * cin) + acc16[j]);
        return;
    }
#endif
    v8f acc[WINO_CO][2];
    for (int j = 0; j < CO; j++)
        for (int v = 0; v < V; v++) acc[j][v] = (v8f){0};
    const float *vt = VT + e * dw_vrow(T, cin) + ci0, *gt = GT + e * dw_grow(T, cout) + co * T;
    for (size_t t = t0; t < t1; t++) {
        v8f iv[2];
        for (int v = 0; v < V; v++) iv[v] = load8(vt + t * cin + v * 8);
        for (int j = 0; j < CO; j++) {
            const float gj = gt[(size_t)j * T + t];
            for (int v = 0; v < V; v++) acc[j][v] += iv[v] * gj;
        }
    }
    float *d = dU + e * sid_wino_urow(cin, cout) + (size_t)co * cin + ci0;
    for (int j = 0; j < CO; j++)
        for (int v = 0; v < V; v++) store8(d + (size_t)j * cin + v * 8, load8(d + (size_t)j * cin + v * 8) + acc[j][v]);
}

static inline __attribute__((always_inline)) void dw_point_channels(float *dU, const float *VT, const float *GT,
                                                                    int cin, int cout, int e, int ci0, size_t T,
                                                                    size_t t0, size_t t1, const int V) {
    int co = 0;
    for (; co + WINO_CO <= cout; co += WINO_CO)
        dw_point_products(dU, VT, GT, cin, cout, e, co, ci0, T, t0, t1, V, WINO_CO);
    for (; co < cout; co++) dw_point_products(dU, VT, GT, cin, cout, e, co, ci0, T, t0, t1, V, 1);
}

enum { DW_TILE_BLOCK = 64 };  // tiles summed per pass: a point's slices of VT and GT stay in L1

void sid_wino_dw_accumulate(float *dU, const float *in, const float *g, int ns, int cin, int cout, int H, int W,
                            float *scratch) {
    const size_t T = (size_t)ns * H * W / 4, pad = (size_t)(H + 2) * (W + 2) * cin;
    float *xl = scratch, *VT = xl + (size_t)ns * pad, *GT = VT + 16 * dw_vrow(T, cin);
    for (int n = 0; n < ns; n++) pad_channels_last(xl + n * pad, in + (size_t)n * cin * H * W, cin, H, W);
    input_transform_channels(VT, xl, ns, cin, H, W, T);
    gradient_transform(GT, g, ns, cout, H, W, T);
    for (size_t t0 = 0; t0 < T; t0 += DW_TILE_BLOCK) {
        const size_t t1 = t0 + DW_TILE_BLOCK < T ? t0 + DW_TILE_BLOCK : T;
        for (int e = 0; e < 16; e++) {
            int ci0 = 0;
            for (; ci0 + 16 <= cin; ci0 += 16) dw_point_channels(dU, VT, GT, cin, cout, e, ci0, T, t0, t1, 2);
            if (ci0 < cin) dw_point_channels(dU, VT, GT, cin, cout, e, ci0, T, t0, t1, 1);
        }
    }
}

void sid_wino_dw_finish(float *dw, const float *dU, int cin, int cout) {
    const size_t urow = sid_wino_urow(cin, cout);
    for (int co = 0; co < cout; co++)
        for (int ci = 0; ci < cin; ci++) {
            const float *u = dU + (size_t)co * cin + ci;
            double s[3][4];
            for (int j = 0; j < 4; j++) {  // G^T dU
                const double u0 = u[j * urow], u1 = u[(4 + j) * urow], u2 = u[(8 + j) * urow], u3 = u[(12 + j) * urow];
                s[0][j] = u0 + 0.5 * (u1 + u2);
                s[1][j] = 0.5 * (u1 - u2);
                s[2][j] = 0.5 * (u1 + u2) + u3;
            }
            float *d = dw + ((size_t)co * cin + ci) * 9;
            for (int a = 0; a < 3; a++) {  // (G^T dU) G
                d[a * 3 + 0] += (float)(s[a][0] + 0.5 * (s[a][1] + s[a][2]));
                d[a * 3 + 1] += (float)(0.5 * (s[a][1] - s[a][2]));
                d[a * 3 + 2] += (float)(0.5 * (s[a][1] + s[a][2]) + s[a][3]);
            }
        }
}
