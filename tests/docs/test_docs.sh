#!/usr/bin/env bash
# tests/docs/test_docs.sh SRC [KOREOCTL] [KOREO-CONTROLPLANE] [KOREO-AGENT]:
# the documentation cannot drift from the repository or from the binaries
# (issue 7 item 4).
#
# 1. Links: every relative link in SRC/README.md and SRC/docs/*.md (outside
#    code blocks and code spans) names a file or folder that exists, and a
#    `#fragment` names a heading of the target (GitHub's anchor rules).
# 2. Index: docs/README.md links to every docs/*.md.
# 3. Flags: for each binary given, the flags its --help prints (koreoctl:
#    the --help of the tool and of `test`, `validate`, `run` and the remote
#    commands) are all documented in docs/reference.md, in the section of
#    that binary, AND in its man page; and every flag written in that
#    section or man page is printed by the --help (a man page's EXAMPLES and
#    SEE ALSO may use the other binaries' flags; the rest of reference.md
#    may use any binary's flags).  --help/-h are always allowed.
# 4. Man pages: man/koreoctl.1, man/koreo-controlplane.8 and
#    man/koreo-agent.8 render with `groff -man -ww -z` and `man -l` without a
#    single warning, and `mandoc -T lint -W style` has nothing to say (each
#    tool skipped when it is not installed: groff-base, man-db, mandoc).
#
# A binary given as "" or "-" (not built) skips its checks.  Prints one line per
# failure and ends with "N passed, N failed, N skipped"; exit 1 on any
# failure.
set -u
SRC=${1:?usage: test_docs.sh SRC [KOREOCTL] [KOREO-CONTROLPLANE] [KOREO-AGENT]}
KOREOCTL=${2:-}
CONTROLPLANE=${3:-}
AGENT=${4:-}
[ "$KOREOCTL" != - ] || KOREOCTL=
[ "$CONTROLPLANE" != - ] || CONTROLPLANE=
[ "$AGENT" != - ] || AGENT=
SRC=$(cd "$SRC" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koreo-docs-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# ---- the --help texts, one file per binary -----------------------------------
helps=()
if [ -n "$KOREOCTL" ]; then
  {
    "$KOREOCTL" --help
    for c in test validate run apply; do "$KOREOCTL" "$c" --help; done
  } >"$WORK/help.koreoctl" 2>&1 || echo "koreoctl --help failed" >>"$WORK/help.errors"
  helps+=("koreoctl=$WORK/help.koreoctl")
fi
if [ -n "$CONTROLPLANE" ]; then
  "$CONTROLPLANE" --help >"$WORK/help.koreo-controlplane" 2>&1 ||
    echo "koreo-controlplane --help failed" >>"$WORK/help.errors"
  helps+=("koreo-controlplane=$WORK/help.koreo-controlplane")
fi
if [ -n "$AGENT" ]; then
  "$AGENT" --help >"$WORK/help.koreo-agent" 2>&1 || echo "koreo-agent --help failed" >>"$WORK/help.errors"
  helps+=("koreo-agent=$WORK/help.koreo-agent")
fi

# ---- man page rendering --------------------------------------------------------
man_checks=()
for m in man/koreoctl.1 man/koreo-controlplane.8 man/koreo-agent.8; do
  f="$SRC/$m"
  [ -f "$f" ] || continue
  if command -v groff >/dev/null 2>&1; then
    out=$(groff -man -Tutf8 -ww -z "$f" 2>&1)
    man_checks+=("groff|$m|$out")
  else
    man_checks+=("groff|$m|SKIP")
  fi
  if command -v man >/dev/null 2>&1; then
    out=$(MANWIDTH=80 man --warnings -l "$f" 2>&1 >/dev/null)
    man_checks+=("man|$m|$out")
  fi
  if command -v mandoc >/dev/null 2>&1; then
    out=$(mandoc -T lint -W style "$f" 2>&1)
    man_checks+=("mandoc|$m|$out")
  else
    man_checks+=("mandoc|$m|SKIP")
  fi
done
printf '%s\0' "${man_checks[@]}" >"$WORK/man.checks"

python3 - "$SRC" "$WORK" "${helps[@]}" <<'PY'
import os, re, sys, unicodedata

src, work = sys.argv[1], sys.argv[2]
helps = dict(a.split("=", 1) for a in sys.argv[3:])
passed = failed = skipped = 0


def ok(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: " + what)
    return cond


def skip(what):
    global skipped
    skipped += 1
    print("SKIP: " + what)


# ---------------------------------------------------------------- markdown
FENCE = re.compile(r"^\s{0,3}(```|~~~)")


def prose_lines(text):
    """(line number, line) outside fenced code blocks, code spans blanked."""
    fence = None
    for n, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if m:
            if fence is None:
                fence = m.group(1)
            elif m.group(1) == fence:
                fence = None
            continue
        if fence is not None:
            continue
        yield n, re.sub(r"(`+)(.+?)\1", lambda s: " " * len(s.group(0)), line)


def slug(title):
    """GitHub's heading anchor: lower case, markup and punctuation dropped,
    spaces to hyphens."""
    t = re.sub(r"`", "", title.strip())
    t = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", t)  # links keep their text
    t = t.lower()
    out = []
    for ch in t:
        cat = unicodedata.category(ch)
        if ch in "-_" or ch.isalnum() or cat.startswith("L") or cat.startswith("N"):
            out.append(ch)
        elif ch == " ":
            out.append("-")
    return "".join(out)


def anchors(path):
    seen, res = {}, set()
    text = open(path, encoding="utf-8").read()
    fence = None
    for line in text.split("\n"):
        m = FENCE.match(line)
        if m:
            fence = m.group(1) if fence is None else (None if m.group(1) == fence else fence)
            continue
        if fence is not None:
            continue
        h = re.match(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not h:
            continue
        s = slug(h.group(1))
        k = seen.get(s, 0)
        seen[s] = k + 1
        res.add(s if k == 0 else "%s-%d" % (s, k))
    for m in re.finditer(r'<a\s+(?:name|id)="([^"]+)"', text):
        res.add(m.group(1))
    return res


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFDEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)")

md_files = [os.path.join(src, "README.md")]
docs_dir = os.path.join(src, "docs")
md_files += sorted(os.path.join(docs_dir, f) for f in os.listdir(docs_dir) if f.endswith(".md"))
nlinks = 0
for path in md_files:
    if not os.path.exists(path):
        ok(False, "%s does not exist" % os.path.relpath(path, src))
        continue
    rel = os.path.relpath(path, src)
    text = open(path, encoding="utf-8").read()
    for n, line in prose_lines(text):
        targets = [m.group(1) for m in LINK.finditer(line)]
        m = REFDEF.match(line)
        if m:
            targets.append(m.group(1))
        for t in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I):  # https:, mailto:
                continue
            nlinks += 1
            file_part, _, frag = t.partition("#")
            target = path if not file_part else os.path.normpath(
                os.path.join(os.path.dirname(path), file_part))
            if not ok(os.path.exists(target), "%s:%d: link %s: %s does not exist"
                      % (rel, n, t, os.path.relpath(target, src))):
                continue
            if frag:
                if os.path.isdir(target) or not target.endswith(".md"):
                    ok(False, "%s:%d: link %s: a #fragment on a file that is not Markdown" % (rel, n, t))
                else:
                    ok(frag in anchors(target), "%s:%d: link %s: %s has no heading #%s"
                       % (rel, n, t, os.path.relpath(target, src), frag))
print("links: %d relative links checked in %d files" % (nlinks, len(md_files)))

# docs/README.md indexes every page
index = os.path.join(docs_dir, "README.md")
if ok(os.path.exists(index), "docs/README.md (the index) does not exist"):
    itext = open(index, encoding="utf-8").read()
    linked = set()
    for _, line in prose_lines(itext):
        for m in LINK.finditer(line):
            linked.add(os.path.normpath(m.group(1).partition("#")[0]))
    for f in sorted(os.listdir(docs_dir)):
        if f.endswith(".md") and f != "README.md":
            ok(f in linked, "docs/README.md does not link to %s" % f)

# ------------------------------------------------------------------- flags
FLAG = re.compile(r"(?<![\w\-/.=])(--?[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)")
ALWAYS = {"--help", "-h"}


def flags_in(text):
    return set(FLAG.findall(text))


if os.path.exists(os.path.join(work, "help.errors")):
    for line in open(os.path.join(work, "help.errors")):
        ok(False, line.strip())

help_flags = {b: flags_in(open(p, encoding="utf-8", errors="replace").read())
              for b, p in helps.items()}
all_help = set().union(*help_flags.values()) if help_flags else set()
for b, fl in sorted(help_flags.items()):
    print("flags: %s --help prints %d: %s" % (b, len(fl), " ".join(sorted(fl))))
    ok(len(fl) > 0, "%s --help printed no flags" % b)

# reference.md: the section (## heading) of each binary
ref_path = os.path.join(docs_dir, "reference.md")
sections = {}  # binary -> text; "" -> the rest
if ok(os.path.exists(ref_path), "docs/reference.md does not exist"):
    cur = ""
    # code blocks are documentation too (synopses): use every line
    for line in open(ref_path, encoding="utf-8").read().split("\n"):
        h = re.match(r"^##\s+(.*)$", line)
        if h:
            title = h.group(1)
            cur = ""
            for b in ("koreo-controlplane", "koreo-agent", "koreoctl"):
                if re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(b), title):
                    cur = b
                    break
            continue
        sections.setdefault(cur, []).append(line)
    sections = {k: "\n".join(v) for k, v in sections.items()}


def roff_text(path):
    """(section name, line) of a man page with roff escapes undone."""
    sec = ""
    for line in open(path, encoding="utf-8").read().split("\n"):
        if line.startswith('.\\"') or line.startswith("'\\\""):
            continue
        t = line.replace("\\-", "-").replace("\\(em", " ").replace("\\(en", " ")
        t = re.sub(r"\\f[BIRP]|\\f\(..|\\f\[[^\]]*\]|\\&|\\e|\\ ", lambda m: "\\" if m.group(0) == "\\e" else "", t)
        s = re.match(r'^\.SH\s+"?([^"]*)"?', t)
        if s:
            sec = s.group(1).strip().upper()
            continue
        yield sec, t


MAN = {"koreoctl": "man/koreoctl.1", "koreo-controlplane": "man/koreo-controlplane.8",
       "koreo-agent": "man/koreo-agent.8"}
for b in ("koreoctl", "koreo-controlplane", "koreo-agent"):
    if b not in help_flags:
        skip("%s not built: its flags are not compared" % b)
        continue
    hf = help_flags[b]
    ref = flags_in(sections.get(b, ""))
    ok(b in sections, "docs/reference.md has no '## %s' section" % b)
    for f in sorted(hf - ref - ALWAYS):
        ok(False, "docs/reference.md (## %s) does not document %s, which --help prints" % (b, f))
    for f in sorted(ref - hf - ALWAYS):
        ok(False, "docs/reference.md (## %s) documents %s, which %s --help does not print" % (b, f, b))
    man = os.path.join(src, MAN[b])
    if not ok(os.path.exists(man), "%s does not exist" % MAN[b]):
        continue
    own, cross = set(), set()
    for sec, line in roff_text(man):
        (cross if sec in ("EXAMPLES", "EXAMPLE", "SEE ALSO") else own).update(flags_in(line))
    for f in sorted(hf - own - cross - ALWAYS):
        ok(False, "%s does not document %s, which --help prints" % (MAN[b], f))
    for f in sorted(own - hf - ALWAYS):
        ok(False, "%s documents %s, which %s --help does not print" % (MAN[b], f, b))
    for f in sorted(cross - all_help - ALWAYS) if len(help_flags) == 3 else []:
        ok(False, "%s (EXAMPLES/SEE ALSO) uses %s, which no binary's --help prints" % (MAN[b], f))
    ok(True, "%s: %d flags in --help, %d in reference.md, %d in %s"
       % (b, len(hf), len(ref), len(own), MAN[b]))

# the other sections may use any binary's flags (known only with all three)
if len(help_flags) == 3 and "" in sections:
    for f in sorted(flags_in(sections[""]) - all_help - ALWAYS):
        ok(False, "docs/reference.md mentions %s, which no binary's --help prints" % f)

# ---------------------------------------------------------------- man pages
raw = open(os.path.join(work, "man.checks"), encoding="utf-8", errors="replace").read()
for entry in [e for e in raw.split("\0") if e]:
    tool, page, out = entry.split("|", 2)
    if out == "SKIP":
        skip("%s: %s is not installed" % (page, tool))
        continue
    ok(out.strip() == "", "%s: %s warns:\n%s" % (page, tool, out.strip()))
print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed else 0)
PY
