# Shared helpers for the VM suites (POSIX sh, busybox).
PASSED=0
FAILED=0
ok() { PASSED=$((PASSED + 1)); echo "ok - $1"; }
not_ok() { FAILED=$((FAILED + 1)); echo "not ok - $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/    # /'; }
# check NAME COMMAND...: passes when COMMAND exits 0.
check() { name=$1; shift; if out=$("$@" 2>&1); then ok "$name"; else not_ok "$name" "$out"; fi; }
# contains NAME FILE PATTERN: passes when FILE has a line matching the fixed string PATTERN.
contains() { if grep -qF -- "$3" "$2"; then ok "$1"; else not_ok "$1" "missing: $3"; fi; }
# has_line NAME FILE LINE: passes when FILE has exactly LINE (leading blanks ignored).
has_line() { if sed 's/^[[:blank:]]*//' "$2" | grep -qxF -- "$3"; then ok "$1"; else not_ok "$1" "missing line: $3"; fi; }
# eventually NAME COMMAND...: passes when COMMAND succeeds within 10 s (asynchronous teardown).
eventually() { name=$1; shift; i=0; while ! out=$("$@" 2>&1); do i=$((i + 1)); [ $i -ge 100 ] && { not_ok "$name" "$out"; return; }; sleep 0.1; done; ok "$name"; }
# fold_results NAME LOG: a client program's ok/not ok lines (prefixed with NAME) and counts.
fold_results() {
  sed "s/^\(not \)\{0,1\}ok - /&$1: /" "$2" | grep -v "passed, .* failed$"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$2" | tail -n1)
  if [ -n "$line" ]; then
    PASSED=$((PASSED + ${line%% *}))
    FAILED=$((FAILED + $(echo "$line" | cut -d' ' -f3)))
  else
    not_ok "$1: the client ended without a summary" "$(tail -n 20 "$2")"
  fi
}
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ]; }
