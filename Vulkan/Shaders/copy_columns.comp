#version 450
// Shapes: source [N, Cs], destination [N, Cd]; destination[n, dc + j] = source[n, sc + j] (+= when accumulate) for j < width.
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[2];
    uint rows;                  // N of this dispatch
    uint sourceColumns, sourceColumn;
    uint destinationColumns, destinationColumn;
    uint width;
    uint accumulate;            // 0 or 1
} pc;

READONLY_BUFFER(0, float, source);    // [N, Cs]
BUFFER(1, float, destination);        // [N, Cd]

void main() {
    FOR_EACH_INDEX(e, pc.rows * pc.width) {
        uint n = e / pc.width, j = e % pc.width;
        float x = source[AT(0, n * pc.sourceColumns + pc.sourceColumn + j)];
        uint to = AT(1, n * pc.destinationColumns + pc.destinationColumn + j);
        destination[to] = pc.accumulate != 0u ? destination[to] + x : x;
    }
}
