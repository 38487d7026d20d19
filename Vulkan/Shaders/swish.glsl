// Swish helpers shared by swish.comp and swish_back.comp.
#ifndef LLM_SWISH_GLSL
#define LLM_SWISH_GLSL

// σ(z) = 1/(1 + e^−z) for z ≥ 0, e^z/(1 + e^z) for z < 0: e^(−|z|) ≤ 1 never overflows to inf/inf.
float sigmoid(float z) {
    float e = exp(-abs(z));
    return z >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}

#endif
