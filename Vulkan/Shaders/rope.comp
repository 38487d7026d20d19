#version 450
// Shapes: N tokens, H heads, hs head size, d rotary dims; input, output [N, H, hs]; positions [N] I32; inv_freq [d/2].
// y_i = x_i cos a − x_{i+d/2} sin a, y_{i+d/2} = x_{i+d/2} cos a + x_i sin a, a = pos·inv_freq[i] (i < d/2); y_j = x_j for j ≥ d.
#include "common.glsl"
#include "rope.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint tokens;        // N
    uint heads;         // H
    uint head_size;     // hs
    uint rotary_dims;   // d
} pc;

READONLY_BUFFER(0, float, input_);     // [N, H, hs]
READONLY_BUFFER(1, int, positions);    // [N]
READONLY_BUFFER(2, float, inv_freq);   // [d/2]
WRITEONLY_BUFFER(3, float, output_);   // [N, H, hs]

void main() {
    uint pair = pc.rotary_dims / 2u, width = pc.heads * pc.head_size;
    FOR_EACH_INDEX(j, pc.tokens * width) {
        uint c = j % pc.head_size;
        float x = input_[AT(0, j)];
        if (c >= pc.rotary_dims) {
            output_[AT(3, j)] = x;
            continue;
        }
        bool first = c < pair;
        float partner = input_[AT(0, first ? j + pair : j - pair)];
        vec2 sc = rope_sin_cos(positions[AT(1, j / width)], inv_freq[AT(2, first ? c : c - pair)]);
        output_[AT(3, j)] = first ? x * sc.y - partner * sc.x : x * sc.y + partner * sc.x;
    }
}
