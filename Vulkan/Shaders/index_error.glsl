// The device-side range check of ids and targets (see VulkanBackend.IndexErrors.cs). An op that reads indices binds
// a two-int slot [first bad row, its index], initialised to NO_INDEX_ERROR; a row whose index is out of range does
// atomicMin(slot[0], row) and is then skipped or given a defined value (never an out-of-bounds read). atomicMin keeps
// the first bad row whatever the order in which invocations run; index_error.comp then copies that row's index.
#ifndef LLM_INDEX_ERROR_GLSL
#define LLM_INDEX_ERROR_GLSL

const int NO_INDEX_ERROR = 0x7FFFFFFF;

#endif
