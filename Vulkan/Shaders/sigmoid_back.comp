#version 450
// Shapes: any; L elements. dInput += dOutput · σ(x)·σ(−x) (σ' = σ(1 − σ), with 1 − σ(x) as σ(−x)).
#include "common.glsl"
#include "swish.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint n;       // L
} pc;

READONLY_BUFFER(0, float, dOutput);   // [L]
READONLY_BUFFER(1, float, input_);    // [L]
BUFFER(2, float, dInput);             // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        float x = input_[AT(1, j)];
        dInput[AT(2, j)] += sigmoid(x) * sigmoid(-x) * dOutput[AT(0, j)];
    }
}
