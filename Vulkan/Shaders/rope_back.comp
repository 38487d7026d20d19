#version 450
// Shapes: N tokens, H heads, hs head size, d rotary dims; dOutput, dInput [N, H, hs]; positions [N] I32; inv_freq [d/2].
// dInput += Rᵀ·dOutput: dx_i += dy_i cos a + dy_{i+d/2} sin a, dx_{i+d/2} += dy_{i+d/2} cos a − dy_i sin a; dx_j += dy_j for j ≥ d.
#include "common.glsl"
#include "rope.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint tokens;        // N
    uint heads;         // H
    uint head_size;     // hs
    uint rotary_dims;   // d
} pc;

READONLY_BUFFER(0, float, dOutput);    // [N, H, hs]
READONLY_BUFFER(1, int, positions);    // [N]
READONLY_BUFFER(2, float, inv_freq);   // [d/2]
BUFFER(3, float, dInput);              // [N, H, hs]

void main() {
    uint pair = pc.rotary_dims / 2u, width = pc.heads * pc.head_size;
    FOR_EACH_INDEX(j, pc.tokens * width) {
        uint c = j % pc.head_size;
        float dy = dOutput[AT(0, j)];
        if (c >= pc.rotary_dims) {
            dInput[AT(3, j)] += dy;
            continue;
        }
        bool first = c < pair;
        float partner = dOutput[AT(0, first ? j + pair : j - pair)];
        vec2 sc = rope_sin_cos(positions[AT(1, j / width)], inv_freq[AT(2, first ? c : c - pair)]);
        dInput[AT(3, j)] += first ? dy * sc.y + partner * sc.x : dy * sc.y - partner * sc.x;
    }
}
