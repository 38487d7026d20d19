#version 450
// Shapes: any; L elements. dInput += dOutput · (Φ(x) + x·φ(x)), φ(x) = e^(−x²/2)/√(2π).
#include "common.glsl"
#include "gelu_exact.glsl"

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
        float density = exp(-0.5 * x * x) * 0.39894228040143267794;
        dInput[AT(2, j)] += (phi_cdf(x) + x * density) * dOutput[AT(0, j)];
    }
}
