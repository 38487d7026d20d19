// Shapes: query [B', Tq, NH, hs], key/value [B', Tk, NKV, hs], scoreBias [NH', Tq, Tk], prefix [B'], segments [B', Tq] and [B', Tk], slopes [NH].
// The push constants, the inputs every attention kernel binds (0–7), and AttentionMask.Visible/Range (Reference/Tensors/AttentionMask.cs).
// The including shader defines ATTENTION_BINDINGS (its tensor count) and ATTENTION_EXTRA (its own trailing push constants).
#ifndef LLM_ATTENTION_MASK_GLSL
#define LLM_ATTENTION_MASK_GLSL

const uint VIS_CAUSAL = 0u, VIS_BIDIRECTIONAL = 1u, VIS_PREFIX = 2u;   // mode bits 0–1: Visibility
const uint SPARSE_NONE = 0u, SPARSE_STRIDED = 1u, SPARSE_FIXED = 2u;   // mode bits 2–3: SparsePattern
const uint HAS_BIAS = 16u, HAS_SEGMENTS = 32u, HAS_ALIBI = 64u, HAS_PREFIX = 128u;
const uint FIRST_RANGE = 256u, LAST_RANGE = 512u, HAS_DBIAS = 1024u;   // forward: starts / ends the key loop; backward: dScoreBias wanted
const uint MAX_TILE_ROWS = 64u;   // rows of a staged tile; the host keeps tileRows·hs ≤ TILE_FLOATS
#define NEG_INF uintBitsToFloat(0xff800000u)

layout(constant_id = 3) const uint TILE_FLOATS = 2048u;   // floats of one staged tile

layout(push_constant) uniform PushConstants {
    uint offsets[ATTENTION_BINDINGS];
    uint Tq, Tk, NH, NKV, hs;
    uint firstHead;   // the bound scoreBias starts at this head
    float scale;
    uint queryOffset, window, stride, summary, mode;
    uint begin, end;  // forward, dQ: the keys of this dispatch; dK, dV: its queries
    uint tileRows;    // rows per staged tile
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

uint groupSize() { return pc.NH / pc.NKV; }
uint queryAt(uint b, uint i, uint h) { return ((b * pc.Tq + i) * pc.NH + h) * pc.hs; }   // query, output, dOutput, dQuery
uint keyAt(uint b, uint k, uint g) { return ((b * pc.Tk + k) * pc.NKV + g) * pc.hs; }    // key, value, dKey, dValue
uint rowAt(uint b, uint h, uint i) { return (b * pc.NH + h) * pc.Tq + i; }               // rowMax, rowSum
int positionOf(uint i) { return int(pc.queryOffset + i); }
int prefixOf(uint b) { return (pc.mode & HAS_PREFIX) != 0u ? prefixLengths[AT(4, b)] : 0; }

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
