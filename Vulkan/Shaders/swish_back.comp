#version 450
// Shapes: any; L elements. dInput += dOutput · (s + βx·s(1 − s)), s = σ(βx).
#include "common.glsl"
#include "swish.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[3];
    uint n;       // L
    float beta;
} pc;

READONLY_BUFFER(0, float, dOutput);   // [L]
READONLY_BUFFER(1, float, input_);    // [L]
BUFFER(2, float, dInput);             // [L]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        float z = pc.beta * input_[AT(1, j)];
        float s = sigmoid(z);
        // 1 − s as σ(−z): 1 − σ(z) keeps only ε absolute accuracy at large z, which z·s(1 − s) scales by z
        dInput[AT(2, j)] += (s + z * s * sigmoid(-z)) * dOutput[AT(0, j)];
    }
}
