// Phases of the attention kernels (VulkanBackend.Attention.cs): one dispatch runs all of them when a row fits the
// loop budget, else the host runs them as several dispatches over key (or query) ranges.
#ifndef LLM_ATTENTION_GLSL
#define LLM_ATTENTION_GLSL

const uint PHASE_SCORES = 1u;    // forward: scores over the key range; backward: dAtt = dOut·v over it
const uint PHASE_SOFTMAX = 2u;   // forward: softmax of the whole row; backward: its Jacobian over the whole row
const uint PHASE_OUTPUT = 4u;    // forward: out += att·v over the key range; backward: dq += dPre·k over it

#endif
