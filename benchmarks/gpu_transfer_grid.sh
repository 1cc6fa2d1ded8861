#!/usr/bin/env bash
# Run the ground-truth transfer grid on a lent GPU machine (the `device` tool) in one command.
#
#   benchmarks/gpu_transfer_grid.sh RESULTS WORKERS DEADLINE_S [transfer_matrix.py args...]
#   benchmarks/gpu_transfer_grid.sh $OUT/transfer_limited.jsonl 10 480 --tasks classification16 --seeds 0,1,2
#
# One MiniLM fine-tune is launch-bound on an H100 (a few ms of GPU work per step), so several
# workers share the card; they share RESULTS and the work folder, and the runner's claim files
# keep any cell from running twice. Each worker stops at DEADLINE_S (a cell cut short writes
# nothing), so the command returns before the lease's limit with every finished row on disk.
set -u
results=$1 workers=$2 deadline=$3
shift 3
log=${GRID_LOG:-$(dirname "$results")/workers.log}
for i in $(seq "$workers"); do
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1 \
        timeout --signal=TERM "$deadline" python3 benchmarks/transfer_matrix.py --results "$results" "$@" \
        2>&1 | sed -u "s/^/[w$i] /" >>"$log" &
    sleep 1  # stagger the first claims
done
wait
echo "$(grep -c . "$results") rows in $results"
