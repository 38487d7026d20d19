#version 450
// Shapes: dOutput/query/output [B', Tq, NH, hs], key/value/dKey/dValue [B', Tk, NKV, hs], scoreBias [NH', Tq, Tk], rowMax/rowSum [B', NH, Tq].
// dK and dV: one workgroup per (block of W key rows, kv head, batch) = (x, y, z), one invocation per key row, over the query
// heads of its group within [headBegin, headEnd) and the queries [begin, end) in staged tiles (q, dO, rowMax, rowSum, D):
// p = e^(s − rowMax)/rowSum, dV += Σ_i p·keep/(1 − p)·dO_i, dK += Σ_i p·(keep/(1 − p)·dO_i·v − D_i)·scale·q_i with D_i = dO_i·O_i.
#include "common.glsl"
#define ATTENTION_BINDINGS 14
#define ATTENTION_EXTRA uint headRange;   // headBegin | headEnd << 16
#include "attention_mask.glsl"

READONLY_BUFFER(8, float, output_);
READONLY_BUFFER(9, float, rowMax);
READONLY_BUFFER(10, float, rowSum);
READONLY_BUFFER(11, float, dOutput);
BUFFER(12, float, dKey);
BUFFER(13, float, dValue);

shared float queries_[TILE_FLOATS];   // [tileRows, hs]
shared float dOutputs_[TILE_FLOATS];  // [tileRows, hs]
shared float maxes_[MAX_TILE_ROWS], sums_[MAX_TILE_ROWS], ds_[MAX_TILE_ROWS];   // [tileRows] rowMax, rowSum, D

void main() {
    uint lane = gl_LocalInvocationID.x, W = gl_WorkGroupSize.x, hs = headSize();
    uint k0 = gl_WorkGroupID.x * W, b = gl_WorkGroupID.z;
    int k = int(k0 + lane);
    uint headBegin = pc.headRange & 0xffffu, headEnd = pc.headRange >> 16;
    uint g = headBegin / groupSize() + gl_WorkGroupID.y;
    bool live = uint(k) < pc.Tk;
    uint kv = keyAt(b, uint(k), g);
    int prefix = prefixOf(b);
    ivec2 rows = queryRange(int(k0), int(min(k0 + W, pc.Tk)) - 1, prefix);
    int iBegin = max(int(pc.begin), rows.x), iEnd = min(int(rangeEnd(pc.Tq)), rows.y + 1);
    float p[MAX_TILE_ROWS], dS[MAX_TILE_ROWS];   // p and dS·scale of one tile
    for (uint h = max(g * groupSize(), headBegin); h < min((g + 1u) * groupSize(), headEnd); h++)
        for (int i0 = iBegin; i0 < iEnd; i0 += int(tileRows())) {
            uint n = min(tileRows(), uint(iEnd - i0));
            for (uint e = lane; e < n * hs; e += W) {
                uint at = queryAt(b, uint(i0) + e / hs, h) + e % hs;
                queries_[e] = query[AT(0, at)];
                dOutputs_[e] = dOutput[AT(11, at)];
            }
            if (lane < n) {
                uint i = uint(i0) + lane, q = queryAt(b, i, h);
                maxes_[lane] = rowMax[AT(9, rowAt(b, h, i))];
                sums_[lane] = rowSum[AT(10, rowAt(b, h, i))];
                float D = 0.0;
                for (uint d = 0u; d < hs; d++) D += dOutput[AT(11, q + d)] * output_[AT(8, q + d)];
                ds_[lane] = D;
            }
            barrier();
            if (live) {
                for (uint j = 0u; j < n; j++) {
                    uint i = uint(i0) + j;
                    ivec2 range = maskRange(positionOf(i), prefix);
                    p[j] = 0.0;
                    dS[j] = 0.0;
                    if (sums_[j] == 0.0 || k < range.x || k > range.y || !visible(b, i, k, prefix)) continue;
                    float dot_ = 0.0, dP = 0.0;
                    for (uint d = 0u; d < hs; d++) {
                        dot_ += queries_[j * hs + d] * key[AT(1, kv + d)];
                        dP += dOutputs_[j * hs + d] * value[AT(2, kv + d)];
                    }
                    p[j] = exp(score(dot_, h, i, k) - maxes_[j]) / sums_[j];
                    if (dropping()) {
                        float keep = keepScale(b, h, i, k);
                        dS[j] = p[j] * (dP * keep - ds_[j]) * pc.scale;
                        p[j] *= keep;
                        continue;
                    }
                    dS[j] = p[j] * (dP - ds_[j]) * pc.scale;
                }
                for (uint d = 0u; d < hs; d++) {
                    float accK = dKey[AT(12, kv + d)], accV = dValue[AT(13, kv + d)];
                    for (uint j = 0u; j < n; j++) {
                        accV += p[j] * dOutputs_[j * hs + d];
                        accK += dS[j] * queries_[j * hs + d];
                    }
                    dKey[AT(12, kv + d)] = accK;
                    dValue[AT(13, kv + d)] = accV;
                }
            }
            barrier();   // the tile is consumed before the next one overwrites it
        }
}
