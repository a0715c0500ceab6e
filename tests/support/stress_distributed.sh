#!/usr/bin/env bash
# Runs the multi-process test files ROUNDS times in a row while BURNERS CPU-bound processes run beside them (a busy
# CI machine), and prints pass/fail per round. Exit 0 only when every round passed.
#
#   bash tests/support/stress_distributed.sh [ROUNDS=5] [BURNERS=2] [pytest files or node ids...]
#
# Without files: every test file under tests/ that starts processes with torchrun or accelerate launch (found by
# grep, so it follows files that move). Python: $PYTHON, else .venv/bin/python, else /work/main/.venv/bin/python.
# Each round's pytest output is kept in ${STRESS_LOG_DIR:-/tmp/stress_distributed}/round-N.log.
set -uo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
burners=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
python=${PYTHON:-}
[ -n "$python" ] || { [ -x .venv/bin/python ] && python=.venv/bin/python; } || python=/work/main/.venv/bin/python
logs=${STRESS_LOG_DIR:-/tmp/stress_distributed}
mkdir -p "$logs"
if [ $# -gt 0 ]; then
    files=("$@")
else
    mapfile -t files < <(grep -rlE --include='test_*.py' 'torch\.distributed\.run|launcher\(kind\)' tests | sort)
fi
echo "files: ${files[*]}"
echo "rounds: $rounds, CPU burners beside them: $burners, logs: $logs"

pids=()
stop_burners() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done; }
trap stop_burners EXIT
for _ in $(seq "$burners"); do
    "$python" -c "while True: sum(i * i for i in range(10000))" &
    pids+=($!)
done

failed=0
for round in $(seq "$rounds"); do
    start=$(date +%s)
    PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pytest -q -p no:cacheprovider "${files[@]}" \
        > "$logs/round-$round.log" 2>&1
    code=$?
    summary=$(tail -n 1 "$logs/round-$round.log")
    if [ $code -eq 0 ]; then verdict=PASS; else verdict=FAIL; failed=$((failed + 1)); fi
    echo "round $round/$rounds: $verdict in $(( $(date +%s) - start )) s ($summary)"
done
echo "$((rounds - failed)) passed, $failed failed"
[ $failed -eq 0 ]
