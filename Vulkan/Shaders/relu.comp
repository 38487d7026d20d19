#version 450
// Shapes: any; L elements. ReLU: y = max(0, x); NaN propagates.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, input_);    // [L]
WRITEONLY_BUFFER(1, float, output_);  // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        float x = input_[AT(0, j)];
        output_[AT(1, j)] = isnan(x) ? x : max(x, 0.0);  // GLSL's max leaves NaN undefined
    }
}
