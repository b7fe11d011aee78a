#!/usr/bin/env bash
# Builds longrec and runs the whole test suite (GoogleTest through CTest).
# The real public datasets are read from ../shared/data at test time.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
status=0
(cd "${LONGREC_BUILD_DIR:-build}" && ctest --output-on-failure -j 2 --timeout 900) || status=$?
# The torch-free code under AddressSanitizer + UndefinedBehaviorSanitizer, and
# a few seconds of each fuzz target (build-checks/).
bash scripts/check_sanitizers.sh || status=$?
exit "$status"
