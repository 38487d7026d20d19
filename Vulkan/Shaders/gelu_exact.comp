#version 450
// Shapes: any; L elements. Exact GeLU: y = x·Φ(x) = ½x(1 + erf(x/√2)).
#include "common.glsl"
#include "gelu_exact.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, input_);    // [L]
WRITEONLY_BUFFER(1, float, output_);  // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        float x = input_[AT(0, j)];
        output_[AT(1, j)] = isnan(x) ? x : x * phi_cdf(x);
    }
}
