#version 450
// Shapes: N rows, C channels; dOutput/input [N, C], mean/rstd [N], dWeight/dBias [C].
// dWeight[c] += Σ_n dy[n, c]·x̂[n, c], dBias[c] += Σ_n dy[n, c], x̂ = (x − μ)·rstd. One invocation per column sums
// the rows in order: deterministic, no atomics (the row pass, layernorm_back.comp, cannot own a column).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[6];
    uint rows;       // N
    uint channels;   // C
} pc;

READONLY_BUFFER(0, float, dOutput);   // [N, C]
READONLY_BUFFER(1, float, input_);    // [N, C]
READONLY_BUFFER(2, float, mean);      // [N]
READONLY_BUFFER(3, float, rstd);      // [N]
BUFFER(4, float, dWeight);            // [C]
BUFFER(5, float, dBias);              // [C]

void main() {
    FOR_EACH_INDEX(c, pc.channels) {
        float dw = 0.0, db = 0.0;
        for (uint n = 0u; n < pc.rows; n++) {
            uint j = n * pc.channels + c;
            float dy = dOutput[AT(0, j)];
            dw += (input_[AT(1, j)] - mean[AT(2, n)]) * rstd[AT(3, n)] * dy;
            db += dy;
        }
        dWeight[AT(4, c)] += dw;
        dBias[AT(5, c)] += db;
    }
}
