#version 450
// Shapes: any; L elements. dInput += dOutput · gelu'(input), with u = √(2/π)(x + 0.044715x³):
// gelu'(x) = ½(1 + tanh u) + ½x·(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²).
#include "common.glsl"
#include "gelu.glsl"

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
        float tanhU = geluTanh(x);
        float sech2 = 1.0 - tanhU * tanhU;
        float local = 0.5 * (1.0 + tanhU) + 0.5 * x * sech2 * GELU_SCALING * (1.0 + 3.0 * GELU_CUBIC * x * x);
        dInput[AT(2, j)] += local * dOutput[AT(0, j)];
    }
}
