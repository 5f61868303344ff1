#!/usr/bin/env bash
# Build connectome with AddressSanitizer + UndefinedBehaviorSanitizer (core and
# binding) into its own venv and run the test suite under them.
#   bash tools/sanitize.sh            # from anywhere; venv in .venv-sanitize (gitignored)
#   SANITIZE_VENV=/tmp/v bash tools/sanitize.sh
#   bash tools/sanitize.sh -k forward # extra arguments go to pytest
# Python itself is not instrumented, so the sanitizer runtimes are LD_PRELOADed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
venv=${SANITIZE_VENV:-.venv-sanitize}

libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
for lib in "$libasan" "$libubsan"; do
    if [ ! -e "$lib" ]; then
        echo "sanitize.sh: gcc has no $lib (install the gcc sanitizer runtimes)" >&2
        exit 1
    fi
done

rm -rf "$venv"
"$PY" -m venv "$venv"
# shellcheck disable=SC1091
source "$venv/bin/activate"
python -m pip install --upgrade pip
# setup.py writes a flavour stamp, so a build/ left by a normal build is relinked.
CONNECTOME_SANITIZE=1 pip install ".[test]"

# Make sure the installed extension really is instrumented (importing it without
# the preload would fail, so look it up on disk).
platlib=$(python -c "import sysconfig; print(sysconfig.get_paths()['platlib'])")
so=$(ls "$platlib"/connectome/_core*.so)
undefined=$(nm -D --undefined-only "$so")  # captured: `nm | grep -q` trips pipefail on SIGPIPE
for sym in __asan_report_load __ubsan_handle_; do
    if ! grep -q "$sym" <<<"$undefined"; then
        echo "sanitize.sh: $so is not instrumented (no $sym* symbols)" >&2
        exit 1
    fi
done
# ...and that the core (a static library linked into it) is instrumented too.
core_calls=$(objdump -d --disassemble=cx_proj_forward "$so" | grep -c "__asan_report\|__ubsan_handle" || true)
if [ "$core_calls" -eq 0 ]; then
    echo "sanitize.sh: the core in $so is not instrumented (cx_proj_forward has no sanitizer calls)" >&2
    exit 1
fi
ldd "$so" | grep -E "libasan|libubsan|libgomp" || true

# Leaks are off: CPython keeps interned objects alive until exit.  Any ASan or
# UBSan report aborts the run (non-zero exit).
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export CONNECTOME_HYPOTHESIS_PROFILE=${CONNECTOME_HYPOTHESIS_PROFILE:-dev}
LD_PRELOAD="$libasan $libubsan" pytest -p no:cacheprovider "$@"
