#!/usr/bin/env bash
# Speed, end to end (issue 19): the fixed cost of `moodsic score` on a 2 s clip with all
# three experts, a 60 s one-face 640x360 clip at 2 samples/s through the CLI, the same clip
# through the reference-style pipeline (1 frame/s, PyTorch, nothing cached or skipped), and
# where the time goes per stage and expert. Random weights are made once in
# ~/.cache/moodsic/bench-weights (same compute as real ones). Takes a few minutes; on a
# shared machine compare the ratios, and note the load average it prints.
#
#   bash benchmarks/speed.sh            # from the repository root, after .ci/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
exec .venv/bin/moodsic bench speed --end-to-end --reference "$@"
