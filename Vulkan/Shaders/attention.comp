#version 450
// Shapes: query/output [B', Tq, NH, hs], key/value [B', Tk, NKV, hs], scoreBias [NH', Tq, Tk], rowMax/rowSum [B', NH, Tq].
// One workgroup per (block of W query rows, head, batch) = (x, y, z), one invocation per query row; key/value tiles are
// staged in shared memory and folded in by online softmax: m' = max(m, max_j s_j), l' = l·e^(m − m') + Σ_j e^(s_j − m'),
// acc' = acc·e^(m − m') + Σ_j e^(s_j − m')·v_j. A dispatch covers the keys [begin, end); between dispatches m, l and the
// unnormalized acc live in rowMax, rowSum and output, and the last one writes output = acc / l. Dropout weighs v_j by
// e^(s_j − m')·keep_j/(1 − p) and leaves m and l those of the undropped softmax.
#include "common.glsl"
#define ATTENTION_BINDINGS 11
#define ATTENTION_EXTRA
#include "attention_mask.glsl"

BUFFER(8, float, output_);
BUFFER(9, float, rowMax);
BUFFER(10, float, rowSum);

shared float keys_[TILE_FLOATS];     // [tileRows, hs]
shared float values_[TILE_FLOATS];   // [tileRows, hs]

void main() {
    uint lane = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, hs = headSize();
    uint i0 = gl_WorkGroupID.x * W, i = i0 + lane, b = gl_WorkGroupID.z;
    uint h = pc.firstHead + gl_WorkGroupID.y, g = h / groupSize();
    bool live = i < pc.Tq;
    int prefix = prefixOf(b);
    // the block's keys: Range rises with p, so its first row's first and its last row's last bound them all
    int kBegin = max(int(pc.begin), maskRange(positionOf(i0), prefix).x);
    int kEnd = min(int(rangeEnd(pc.Tk)), maskRange(positionOf(min(i0 + W, pc.Tq) - 1u), prefix).y + 1);
    ivec2 own = maskRange(positionOf(i), prefix);

    uint q = queryAt(b, i, h), row = rowAt(b, h, i);
    float m = NEG_INF, l = 0.0;
    if (live) {
        if (pc.begin == 0u) for (uint d = 0u; d < hs; d++) output_[AT(8, q + d)] = 0.0;
        else { m = rowMax[AT(9, row)]; l = rowSum[AT(10, row)]; }
    }
    float s[MAX_TILE_ROWS];   // scores, then e^(s − m'), of one tile
    for (int k0 = kBegin; k0 < kEnd; k0 += int(tileRows())) {
        uint n = min(tileRows(), uint(kEnd - k0));
        for (uint e = lane; e < n * hs; e += W) {
            uint at = keyAt(b, uint(k0) + e / hs, g) + e % hs;
            keys_[e] = key[AT(1, at)];
            values_[e] = value[AT(2, at)];
        }
        barrier();
        if (live) {
            float tileMax = NEG_INF;
            for (uint j = 0u; j < n; j++) {
                int k = k0 + int(j);
                s[j] = NEG_INF;
                if (k < own.x || k > own.y || !visible(b, i, k, prefix)) continue;
                float dot_ = 0.0;
                for (uint d = 0u; d < hs; d++) dot_ += query[AT(0, q + d)] * keys_[j * hs + d];
                s[j] = score(dot_, h, i, k);
                tileMax = max(tileMax, s[j]);
            }
            if (tileMax != NEG_INF) {   // else no key of the tile is visible to this row
                float next = max(m, tileMax), rescale = exp(m - next), added = 0.0;   // e^(−∞) = 0 on the first visible tile
                for (uint j = 0u; j < n; j++) {
                    float e = exp(s[j] - next);
                    added += e;
                    s[j] = dropping() ? e * keepScale(b, h, i, k0 + int(j)) : e;
                }
                for (uint d = 0u; d < hs; d++) {
                    float acc = output_[AT(8, q + d)] * rescale;
                    for (uint j = 0u; j < n; j++) acc += s[j] * values_[j * hs + d];
                    output_[AT(8, q + d)] = acc;
                }
                l = l * rescale + added;
                m = next;
            }
        }
        barrier();   // the tile is consumed before the next one overwrites it
    }
    if (!live) return;
    rowMax[AT(9, row)] = m;
    rowSum[AT(10, row)] = l;
    if (rangeEnd(pc.Tk) == pc.Tk && l > 0.0) {
        float inverse = 1.0 / l;
        for (uint d = 0u; d < hs; d++) output_[AT(8, q + d)] *= inverse;
    }
}
