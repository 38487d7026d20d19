// GeLU helpers shared by gelu.comp and gelu_back.comp.
#ifndef LLM_GELU_GLSL
#define LLM_GELU_GLSL

const float GELU_SCALING = 0.79788456080286535588;  // √(2/π)
const float GELU_CUBIC = 0.044715;

// tanh(√(2/π)(x + 0.044715x³)); u is clamped to ±10 (tanh(10) rounds to 1 in fp32) because some drivers compute
// tanh as (e^2u − 1)/(e^2u + 1), which is inf/inf = NaN for large u.
float geluTanh(float x) {
    float u = GELU_SCALING * (x + GELU_CUBIC * x * x * x);
    return tanh(clamp(u, -10.0, 10.0));
}

#endif
