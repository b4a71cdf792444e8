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
            v8f t[4][4];
            for (int c = 0; c < 4; c++) {  // B^T d, a column of d (padded column 2 tx + c) at a time
                const float *p = (c & 1 ? O : E) + (c >> 1);
                const v8f d0 = load_tiles(p, Wh, half), d1 = load_tiles(p + Wh, Wh, half);
                const v8f d2 = load_tiles(p + 2 * Wh, Wh, half), d3 = load_tiles(p + 3 * Wh, Wh, half);
                t[0][c] = d0 - d2, t[1][c] = d1 + d2, t[2][c] = d2 - d1, t[3][c] = d1 - d3;
            }
            for (int i = 0; i < 4; i++) {  // (B^T d) B
                const v8f u[4] = {t[i][0] - t[i][2], t[i][1] + t[i][2], t[i][2] - t[i][1], t[i][1] - t[i][3]};
                for (int j = 0; j < 4; j++) store8(Vt + ((size_t)(i * 4 + j) * cin + ci) * V * 8 + v * 8, u[j]);
            }
        }
    }
}

// Mt [16][cout][V*8] = the products of one Winograd-domain point e, summed over the input channels,
// for CO output channels from co.
static inline __attribute__((always_inline, optimize("fp-contract=fast"))) void point_products(
    float *Mt, const float *Vt, const float *U, int cin, int cout, int e, int co, const int V, const int CO) {
    v8f acc[WINO_CO][2];
    for (int j = 0; j < CO; j++)
        for (int v = 0; v < V; v++) acc[j][v] = (v8f){0};
    const float *vt = Vt + (size_t)e * cin * V * 8, *u = U + e * sid_wino_urow(cin, cout) + (size_t)co * cin;
    for (int ci = 0; ci < cin; ci++) {
        v8f iv[2];
        for (int v = 0; v < V; v++) iv[v] = load8(vt + (size_t)ci * V * 8 + v * 8);
        for (int j = 0; j < CO; j++) {
            const float wj = u[(size_t)j * cin + ci];
            for (int v = 0; v < V; v++) acc[j][v] += iv[v] * wj;
        }
    }
    for (int j = 0; j < CO; j++)
        for (int v = 0; v < V; v++) store8(Mt + ((size_t)(e * cout + co + j) * V + v) * 8, acc[j][v]);
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
            for (int c = 0; c < 4; c++) m[i][c] = load8(Mt + ((size_t)((i * 4 + c) * cout + co) * V + v) * 8);
        v8f t[2][4];
        for (int c = 0; c < 4; c++) {  // A^T m
            t[0][c] = m[0][c] + m[1][c] + m[2][c];
            t[1][c] = m[1][c] - m[2][c] - m[3][c];
        }
        for (int r = 0; r < 2; r++) {  // (A^T m) A: the tiles' pixels (2 ty + r, 2 tx) and (2 ty + r, 2 tx + 1)
            const v8f y0 = t[r][0] + t[r][1] + t[r][2] + bc, y1 = t[r][1] - t[r][2] - t[r][3] + bc;
            float *o = out + ((size_t)co * H + 2 * ty + r) * W + 2 * tx0, *o2 = o + (half ? 2 * W : 8);
            v8f lo = interleave_lo(y0, y1), hi = interleave_hi(y0, y1);
            if (accumulate) lo += load8(o), hi += load8(o2);
            store8(o, lo);
            store8(o2, hi);
        }
    }
}

// One point at a time over all output channels, so that its slices of Vt and U stay in L1 (the whole
// Vt of 48-64 input channels does not).
static inline __attribute__((always_inline)) void wino_block(float *out, const float *pp, const float *U,
                                                             const float *b, float *Vt, float *Mt, int cin, int cout,
                                                             int H, int W, int q0, int accumulate, const int V,
                                                             const int half) {
    input_transform(Vt, pp, cin, H, W, q0, V, half);
    for (int e = 0; e < 16; e++) {
        int co = 0;
        for (; co + WINO_CO <= cout; co += WINO_CO) point_products(Mt, Vt, U, cin, cout, e, co, V, WINO_CO);
        for (; co < cout; co++) point_products(Mt, Vt, U, cin, cout, e, co, V, 1);
    }
    for (int co = 0; co < cout; co++) output_transform(out, Mt, b, cout, co, H, W, q0, accumulate, V, half);
}

void sid_wino_conv(float *out, const float *in, const float *U, const float *b, int cin, int cout, int H, int W,
                   int accumulate, float *scratch) {
    float *pp = scratch, *Vt = pp + (size_t)cin * 2 * (H + 2) * (W / 2 + 1), *Mt = Vt + 16 * (size_t)cin * 16;
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
