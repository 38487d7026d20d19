#version 450
// Shapes: dOutput [rows, N] (rows = batch·M), dBias [N]. dBias[n] += Σ_{rowBegin ≤ row < rowEnd} dOutput[row, n]: the bias
// gradient of MatMul (dA and dB are matmuls themselves, see matmul.comp). One invocation per column sums its rows in
// order, so the result is deterministic and needs no atomics; neighbouring invocations read neighbouring columns.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint rowBegin, rowEnd;   // this dispatch's rows: the host splits them, since lavapipe (llvmpipe) ends a
                             // shader invocation's loops after 65535 iterations in all
    uint n;                  // N
} pc;

READONLY_BUFFER(0, float, dOutput);   // [rows, N]
BUFFER(1, float, dBias);              // [N]

void main() {
    FOR_EACH_INDEX(col, pc.n) {
        float sum = 0.0;
        for (uint row = pc.rowBegin; row < pc.rowEnd; row++) sum += dOutput[AT(0, row * pc.n + col)];
        dBias[AT(1, col)] += sum;
    }
}
