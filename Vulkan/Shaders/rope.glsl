// Rotary angle helper shared by rope.comp and rope_back.comp.
#ifndef LLM_ROPE_GLSL
#define LLM_ROPE_GLSL

// (sin a, cos a) of Hugging Face's float32 angle a = fl(pos·inv_freq). GPU sin/cos lose accuracy as |a| grows past π,
// so a is first reduced by 2π = C1 + C2 + C3 (Cody–Waite): C1 = 6.28125 (8 bits) and C2 (11 bits) make k·C1, k·C2
// exact for |k| < 2¹³ (|a| < 51 000), a − k·C1 is exact (Sterbenz), and C3 leaves 7e-15·k; precise keeps the
// compiler from fusing or regrouping the steps.
vec2 rope_sin_cos(int position, float inv_freq) {
    precise float a = float(position) * inv_freq;
    float k = round(a * 0.15915494);
    precise float r = ((a - k * 6.28125) - k * 1.9350051879882812e-3) - k * 3.019916050561733e-7;
    return vec2(sin(r), cos(r));
}

#endif
