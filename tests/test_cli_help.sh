#!/usr/bin/env bash
# test_cli_help.sh: help and bad usage of both programs, tried as a new user would (issue 19):
# `CMD --help` / `-h` anywhere on every subcommand (exit 0, options and an example, nothing
# opened or connected), `lossd help CMD` / `lossctl help CMD`, bad usage exits 2 saying why, a
# broken job file says where and why, nested unknown keys print with their full path, and
# `lossd serve` refuses a socket in a missing directory instead of creating the tree.
. "$(dirname "$0")/lib.sh" lossd_cli_help
need_binaries
NOSOCK="$TMP/no-daemon.sock"

# expect NAME WANT_RC WANT_STDOUT_GREP WANT_STDERR_GREP CMD...: exit status and output.
expect() {
    local name=$1 want_rc=$2 want_out=$3 want_err=$4
    shift 4
    "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "$rc" = "$want_rc" ] && { [ -z "$want_out" ] || grep -qE -- "$want_out" "$TMP/out"; } &&
        { [ -z "$want_err" ] || grep -qE -- "$want_err" "$TMP/err"; }; then
        ok "$name"
    else
        bad "$name" "exit $rc (want $want_rc)" "stdout: $(head -c 600 "$TMP/out")" \
            "stderr: $(head -c 600 "$TMP/err")" "want stdout /$want_out/, stderr /$want_err/"
    fi
}

# ---- lossctl: every command's help, wherever -h / --help stands ------------------------------
cmds=$("$CTL" help | sed -n '/^commands:/,/^$/p' | awk 'NF && $1 != "commands:" {print $1}')
n=$(echo "$cmds" | wc -w)
if [ "$n" -ge 12 ]; then ok "lossctl help lists $n commands"; else bad "lossctl help lists commands" "$cmds"; fi
for c in $cmds; do
    [ "$c" = schedule ] && continue
    expect "lossctl $c --help: options/example" 0 "^usage: lossctl $c" "" \
        "$CTL" --socket "$NOSOCK" "$c" --help
    grep -q "^example:" "$TMP/out" && ok "lossctl $c --help has an example" ||
        bad "lossctl $c --help has an example" "$(cat "$TMP/out")"
    expect "lossctl help $c" 0 "^usage: lossctl $c" "" "$CTL" --socket "$NOSOCK" help "$c"
done
expect "lossctl submit -h does not open a file named -h" 0 "^usage: lossctl submit" "" \
    "$CTL" --socket "$NOSOCK" submit -h
expect "lossctl submit FILE --help (after the file)" 0 "--priority N" "" \
    "$CTL" --socket "$NOSOCK" submit examples/demo.job.json --help
expect "lossctl call --help does not connect" 0 "^usage: lossctl call" "" \
    "$CTL" --socket "$NOSOCK" call --help
[ -s "$TMP/err" ] && bad "call --help printed to stderr" "$(cat "$TMP/err")" || ok "call --help: nothing on stderr"
expect "lossctl watch 3 -h" 0 "--interval SECONDS" "" "$CTL" --socket "$NOSOCK" watch 3 -h
expect "lossctl leaderboard --help lists --metric" 0 "--metric M" "" "$CTL" leaderboard --help
expect "lossctl export -h lists the formats" 0 "pytorch, numpy, latex or expr" "" "$CTL" export -h
expect "lossctl schedule add --help" 0 "lossctl schedule add --cron" "" "$CTL" schedule add --help
expect "lossctl help bogus exits 2" 2 "" "no such command 'bogus'" "$CTL" help bogus
expect "-- ends options: submit -- --help reads a file named --help" 1 "" "--help" \
    "$CTL" --socket "$NOSOCK" submit -- --help

# ---- lossctl: bad usage exits 2 and says why --------------------------------------------------
expect "jobs bogus exits 2 naming the states" 2 "" "'bogus' is not a state \(queued" \
    "$CTL" --socket "$NOSOCK" jobs bogus
expect "watch abc says why" 2 "" "watch: 'abc' is not a job id" "$CTL" --socket "$NOSOCK" watch abc
expect "show x says why" 2 "" "show: 'x' is not a candidate \(JOB:CAND" "$CTL" --socket "$NOSOCK" show x
expect "pause 0 says why" 2 "" "pause: '0' is not a job id" "$CTL" --socket "$NOSOCK" pause 0
expect "unknown option exits 2" 2 "" "unknown option --bogus" "$CTL" --socket "$NOSOCK" jobs --bogus
# one option table per command, one parser (ctl_parse): the same errors everywhere
expect "an option without its value" 2 "" "jobs: option --state needs a value" "$CTL" --socket "$NOSOCK" jobs --state
expect "a value given to a flag" 2 "" "workers: option --all takes no value" "$CTL" --socket "$NOSOCK" workers --all=1
expect "report -o without its file" 2 "" "report: option -o needs a value" "$CTL" --socket "$NOSOCK" report 3 -o
expect "report: unknown option" 2 "" "report: unknown option --out" "$CTL" --socket "$NOSOCK" report --out x 3
expect "mcp: unknown option and its usage" 2 "" "usage: lossctl mcp \[--allow-write\]" "$CTL" --socket "$NOSOCK" mcp --bogus
expect "propose: unknown option, an expression may start with -" 2 "" "propose: unknown option --bogus" \
    "$CTL" --socket "$NOSOCK" propose 3 '-log(pt)' --bogus
expect "schedule add: option without its value" 2 "" "schedule add: option --cron needs a value" \
    "$CTL" --socket "$NOSOCK" schedule add --cron
expect "--name=VALUE works as --name VALUE" 2 "" "watch: --interval must be > 0" \
    "$CTL" --socket "$NOSOCK" watch 3 --interval=0
# the help's options come from the same table: every state, schedule add's flags
expect "jobs --help names every state" 0 "--state STATE .*expired" "" "$CTL" jobs --help
expect "schedule help lists add's options" 0 "--allow-overlap +the same as --concurrency allow" "" "$CTL" schedule help
expect "report --help names --output" 0 "--output is the same" "" "$CTL" report --help

# ---- a broken job file says where and why -----------------------------------------------------
printf '{\n  "name": "x",\n  "tasks": [{"data": "builtin:digits"},],\n}\n' >"$TMP/comma.json"
expect "trailing comma: line, column and why" 1 "" "comma.json:3:39: not valid JSON: a comma before '\]'" \
    "$CTL" --socket "$NOSOCK" submit "$TMP/comma.json"
printf "{'name': 'x'}" >"$TMP/quote.json"
expect "single quotes: why" 1 "" "quote.json:1:2: not valid JSON: strings and keys take double quotes" \
    "$CTL" --socket "$NOSOCK" submit "$TMP/quote.json"
printf '{"name": "x"' >"$TMP/short.json"
expect "cut short: why" 1 "" "short.json:1:13: not valid JSON: the text ends inside an object" \
    "$CTL" --socket "$NOSOCK" submit "$TMP/short.json"
printf '{"name": "x"}}' >"$TMP/extra.json"
expect "text after the value" 1 "" "extra.json:1:14: not valid JSON: more text after the end" \
    "$CTL" --socket "$NOSOCK" submit "$TMP/extra.json"
expect "schedule add: the same message" 1 "" "comma.json:3:39: not valid JSON: a comma before" \
    "$CTL" --socket "$NOSOCK" schedule add --cron @daily "$TMP/comma.json"
expect "lossd search: the same message" 2 "" "comma.json:3:39: not valid JSON: a comma before" \
    "$LOSSD" search "$TMP/comma.json"
printf '{"data": "builtin:digits", "transform": {"flip": 1}}' >"$TMP/task.json"
expect "nested unknown key with its full path" 2 "" "transform.*unknown key.*flip" \
    "$LOSSD" eval --task "$TMP/task.json" --loss ce

# ---- lossd: every subcommand's help ------------------------------------------------------------
for c in serve search eval bench; do
    expect "lossd $c --help" 0 "^usage: lossd $c" "" "$LOSSD" "$c" --help
    for part in "^options:" "^example:"; do
        grep -q "$part" "$TMP/out" && ok "lossd $c --help: $part" || bad "lossd $c --help: $part" "$(cat "$TMP/out")"
    done
    expect "lossd help $c" 0 "^usage: lossd $c" "" "$LOSSD" help "$c"
done
expect "lossd eval --help describes --seed with its default" 0 "--seed N .*default 0" "" "$LOSSD" eval --help
expect "lossd eval --task x -h (help after options)" 0 "^usage: lossd eval" "" "$LOSSD" eval --task x -h
expect "lossd help lists help" 0 "lossd help \[COMMAND\]" "" "$LOSSD" help
expect "lossd help bogus exits 2" 2 "" "no such command 'bogus'" "$LOSSD" help bogus
expect "lossd serve --bogus: unknown option" 2 "" "unknown option '--bogus'" "$LOSSD" serve --bogus
expect "lossd serve --socket in a missing tree is refused" 1 "" "cannot create its directory /nonexistent" \
    timeout 20 "$LOSSD" serve --socket /nonexistent/dir/s.sock --db "$TMP/never.db"
[ -e /nonexistent ] && bad "lossd serve created /nonexistent" || ok "lossd serve created no directories"
[ -e "$TMP/never.db" ] && bad "the refused daemon created its database" || ok "the refused daemon left no database"

finish
