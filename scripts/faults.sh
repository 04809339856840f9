#!/usr/bin/env bash
# The long fault run: every scenario for longer, several rounds of each fault, the long-only variants
# (both routing replicas frozen in turn), JetStream's production ack wait, results kept in benchmarks/results/.
# Override any of these from the environment, e.g. SUPPORTDESK_FAULTS_SEED=9 scripts/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export SUPPORTDESK_FAULTS_DURATION_S="${SUPPORTDESK_FAULTS_DURATION_S:-60}"
export SUPPORTDESK_FAULTS_ROUNDS="${SUPPORTDESK_FAULTS_ROUNDS:-5}"
export SUPPORTDESK_FAULTS_SEED="${SUPPORTDESK_FAULTS_SEED:-8}"
export SUPPORTDESK_FAULTS_ACK_WAIT_S="${SUPPORTDESK_FAULTS_ACK_WAIT_S:-30}"
export SUPPORTDESK_FAULTS_LONG=1
export SUPPORTDESK_FAULTS_RESULTS="${SUPPORTDESK_FAULTS_RESULTS:-benchmarks/results/faults-long.json}"
exec .venv/bin/python -m pytest tests/faults -m faults -o timeout=3600 "$@"
