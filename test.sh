#!/usr/bin/env bash
# Runs every test of the solution (the Conformance suite) in Release, then the CPU op suite under the ISA switches,
# and ends with one line "N passed, N failed, N skipped".
# Usage: ./test.sh [extra dotnet test arguments, e.g. --filter FullyQualifiedName~LayerNorm]
set -uo pipefail
cd "$(dirname "$0")"

# The Vulkan tests run on Mesa's software device (lavapipe) with the Khronos validation layer, and the shaders are
# compiled at build time by glslc: install what is missing (Debian/Ubuntu).
packages=(libvulkan1 mesa-vulkan-drivers vulkan-validationlayers glslc)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "could not install ${missing[*]}; install them, or set LLM_SKIP_VULKAN=1 to run without the Vulkan tests"; }
fi
# lavapipe's ICD alone: starting only the software driver is faster than probing every installed one
lvp=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$lvp" ] && [ "${LLM_VULKAN_ANY_DRIVER:-0}" != 1 ]; then export VK_DRIVER_FILES="$lvp"; fi
export LLM_VULKAN_VALIDATION="${LLM_VULKAN_VALIDATION:-1}"
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
dotnet test Reference.sln -c Release --logger "trx;LogFileName=results.trx" --results-directory "$results/main" "$@"
rc=$?

# The CPU op suite again with the runtime's ISA switches off: the AVX2 path, then no AVX2/FMA, then the scalar paths
# (every Vector<T> width and matmul micro-kernel is chosen from the machine, so only these runs reach the others).
# Only on a full run; LLM_SKIP_ISA_RUNS=1 leaves them out.
if [ $# -eq 0 ] && [ "${LLM_SKIP_ISA_RUNS:-0}" != 1 ] && [ -n "$(find "$results/main" -name '*.trx' 2>/dev/null)" ]; then
  cpu_suite="FullyQualifiedName~Llm.Conformance.Ops|FullyQualifiedName~Llm.Conformance.Cpu.CpuKernelSmokeTests|FullyQualifiedName~Llm.Conformance.Cpu.MatMulKernelTests|FullyQualifiedName~Llm.Conformance.Cpu.NaNTests|FullyQualifiedName~Llm.Conformance.Harness.HarnessTests"
  for isa in DOTNET_EnableAVX512=0 DOTNET_EnableAVX2=0 DOTNET_EnableHWIntrinsic=0; do
    echo "CPU op suite with $isa (LLM_SKIP_ISA_RUNS=1 skips these runs)"
    env "$isa" CONFORMANCE_SUBJECTS=cpu-fast dotnet test Reference.sln -c Release --no-build --filter "$cpu_suite" \
      --logger "trx;LogFileName=results.trx" --results-directory "$results/${isa%%=*}" || rc=1
  done
fi

trx_files="$(find "$results" -name '*.trx')"
if [ -z "$trx_files" ]; then
  echo "no test results were written (build failure?)"
  echo "0 passed, 1 failed, 0 skipped"
  exit $(( rc == 0 ? 1 : rc ))
fi
# summed over every run's results file
counter() { for f in $trx_files; do grep -o "<Counters [^>]*" "$f" | grep -oE " $1=\"[0-9]+\"" | grep -oE "[0-9]+"; done | awk '{ s += $1 } END { print s + 0 }'; }
passed=$(counter passed); failed=$(counter failed); total=$(counter total); executed=$(counter executed)
skipped=$(( total - executed ))
if [ "$executed" -eq 0 ]; then echo "no test was executed"; rc=1; fi
echo "$passed passed, $failed failed, $skipped skipped"
exit $rc
