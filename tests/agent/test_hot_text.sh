#!/bin/sh
# tests/agent/test_hot_text.sh: agent/hot-text.py, the generator of
# agent/koreo-agent-hot.ld (docs/agent-footprint.md "Hot text"), on a small
# program: from a link map and a callgrind profile it lists the input
# sections of the functions that ran (an archive member, an object), not
# the others; linking with the script it writes places the code that ran
# before the code that did not, the rest of the program unchanged; a
# profile of another executable is refused.
set -eu
HOT_TEXT=$(realpath "${1:?usage: test_hot_text.sh agent/hot-text.py}")
T=$(mktemp -d /tmp/koreo-hottext-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > cold.c <<'C'
int cold_fn(int x) { return x * 7 - 2; }
int cold_fn2(int x) { return x ^ 5; }
C
cat > hot.c <<'C'
int hot_fn(int x) { return x * 3 + 1; }
C
cat > main.c <<'C'
int hot_fn(int);
int cold_fn(int);
int main(int argc, char **argv) {
  (void)argv;
  return argc > 5 ? cold_fn(argc) : hot_fn(argc) - argc * 3 - 1;
}
C
cc -O1 -c cold.c hot.c main.c
ar rcs libdemo.a cold.o hot.o # cold first: the default layout puts it first
cc -o demo main.o libdemo.a -Wl,-Map=demo.map
./demo || fail "the demo program does not run"

# what callgrind writes (names compressed as "(N) name" on first use)
cat > callgrind.out.1 <<P
version: 1
cmd: $T/demo
ob=(1) $T/demo
fl=(1) main.c
fn=(1) main
0 3
cfn=(2) hot_fn
calls=1 0
0 2
fn=(2)
0 2
P
python3 "$HOT_TEXT" --exe "$T/demo" --map demo.map callgrind.out.1 > hot.ld \
  || fail "hot-text.py failed"
grep -q 'libdemo.a:hot.o(.text)' hot.ld || fail "hot.o is not listed: $(cat hot.ld)"
grep -q 'main.o(.text)' hot.ld || fail "main.o is not listed: $(cat hot.ld)"
grep -q 'cold.o' hot.ld && fail "cold.o is listed: $(cat hot.ld)"
grep -q 'INSERT BEFORE .text;' hot.ld || fail "not an INSERT script: $(cat hot.ld)"

addr() { nm "$1" | awk -v f="$2" '$3 == f { print $1 }'; }
[ "$(addr demo cold_fn)" \< "$(addr demo hot_fn)" ] || fail "the default layout already puts hot_fn first"
cc -o demo2 main.o libdemo.a -Wl,-T,hot.ld || fail "the script does not link"
./demo2 || fail "the program linked with the script does not run"
[ "$(addr demo2 hot_fn)" \< "$(addr demo2 cold_fn)" ] || fail "hot_fn is not placed before cold_fn"
[ "$(addr demo2 main)" \< "$(addr demo2 cold_fn)" ] || fail "main is not placed before cold_fn"

# a profile of some other program names nothing of this one
sed "s|ob=(1) $T/demo|ob=(1) /usr/bin/other|" callgrind.out.1 > callgrind.out.2
if python3 "$HOT_TEXT" --exe "$T/demo" --map demo.map callgrind.out.2 > /dev/null 2> err.txt; then
  fail "a profile of another executable was accepted"
fi
grep -q "no executed functions" err.txt || fail "unclear refusal: $(cat err.txt)"
echo "hot-text: ok"
