// The CLIP score (clip_score.h): one parameter set for both towers and the two projections, loaded
// strictly from model.safetensors and moved to the backend; per batch the pixels and the token
// ids go up, the projected features come down, and the cosines are taken on the host in double.
#include "eval/clip_score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/arena.h"
#include "core/error.h"
#include "io/file.h"
#include "io/json.h"
#include "io/tokenizer.h"
#include "models/clip_text.h"
#include "models/clip_vision.h"

static const float OPENAI_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float OPENAI_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};
enum { MAX_PROJECTION = 65536 };

struct sid_clip_scorer {
    const sid_backend *be;
    int batch, dim, T;
    sid_params ps;
    sid_clip text;
    sid_clip_vision vision;
    sid_linear vproj, tproj;
    sid_tokenizer *tok;
    int32_t prefix[3];
    float mean[3], std[3];
    sid_arena act;
    // batch buffers in the backend's memory
    float *pixels, *hidden, *eot, *pooled, *img, *txt;
    int32_t *ids, *rows;
    // host
    int32_t *host_ids, *host_rows;
};

// ---------------------------------------------------------------- caption cleaning
// OpenAI's tokenizer runs basic_clean first: ftfy.fix_text, html.unescape twice, strip; then
// whitespace runs -> one space and lower(). sid's tokenizer does NFC, the whitespace and a
// per-character lowercase; this part does the rest (clip_score.h lists what is and is not done).
typedef struct {
    uint32_t *v;
    long n, cap;
} cpbuf;

static void cp_push(cpbuf *b, uint32_t c) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        uint32_t *v = sid_malloc((size_t)b->cap * sizeof *v);
        if (b->n) memcpy(v, b->v, (size_t)b->n * sizeof *v);
        free(b->v);
        b->v = v;
    }
    b->v[b->n++] = c;
}
static void cp_swap(cpbuf *a, cpbuf *b) {
    cpbuf t = *a;
    *a = *b, *b = t;
}

// Strict UTF-8 to code points (no overlongs, surrogates or values above U+10FFFF); -1 when invalid.
static int utf8_to_cps(const char *s, cpbuf *out) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        uint32_t c = *p, min;
        int extra;
        if (c < 0x80) extra = 0, min = 0;
        else if ((c & 0xE0) == 0xC0) extra = 1, c &= 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) extra = 2, c &= 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) extra = 3, c &= 0x07, min = 0x10000;
        else return -1;
        p++;
        for (int k = 0; k < extra; k++, p++) {
            if ((*p & 0xC0) != 0x80) return -1;
            c = (c << 6) | (*p & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return -1;
        cp_push(out, c);
    }
    return 0;
}

static size_t cp_to_utf8(uint32_t c, char *o) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | ((c >> 6) & 0x3F)), o[2] = (char)(0x80 | (c & 0x3F)), 3;
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3F)), o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

// Windows-1252 of the bytes 0x80..0x9F; the five it leaves undefined stay (ftfy's sloppy-windows-1252).
static const uint16_t CP1252[32] = {0x20AC, 0x81,   0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8D,   0x017D, 0x8F,
                                    0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D,   0x017E, 0x0178};

// Python's html.unescape of a numeric reference: 0 and out-of-range values -> U+FFFD, 0x80..0x9F
// as Windows-1252, the codepoints it drops -> 0 (nothing).
static uint32_t numeric_ref(uint64_t v) {
    if (v == 0) return 0xFFFD;
    if (v >= 0x80 && v <= 0x9F) return CP1252[v - 0x80];
    if ((v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) return 0xFFFD;
    if ((v >= 0x1 && v <= 0x8) || v == 0xB || (v >= 0xE && v <= 0x1F) || v == 0x7F || (v >= 0xFDD0 && v <= 0xFDEF) ||
        (v & 0xFFFE) == 0xFFFE)
        return 0;
    return (uint32_t)v;
}

static int is_hex(uint32_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
static int is_alnum(uint32_t c) { return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'); }

// Character entities: the HTML 4 set (Python's html.entities.name2codepoint, with html5's values),
// AMP COPY GT LT QUOT REG and apos, and ftfy's upper-case spellings of the lower-case ones
// ("EACUTE" -> "É"). Flags: 1 html.unescape also takes it without ';' (a legacy name), 2
// html.unescape takes it, 4 ftfy's unescape_html takes it. Sorted by name for bsearch.
typedef struct {
    const char *name;
    uint32_t cp;
    int flags;
} entity;
static const entity ENTITIES[] = {
    {"AACUTE", 0xC1, 4}, {"ACIRC", 0xC2, 4}, {"ACUTE", 0xB4, 4}, {"AELIG", 0xC6, 4}, {"AElig", 0xC6, 7},
    {"AGRAVE", 0xC0, 4}, {"ALEFSYM", 0x2135, 4}, {"ALPHA", 0x391, 4}, {"AMP", 0x26, 7}, {"AND", 0x2227, 4},
    {"ANG", 0x2220, 4}, {"APOS", 0x27, 4}, {"ARING", 0xC5, 4}, {"ASYMP", 0x2248, 4}, {"ATILDE", 0xC3, 4},
    {"AUML", 0xC4, 4}, {"Aacute", 0xC1, 7}, {"Acirc", 0xC2, 7}, {"Agrave", 0xC0, 7}, {"Alpha", 0x391, 6},
    {"Aring", 0xC5, 7}, {"Atilde", 0xC3, 7}, {"Auml", 0xC4, 7}, {"BDQUO", 0x201E, 4}, {"BETA", 0x392, 4},
    {"BRVBAR", 0xA6, 4}, {"BULL", 0x2022, 4}, {"Beta", 0x392, 6}, {"CAP", 0x2229, 4}, {"CCEDIL", 0xC7, 4},
    {"CEDIL", 0xB8, 4}, {"CENT", 0xA2, 4}, {"CHI", 0x3A7, 4}, {"CIRC", 0x2C6, 4}, {"CLUBS", 0x2663, 4},
    {"CONG", 0x2245, 4}, {"COPY", 0xA9, 7}, {"CRARR", 0x21B5, 4}, {"CUP", 0x222A, 4}, {"CURREN", 0xA4, 4},
    {"Ccedil", 0xC7, 7}, {"Chi", 0x3A7, 6}, {"DAGGER", 0x2020, 4}, {"DARR", 0x2193, 4}, {"DEG", 0xB0, 4},
    {"DELTA", 0x394, 4}, {"DIAMS", 0x2666, 4}, {"DIVIDE", 0xF7, 4}, {"Dagger", 0x2021, 6}, {"Delta", 0x394, 6},
    {"EACUTE", 0xC9, 4}, {"ECIRC", 0xCA, 4}, {"EGRAVE", 0xC8, 4}, {"EMPTY", 0x2205, 4}, {"EMSP", 0x2003, 4},
    {"ENSP", 0x2002, 4}, {"EPSILON", 0x395, 4}, {"EQUIV", 0x2261, 4}, {"ETA", 0x397, 4}, {"ETH", 0xD0, 7},
    {"EUML", 0xCB, 4}, {"EURO", 0x20AC, 4}, {"EXIST", 0x2203, 4}, {"Eacute", 0xC9, 7}, {"Ecirc", 0xCA, 7},
    {"Egrave", 0xC8, 7}, {"Epsilon", 0x395, 6}, {"Eta", 0x397, 6}, {"Euml", 0xCB, 7}, {"FNOF", 0x191, 4},
    {"FORALL", 0x2200, 4}, {"FRAC12", 0xBD, 4}, {"FRAC14", 0xBC, 4}, {"FRAC34", 0xBE, 4}, {"FRASL", 0x2044, 4},
    {"GAMMA", 0x393, 4}, {"GE", 0x2265, 4}, {"GT", 0x3E, 7}, {"Gamma", 0x393, 6}, {"HARR", 0x2194, 4},
    {"HEARTS", 0x2665, 4}, {"HELLIP", 0x2026, 4}, {"IACUTE", 0xCD, 4}, {"ICIRC", 0xCE, 4}, {"IEXCL", 0xA1, 4},
    {"IGRAVE", 0xCC, 4}, {"IMAGE", 0x2111, 4}, {"INFIN", 0x221E, 4}, {"INT", 0x222B, 4}, {"IOTA", 0x399, 4},
    {"IQUEST", 0xBF, 4}, {"ISIN", 0x2208, 4}, {"IUML", 0xCF, 4}, {"Iacute", 0xCD, 7}, {"Icirc", 0xCE, 7},
    {"Igrave", 0xCC, 7}, {"Iota", 0x399, 6}, {"Iuml", 0xCF, 7}, {"KAPPA", 0x39A, 4}, {"Kappa", 0x39A, 6},
    {"LAMBDA", 0x39B, 4}, {"LANG", 0x27E8, 4}, {"LAQUO", 0xAB, 4}, {"LARR", 0x2190, 4}, {"LCEIL", 0x2308, 4},
    {"LDQUO", 0x201C, 4}, {"LE", 0x2264, 4}, {"LFLOOR", 0x230A, 4}, {"LOWAST", 0x2217, 4}, {"LOZ", 0x25CA, 4},
    {"LRM", 0x200E, 4}, {"LSAQUO", 0x2039, 4}, {"LSQUO", 0x2018, 4}, {"LT", 0x3C, 7}, {"Lambda", 0x39B, 6},
    {"MACR", 0xAF, 4}, {"MDASH", 0x2014, 4}, {"MICRO", 0x39C, 4}, {"MIDDOT", 0xB7, 4}, {"MINUS", 0x2212, 4},
    {"MU", 0x39C, 4}, {"Mu", 0x39C, 6}, {"NABLA", 0x2207, 4}, {"NBSP", 0xA0, 4}, {"NDASH", 0x2013, 4},
    {"NE", 0x2260, 4}, {"NI", 0x220B, 4}, {"NOT", 0xAC, 4}, {"NOTIN", 0x2209, 4}, {"NSUB", 0x2284, 4},
    {"NTILDE", 0xD1, 4}, {"NU", 0x39D, 4}, {"Ntilde", 0xD1, 7}, {"Nu", 0x39D, 6}, {"OACUTE", 0xD3, 4},
    {"OCIRC", 0xD4, 4}, {"OELIG", 0x152, 4}, {"OElig", 0x152, 6}, {"OGRAVE", 0xD2, 4}, {"OLINE", 0x203E, 4},
    {"OMEGA", 0x3A9, 4}, {"OMICRON", 0x39F, 4}, {"OPLUS", 0x2295, 4}, {"OR", 0x2228, 4}, {"ORDF", 0xAA, 4},
    {"ORDM", 0xBA, 4}, {"OSLASH", 0xD8, 4}, {"OTILDE", 0xD5, 4}, {"OTIMES", 0x2297, 4}, {"OUML", 0xD6, 4},
    {"Oacute", 0xD3, 7}, {"Ocirc", 0xD4, 7}, {"Ograve", 0xD2, 7}, {"Omega", 0x3A9, 6}, {"Omicron", 0x39F, 6},
    {"Oslash", 0xD8, 7}, {"Otilde", 0xD5, 7}, {"Ouml", 0xD6, 7}, {"PARA", 0xB6, 4}, {"PART", 0x2202, 4},
    {"PERMIL", 0x2030, 4}, {"PERP", 0x22A5, 4}, {"PHI", 0x3A6, 4}, {"PI", 0x3A0, 4}, {"PIV", 0x3A0, 4},
    {"PLUSMN", 0xB1, 4}, {"POUND", 0xA3, 4}, {"PRIME", 0x2032, 4}, {"PROD", 0x220F, 4}, {"PROP", 0x221D, 4},
    {"PSI", 0x3A8, 4}, {"Phi", 0x3A6, 6}, {"Pi", 0x3A0, 6}, {"Prime", 0x2033, 6}, {"Psi", 0x3A8, 6},
    {"QUOT", 0x22, 7}, {"RADIC", 0x221A, 4}, {"RANG", 0x27E9, 4}, {"RAQUO", 0xBB, 4}, {"RARR", 0x2192, 4},
    {"RCEIL", 0x2309, 4}, {"RDQUO", 0x201D, 4}, {"REAL", 0x211C, 4}, {"REG", 0xAE, 7}, {"RFLOOR", 0x230B, 4},
    {"RHO", 0x3A1, 4}, {"RLM", 0x200F, 4}, {"RSAQUO", 0x203A, 4}, {"RSQUO", 0x2019, 4}, {"Rho", 0x3A1, 6},
    {"SBQUO", 0x201A, 4}, {"SCARON", 0x160, 4}, {"SDOT", 0x22C5, 4}, {"SECT", 0xA7, 4}, {"SHY", 0xAD, 4},
    {"SIGMA", 0x3A3, 4}, {"SIGMAF", 0x3A3, 4}, {"SIM", 0x223C, 4}, {"SPADES", 0x2660, 4}, {"SUB", 0x2282, 4},
    {"SUBE", 0x2286, 4}, {"SUM", 0x2211, 4}, {"SUP", 0x2283, 4}, {"SUP1", 0xB9, 4}, {"SUP2", 0xB2, 4},
    {"SUP3", 0xB3, 4}, {"SUPE", 0x2287, 4}, {"Scaron", 0x160, 6}, {"Sigma", 0x3A3, 6}, {"TAU", 0x3A4, 4},
    {"THERE4", 0x2234, 4}, {"THETA", 0x398, 4}, {"THETASYM", 0x398, 4}, {"THINSP", 0x2009, 4}, {"THORN", 0xDE, 7},
    {"TILDE", 0x2DC, 4}, {"TIMES", 0xD7, 4}, {"TRADE", 0x2122, 4}, {"Tau", 0x3A4, 6}, {"Theta", 0x398, 6},
    {"UACUTE", 0xDA, 4}, {"UARR", 0x2191, 4}, {"UCIRC", 0xDB, 4}, {"UGRAVE", 0xD9, 4}, {"UML", 0xA8, 4},
    {"UPSIH", 0x3D2, 4}, {"UPSILON", 0x3A5, 4}, {"UUML", 0xDC, 4}, {"Uacute", 0xDA, 7}, {"Ucirc", 0xDB, 7},
    {"Ugrave", 0xD9, 7}, {"Upsilon", 0x3A5, 6}, {"Uuml", 0xDC, 7}, {"WEIERP", 0x2118, 4}, {"XI", 0x39E, 4},
    {"Xi", 0x39E, 6}, {"YACUTE", 0xDD, 4}, {"YEN", 0xA5, 4}, {"YUML", 0x178, 4}, {"Yacute", 0xDD, 7},
    {"Yuml", 0x178, 6}, {"ZETA", 0x396, 4}, {"ZWJ", 0x200D, 4}, {"ZWNJ", 0x200C, 4}, {"Zeta", 0x396, 6},
    {"aacute", 0xE1, 7}, {"acirc", 0xE2, 7}, {"acute", 0xB4, 7}, {"aelig", 0xE6, 7}, {"agrave", 0xE0, 7},
    {"alefsym", 0x2135, 6}, {"alpha", 0x3B1, 6}, {"amp", 0x26, 7}, {"and", 0x2227, 6}, {"ang", 0x2220, 6},
    {"apos", 0x27, 6}, {"aring", 0xE5, 7}, {"asymp", 0x2248, 6}, {"atilde", 0xE3, 7}, {"auml", 0xE4, 7},
    {"bdquo", 0x201E, 6}, {"beta", 0x3B2, 6}, {"brvbar", 0xA6, 7}, {"bull", 0x2022, 6}, {"cap", 0x2229, 6},
    {"ccedil", 0xE7, 7}, {"cedil", 0xB8, 7}, {"cent", 0xA2, 7}, {"chi", 0x3C7, 6}, {"circ", 0x2C6, 6},
    {"clubs", 0x2663, 6}, {"cong", 0x2245, 6}, {"copy", 0xA9, 7}, {"crarr", 0x21B5, 6}, {"cup", 0x222A, 6},
    {"curren", 0xA4, 7}, {"dArr", 0x21D3, 6}, {"dagger", 0x2020, 6}, {"darr", 0x2193, 6}, {"deg", 0xB0, 7},
    {"delta", 0x3B4, 6}, {"diams", 0x2666, 6}, {"divide", 0xF7, 7}, {"eacute", 0xE9, 7}, {"ecirc", 0xEA, 7},
    {"egrave", 0xE8, 7}, {"empty", 0x2205, 6}, {"emsp", 0x2003, 6}, {"ensp", 0x2002, 6}, {"epsilon", 0x3B5, 6},
    {"equiv", 0x2261, 6}, {"eta", 0x3B7, 6}, {"eth", 0xF0, 7}, {"euml", 0xEB, 7}, {"euro", 0x20AC, 6},
    {"exist", 0x2203, 6}, {"fnof", 0x192, 6}, {"forall", 0x2200, 6}, {"frac12", 0xBD, 7}, {"frac14", 0xBC, 7},
    {"frac34", 0xBE, 7}, {"frasl", 0x2044, 6}, {"gamma", 0x3B3, 6}, {"ge", 0x2265, 6}, {"gt", 0x3E, 7},
    {"hArr", 0x21D4, 6}, {"harr", 0x2194, 6}, {"hearts", 0x2665, 6}, {"hellip", 0x2026, 6}, {"iacute", 0xED, 7},
    {"icirc", 0xEE, 7}, {"iexcl", 0xA1, 7}, {"igrave", 0xEC, 7}, {"image", 0x2111, 6}, {"infin", 0x221E, 6},
    {"int", 0x222B, 6}, {"iota", 0x3B9, 6}, {"iquest", 0xBF, 7}, {"isin", 0x2208, 6}, {"iuml", 0xEF, 7},
    {"kappa", 0x3BA, 6}, {"lArr", 0x21D0, 6}, {"lambda", 0x3BB, 6}, {"lang", 0x27E8, 6}, {"laquo", 0xAB, 7},
    {"larr", 0x2190, 6}, {"lceil", 0x2308, 6}, {"ldquo", 0x201C, 6}, {"le", 0x2264, 6}, {"lfloor", 0x230A, 6},
    {"lowast", 0x2217, 6}, {"loz", 0x25CA, 6}, {"lrm", 0x200E, 6}, {"lsaquo", 0x2039, 6}, {"lsquo", 0x2018, 6},
    {"lt", 0x3C, 7}, {"macr", 0xAF, 7}, {"mdash", 0x2014, 6}, {"micro", 0xB5, 7}, {"middot", 0xB7, 7},
    {"minus", 0x2212, 6}, {"mu", 0x3BC, 6}, {"nabla", 0x2207, 6}, {"nbsp", 0xA0, 7}, {"ndash", 0x2013, 6},
    {"ne", 0x2260, 6}, {"ni", 0x220B, 6}, {"not", 0xAC, 7}, {"notin", 0x2209, 6}, {"nsub", 0x2284, 6},
    {"ntilde", 0xF1, 7}, {"nu", 0x3BD, 6}, {"oacute", 0xF3, 7}, {"ocirc", 0xF4, 7}, {"oelig", 0x153, 6},
    {"ograve", 0xF2, 7}, {"oline", 0x203E, 6}, {"omega", 0x3C9, 6}, {"omicron", 0x3BF, 6}, {"oplus", 0x2295, 6},
    {"or", 0x2228, 6}, {"ordf", 0xAA, 7}, {"ordm", 0xBA, 7}, {"oslash", 0xF8, 7}, {"otilde", 0xF5, 7},
    {"otimes", 0x2297, 6}, {"ouml", 0xF6, 7}, {"para", 0xB6, 7}, {"part", 0x2202, 6}, {"permil", 0x2030, 6},
    {"perp", 0x22A5, 6}, {"phi", 0x3C6, 6}, {"pi", 0x3C0, 6}, {"piv", 0x3D6, 6}, {"plusmn", 0xB1, 7},
    {"pound", 0xA3, 7}, {"prime", 0x2032, 6}, {"prod", 0x220F, 6}, {"prop", 0x221D, 6}, {"psi", 0x3C8, 6},
    {"quot", 0x22, 7}, {"rArr", 0x21D2, 6}, {"radic", 0x221A, 6}, {"rang", 0x27E9, 6}, {"raquo", 0xBB, 7},
    {"rarr", 0x2192, 6}, {"rceil", 0x2309, 6}, {"rdquo", 0x201D, 6}, {"real", 0x211C, 6}, {"reg", 0xAE, 7},
    {"rfloor", 0x230B, 6}, {"rho", 0x3C1, 6}, {"rlm", 0x200F, 6}, {"rsaquo", 0x203A, 6}, {"rsquo", 0x2019, 6},
    {"sbquo", 0x201A, 6}, {"scaron", 0x161, 6}, {"sdot", 0x22C5, 6}, {"sect", 0xA7, 7}, {"shy", 0xAD, 7},
    {"sigma", 0x3C3, 6}, {"sigmaf", 0x3C2, 6}, {"sim", 0x223C, 6}, {"spades", 0x2660, 6}, {"sub", 0x2282, 6},
    {"sube", 0x2286, 6}, {"sum", 0x2211, 6}, {"sup", 0x2283, 6}, {"sup1", 0xB9, 7}, {"sup2", 0xB2, 7},
    {"sup3", 0xB3, 7}, {"supe", 0x2287, 6}, {"szlig", 0xDF, 7}, {"tau", 0x3C4, 6}, {"there4", 0x2234, 6},
    {"theta", 0x3B8, 6}, {"thetasym", 0x3D1, 6}, {"thinsp", 0x2009, 6}, {"thorn", 0xFE, 7}, {"tilde", 0x2DC, 6},
    {"times", 0xD7, 7}, {"trade", 0x2122, 6}, {"uArr", 0x21D1, 6}, {"uacute", 0xFA, 7}, {"uarr", 0x2191, 6},
    {"ucirc", 0xFB, 7}, {"ugrave", 0xF9, 7}, {"uml", 0xA8, 7}, {"upsih", 0x3D2, 6}, {"upsilon", 0x3C5, 6},
    {"uuml", 0xFC, 7}, {"weierp", 0x2118, 6}, {"xi", 0x3BE, 6}, {"yacute", 0xFD, 7}, {"yen", 0xA5, 7},
    {"yuml", 0xFF, 7}, {"zeta", 0x3B6, 6}, {"zwj", 0x200D, 6}, {"zwnj", 0x200C, 6},
};

// ftfy's WIDTH_MAP (fix_character_width: full-width and half-width forms, the ideographic space).
static const struct {
    uint32_t from, to[2];
} WIDTH[] = {
    {0x3000, {0x20, 0x0}}, {0xFF01, {0x21, 0x0}}, {0xFF02, {0x22, 0x0}}, {0xFF03, {0x23, 0x0}}, {0xFF04, {0x24, 0x0}},
    {0xFF05, {0x25, 0x0}}, {0xFF06, {0x26, 0x0}}, {0xFF07, {0x27, 0x0}}, {0xFF08, {0x28, 0x0}}, {0xFF09, {0x29, 0x0}},
    {0xFF0A, {0x2A, 0x0}}, {0xFF0B, {0x2B, 0x0}}, {0xFF0C, {0x2C, 0x0}}, {0xFF0D, {0x2D, 0x0}}, {0xFF0E, {0x2E, 0x0}},
    {0xFF0F, {0x2F, 0x0}}, {0xFF10, {0x30, 0x0}}, {0xFF11, {0x31, 0x0}}, {0xFF12, {0x32, 0x0}}, {0xFF13, {0x33, 0x0}},
    {0xFF14, {0x34, 0x0}}, {0xFF15, {0x35, 0x0}}, {0xFF16, {0x36, 0x0}}, {0xFF17, {0x37, 0x0}}, {0xFF18, {0x38, 0x0}},
    {0xFF19, {0x39, 0x0}}, {0xFF1A, {0x3A, 0x0}}, {0xFF1B, {0x3B, 0x0}}, {0xFF1C, {0x3C, 0x0}}, {0xFF1D, {0x3D, 0x0}},
    {0xFF1E, {0x3E, 0x0}}, {0xFF1F, {0x3F, 0x0}}, {0xFF20, {0x40, 0x0}}, {0xFF21, {0x41, 0x0}}, {0xFF22, {0x42, 0x0}},
    {0xFF23, {0x43, 0x0}}, {0xFF24, {0x44, 0x0}}, {0xFF25, {0x45, 0x0}}, {0xFF26, {0x46, 0x0}}, {0xFF27, {0x47, 0x0}},
    {0xFF28, {0x48, 0x0}}, {0xFF29, {0x49, 0x0}}, {0xFF2A, {0x4A, 0x0}}, {0xFF2B, {0x4B, 0x0}}, {0xFF2C, {0x4C, 0x0}},
    {0xFF2D, {0x4D, 0x0}}, {0xFF2E, {0x4E, 0x0}}, {0xFF2F, {0x4F, 0x0}}, {0xFF30, {0x50, 0x0}}, {0xFF31, {0x51, 0x0}},
    {0xFF32, {0x52, 0x0}}, {0xFF33, {0x53, 0x0}}, {0xFF34, {0x54, 0x0}}, {0xFF35, {0x55, 0x0}}, {0xFF36, {0x56, 0x0}},
    {0xFF37, {0x57, 0x0}}, {0xFF38, {0x58, 0x0}}, {0xFF39, {0x59, 0x0}}, {0xFF3A, {0x5A, 0x0}}, {0xFF3B, {0x5B, 0x0}},
    {0xFF3C, {0x5C, 0x0}}, {0xFF3D, {0x5D, 0x0}}, {0xFF3E, {0x5E, 0x0}}, {0xFF3F, {0x5F, 0x0}}, {0xFF40, {0x60, 0x0}},
    {0xFF41, {0x61, 0x0}}, {0xFF42, {0x62, 0x0}}, {0xFF43, {0x63, 0x0}}, {0xFF44, {0x64, 0x0}}, {0xFF45, {0x65, 0x0}},
    {0xFF46, {0x66, 0x0}}, {0xFF47, {0x67, 0x0}}, {0xFF48, {0x68, 0x0}}, {0xFF49, {0x69, 0x0}}, {0xFF4A, {0x6A, 0x0}},
    {0xFF4B, {0x6B, 0x0}}, {0xFF4C, {0x6C, 0x0}}, {0xFF4D, {0x6D, 0x0}}, {0xFF4E, {0x6E, 0x0}}, {0xFF4F, {0x6F, 0x0}},
    {0xFF50, {0x70, 0x0}}, {0xFF51, {0x71, 0x0}}, {0xFF52, {0x72, 0x0}}, {0xFF53, {0x73, 0x0}}, {0xFF54, {0x74, 0x0}},
    {0xFF55, {0x75, 0x0}}, {0xFF56, {0x76, 0x0}}, {0xFF57, {0x77, 0x0}}, {0xFF58, {0x78, 0x0}}, {0xFF59, {0x79, 0x0}},
    {0xFF5A, {0x7A, 0x0}}, {0xFF5B, {0x7B, 0x0}}, {0xFF5C, {0x7C, 0x0}}, {0xFF5D, {0x7D, 0x0}}, {0xFF5E, {0x7E, 0x0}},
    {0xFF5F, {0x2985, 0x0}}, {0xFF60, {0x2986, 0x0}}, {0xFF61, {0x3002, 0x0}}, {0xFF62, {0x300C, 0x0}},
    {0xFF63, {0x300D, 0x0}}, {0xFF64, {0x3001, 0x0}}, {0xFF65, {0x30FB, 0x0}}, {0xFF66, {0x30F2, 0x0}},
    {0xFF67, {0x30A1, 0x0}}, {0xFF68, {0x30A3, 0x0}}, {0xFF69, {0x30A5, 0x0}}, {0xFF6A, {0x30A7, 0x0}},
    {0xFF6B, {0x30A9, 0x0}}, {0xFF6C, {0x30E3, 0x0}}, {0xFF6D, {0x30E5, 0x0}}, {0xFF6E, {0x30E7, 0x0}},
    {0xFF6F, {0x30C3, 0x0}}, {0xFF70, {0x30FC, 0x0}}, {0xFF71, {0x30A2, 0x0}}, {0xFF72, {0x30A4, 0x0}},
    {0xFF73, {0x30A6, 0x0}}, {0xFF74, {0x30A8, 0x0}}, {0xFF75, {0x30AA, 0x0}}, {0xFF76, {0x30AB, 0x0}},
    {0xFF77, {0x30AD, 0x0}}, {0xFF78, {0x30AF, 0x0}}, {0xFF79, {0x30B1, 0x0}}, {0xFF7A, {0x30B3, 0x0}},
    {0xFF7B, {0x30B5, 0x0}}, {0xFF7C, {0x30B7, 0x0}}, {0xFF7D, {0x30B9, 0x0}}, {0xFF7E, {0x30BB, 0x0}},
    {0xFF7F, {0x30BD, 0x0}}, {0xFF80, {0x30BF, 0x0}}, {0xFF81, {0x30C1, 0x0}}, {0xFF82, {0x30C4, 0x0}},
    {0xFF83, {0x30C6, 0x0}}, {0xFF84, {0x30C8, 0x0}}, {0xFF85, {0x30CA, 0x0}}, {0xFF86, {0x30CB, 0x0}},
    {0xFF87, {0x30CC, 0x0}}, {0xFF88, {0x30CD, 0x0}}, {0xFF89, {0x30CE, 0x0}}, {0xFF8A, {0x30CF, 0x0}},
    {0xFF8B, {0x30D2, 0x0}}, {0xFF8C, {0x30D5, 0x0}}, {0xFF8D, {0x30D8, 0x0}}, {0xFF8E, {0x30DB, 0x0}},
    {0xFF8F, {0x30DE, 0x0}}, {0xFF90, {0x30DF, 0x0}}, {0xFF91, {0x30E0, 0x0}}, {0xFF92, {0x30E1, 0x0}},
    {0xFF93, {0x30E2, 0x0}}, {0xFF94, {0x30E4, 0x0}}, {0xFF95, {0x30E6, 0x0}}, {0xFF96, {0x30E8, 0x0}},
    {0xFF97, {0x30E9, 0x0}}, {0xFF98, {0x30EA, 0x0}}, {0xFF99, {0x30EB, 0x0}}, {0xFF9A, {0x30EC, 0x0}},
    {0xFF9B, {0x30ED, 0x0}}, {0xFF9C, {0x30EF, 0x0}}, {0xFF9D, {0x30F3, 0x0}}, {0xFF9E, {0x3099, 0x0}},
    {0xFF9F, {0x309A, 0x0}}, {0xFFA0, {0x1160, 0x0}}, {0xFFA1, {0x1100, 0x0}}, {0xFFA2, {0x1101, 0x0}},
    {0xFFA3, {0x11AA, 0x0}}, {0xFFA4, {0x1102, 0x0}}, {0xFFA5, {0x11AC, 0x0}}, {0xFFA6, {0x11AD, 0x0}},
    {0xFFA7, {0x1103, 0x0}}, {0xFFA8, {0x1104, 0x0}}, {0xFFA9, {0x1105, 0x0}}, {0xFFAA, {0x11B0, 0x0}},
    {0xFFAB, {0x11B1, 0x0}}, {0xFFAC, {0x11B2, 0x0}}, {0xFFAD, {0x11B3, 0x0}}, {0xFFAE, {0x11B4, 0x0}},
    {0xFFAF, {0x11B5, 0x0}}, {0xFFB0, {0x111A, 0x0}}, {0xFFB1, {0x1106, 0x0}}, {0xFFB2, {0x1107, 0x0}},
    {0xFFB3, {0x1108, 0x0}}, {0xFFB4, {0x1121, 0x0}}, {0xFFB5, {0x1109, 0x0}}, {0xFFB6, {0x110A, 0x0}},
    {0xFFB7, {0x110B, 0x0}}, {0xFFB8, {0x110C, 0x0}}, {0xFFB9, {0x110D, 0x0}}, {0xFFBA, {0x110E, 0x0}},
    {0xFFBB, {0x110F, 0x0}}, {0xFFBC, {0x1110, 0x0}}, {0xFFBD, {0x1111, 0x0}}, {0xFFBE, {0x1112, 0x0}},
    {0xFFC2, {0x1161, 0x0}}, {0xFFC3, {0x1162, 0x0}}, {0xFFC4, {0x1163, 0x0}}, {0xFFC5, {0x1164, 0x0}},
    {0xFFC6, {0x1165, 0x0}}, {0xFFC7, {0x1166, 0x0}}, {0xFFCA, {0x1167, 0x0}}, {0xFFCB, {0x1168, 0x0}},
    {0xFFCC, {0x1169, 0x0}}, {0xFFCD, {0x116A, 0x0}}, {0xFFCE, {0x116B, 0x0}}, {0xFFCF, {0x116C, 0x0}},
    {0xFFD2, {0x116D, 0x0}}, {0xFFD3, {0x116E, 0x0}}, {0xFFD4, {0x116F, 0x0}}, {0xFFD5, {0x1170, 0x0}},
    {0xFFD6, {0x1171, 0x0}}, {0xFFD7, {0x1172, 0x0}}, {0xFFDA, {0x1173, 0x0}}, {0xFFDB, {0x1174, 0x0}},
    {0xFFDC, {0x1175, 0x0}}, {0xFFE0, {0xA2, 0x0}}, {0xFFE1, {0xA3, 0x0}}, {0xFFE2, {0xAC, 0x0}}, {0xFFE3, {0x20, 0x304}},
    {0xFFE4, {0xA6, 0x0}}, {0xFFE5, {0xA5, 0x0}}, {0xFFE6, {0x20A9, 0x0}}, {0xFFE8, {0x2502, 0x0}}, {0xFFE9, {0x2190, 0x0}},
    {0xFFEA, {0x2191, 0x0}}, {0xFFEB, {0x2192, 0x0}}, {0xFFEC, {0x2193, 0x0}}, {0xFFED, {0x25A0, 0x0}},
    {0xFFEE, {0x25CB, 0x0}},
};

// ftfy's LIGATURES (fix_latin_ligatures).
static const struct {
    uint32_t from, to[3];
} LIGATURES[] = {
    {0x132, {0x49, 0x4A, 0x0}}, {0x133, {0x69, 0x6A, 0x0}}, {0x149, {0x2BC, 0x6E, 0x0}}, {0x1C4, {0x44, 0x17D, 0x0}},
    {0x1C5, {0x44, 0x17E, 0x0}}, {0x1C6, {0x64, 0x17E, 0x0}}, {0x1C7, {0x4C, 0x4A, 0x0}}, {0x1C8, {0x4C, 0x6A, 0x0}},
    {0x1C9, {0x6C, 0x6A, 0x0}}, {0x1CA, {0x4E, 0x4A, 0x0}}, {0x1CB, {0x4E, 0x6A, 0x0}}, {0x1CC, {0x6E, 0x6A, 0x0}},
    {0x1F1, {0x44, 0x5A, 0x0}}, {0x1F2, {0x44, 0x7A, 0x0}}, {0x1F3, {0x64, 0x7A, 0x0}}, {0xFB00, {0x66, 0x66, 0x0}},
    {0xFB01, {0x66, 0x69, 0x0}}, {0xFB02, {0x66, 0x6C, 0x0}}, {0xFB03, {0x66, 0x66, 0x69}},
    {0xFB04, {0x66, 0x66, 0x6C}}, {0xFB05, {0x17F, 0x74, 0x0}}, {0xFB06, {0x73, 0x74, 0x0}},
};

static int entity_cmp(const void *key, const void *e) { return strcmp(key, ((const entity *)e)->name); }

// The entity named by cps[0..n), or NULL.
static const entity *find_entity(const uint32_t *cps, long n) {
    char name[40];
    if (n < 1 || n > 32) return NULL;
    for (long i = 0; i < n; i++) {
        if (cps[i] >= 128) return NULL;
        name[i] = (char)cps[i];
    }
    name[n] = 0;
    return bsearch(name, ENTITIES, sizeof ENTITIES / sizeof ENTITIES[0], sizeof ENTITIES[0], entity_cmp);
}

// A numeric reference at cps[j] (the '#' after '&'): the index past it (-1: none), the replacement
// in *rep (0: dropped). ftfy: "&#" + at most 24 of [0-9A-Za-z] + ';', all of it a number.
static long numeric_at(const uint32_t *cps, long j, long n, int ftfy, uint32_t *rep) {
    const int hex = j + 1 < n && (cps[j + 1] == 'x' || cps[j + 1] == 'X');
    const long k = j + 1 + hex;
    long d = k;
    uint64_t v = 0;
    while (d < n && (hex ? is_hex(cps[d]) : cps[d] >= '0' && cps[d] <= '9')) {
        const uint32_t c = cps[d];
        const uint64_t dv = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        if (v <= 0x7FFFFFFF) v = v * (hex ? 16 : 10) + dv;
        d++;
    }
    const int semi = d < n && cps[d] == ';';
    if (d == k || (ftfy && (!semi || d - (j + 1) > 24))) return -1;
    *rep = numeric_ref(v);
    return d + semi;
}

// One pass of HTML character-reference unescaping of in into out.
// ftfy (its unescape_html): "&#?[0-9A-Za-z]{1,24};" references only. html.unescape: a numeric
// reference may end without ';', a name is up to 32 characters other than tab, newline, form
// feed, space, & # ;, and a name that is no entity may start with a legacy one ("&notit;" -> "¬it;").
static void unescape_pass(const cpbuf *in, cpbuf *out, int ftfy) {
    const uint32_t *cps = in->v;
    const long n = in->n;
    out->n = 0;
    for (long i = 0; i < n;) {
        if (cps[i] != '&' || i + 1 >= n) {
            cp_push(out, cps[i++]);
            continue;
        }
        const long j = i + 1;
        uint32_t rep = 0;
        long end = -1;  // index past the reference
        if (cps[j] == '#') {
            end = numeric_at(cps, j, n, ftfy, &rep);
        } else if (ftfy) {
            long k = j;
            while (k < n && k - j < 24 && is_alnum(cps[k])) k++;
            const entity *e = k < n && cps[k] == ';' ? find_entity(cps + j, k - j) : NULL;
            if (e && (e->flags & 4)) rep = e->cp, end = k + 1;
        } else {
            long k = j;
            while (k < n && k - j < 32 && !(cps[k] < 128 && strchr("\t\n\f <&#;", (int)cps[k]))) k++;
            const int semi = k < n && cps[k] == ';';
            const entity *e = find_entity(cps + j, k - j);
            if (e && ((semi && (e->flags & 2)) || (!semi && (e->flags & 1)))) {
                rep = e->cp, end = k + semi;
            } else {  // the longest legacy name the text starts with (at least 2 characters)
                for (long x = k - j + semi - 1; x >= 2 && end < 0; x--) {
                    if (x > k - j) continue;
                    e = find_entity(cps + j, x);
                    if (e && (e->flags & 1)) rep = e->cp, end = j + x;
                }
            }
        }
        if (end < 0) {
            cp_push(out, cps[i++]);
            continue;
        }
        if (rep) cp_push(out, rep);
        i = end;
    }
}

// ftfy's remove_control_chars set.
static int ftfy_control(uint32_t c) {
    return c <= 0x8 || c == 0xB || (c >= 0xE && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

// One round of ftfy.fix_and_explain's fixes (fix_encoding, the mojibake repair, left out) of in
// into out: unescape_html, fix_c1_controls, fix_latin_ligatures, fix_character_width,
// uncurl_quotes, fix_line_breaks, remove_terminal_escapes, remove_control_chars.
static void ftfy_round(const cpbuf *in, cpbuf *out, int unescape) {
    cpbuf a = {0};
    if (unescape) unescape_pass(in, &a, 1);
    else
        for (long i = 0; i < in->n; i++) cp_push(&a, in->v[i]);
    out->n = 0;
    for (long i = 0; i < a.n; i++) {
        uint32_t c = a.v[i];
        if (c >= 0x80 && c <= 0x9F) c = CP1252[c - 0x80];
        int done = 0;
        for (size_t k = 0; k < sizeof LIGATURES / sizeof LIGATURES[0] && !done; k++)
            if (c == LIGATURES[k].from) {
                for (int t = 0; t < 3 && LIGATURES[k].to[t]; t++) cp_push(out, LIGATURES[k].to[t]);
                done = 1;
            }
        if (done) continue;
        if (c == 0x3000 || (c >= 0xFF01 && c <= 0xFFEE)) {
            size_t lo = 0, hi = sizeof WIDTH / sizeof WIDTH[0];
            while (lo < hi) {
                const size_t mid = (lo + hi) / 2;
                if (WIDTH[mid].from < c) lo = mid + 1;
                else hi = mid;
            }
            if (lo < sizeof WIDTH / sizeof WIDTH[0] && WIDTH[lo].from == c) {
                c = WIDTH[lo].to[0];
                if (WIDTH[lo].to[1]) {
                    cp_push(out, c);
                    c = WIDTH[lo].to[1];
                }
            }
        }
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
        else if (c >= 0x201C && c <= 0x201F) c = '"';
        cp_push(out, c);
    }
    // line breaks, then terminal escapes (ESC [ digits-and-semicolons letter), then control characters
    a.n = 0;
    for (long i = 0; i < out->n; i++) {
        const uint32_t c = out->v[i];
        if (c == '\r' && i + 1 < out->n && out->v[i + 1] == '\n') continue;
        cp_push(&a, c == '\r' || c == 0x2028 || c == 0x2029 || c == 0x85 ? '\n' : c);
    }
    out->n = 0;
    for (long i = 0; i < a.n; i++) {
        if (a.v[i] == 0x1B && i + 1 < a.n && a.v[i + 1] == '[') {
            long k = i + 2;
            while (k < a.n && ((a.v[k] >= '0' && a.v[k] <= '9') || a.v[k] == ';')) k++;
            if (k < a.n && a.v[k] < 128 && ((a.v[k] | 0x20) >= 'a' && (a.v[k] | 0x20) <= 'z')) {
                i = k;
                continue;
            }
        }
        if (!ftfy_control(a.v[i])) cp_push(out, a.v[i]);
    }
    free(a.v);
}

// Python's str.lower() turns a capital sigma after a cased letter and not before one (case-ignorable
// characters skipped) into the final sigma; the tokenizer lowercases per character. Cased and
// case-ignorable are approximated by the ranges of the Latin, Greek, Cyrillic and Armenian letters,
// and by the apostrophes, dots, modifier letters and combining marks.
static int cased(uint32_t c) {
    return ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == 0xAA || c == 0xB5 || c == 0xBA ||
           (c >= 0xC0 && c <= 0x2AF && c != 0xD7 && c != 0xF7) || (c >= 0x370 && c <= 0x373) || c == 0x376 ||
           c == 0x377 || (c >= 0x37B && c <= 0x37D) || c == 0x37F || c == 0x386 ||
           (c >= 0x388 && c <= 0x3FF && c != 0x3F6) || (c >= 0x400 && c <= 0x52F && !(c >= 0x482 && c <= 0x489)) ||
           (c >= 0x531 && c <= 0x587) || (c >= 0x10A0 && c <= 0x10FF) || (c >= 0x1E00 && c <= 0x1FFF) ||
           (c >= 0x2C00 && c <= 0x2C7F) || (c >= 0xFF21 && c <= 0xFF3A) || (c >= 0xFF41 && c <= 0xFF5A);
}
static int case_ignorable(uint32_t c) {
    return c == '\'' || c == '.' || c == ':' || c == '^' || c == '`' || c == 0xA8 || c == 0xAD || c == 0xAF ||
           c == 0xB4 || c == 0xB7 || c == 0xB8 || (c >= 0x2B0 && c <= 0x36F) || c == 0x374 || c == 0x375 ||
           c == 0x37A || c == 0x384 || c == 0x385 || c == 0x387 || (c >= 0x483 && c <= 0x489) || c == 0x2018 ||
           c == 0x2019 || c == 0x2024 || c == 0x2027 || (c >= 0x200B && c <= 0x200F) ||
           (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) || (c >= 0x1AB0 && c <= 0x1AFF) ||
           (c >= 0x1DC0 && c <= 0x1DFF) || (c >= 0x20D0 && c <= 0x20FF) || (c >= 0xFE00 && c <= 0xFE0F) ||
           c == 0xFEFF;
}
static void final_sigma(cpbuf *b) {
    for (long i = 0; i < b->n; i++) {
        if (b->v[i] != 0x3A3) continue;
        long a = i - 1, k = i + 1;
        while (a >= 0 && case_ignorable(b->v[a])) a--;
        while (k < b->n && case_ignorable(b->v[k])) k++;
        if (a >= 0 && cased(b->v[a]) && !(k < b->n && cased(b->v[k]))) b->v[i] = 0x3C2;
    }
}

char *sid_clip_clean_caption(const char *caption) {
    cpbuf text = {0}, seg = {0}, next = {0}, done = {0};
    if (utf8_to_cps(caption, &text)) {
        free(text.v);
        sid_set_error("clip score: caption \"%.40s\" is not valid UTF-8", caption);
        return NULL;
    }
    // ftfy.fix_text: line by line (each with its '\n'); from the first line with a '<' on, no HTML
    // unescaping; each line's fixes repeated until nothing changes
    int unescape = 1;
    for (long pos = 0; pos < text.n;) {
        long end = pos;
        while (end < text.n && text.v[end] != '\n') end++;
        if (end < text.n) end++;
        seg.n = 0;
        for (long i = pos; i < end; i++) {
            cp_push(&seg, text.v[i]);
            if (text.v[i] == '<') unescape = 0;
        }
        for (int round = 0; round < 64; round++) {
            ftfy_round(&seg, &next, unescape);
            const int same = next.n == seg.n && (!seg.n || !memcmp(next.v, seg.v, (size_t)seg.n * sizeof *seg.v));
            cp_swap(&seg, &next);
            if (same) break;
        }
        for (long i = 0; i < seg.n; i++) cp_push(&done, seg.v[i]);
        pos = end;
    }
    // basic_clean: html.unescape twice; then lower()'s final sigma
    unescape_pass(&done, &next, 0);
    unescape_pass(&next, &done, 0);
    final_sigma(&done);
    char *out = sid_malloc((size_t)done.n * 4 + 1), *o = out;
    for (long i = 0; i < done.n; i++) o += cp_to_utf8(done.v[i], o);
    *o = 0;
    free(text.v);
    free(seg.v);
    free(next.v);
    free(done.v);
    return out;
}

// ---------------------------------------------------------------- open
static int is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int has_tokenizer_files(const char *dir) {
    char p[1200];
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    if (sid_file_exists(p)) return 1;
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    return sid_file_exists(p);
}

static int read_mean_std(sid_clip_scorer *s, const char *dir) {
    char path[1100];
    memcpy(s->mean, OPENAI_MEAN, sizeof s->mean);
    memcpy(s->std, OPENAI_STD, sizeof s->std);
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    if (!sid_file_exists(path)) return 0;
    cJSON *j = sid_json_load(path);
    if (!j) return -1;
    static const char *const keys[2] = {"image_mean", "image_std"};
    float *dst[2] = {s->mean, s->std};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        if (!a) continue;  // absent: OpenAI's, as CLIPImageProcessor's default
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 3) {
            sid_set_error("%s: '%s' must be an array of 3 numbers", path, keys[k]);
            rc = -1;
            break;
        }
        for (int i = 0; i < 3 && !rc; i++) {
            const cJSON *v = cJSON_GetArrayItem(a, i);
            if (!cJSON_IsNumber(v) || !(k == 0 || v->valuedouble > 0) || !isfinite(v->valuedouble)) {
                sid_set_error("%s: '%s' element %d must be a %snumber", path, keys[k], i, k ? "positive " : "");
                rc = -1;
            } else {
                dst[k][i] = (float)v->valuedouble;
            }
        }
    }
    cJSON_Delete(j);
    return rc;
}

static int read_config(sid_clip_scorer *s, sid_clip_config *tc, sid_clip_vision_config *vc, const char *dir) {
    char path[1100], label[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root = sid_json_load(path);
    if (!root) return -1;
    int rc = 0;
    static const char *const subs[2] = {"text_config", "vision_config"};
    // Older files (openai/clip-vit-large-patch14's) also carry "text_config_dict" / "vision_config_dict",
    // whose values transformers' CLIPConfig lays over the sub-configs.
    for (int k = 0; k < 2; k++) {
        char key[32];
        snprintf(key, sizeof key, "%s_dict", subs[k]);
        const cJSON *over = cJSON_GetObjectItemCaseSensitive(root, key);
        if (!cJSON_IsObject(over)) continue;
        cJSON *sub = cJSON_GetObjectItemCaseSensitive(root, subs[k]);
        if (!cJSON_IsObject(sub)) {
            cJSON_DeleteItemFromObjectCaseSensitive(root, subs[k]);
            sub = cJSON_AddObjectToObject(root, subs[k]);
        }
        for (const cJSON *e = over->child; e; e = e->next) {
            cJSON *copy = cJSON_Duplicate(e, 1);
            if (cJSON_GetObjectItemCaseSensitive(sub, e->string)) cJSON_ReplaceItemInObjectCaseSensitive(sub, e->string, copy);
            else cJSON_AddItemToObject(sub, e->string, copy);
        }
    }
    for (int k = 0; k < 2 && !rc; k++)
        if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, subs[k]))) {
            sid_set_error("%s: no '%s' object (a transformers CLIPModel config has text_config and vision_config)",
                          path, subs[k]);
            rc = -1;
        }
    char *text = rc ? NULL : cJSON_PrintUnformatted(root);
    if (!rc) {
        snprintf(label, sizeof label, "%s (text_config)", path);
        rc = sid_clip_config_parse(tc, text, label);
    }
    if (!rc) {
        snprintf(label, sizeof label, "%s (vision_config)", path);
        rc = sid_clip_vision_config_parse(vc, text, label);
    }
    if (!rc) rc = sid_json_int(root, "projection_dim", &s->dim, 512, 0, path);
    if (!rc && (s->dim <= 0 || s->dim > MAX_PROJECTION)) {
        sid_set_error("%s: 'projection_dim' = %d is out of range (1 to %d)", path, s->dim, MAX_PROJECTION);
        rc = -1;
    }
    if (!rc && vc->channels != 3) {
        sid_set_error("%s (vision_config): 'num_channels' = %d, the CLIP score takes RGB images (3)", path,
                      vc->channels);
        rc = -1;
    }
    free(text);
    cJSON_Delete(root);
    return rc;
}

static int open_tokenizer(sid_clip_scorer *s, const char *dir) {
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/tokenizer", dir);
    const char *from = has_tokenizer_files(dir) ? dir : is_dir(sub) ? sub : NULL;
    if (!from) {
        sid_set_error("%s: no CLIP tokenizer (vocab.json and merges.txt, or tokenizer.json, in the folder or in "
                      "tokenizer/; tools/reference/convert_open_clip.py writes them)",
                      dir);
        return -1;
    }
    // OpenAI's tokenizer: the BPE and its two special tokens, whatever the folder's configs add (an
    // OpenCLIP folder's pad "!" would otherwise split every "!" out of the captions)
    if (!(s->tok = sid_tokenizer_load_bpe(from))) return -1;
    const int V = sid_tokenizer_vocab_size(s->tok);
    if (V > s->text.cfg.vocab_size) {
        sid_set_error("%s: the tokenizer has %d tokens, the text tower's vocab_size is %d", from, V,
                      s->text.cfg.vocab_size);
        return -1;
    }
    // GigaGAN: tokenize("A photo depicts ")[:, 1:4]
    int32_t *ids = sid_malloc((size_t)s->T * sizeof *ids);
    const int n = sid_tokenizer_encode(s->tok, "A photo depicts ", ids, s->T);
    if (n < 0) {
        free(ids);
        return -1;
    }
    for (int k = 0; k < 3; k++) s->prefix[k] = 1 + k < n ? ids[1 + k] : 0;
    free(ids);
    return 0;
}

sid_clip_scorer *sid_clip_scorer_open(const char *dir, const sid_backend *be, int batch) {
    if (batch < 1) return sid_set_error("clip score: batch %d (must be at least 1)", batch), NULL;
    sid_clip_scorer *s = sid_calloc(sizeof *s);
    s->be = sid_backend_or_cpu(be);
    s->batch = batch;
    sid_clip_config tc;
    sid_clip_vision_config vc;
    char path[1100];
    if (read_config(s, &tc, &vc, dir) || read_mean_std(s, dir)) {
        free(s);
        return NULL;
    }
    s->T = tc.max_positions;
    if (s->T < 5) {  // BOS, the 3 prefix tokens, EOT
        sid_set_error("%s/config.json (text_config): 'max_position_embeddings' = %d, the protocol needs at least 5",
                      dir, s->T);
        free(s);
        return NULL;
    }
    sid_clip_decl(&s->text, &s->ps, &tc);
    sid_clip_vision_decl(&s->vision, &s->ps, &vc);
    sid_linear_decl(&s->vproj, &s->ps, vc.hidden, s->dim, 0, "visual_projection");
    sid_linear_decl(&s->tproj, &s->ps, tc.hidden, s->dim, 0, "text_projection");
    if (open_tokenizer(s, dir)) {
        sid_clip_scorer_close(s);
        return NULL;
    }
    sid_params_alloc(&s->ps, 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    static const char *const ignore[] = {"position_ids", "logit_scale", NULL};
    if (sid_params_load(&s->ps, path, NULL, NULL, 1, ignore)) {
        sid_clip_scorer_close(s);
        return NULL;
    }
    sid_params_to_backend(&s->ps, s->be);

    const int B = batch, T = s->T, S = vc.image_size;
    size_t act = sid_clip_vision_act_bytes(&vc, B);
    const size_t text_act = sid_clip_encode_act_bytes(&tc, B, T);
    if (text_act > act) act = text_act;
    sid_backend_arena_init(&s->act, s->be, "clip score activations", act + (1u << 16));
    const sid_backend *b = s->be;
    s->pixels = b->alloc((size_t)B * 3 * S * S * sizeof(float));
    s->hidden = b->alloc((size_t)B * T * tc.hidden * sizeof(float));
    s->eot = b->alloc((size_t)B * tc.hidden * sizeof(float));
    s->pooled = b->alloc((size_t)B * vc.hidden * sizeof(float));
    s->img = b->alloc((size_t)B * s->dim * sizeof(float));
    s->txt = b->alloc((size_t)B * s->dim * sizeof(float));
    s->ids = b->alloc((size_t)B * T * sizeof(int32_t));
    s->rows = b->alloc((size_t)B * sizeof(int32_t));
    s->host_ids = sid_malloc((size_t)B * T * sizeof(int32_t));
    s->host_rows = sid_malloc((size_t)B * sizeof(int32_t));
    return s;
}

void sid_clip_scorer_close(sid_clip_scorer *s) {
    if (!s) return;
    const sid_backend *b = s->be;
    void *dev[] = {s->pixels, s->hidden, s->eot, s->pooled, s->img, s->txt, s->ids, s->rows};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) b->free(dev[i]);
    if (s->act.base) sid_arena_free(&s->act);
    free(s->host_ids);
    free(s->host_rows);
    sid_tokenizer_free(s->tok);
    sid_clip_free(&s->text);
    sid_clip_vision_free(&s->vision);
    sid_params_free(&s->ps);
    free(s);
}

int sid_clip_scorer_image_size(const sid_clip_scorer *s) { return s->vision.cfg.image_size; }
const float *sid_clip_scorer_mean(const sid_clip_scorer *s) { return s->mean; }
const float *sid_clip_scorer_std(const sid_clip_scorer *s) { return s->std; }
int sid_clip_scorer_dim(const sid_clip_scorer *s) { return s->dim; }
int sid_clip_scorer_context(const sid_clip_scorer *s) { return s->T; }

// ---------------------------------------------------------------- tokens
int sid_clip_scorer_tokens(const sid_clip_scorer *s, const char *caption, int32_t *ids) {
    const int T = s->T;
    char *clean = sid_clip_clean_caption(caption ? caption : "");
    if (!clean) return -1;
    int32_t *raw = sid_malloc((size_t)T * sizeof *raw);
    const int n = sid_tokenizer_encode(s->tok, clean, raw, T);  // BOS .. EOT, truncated with EOT kept last
    free(clean);
    if (n < 0) {
        free(raw);
        return -1;
    }
    for (int i = n; i < T; i++) raw[i] = 0;  // OpenAI's zero padding
    ids[0] = raw[0];
    for (int k = 0; k < 3; k++) ids[1 + k] = s->prefix[k];
    for (int i = 4; i < T; i++) ids[i] = raw[i - 3];
    if (ids[T - 1] > 0) ids[T - 1] = sid_tokenizer_eos_id(s->tok);
    free(raw);
    return 0;
}

// ---------------------------------------------------------------- features
static sid_ctx ctx_of(sid_clip_scorer *s) {
    return (sid_ctx){.ps = &s->ps, .act = &s->act, .be = s->be, .meta = NULL};
}

// b <= batch images (host) -> s->img [b, dim] (device)
static void image_batch(sid_clip_scorer *s, const float *pixels, int b) {
    const sid_ctx c = ctx_of(s);
    const int S = s->vision.cfg.image_size;
    s->be->upload(s->pixels, pixels, (size_t)b * 3 * S * S * sizeof(float));
    sid_clip_vision_forward(&c, &s->vision, s->pooled, s->pixels, b);
    sid_linear_f(&c, &s->vproj, s->img, s->pooled, b);
}

// b <= batch captions -> s->txt [b, dim] (device)
static int text_batch(sid_clip_scorer *s, const char *const *captions, int b) {
    const sid_ctx c = ctx_of(s);
    const int T = s->T;
    for (int i = 0; i < b; i++) {
        int32_t *ids = s->host_ids + (size_t)i * T;
        if (sid_clip_scorer_tokens(s, captions[i], ids)) return -1;
        int best = 0;  // argmax: the first position of the largest id (EOT)
        for (int t = 1; t < T; t++)
            if (ids[t] > ids[best]) best = t;
        s->host_rows[i] = i * T + best;
    }
    s->be->upload(s->ids, s->host_ids, (size_t)b * T * sizeof(int32_t));
    s->be->upload(s->rows, s->host_rows, (size_t)b * sizeof(int32_t));
    if (sid_clip_encode(&c, &s->text, s->hidden, s->ids, b, T, s->text.cfg.layers)) return -1;
    s->be->gather_rows(s->eot, s->hidden, s->rows, b, (size_t)s->text.cfg.hidden);
    sid_linear_f(&c, &s->tproj, s->txt, s->eot, b);
    return 0;
}

int sid_clip_scorer_image_features(sid_clip_scorer *s, const float *pixels, int n, float *out) {
    const int S = s->vision.cfg.image_size;
    for (int i = 0; i < n; i += s->batch) {
        const int b = n - i < s->batch ? n - i : s->batch;
        image_batch(s, pixels + (size_t)i * 3 * S * S, b);
        s->be->download(out + (size_t)i * s->dim, s->img, (size_t)b * s->dim * sizeof(float));
    }
    return 0;
}

int sid_clip_scorer_text_features(sid_clip_scorer *s, const char *const *captions, int n, float *out) {
    for (int i = 0; i < n; i += s->batch) {
        const int b = n - i < s->batch ? n - i : s->batch;
        if (text_batch(s, captions + i, b)) return -1;
        s->be->download(out + (size_t)i * s->dim, s->txt, (size_t)b * s->dim * sizeof(float));
    }
    return 0;
}

int sid_clip_scorer_cosines(sid_clip_scorer *s, const float *pixels, const char *const *captions, int n, float *cos) {
    const int S = s->vision.cfg.image_size, D = s->dim;
    float *fi = sid_malloc((size_t)s->batch * D * sizeof(float)), *ft = sid_malloc((size_t)s->batch * D * sizeof(float));
    int rc = 0;
    for (int i = 0; i < n && !rc; i += s->batch) {
        const int b = n - i < s->batch ? n - i : s->batch;
        if ((rc = text_batch(s, captions + i, b))) break;
        image_batch(s, pixels + (size_t)i * 3 * S * S, b);
        s->be->download(fi, s->img, (size_t)b * D * sizeof(float));
        s->be->download(ft, s->txt, (size_t)b * D * sizeof(float));
        for (int k = 0; k < b; k++) {
            const float *a = fi + (size_t)k * D, *t = ft + (size_t)k * D;
            double ab = 0, aa = 0, tt = 0;
            for (int d = 0; d < D; d++) ab += (double)a[d] * t[d], aa += (double)a[d] * a[d], tt += (double)t[d] * t[d];
            // torch.nn.functional.cosine_similarity's eps 1e-8 on the product of the norms
            cos[i + k] = (float)(ab / fmax(sqrt(aa * tt), 1e-8));
        }
    }
    free(fi);
    free(ft);
    return rc ? -1 : 0;
}
