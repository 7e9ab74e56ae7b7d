#!/usr/bin/env python3
"""agent/hot-text.py: generates agent/koreo-agent-hot.ld, the linker script
that packs the code koreo-agent runs into one contiguous output section
(issue 5 item 6, docs/agent-footprint.md "Hot text").

Why: the kernel maps file pages around every page fault (fault-around,
64 KiB), so code that runs once at start-up, scattered over the 3.7 MiB of
text that the static OpenSSL brings, makes nearly all of it resident.  Put
the input sections that hold executed functions first and only they (and
the few pages around them) are mapped: text RSS 3.4 -> 1.9 MiB.

Usage (Release build with KOREO_AGENT_STATIC_TLS, which also writes
BUILD/agent/koreo-agent.map):
  1. profile koreo-agent with callgrind in every mode worth covering (the
     most important first: its code is packed first), e.g.
     with a wrapper script W that runs
       valgrind --tool=callgrind --callgrind-out-file=DIR/callgrind.out.%p \
                BUILD/agent/koreo-agent "$@"
     as the agent of bench/agent-footprint (--agent W), of
     tests/agent/cp_accept.c and tests/agent/standalone_accept.c;
  2. agent/hot-text.py --exe BUILD/agent/koreo-agent \
        --map BUILD/agent/koreo-agent.map DIR/callgrind.out.* \
        > agent/koreo-agent-hot.ld
The map and the profiles must come from the same executable.  A stale
script is harmless: patterns that match nothing are ignored by the linker,
and code that is not listed still links, after the hot section.

Output: a GNU ld script (SECTIONS ... INSERT BEFORE .text) naming input
sections as ARCHIVE:MEMBER(SECTION) or :OBJECT(SECTION): those of the first
profile first, then those that only later profiles ran, each in link order.
So give the profile of the mode that matters most first.
Exit status 1 with a message on stderr when an input cannot be read.
"""
import argparse
import bisect
import re
import subprocess
import sys


def text_sections(map_path):
    """[(start, size, object, section)] of the .text* input sections in a GNU ld map."""
    secs, pending, in_text = [], None, False
    with open(map_path, errors="replace") as f:
        for line in f:
            if re.match(r"^\.\S", line):
                in_text = line.startswith(".text")
            if not in_text:
                continue
            m = re.match(r"^ (\.text\S*)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)", line)
            if m:
                secs.append((int(m.group(2), 16), int(m.group(3), 16), m.group(4), m.group(1)))
                pending = None
                continue
            m = re.match(r"^ (\.text\S*)\s*$", line)
            if m:
                pending = m.group(1)
                continue
            m = re.match(r"^\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S+)", line)
            if m and pending:
                secs.append((int(m.group(1), 16), int(m.group(2), 16), m.group(3), pending))
                pending = None
    return sorted(s for s in secs if s[1] > 0)


def executed(path, exe_suffix):
    """Names of the functions of the executable that callgrind saw running."""
    names = set()
    obs, fns, cur = {}, {}, ""
    with open(path, errors="replace") as f:
        for line in f:
            m = re.match(r"^(ob|cob|fn|cfn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if not m:
                continue
            kind, ident, name = m.groups()
            table = obs if kind in ("ob", "cob") else fns
            if name:
                table[ident] = name
            if kind == "ob":
                cur = obs.get(ident, "")
            elif kind == "fn" and cur.endswith(exe_suffix):
                names.add(fns[ident].split("'")[0])  # 'N marks recursion depth
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--exe", required=True)
    ap.add_argument("--map", required=True)
    ap.add_argument("profiles", nargs="+")
    a = ap.parse_args()
    try:
        secs = text_sections(a.map)
        runs = [executed(p, a.exe.split("/")[-1]) for p in a.profiles]
        nm = subprocess.run(["nm", "-S", "--defined-only", a.exe], capture_output=True,
                            text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"hot-text.py: {e}", file=sys.stderr)
        return 1
    names = set().union(*runs)
    if not secs or not names:
        print("hot-text.py: no .text sections in the map or no executed functions in the "
              "profiles (wrong --exe?)", file=sys.stderr)
        return 1
    starts = [s[0] for s in secs]
    # hot[i]: the first profile (in command-line order) that ran code of input
    # section i.  The first profile's sections come first, then the ones only
    # the second ran, and so on: the first mode touches the fewest windows.
    hot = {}
    for line in nm.splitlines():
        p = line.split()
        if len(p) == 4 and p[2] in "tTwW" and p[3] in names:
            addr = int(p[0], 16)
            i = bisect.bisect_right(starts, addr) - 1
            if i >= 0 and addr < secs[i][0] + secs[i][1]:
                hot[i] = min(hot.get(i, len(runs)), next(k for k, r in enumerate(runs) if p[3] in r))
    lines, seen, size = [], set(), 0
    for i in sorted(hot, key=lambda i: (hot[i], i)):
        _, sz, obj, sec = secs[i]
        m = re.match(r"^(.*)\((.*)\)$", obj)
        # Archive members by archive base name; objects by their last two path parts.
        pat = f"*{m.group(1).split('/')[-1]}:{m.group(2)}" if m else ":*" + "/".join(obj.split("/")[-2:])
        size += sz
        if (pat, sec) not in seen:
            seen.add((pat, sec))
            lines.append(f"    {pat}({sec})")
    print("/* agent/koreo-agent-hot.ld: generated by agent/hot-text.py (see there):")
    print(f" * the {len(lines)} input sections ({size // 1024} KiB) that hold the functions")
    print(" * koreo-agent ran under callgrind, packed first so that only they become")
    print(" * resident.  Linked by agent/CMakeLists.txt (KOREO_AGENT_STATIC_TLS). */")
    print("SECTIONS\n{\n  .text.koreo_hot :\n  {")
    print("\n".join(lines))
    print("  }\n}\nINSERT BEFORE .text;")
    return 0


if __name__ == "__main__":
    sys.exit(main())
