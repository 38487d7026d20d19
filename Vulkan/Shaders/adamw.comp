#version 450
// Shapes: P parameters, flat; grad, param, m, v all [P]. One AdamW step in place (Loshchilov & Hutter):
// m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; param −= lr·((m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε) + λ·param).
// The bias corrections 1 − βᵗ arrive precomputed (in double on the host, rounded to float, as the CPU does).
#include "common.glsl"

layout(push_constant) uniform PushConstants {
    uint offsets[4];
    uint n;              // P
    float learningRate;
    float beta1;
    float beta2;
    float epsilon;
    float weightDecay;
    float correction1;   // 1 − β1ᵗ
    float correction2;   // 1 − β2ᵗ
} pc;

READONLY_BUFFER(0, float, grad);   // [P]
BUFFER(1, float, param);           // [P]
BUFFER(2, float, m);               // [P]
BUFFER(3, float, v);               // [P]

void main() {
    FOR_EACH_INDEX(j, pc.n) {
        float g = grad[AT(0, j)];
        float mj = pc.beta1 * m[AT(2, j)] + (1.0 - pc.beta1) * g;
        float vj = pc.beta2 * v[AT(3, j)] + (1.0 - pc.beta2) * g * g;
        float p = param[AT(1, j)];
        p -= pc.learningRate * ((mj / pc.correction1) / (sqrt(vj / pc.correction2) + pc.epsilon) + pc.weightDecay * p);
        m[AT(2, j)] = mj;
        v[AT(3, j)] = vj;
        param[AT(1, j)] = p;
    }
}
