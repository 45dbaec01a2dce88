#!/bin/bash
# Regenerates the synth benchmark's task specifications (benchmarks/synth/*.yaml, tasks.jsonl.gz) from PyPI
# releases. Each package's tasks are synthesized, validated (2 workers) and recorded; its old tasks replaced.
# Takes 5-20 minutes per package on a 2-core machine. Run from the repository root.
set -uo pipefail
MAX=${MAX:-32}
for spec in "inflection==0.5.1 text $MAX" "parse==1.20.2 parsing $MAX" "isodate==0.7.2 dates $MAX" \
            "affine==2.4.0 numerics $MAX" "toolz==0.12.1 data-structures $MAX" "more-itertools==10.5.0 iterators 16"; do
  set -- $spec
  python -m dgm tasks synth --package "$1" --kind "$2" --max "$3" --workers 2 --json > "/tmp/synth-$1.json" \
    || { echo "$1: FAILED"; continue; }
  echo "$1: $(python -c "import json; d=json.load(open('/tmp/synth-$1.json')); print(d['tasks_valid'], 'valid tasks,', d['valid_tasks_per_minute'], 'per minute')")"
done
