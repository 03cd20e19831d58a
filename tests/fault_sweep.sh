#!/usr/bin/env bash
# fault_sweep.sh: the full fault-injection sweep (docs/reliability.md): for every N from 1 to the
# number of writes, syncs and truncates an undisturbed small search makes (or every Kth with
# --step K), the Nth fails once (the daemon must recover by itself) and from then on (kill -9,
# restart without faults); each run must lose nothing acknowledged, pass integrity_check and end
# on the undisturbed leaderboard. Prints the counts last. Takes ~1.5 s a run.
#   tests/fault_sweep.sh            every N
#   tests/fault_sweep.sh --step 5   every 5th N (--step 0: no I/O faults)
#   ... --alloc-step K              every Kth SQLite allocation fails once (default: 3 samples)
#   ... --kill9 K                   also K kill -9 runs at moments spread over the search (default 2)
#   ... --time-limit S              stop the I/O sweep after S seconds, saying how far it got
#   ... --from N                    start the I/O sweep at N (to finish a sweep a time limit cut)
cd "$(dirname "$0")/.." || exit 1
if [ $# -eq 0 ]; then set -- --all; fi
exec nice -n 5 tests/test_faults_daemon.py "$@"
