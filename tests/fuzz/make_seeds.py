#!/usr/bin/env python3
"""tests/fuzz/make_seeds.py: write the seed corpora of the fuzz targets.

    make_seeds.py OUT_DIR [--shared DIR]

Writes OUT_DIR/json, OUT_DIR/yaml and OUT_DIR/cel, one seed per file, named
by the SHA-1 of its content (so re-running is idempotent and duplicates
collapse).  Sources, under the shared folder (default: ../shared relative
to the repository root):

  json: the `bindings`, `spec` and `expected` objects of every case in
        conformance/koreo-expressions/cases.jsonl, written compact and
        pretty, plus a few hand-written edge cases (numbers, escapes);
  yaml: every reference/koreo-examples/**/*.yaml (and .yml) file, plus a
        few edge cases (anchors, merges, tags, YAML 1.1 scalars);
  cel:  the `expr` of every case in conformance/cel/*.jsonl and the
        `encoded` expression of every Koreo case.

Exits non-zero when a source folder is missing, so a broken path is noticed.
"""
import argparse
import glob
import hashlib
import json
import os
import sys

EXTRA_JSON = [
    '3', '3.0', '-0', '1e+20', '1E400', '18446744073709551615', '-9223372036854775808',
    '"\\ud83d\\ude00 caf\u00e9 \\u0000"', '{"a":1,"a":2}', '[[[[]]]]', '{"k":[true,false,null]}',
    '0.1', '5e-324', '"\\"\\\\\\/\\b\\f\\n\\r\\t"',
]

EXTRA_YAML = [
    'a: &x {b: 1}\nc: *x\nd:\n  <<: *x\n  e: 2\n',
    'm:\n  <<: [{a: 1}, {a: 2, b: 3}]\n',
    '- yes\n- No\n- on\n- 0x1F\n- 017\n- 1_000\n- .inf\n- ~\n- 1e3\n- "yes"\n- 1:30\n- 1.5e+3\n',
    '--- 1\n--- [a, b]\n...\n---\n',
    'a: !!binary aGVsbG8=\nb: !!set {x, y}\nc: !!omap [a: 1]\nd: !!int "0x10"\n',
    'block: |\n  line\n  two\nfolded: >-\n  a\n  b\n',
    '? complex key\n: value\n"quoted": \'single\'\n',
]


def sha(data):
    return hashlib.sha1(data).hexdigest()


def write(folder, data, counts, kind):
    if isinstance(data, str):
        data = data.encode('utf-8', 'surrogatepass')
    path = os.path.join(folder, sha(data))
    if not os.path.exists(path):
        with open(path, 'wb') as f:
            f.write(data)
        counts[kind] += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('out', help='output folder (json/, yaml/ and cel/ are made inside)')
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument('--shared', default=os.path.join(repo, '..', 'shared'),
                    help='the shared folder (default: ../shared from the repository root)')
    args = ap.parse_args()

    shared = os.path.abspath(args.shared)
    cases = os.path.join(shared, 'conformance', 'koreo-expressions', 'cases.jsonl')
    cel_dir = os.path.join(shared, 'conformance', 'cel')
    examples = os.path.join(shared, 'reference', 'koreo-examples')
    for p in (cases, cel_dir, examples):
        if not os.path.exists(p):
            sys.exit('make_seeds.py: missing %s' % p)

    dirs = {k: os.path.join(args.out, k) for k in ('json', 'yaml', 'cel')}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    counts = {k: 0 for k in dirs}

    with open(cases, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            case = json.loads(line)
            for key in ('bindings', 'spec', 'expected'):
                if key in case:
                    v = case[key]
                    write(dirs['json'], json.dumps(v, ensure_ascii=False), counts, 'json')
                    if isinstance(v, (dict, list)):
                        write(dirs['json'], json.dumps(v, indent=2, sort_keys=True),
                              counts, 'json')
            if isinstance(case.get('encoded'), str):
                write(dirs['cel'], case['encoded'], counts, 'cel')
    for s in EXTRA_JSON:
        write(dirs['json'], s, counts, 'json')

    for path in sorted(glob.glob(os.path.join(cel_dir, '*.jsonl'))):
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.strip()
                if line:
                    expr = json.loads(line).get('expr')
                    if isinstance(expr, str):
                        write(dirs['cel'], expr, counts, 'cel')

    for ext in ('yaml', 'yml'):
        for path in sorted(glob.glob(os.path.join(examples, '**', '*.' + ext), recursive=True)):
            with open(path, 'rb') as f:
                write(dirs['yaml'], f.read(), counts, 'yaml')
    for s in EXTRA_YAML:
        write(dirs['yaml'], s, counts, 'yaml')

    print('make_seeds.py: new seeds: %s (in %s)' %
          (', '.join('%s %d' % kv for kv in sorted(counts.items())), os.path.abspath(args.out)))


if __name__ == '__main__':
    main()
