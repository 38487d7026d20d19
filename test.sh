#!/usr/bin/env bash
# Runs every test of the solution (the Conformance suite) in Release and ends with one line "N passed, N failed".
# Usage: ./test.sh [extra dotnet test arguments, e.g. --filter FullyQualifiedName~LayerNorm]
set -uo pipefail
cd "$(dirname "$0")"
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
dotnet test Reference.sln -c Release --logger "trx;LogFileName=results.trx" --results-directory "$results" "$@"
rc=$?
trx="$(find "$results" -name '*.trx' | head -n 1)"
if [ -z "$trx" ]; then
  echo "no test results were written (build failure?)"
  echo "0 passed, 1 failed"
  exit $(( rc == 0 ? 1 : rc ))
fi
counter() { grep -o "<Counters [^>]*" "$trx" | grep -oE " $1=\"[0-9]+\"" | grep -oE "[0-9]+"; }
passed=$(counter passed); failed=$(counter failed); total=$(counter total); executed=$(counter executed)
skipped=$(( total - executed ))
if [ "$executed" -eq 0 ]; then echo "no test was executed"; rc=1; fi
echo "$passed passed, $failed failed, $skipped skipped"
exit $rc
