// Shared by every kernel. Conventions (VulkanBackend.Dispatch fills both sides):
//  - Workgroup size from specialization constants 0, 1, 2 (local_size_x/y/z); op constants start at id 3.
//  - Bindings: set 0, binding i = the i-th tensor of Dispatch's reads followed by its writes, as std430 arrays.
//  - Push constants: the block starts with `uint offsets[<bindings>]`: the element offset of binding i's tensor from
//    the start of its descriptor range (descriptors start at the aligned base below the tensor); op parameters
//    (4-byte scalars only) follow. Index element j of binding b as name[pc.offsets[b] + j], or AT(b, j).
//  - fp32 accumulation everywhere.
#ifndef LLM_COMMON_GLSL
#define LLM_COMMON_GLSL

layout(local_size_x_id = 0, local_size_y_id = 1, local_size_z_id = 2) in;

// A storage buffer at binding b viewed as an array of T: READONLY_BUFFER(0, float, input_);
#define READONLY_BUFFER(b, T, name) layout(std430, set = 0, binding = b) readonly buffer Binding##b { T name[]; }
#define WRITEONLY_BUFFER(b, T, name) layout(std430, set = 0, binding = b) writeonly buffer Binding##b { T name[]; }
#define BUFFER(b, T, name) layout(std430, set = 0, binding = b) buffer Binding##b { T name[]; }

// Element j of the tensor at binding b (needs the push-constant block named pc).
#define AT(b, j) (pc.offsets[b] + (j))

// Grid-stride loop over [0, n): any number of workgroups covers any n (Dispatch caps the group count).
#define FOR_EACH_INDEX(i, n) for (uint i = gl_GlobalInvocationID.x; i < (n); i += gl_NumWorkGroups.x * gl_WorkGroupSize.x)

#endif
