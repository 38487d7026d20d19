#!/usr/bin/env bash
# Builds, runs the Vulkan conformance suite and `bench` on whatever Vulkan GPU this machine has (no lavapipe
# override), and writes a short Markdown report. Usage: Tools/gpu-check.sh [report.md]
# GPU_CHECK_PRESET=tiny makes the bench step small (for a smoke run on lavapipe).
# Needs: the .NET 10 SDK, glslc, libvulkan1 and a GPU driver (vulkan-validationlayers for the validation run).
set -uo pipefail
cd "$(dirname "$0")/.."
report="${1:-gpu-report.md}"
log="$(mktemp -d)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
unset VK_DRIVER_FILES VK_ICD_FILENAMES

dotnet build Reference.sln -c Release > "$log/build.txt" 2>&1 || { tail -20 "$log/build.txt"; echo "build failed"; exit 1; }
llm() { dotnet Tools/bin/Release/net10.0/llm.dll "$@"; }

# every op's properties on the GPU (each feature variant), validation on, as `llm conformance` prints them; then the
# model- and Vulkan-specific tests of the xunit suite on the GPU alone (the encoder-decoder and MoE ones included)
llm conformance --backend vulkan --validation --report "$log/conformance.md" > "$log/conformance.txt" 2>&1
conformance=$?
LLM_VULKAN_VALIDATION=1 CONFORMANCE_SUBJECTS=vulkan dotnet test Conformance -c Release --no-build \
  --filter "FullyQualifiedName~Llm.Conformance.Vulkan|FullyQualifiedName~Model" > "$log/vulkan-tests.txt" 2>&1
vulkan_tests=$?
llm bench --backend vulkan --verbose --skip-naive --preset "${GPU_CHECK_PRESET:-gpt2}" --moe-preset switch-tiny > "$log/bench-vulkan.txt" 2>&1
llm bench --backend cpu --skip-naive --preset "${GPU_CHECK_PRESET:-gpt2}" --moe-preset switch-tiny > "$log/bench-cpu.txt" 2>&1

{
  echo "# GPU check, $(date -u +%Y-%m-%d)"
  echo; echo "## llm conformance --backend vulkan --validation (exit $conformance)"; echo
  cat "$log/conformance.md"
  echo; echo "## Vulkan and model tests of the xunit suite on the GPU (exit $vulkan_tests)"; echo
  echo '```'; grep -E "Passed!|Failed!|\[FAIL\]" "$log/vulkan-tests.txt" | head -30; echo '```'
  echo; echo '## bench --backend vulkan'; echo; echo '```'; cat "$log/bench-vulkan.txt"; echo '```'
  echo; echo '## bench --backend cpu'; echo; echo '```'; cat "$log/bench-cpu.txt"; echo '```'
} > "$report"
cat "$report"
[ $conformance -eq 0 ] && [ $vulkan_tests -eq 0 ]
