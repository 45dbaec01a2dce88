#!/bin/bash
# Regenerates the synth benchmark's task specifications (benchmarks/synth/*.yaml, tasks.jsonl) from PyPI
# releases. Each package's tasks are synthesized, validated (2 workers) and recorded; its old tasks replaced.
# Takes ~10 minutes per package on a quiet 2-core machine. Run from the repository root.
set -euo pipefail
MAX=${MAX:-32}
dgm="python -m dgm.cli"
[ -f dgm/cli/__main__.py ] || dgm="python -c 'import sys; from dgm.cli import main; sys.exit(main())'"
for spec in "inflection==0.5.1 text" "parse==1.20.2 parsing" "isodate==0.7.2 dates" "affine==2.4.0 numerics" \
            "toolz==0.12.1 data-structures"; do
  set -- $spec
  eval "$dgm tasks synth --package $1 --kind $2 --max $MAX --workers 2 --json" > "/tmp/synth-$1.json" || { echo "$1: FAILED"; continue; }
  echo "$1: $(python -c "import json,sys; d=json.load(open('/tmp/synth-$1.json')); print(d['tasks_valid'], 'valid tasks,', d['valid_tasks_per_minute'], 'per minute')")"
done
