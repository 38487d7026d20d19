// Shapes: query [B', Tq, NH, hs], key/value [B', Tk, NKV, hs], scoreBias [NH', Tq, Tk], prefix [B'], segments [B', Tq] and [B', Tk], slopes [NH].
// The push constants, the inputs every attention kernel binds (0–7), and AttentionMask.Visible/Range (Reference/Tensors/AttentionMask.cs).
// The including shader defines ATTENTION_BINDINGS (its tensor count) and ATTENTION_EXTRA (its own trailing push constants).
#ifndef LLM_ATTENTION_MASK_GLSL
#define LLM_ATTENTION_MASK_GLSL

#include "random.glsl"

const uint VIS_CAUSAL = 0u, VIS_BIDIRECTIONAL = 1u, VIS_PREFIX = 2u;   // mode bits 0–1: Visibility
const uint SPARSE_NONE = 0u, SPARSE_STRIDED = 1u, SPARSE_FIXED = 2u;   // mode bits 2–3: SparsePattern
const uint HAS_BIAS = 16u, HAS_SEGMENTS = 32u, HAS_ALIBI = 64u, HAS_DBIAS = 128u;   // HAS_DBIAS: backward, dScoreBias wanted
const uint MAX_TILE_ROWS = 64u;   // rows of a staged tile; the host keeps tileRows·hs ≤ TILE_FLOATS
#define NEG_INF uintBitsToFloat(0xff800000u)

layout(constant_id = 3) const uint TILE_FLOATS = 2048u;   // floats of one staged tile

// Packed so that the 14 bindings of the backward kernels and the dropout stream fit the 128 bytes every device offers.
layout(push_constant) uniform PushConstants {
    uint offsets[ATTENTION_BINDINGS];
    uint Tq, Tk;
    uint heads;       // NH | NKV << 16
    uint firstHead;   // the bound scoreBias starts at this head
    float scale;
    uint queryOffset, window, stride, summary;
    uint mode;        // bits 0–7 the flags above, bits 8–31 the dropout threshold ⌈p·2²⁴⌉ (0: no dropout)
    uint begin;       // forward, dQ: the first key of this dispatch; dK, dV: its first query
    uint tiling;      // hs | tileRows << 12 | tiles << 19: the dispatch covers tiles staged tiles of tileRows rows from begin
    float dropScale;  // 1/(1 − p)
    uint seedLo, seedHi;   // the dropout key (uints: a uvec2 would align to 8)
    uint baseLo, baseHi;   // the dropout counter of (b, h, i, k) = (0, 0, 0, 0) in this dispatch's batches
    ATTENTION_EXTRA
} pc;

READONLY_BUFFER(0, float, query);
READONLY_BUFFER(1, float, key);
READONLY_BUFFER(2, float, value);
READONLY_BUFFER(3, float, scoreBias);
READONLY_BUFFER(4, int, prefixLengths);
READONLY_BUFFER(5, int, querySegments);
READONLY_BUFFER(6, int, keySegments);
READONLY_BUFFER(7, float, alibiSlopes);

uint queryHeads() { return pc.heads & 0xffffu; }
uint kvHeads() { return pc.heads >> 16; }
uint headSize() { return pc.tiling & 0xfffu; }
uint tileRows() { return (pc.tiling >> 12) & 0x7fu; }
// The end of this dispatch's keys (forward, dQ) or queries (dK, dV), of `total`.
uint rangeEnd(uint total) { return min(pc.begin + (pc.tiling >> 19) * tileRows(), total); }
uint groupSize() { return queryHeads() / kvHeads(); }
uint queryAt(uint b, uint i, uint h) { return ((b * pc.Tq + i) * queryHeads() + h) * headSize(); }   // query, output, dOutput, dQuery
uint keyAt(uint b, uint k, uint g) { return ((b * pc.Tk + k) * kvHeads() + g) * headSize(); }       // key, value, dKey, dValue
uint rowAt(uint b, uint h, uint i) { return (b * queryHeads() + h) * pc.Tq + i; }                   // rowMax, rowSum
int positionOf(uint i) { return int(pc.queryOffset + i); }
int prefixOf(uint b) { return (pc.mode & 3u) == VIS_PREFIX ? prefixLengths[AT(4, b)] : 0; }

bool dropping() { return (pc.mode >> 8) != 0u; }

// keep(b, h, i, k)/(1 − p), DropoutKernel's test on the 64-bit counter base + rowAt(b, h, i)·Tk + k.
float keepScale(uint b, uint h, uint i, int k) {
    uint hi, lo, carry;
    umulExtended(rowAt(b, h, i), pc.Tk, hi, lo);
    lo = uaddCarry(lo, pc.baseLo, carry);
    uvec2 row = uvec2(lo, hi + pc.baseHi + carry);
    return (philox_hash(uvec2(pc.seedLo, pc.seedHi), row, uint(k)) >> 8) >= (pc.mode >> 8) ? pc.dropScale : 0.0;
}

// AttentionMask.Visible: the visibility rule, the window, the sparse pattern (segments apart).
bool maskVisible(int p, int k, int prefix) {
    uint visibility = pc.mode & 3u, sparse = (pc.mode >> 2) & 3u;
    bool seen = visibility == VIS_CAUSAL ? k <= p : visibility == VIS_BIDIRECTIONAL ? true : (k < prefix || k <= p);
    if (!seen) return false;
    int window = int(pc.window), stride = int(pc.stride);
    if (window > 0 && p - k >= window) return false;
    if (sparse == SPARSE_STRIDED) return p - k < stride || (p - k) % stride == 0;   // the modulo runs only at p − k ≥ stride > 0
    if (sparse == SPARSE_FIXED) return p / stride == k / stride || k % stride >= stride - int(pc.summary);
    return true;
}

// AttentionMask.Range: [first, last] bounds the visible keys of position p; both ends rise with p.
ivec2 maskRange(int p, int prefix) {
    int keys = int(pc.Tk), visibility = int(pc.mode & 3u), window = int(pc.window);
    int last = visibility == VIS_CAUSAL ? min(p, keys - 1) : visibility == VIS_BIDIRECTIONAL ? keys - 1 : min(max(p, prefix - 1), keys - 1);
    int first = window > 0 ? max(0, p - window + 1) : 0;
    return ivec2(first, last);
}

// The query rows [first, last] that may see a key of [kFirst, kLast]: Range inverted, last(p) ≥ kFirst and first(p) ≤ kLast.
ivec2 queryRange(int kFirst, int kLast, int prefix) {
    int visibility = int(pc.mode & 3u), window = int(pc.window);
    int pFirst = visibility == VIS_BIDIRECTIONAL || (visibility == VIS_PREFIX && kFirst < prefix) ? 0 : kFirst;
    int pLast = window > 0 ? kLast + window - 1 : 0x7fffffff - int(pc.queryOffset);
    return ivec2(max(pFirst - int(pc.queryOffset), 0), min(pLast - int(pc.queryOffset), int(pc.Tq) - 1));
}

// Visible plus the segment rule: packed documents never see each other.
bool visible(uint b, uint i, int k, int prefix) {
    if (!maskVisible(positionOf(i), k, prefix)) return false;
    return (pc.mode & HAS_SEGMENTS) == 0u || querySegments[AT(5, b * pc.Tq + i)] == keySegments[AT(6, b * pc.Tk + uint(k))];
}

// s = scale·dot + (−m_h·(p − k)) + scoreBias[h, i, k]: the score terms besides q·k.
float score(float dot_, uint h, uint i, int k) {
    float s = dot_ * pc.scale;
    if ((pc.mode & HAS_ALIBI) != 0u) s -= alibiSlopes[AT(7, h)] * float(positionOf(i) - k);
    if ((pc.mode & HAS_BIAS) != 0u) s += scoreBias[AT(3, ((h - pc.firstHead) * pc.Tq + i) * pc.Tk + uint(k))];
    return s;
}

#endif
