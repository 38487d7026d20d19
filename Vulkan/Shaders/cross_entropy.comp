#version 450
// Shapes: N rows, V vocabulary; logits/probs [N, V], targets/losses [N]. One workgroup per row:
// max = max_v x, Σ = Σ_v exp(x − max), probs = exp(x − max)/Σ, loss = log Σ − (x_t − max) = −log probs_t
// (finite even where probs_t underflows), 0 for ignoreIndex rows. A target outside [0, V) is flagged; its loss is NaN.
#include "common.glsl"
#include "row_reduce.glsl"
#include "index_error.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[5];
    uint rows;         // N
    uint vocab;        // V
    int ignoreIndex;
    uint firstRow;     // position of this chunk's row 0 in the whole targets tensor (the host splits large N·V)
} pc;

READONLY_BUFFER(0, float, logits);   // [N, V]
READONLY_BUFFER(1, int, targets);    // [N]
BUFFER(2, float, probs);             // [N, V]: exp(x − max) first, then normalized in place
WRITEONLY_BUFFER(3, float, losses);  // [N]
BUFFER(4, int, errors);              // [2]: first bad row, its target

void main() {
    uint lane = gl_LocalInvocationIndex, width = gl_WorkGroupSize.x;
    for (uint n = gl_WorkGroupID.x; n < pc.rows; n += gl_NumWorkGroups.x) {   // uniform per workgroup
        uint row = n * pc.vocab;
        float localMax = uintBitsToFloat(0xFF800000u);   // −∞
        for (uint v = lane; v < pc.vocab; v += width) localMax = max(localMax, logits[AT(0, row + v)]);
        float rowMax = workgroupMax(localMax);
        float sum = 0.0;
        for (uint v = lane; v < pc.vocab; v += width) {
            float e = exp(logits[AT(0, row + v)] - rowMax);
            probs[AT(2, row + v)] = e;
            sum += e;
        }
        float total = workgroupSum(sum);
        float inverse = 1.0 / total;
        for (uint v = lane; v < pc.vocab; v += width) probs[AT(2, row + v)] *= inverse;   // each lane rescales its own
        if (lane == 0u) {
            int t = targets[AT(1, n)];
            float loss = 0.0;
            if (t != pc.ignoreIndex) {
                if (uint(t) < pc.vocab) loss = log(total) - (logits[AT(0, row + uint(t))] - rowMax);
                else {
                    atomicMin(errors[AT(4, 0)], int(pc.firstRow + n));
                    loss = uintBitsToFloat(0x7FC00000u);   // NaN
                }
            }
            losses[AT(3, n)] = loss;
        }
    }
}
