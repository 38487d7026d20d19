#version 450
// Shapes: any; L elements. y = x/(1 − p) where (H(seed, offset + j) >> 8) ≥ ⌈p·2²⁴⌉, else 0.
#include "common.glsl"
#include "random.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint n;           // L
    uint threshold;   // ⌈p·2²⁴⌉
    float scale;      // 1/(1 − p)
    uint seedLo, seedHi;   // the 64-bit key (uints: a uvec2 would align to 8)
    uint baseLo, baseHi;   // the 64-bit stream offset of element 0
} pc;

READONLY_BUFFER(0, float, input_);    // [L]
WRITEONLY_BUFFER(1, float, output_);  // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        bool kept = (philox_hash(uvec2(pc.seedLo, pc.seedHi), uvec2(pc.baseLo, pc.baseHi), j) >> 8) >= pc.threshold;
        output_[AT(1, j)] = kept ? input_[AT(0, j)] * pc.scale : 0.0;
    }
}
