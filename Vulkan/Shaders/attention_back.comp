#version 450
// Shapes: dOutput/query/output/dQuery [B', Tq, NH, hs], key/value [B', Tk, NKV, hs], scoreBias/dScoreBias [NH', Tq, Tk], rowMax/rowSum [B', NH, Tq].
// dQ and dScoreBias: one workgroup per (block of W query rows, head, batch group) = (x, y, z), one invocation per query row,
// over the keys [begin, end) in staged tiles: p = e^(s − rowMax)/rowSum, dP = keep/(1 − p)·dO·v, dS = p·(dP − D) with D = dO·O,
// dQ += Σ_k dS·scale·k_k, dScoreBias[h, i, k] += dS. With dScoreBias an invocation runs the batches [batchBegin, batchEnd)
// in order (the bias is shared by the batch), so every gradient element has one writer.
#include "common.glsl"
#define ATTENTION_BINDINGS 14
#define ATTENTION_EXTRA uint batches;   // batchBegin | batchEnd << 16
#include "attention_mask.glsl"

READONLY_BUFFER(8, float, output_);
READONLY_BUFFER(9, float, rowMax);
READONLY_BUFFER(10, float, rowSum);
READONLY_BUFFER(11, float, dOutput);
BUFFER(12, float, dQuery);
BUFFER(13, float, dScoreBias);

shared float keys_[TILE_FLOATS];     // [tileRows, hs]
shared float values_[TILE_FLOATS];   // [tileRows, hs]

void main() {
    uint lane = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, hs = headSize();
    uint i0 = gl_WorkGroupID.x * W, i = i0 + lane;
    uint h = pc.firstHead + gl_WorkGroupID.y, g = h / groupSize();
    float dS[MAX_TILE_ROWS];   // dS·scale of one tile
    for (uint b = (pc.batches & 0xffffu) + gl_WorkGroupID.z; b < pc.batches >> 16; b += gl_NumWorkGroups.z) {
        int prefix = prefixOf(b);
        int kBegin = max(int(pc.begin), maskRange(positionOf(i0), prefix).x);
        int kEnd = min(int(rangeEnd(pc.Tk)), maskRange(positionOf(min(i0 + W, pc.Tq) - 1u), prefix).y + 1);
        ivec2 own = maskRange(positionOf(i), prefix);
        uint q = queryAt(b, i, h);
        float m = 0.0, l = 0.0, D = 0.0;
        if (i < pc.Tq) {
            m = rowMax[AT(9, rowAt(b, h, i))];
            l = rowSum[AT(10, rowAt(b, h, i))];
            if (l > 0.0) for (uint d = 0u; d < hs; d++) D += dOutput[AT(11, q + d)] * output_[AT(8, q + d)];
        }
        bool live = i < pc.Tq && l > 0.0;   // a row that saw no key had the constant output 0
        for (int k0 = kBegin; k0 < kEnd; k0 += int(tileRows())) {
            uint n = min(tileRows(), uint(kEnd - k0));
            for (uint e = lane; e < n * hs; e += W) {
                uint at = keyAt(b, uint(k0) + e / hs, g) + e % hs;
                keys_[e] = key[AT(1, at)];
                values_[e] = value[AT(2, at)];
            }
            barrier();
            if (live) {
                for (uint j = 0u; j < n; j++) {
                    int k = k0 + int(j);
                    dS[j] = 0.0;
                    if (k < own.x || k > own.y || !visible(b, i, k, prefix)) continue;
                    float dot_ = 0.0, dP = 0.0;
                    for (uint d = 0u; d < hs; d++) {
                        dot_ += query[AT(0, q + d)] * keys_[j * hs + d];
                        dP += dOutput[AT(11, q + d)] * values_[j * hs + d];
                    }
                    float p = exp(score(dot_, h, i, k) - m) / l;
                    if (dropping()) dP *= keepScale(b, h, i, k);
                    float grad = p * (dP - D);
                    if ((pc.mode & HAS_DBIAS) != 0u) dScoreBias[AT(13, ((h - pc.firstHead) * pc.Tq + i) * pc.Tk + uint(k))] += grad;
                    dS[j] = grad * pc.scale;
                }
                for (uint d = 0u; d < hs; d++) {
                    float acc = dQuery[AT(12, q + d)];
                    for (uint j = 0u; j < n; j++) acc += dS[j] * keys_[j * hs + d];
                    dQuery[AT(12, q + d)] = acc;
                }
            }
            barrier();   // the tile is consumed before the next one overwrites it
        }
    }
}
