#!/usr/bin/env bash
# test_doc_figures.sh: the measured figures in README.md and docs/ are the recorded ones (issue 19).
# bench/doc_figures.py check: every <!--fig:KEY-->TEXT<!--/fig--> in the docs reads what
# bench/measured.json (written by `bench/doc_figures.py record`) says for KEY, and every number of
# a line of README's "Measured" section is in the docs that line links to. No timing is asserted:
# the check compares text with the recorded file. Then, on a copy, a changed figure and a README
# number that is not in its doc must each make the check fail, naming them.
. "$(dirname "$0")/lib.sh" doc-figures
out=$($PY bench/doc_figures.py check 2>&1)
if [ $? -eq 0 ]; then ok "the docs' figures are the recorded ones ($(echo "$out" | tail -1))"
else bad "the docs' figures are the recorded ones" "$out"; fi

mkdir -p "$TMP/copy/bench" "$TMP/copy/docs"
cp README.md "$TMP/copy/"; cp docs/*.md "$TMP/copy/docs/"; cp bench/measured.json "$TMP/copy/bench/"
sed -i '0,/<!--fig:speed.us_per_step-->[^<]*</s//<!--fig:speed.us_per_step-->1.5</' "$TMP/copy/docs/tasks.md"
out=$(DOC_FIGURES_ROOT="$TMP/copy" $PY bench/doc_figures.py check 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "docs/tasks.md: figure speed.us_per_step reads '1.5'"; then
    ok "a figure copied by hand (1.5 us per step in docs/tasks.md) fails the check"
else bad "a figure copied by hand fails the check" "$out"; fi

cp docs/tasks.md "$TMP/copy/docs/"
DOC_FIGURES_ROOT="$TMP/copy" $PY bench/doc_figures.py write >/dev/null
sed -i "s/cross-entropy's 0.8765/cross-entropy's 0.9999/" "$TMP/copy/README.md"
out=$(DOC_FIGURES_ROOT="$TMP/copy" $PY bench/doc_figures.py check 2>&1)
if [ $? -ne 0 ] && echo "$out" | grep -q "0.9999 is not in docs/results.md"; then
    ok "a README Measured number missing from its linked doc fails the check"
else bad "a README Measured number missing from its linked doc fails the check" "$out"; fi
finish
