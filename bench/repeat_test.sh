#!/usr/bin/env bash
# Run one test N times in a row and count how often it passes: the check for a flaky test (issue 31 failed
# about 1 run in 8). Each run's output goes to $LOG_DIR/repeat_<i>.log; the exit status is 0 only if all passed.
#
#   bench/repeat_test.sh [N] [TEST_ID]
#   default: 8 runs of tests/e2e/test_browser.py::test_reload_and_a_second_tab_keep_dataset_augmentation_and_form
set -u
cd "$(dirname "$0")/.."
n=${1:-8}
test=${2:-tests/e2e/test_browser.py::test_reload_and_a_second_tab_keep_dataset_augmentation_and_form}
logs=${LOG_DIR:-/tmp/repeat_test}
mkdir -p "$logs"
pass=0
fail=0
for i in $(seq 1 "$n"); do
  start=$(date +%s)
  if GRADIO_ANALYTICS_ENABLED=False timeout "${TIMEOUT:-900}" python3 -m pytest -q -x -p no:cacheprovider "$test" \
      >"$logs/repeat_$i.log" 2>&1; then
    pass=$((pass + 1)); verdict=passed
  else
    fail=$((fail + 1)); verdict="FAILED ($logs/repeat_$i.log)"
  fi
  echo "run $i/$n: $verdict in $(( $(date +%s) - start )) s"
done
echo "$pass passed, $fail failed of $n: $test"
[ "$fail" -eq 0 ]
