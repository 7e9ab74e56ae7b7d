#!/usr/bin/env python3
"""tests/deploy/helm_render.py: render the charts of deploy/helm/ for the tests.

A TEST AID, NOT A HELM REPLACEMENT.  Helm is not installable on the build
machines, so the charts keep to a documented subset of Helm's Go-template
language (docs/deploy.md, "Helm charts: the template subset") and this
renderer implements exactly that subset, failing loudly on anything else:

  * actions {{ }}, trim markers {{- -}}, comments {{/* */}}
  * .Values, .Release (Name, Namespace, Service, IsInstall, IsUpgrade,
    Revision), .Chart (Name, Version, AppVersion, Description), $, $var,
    $var := / = pipelines, field chains, parenthesised pipelines, literals
  * if / else if / else, with / else, range (lists, maps in key order,
    `$i, $v :=`), define, template, end
  * functions: include, fail, default, quote, squote, toYaml, toJson, nindent,
    indent, printf, required, trunc, trimSuffix, trimPrefix, replace, lower,
    upper, int, toString, eq, ne, lt, le, gt, ge, not, and, or, empty, hasKey,
    list, dict, b64enc, contains, len
  * missing keys render as empty (Helm); a field of a missing value is an
    error (Go: "nil pointer evaluating")

Values come as JSON (tests/deploy/deploy_yaml converts values.yaml and
Chart.yaml with the project's YAML loader), so only Python's standard
library is needed.

usage: helm_render.py CHART_DIR --values-json F --chart-json F
                      [--name RELEASE] [--namespace NS] [-f OVERRIDE.json]...
                      [--set a.b=v]...
"""
import argparse
import base64
import json
import os
import re
import sys


class TemplateError(Exception):
    """A template that does not parse or does not execute: where and why."""


# --------------------------------------------------------------- lexing


class Action:
    def __init__(self, text, line):
        self.text = text
        self.line = line


def lex(src, name):
    """Split a template into text strings and Action objects, trim markers applied."""
    out = []
    i = 0
    n = len(src)
    while i < n:
        j = src.find("{{", i)
        if j < 0:
            out.append(src[i:])
            break
        text = src[i:j]
        k = j + 2
        trim_left = src.startswith("- ", k) or src.startswith("-\n", k) or src.startswith("-\t", k)
        if trim_left:
            text = text.rstrip(" \t\r\n")
            k += 1
        out.append(text)
        # find the closing }} outside string literals
        p = k
        in_str = None
        while p < n:
            c = src[p]
            if in_str:
                if c == "\\" and in_str == '"':
                    p += 2
                    continue
                if c == in_str:
                    in_str = None
            elif c in "\"`":
                in_str = c
            elif src.startswith("}}", p):
                break
            p += 1
        if p >= n:
            raise TemplateError("%s:%d: unclosed action" % (name, src.count("\n", 0, j) + 1))
        body = src[k:p]
        trim_right = body.endswith(" -") or body.endswith("\n-") or body.endswith("\t-")
        if trim_right:
            body = body[:-1]
        line = src.count("\n", 0, j) + 1
        i = p + 2
        if trim_right:
            while i < n and src[i] in " \t\r\n":
                i += 1
        stripped = body.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError("%s:%d: unclosed comment" % (name, line))
            continue
        out.append(Action(stripped, line))
    return out


TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<str>"(?:[^"\\]|\\.)*")
    | (?P<raw>`[^`]*`)
    | (?P<num>-?\d+(?:\.\d+)?)
    | (?P<decl>:=)
    | (?P<assign>=)
    | (?P<pipe>\|)
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<comma>,)
    | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
    )""",
    re.X,
)


def tokenize(text, where):
    toks = []
    i = 0
    text = text.rstrip()
    while i < len(text):
        m = TOKEN_RE.match(text, i)
        if not m or m.end() == i:
            raise TemplateError("%s: unexpected %r" % (where, text[i:].strip()[:20]))
        kind = m.lastgroup
        val = m.group(kind)
        # a field chain directly after ")" or a var is a continuation: (x).a
        if kind == "field" and toks and toks[-1][0] == "rp" and m.start(kind) == i:
            kind = "chain"
        toks.append((kind, val))
        i = m.end()
    return toks


# --------------------------------------------------------------- parsing
# Expressions: ("lit", v) ("field", [names]) ("var", name, [names])
# ("call", fname, [args]) ("pipe", [cmd, ...]) ("chain", expr, [names])


class Parser:
    def __init__(self, toks, where):
        self.toks = toks
        self.i = 0
        self.where = where

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self):
        t = self.peek()
        self.i += 1
        return t

    def err(self, msg):
        raise TemplateError("%s: %s" % (self.where, msg))

    def pipeline(self, stop=None):
        """[decl] cmd ('|' cmd)*; returns (decl_vars, op, expr)."""
        decl, op = [], None
        # look ahead for "$a :=", "$a, $b :=", "$a ="
        j = self.i
        names = []
        while j < len(self.toks) and self.toks[j][0] == "var" and "." not in self.toks[j][1]:
            names.append(self.toks[j][1])
            j += 1
            if j < len(self.toks) and self.toks[j][0] == "comma":
                j += 1
                continue
            break
        if names and j < len(self.toks) and self.toks[j][0] in ("decl", "assign"):
            decl, op = names, self.toks[j][0]
            self.i = j + 1
        cmds = [self.command(stop)]
        while self.peek()[0] == "pipe":
            self.take()
            cmds.append(self.command(stop))
        expr = cmds[0] if len(cmds) == 1 else ("pipe", cmds)
        return decl, op, expr

    def command(self, stop):
        args = []
        while True:
            kind, _ = self.peek()
            if kind is None or kind in ("pipe", "rp") or kind == stop:
                break
            args.append(self.operand())
        if not args:
            self.err("missing value in a command")
        head = args[0]
        if head[0] == "ident":
            return ("call", head[1], args[1:])
        if len(args) > 1:
            self.err("can't give arguments to a non-function")
        return head

    def operand(self):
        kind, val = self.take()
        if kind == "str":
            e = ("lit", json.loads(val))
        elif kind == "raw":
            e = ("lit", val[1:-1])
        elif kind == "num":
            e = ("lit", float(val) if "." in val else int(val))
        elif kind == "field":
            e = ("field", [] if val == "." else val[1:].split("."))
        elif kind == "var":
            parts = val.split(".")
            e = ("var", parts[0], parts[1:])
        elif kind == "ident":
            if val in ("true", "false"):
                e = ("lit", val == "true")
            elif val == "nil":
                e = ("lit", None)
            elif "." in val:
                self.err("unknown name %r" % val)
            else:
                e = ("ident", val)
        elif kind == "lp":
            _, _, inner = self.pipeline()
            if self.take()[0] != "rp":
                self.err("unclosed parenthesis")
            e = ("paren", inner)
        else:
            self.err("unexpected %r" % val)
        while self.peek()[0] == "chain":
            e = ("chain", e, self.take()[1][1:].split("."))
        return e


KEYWORDS = ("if", "else", "end", "with", "range", "define", "template", "block")


def parse_action(text, where):
    """An action's text -> (keyword or None, rest text)."""
    m = re.match(r"(if|else|end|with|range|define|template|block)\b\s*(.*)$", text, re.S)
    if m:
        return m.group(1), m.group(2)
    return None, text


def parse_pipeline(text, where):
    p = Parser(tokenize(text, where), where)
    res = p.pipeline()
    if p.i != len(p.toks):
        p.err("unexpected %r" % (p.toks[p.i][1],))
    return res


def parse(items, name, defines):
    """Items from lex() -> node list; define blocks go into `defines`."""
    pos = [0]

    def block(stop_words):
        nodes = []
        while pos[0] < len(items):
            it = items[pos[0]]
            pos[0] += 1
            if isinstance(it, str):
                if it:
                    nodes.append(("text", it))
                continue
            where = "%s:%d" % (name, it.line)
            kw, rest = parse_action(it.text, where)
            if kw in ("end", "else"):
                if kw not in stop_words:
                    raise TemplateError("%s: unexpected {{%s}}" % (where, kw))
                return nodes, kw, rest, where
            if kw in ("if", "with", "range"):
                nodes.append(control(kw, rest, where))
            elif kw == "define":
                tname = parse_pipeline(rest, where)[2]
                if tname[0] != "lit" or not isinstance(tname[1], str):
                    raise TemplateError("%s: define needs a string name" % where)
                body, end_kw, _, _ = block(("end",))
                if end_kw != "end":
                    raise TemplateError("%s: define without end" % where)
                defines[tname[1]] = body
            elif kw == "template":
                toks = tokenize(rest, where)
                p = Parser(toks, where)
                tname = p.operand()
                arg = p.pipeline()[2] if p.i < len(toks) else ("lit", None)
                nodes.append(("template", tname, arg, where))
            elif kw == "block":
                raise TemplateError("%s: block is outside the supported subset" % where)
            else:
                decl, op, expr = parse_pipeline(it.text, where)
                nodes.append(("action", decl, op, expr, where))
        if stop_words:
            raise TemplateError("%s: missing {{end}}" % name)
        return nodes, None, None, None

    def control(kw, rest, where):
        decl, op, expr = parse_pipeline(rest, where)
        body, end_kw, end_rest, end_where = block(("end", "else"))
        else_body = []
        if end_kw == "else":
            sub_kw, sub_rest = parse_action(end_rest, end_where)
            if sub_kw in ("if", "with"):
                else_body = [control(sub_kw, sub_rest, end_where)]
                # the chained control consumed the shared {{end}}
                return (kw, decl, op, expr, body, else_body, where)
            if end_rest.strip():
                raise TemplateError("%s: unexpected %r after else" % (end_where, end_rest))
            else_body, end_kw2, _, _ = block(("end",))
            if end_kw2 != "end":
                raise TemplateError("%s: missing {{end}}" % where)
        return (kw, decl, op, expr, body, else_body, where)

    nodes, kw, _, where = block(())
    return nodes


# --------------------------------------------------------------- values


def truthy(v):
    if v is None or v is False:
        return False
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v != 0
    if isinstance(v, (str, list, dict, tuple)):
        return len(v) > 0
    return True


def go_str(v):
    """How Go's fmt prints a value (%v) in templates; nil prints as empty (Helm)."""
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, float):
        return repr(v) if v != int(v) else str(int(v))
    if isinstance(v, list):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join("%s:%s" % (k, go_str(v[k])) for k in sorted(v)) + "]"
    return str(v)


YAML_SPECIAL = re.compile(
    r"^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|null|Null|NULL|~|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
NUMBER_LIKE = re.compile(r"^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$|^0[xXoObB]|^\d+:\d")
PLAIN_OK = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./:@=+-]*$")


def yaml_scalar(v):
    if v is None:
        return "null"
    if isinstance(v, (bool, int)):
        return go_str(v)  # true, false, 12
    if isinstance(v, float):
        return repr(v)
    s = str(v)
    if (
        PLAIN_OK.match(s)
        and not YAML_SPECIAL.match(s)
        and not NUMBER_LIKE.match(s)
        and not s.endswith(":")
        and ": " not in s
    ):
        return s
    return json.dumps(s, ensure_ascii=False)


def to_yaml(v, indent=0):
    """Block YAML of a value (keys sorted, as Helm's toYaml); no final newline."""
    pad = " " * indent
    if isinstance(v, dict):
        if not v:
            return pad + "{}"
        lines = []
        for k in sorted(v):
            val = v[k]
            key = yaml_scalar(str(k))
            if isinstance(val, dict) and val:
                lines.append("%s%s:\n%s" % (pad, key, to_yaml(val, indent + 2)))
            elif isinstance(val, list) and val:
                lines.append("%s%s:\n%s" % (pad, key, to_yaml(val, indent)))
            else:
                lines.append("%s%s: %s" % (pad, key, to_yaml(val, 0).lstrip(" ")))
        return "\n".join(lines)
    if isinstance(v, list):
        if not v:
            return pad + "[]"
        lines = []
        for item in v:
            if isinstance(item, (dict, list)) and item:
                inner = to_yaml(item, indent + 2)
                lines.append(pad + "- " + inner[indent + 2 :])
            else:
                lines.append(pad + "- " + to_yaml(item, 0))
        return "\n".join(lines)
    if isinstance(v, str) and "\n" in v:
        return pad + json.dumps(v, ensure_ascii=False)
    return pad + yaml_scalar(v)


def go_printf(fmt, args, where):
    out = []
    ai = 0
    i = 0
    while i < len(fmt):
        c = fmt[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        if i + 1 >= len(fmt):
            raise TemplateError("%s: printf: dangling %%" % where)
        verb = fmt[i + 1]
        i += 2
        if verb == "%":
            out.append("%")
            continue
        if ai >= len(args):
            raise TemplateError("%s: printf: missing argument for %%%s" % (where, verb))
        a = args[ai]
        ai += 1
        if verb in "sv":
            out.append(go_str(a))
        elif verb == "d":
            if not isinstance(a, int) or isinstance(a, bool):
                raise TemplateError("%s: printf: %%d of a %s" % (where, type(a).__name__))
            out.append(str(a))
        elif verb == "q":
            out.append(json.dumps(go_str(a), ensure_ascii=False))
        else:
            raise TemplateError("%s: printf: verb %%%s is outside the subset" % (where, verb))
    return "".join(out)


def indent_text(n, s):
    pad = " " * n
    return "\n".join(pad + line for line in str(s).split("\n"))


def go_eq(a, b):
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


# --------------------------------------------------------------- execution


class Renderer:
    def __init__(self, defines):
        self.defines = defines
        self.depth = 0

    def call(self, fname, args, where, dot, scopes):
        def need(n):
            if len(args) != n:
                raise TemplateError("%s: %s needs %d arguments, got %d" % (where, fname, n, len(args)))

        if fname == "include":
            need(2)
            return self.run_named(args[0], args[1], where)
        if fname == "fail":
            need(1)
            raise TemplateError("%s: fail: %s" % (where, go_str(args[0])))
        if fname == "default":
            need(2)
            return args[1] if truthy(args[1]) else args[0]
        if fname == "quote":
            return " ".join(json.dumps(go_str(a), ensure_ascii=False) for a in args if a is not None)
        if fname == "squote":
            return " ".join("'%s'" % go_str(a) for a in args if a is not None)
        if fname == "toYaml":
            need(1)
            return "" if args[0] is None else to_yaml(args[0])
        if fname == "toJson":
            need(1)
            return json.dumps(args[0], separators=(",", ":"), sort_keys=True)
        if fname in ("nindent", "indent"):
            need(2)
            if not isinstance(args[0], int):
                raise TemplateError("%s: %s needs a number first" % (where, fname))
            s = indent_text(args[0], go_str(args[1]))
            return "\n" + s if fname == "nindent" else s
        if fname == "printf":
            if not args or not isinstance(args[0], str):
                raise TemplateError("%s: printf needs a format string" % where)
            return go_printf(args[0], args[1:], where)
        if fname == "required":
            need(2)
            if args[1] is None or args[1] == "":
                raise TemplateError("%s: required: %s" % (where, args[0]))
            return args[1]
        if fname == "trunc":
            need(2)
            s = go_str(args[1])
            return s[: args[0]] if args[0] >= 0 else s[args[0] :]
        if fname == "trimSuffix":
            need(2)
            s = go_str(args[1])
            return s[: -len(args[0])] if args[0] and s.endswith(args[0]) else s
        if fname == "trimPrefix":
            need(2)
            s = go_str(args[1])
            return s[len(args[0]) :] if args[0] and s.startswith(args[0]) else s
        if fname == "replace":
            need(3)
            return go_str(args[2]).replace(args[0], args[1])
        if fname == "lower":
            need(1)
            return go_str(args[0]).lower()
        if fname == "upper":
            need(1)
            return go_str(args[0]).upper()
        if fname == "int":
            need(1)
            try:
                return int(float(args[0])) if args[0] is not None else 0
            except (TypeError, ValueError):
                raise TemplateError("%s: int: %r is not a number" % (where, args[0]))
        if fname == "toString":
            need(1)
            return go_str(args[0])
        if fname == "b64enc":
            need(1)
            return base64.b64encode(go_str(args[0]).encode()).decode()
        if fname == "contains":
            need(2)
            return args[0] in go_str(args[1])
        if fname == "len":
            need(1)
            return len(args[0]) if args[0] is not None else 0
        if fname in ("eq", "ne"):
            if len(args) < 2:
                raise TemplateError("%s: %s needs 2 arguments" % (where, fname))
            r = any(go_eq(args[0], b) for b in args[1:])
            return r if fname == "eq" else not r
        if fname in ("lt", "le", "gt", "ge"):
            need(2)
            a, b = args
            try:
                return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[fname]
            except TypeError:
                raise TemplateError("%s: %s: incompatible types" % (where, fname))
        if fname == "not":
            need(1)
            return not truthy(args[0])
        if fname == "empty":
            need(1)
            return not truthy(args[0])
        if fname == "hasKey":
            need(2)
            return isinstance(args[0], dict) and args[1] in args[0]
        if fname == "list":
            return list(args)
        if fname == "dict":
            if len(args) % 2:
                raise TemplateError("%s: dict needs key/value pairs" % where)
            return {go_str(args[i]): args[i + 1] for i in range(0, len(args), 2)}
        raise TemplateError("%s: function %r is outside the supported subset" % (where, fname))

    def lookup(self, v, names, where, what):
        for nm in names:
            if v is None:
                raise TemplateError("%s: nil pointer evaluating %s.%s" % (where, what, nm))
            if not isinstance(v, dict):
                raise TemplateError("%s: can't evaluate field %s in a %s" % (where, nm, type(v).__name__))
            v = v.get(nm)
            what += "." + nm
        return v

    def var(self, name, scopes, where):
        for s in reversed(scopes):
            if name in s:
                return s[name]
        raise TemplateError("%s: undefined variable %s" % (where, name))

    def eval(self, e, dot, scopes, where, piped=None):
        k = e[0]
        if k == "pipe":
            v = None
            for idx, cmd in enumerate(e[1]):
                v = self.eval(cmd, dot, scopes, where, piped=(v,) if idx else None)
            return v
        if k == "call":
            if e[1] in ("and", "or"):
                vals = [self.eval(a, dot, scopes, where) for a in e[2]]
                if piped is not None:
                    vals.append(piped[0])
                if not vals:
                    raise TemplateError("%s: %s needs arguments" % (where, e[1]))
                for v in vals:
                    if truthy(v) != (e[1] == "and"):
                        return v
                return vals[-1]
            args = [self.eval(a, dot, scopes, where) for a in e[2]]
            if piped is not None:
                args.append(piped[0])
            return self.call(e[1], args, where, dot, scopes)
        if piped is not None:
            raise TemplateError("%s: can't pipe into a non-function" % where)
        if k == "lit":
            return e[1]
        if k == "field":
            return self.lookup(dot, e[1], where, "")
        if k == "var":
            return self.lookup(self.var(e[1], scopes, where), e[2], where, e[1])
        if k == "paren":
            return self.eval(e[1], dot, scopes, where)
        if k == "chain":
            return self.lookup(self.eval(e[1], dot, scopes, where), e[2], where, "(...)")
        if k == "ident":
            return self.call(e[1], [], where, dot, scopes)
        raise TemplateError("%s: cannot evaluate %r" % (where, k))

    def run_named(self, name, data, where):
        if name not in self.defines:
            raise TemplateError("%s: no template %r defined" % (where, name))
        self.depth += 1
        if self.depth > 100:
            raise TemplateError("%s: templates nested too deeply (recursion?)" % where)
        try:
            out = []
            self.run(self.defines[name], data, [{"$": data}], out)
            return "".join(out)
        finally:
            self.depth -= 1

    def run(self, nodes, dot, scopes, out):
        for nd in nodes:
            k = nd[0]
            if k == "text":
                out.append(nd[1])
            elif k == "action":
                _, decl, op, expr, where = nd
                v = self.eval(expr, dot, scopes, where)
                if decl:
                    if len(decl) != 1:
                        raise TemplateError("%s: too many variables" % where)
                    if op == "decl":
                        scopes[-1][decl[0]] = v
                    else:
                        for s in reversed(scopes):
                            if decl[0] in s:
                                s[decl[0]] = v
                                break
                        else:
                            raise TemplateError("%s: undefined variable %s" % (where, decl[0]))
                else:
                    out.append(go_str(v))
            elif k == "template":
                _, tname, arg, where = nd
                name = self.eval(tname, dot, scopes, where)
                out.append(self.run_named(name, self.eval(arg, dot, scopes, where), where))
            elif k in ("if", "with", "range"):
                self.control(nd, dot, scopes, out)
            else:
                raise TemplateError("unknown node %r" % (k,))

    def control(self, nd, dot, scopes, out):
        kw, decl, op, expr, body, else_body, where = nd
        v = self.eval(expr, dot, scopes, where)
        if kw == "range":
            if v is None:
                items = []
            elif isinstance(v, dict):
                items = [(key, v[key]) for key in sorted(v)]
            elif isinstance(v, list):
                items = list(enumerate(v))
            else:
                raise TemplateError("%s: range can't iterate over %s" % (where, go_str(v)))
            if len(decl) > 2:
                raise TemplateError("%s: too many range variables" % where)
            if not items:
                self.run(else_body, dot, scopes + [{}], out)
            for key, item in items:
                scope = {}
                if len(decl) == 1:
                    scope[decl[0]] = item
                elif len(decl) == 2:
                    scope[decl[0]], scope[decl[1]] = key, item
                self.run(body, item, scopes + [scope], out)
            return
        scope = {}
        if decl:
            if len(decl) != 1:
                raise TemplateError("%s: too many variables" % where)
            scope[decl[0]] = v
        if truthy(v):
            self.run(body, v if kw == "with" else dot, scopes + [scope], out)
        else:
            self.run(else_body, dot, scopes + [scope], out)


# --------------------------------------------------------------- charts


def deep_merge(base, over):
    if isinstance(base, dict) and isinstance(over, dict):
        r = dict(base)
        for k, v in over.items():
            r[k] = deep_merge(base.get(k), v) if k in base else v
        return r
    return over


def parse_set(expr):
    """--set a.b=v (v: true/false/null/int or a string) -> nested dict."""
    if "=" not in expr:
        raise TemplateError("--set %r: needs KEY=VALUE" % expr)
    key, raw = expr.split("=", 1)
    if raw in ("true", "false"):
        val = raw == "true"
    elif raw == "null":
        val = None
    elif re.match(r"^-?\d+$", raw):
        val = int(raw)
    else:
        val = raw
    for part in reversed(key.split(".")):
        val = {part: val}
    return val


def render_chart(chart_dir, values, chart_meta, release_name, namespace, revision=1):
    """Render every templates/*.yaml of a chart; returns [(file, text)]."""
    tdir = os.path.join(chart_dir, "templates")
    files = sorted(os.listdir(tdir))
    defines = {}
    parsed = []
    for f in files:
        path = os.path.join(tdir, f)
        if not os.path.isfile(path) or f == "NOTES.txt":
            continue
        if not (f.endswith(".yaml") or f.endswith(".tpl") or f.endswith(".yml")):
            continue
        with open(path, encoding="utf-8") as fh:
            src = fh.read()
        rel = "%s/templates/%s" % (chart_meta.get("name", "chart"), f)
        nodes = parse(lex(src, rel), rel, defines)
        if not f.startswith("_"):
            parsed.append((rel, nodes))
    top = {
        "Values": values,
        "Release": {
            "Name": release_name,
            "Namespace": namespace,
            "Service": "Helm",
            "IsInstall": revision == 1,
            "IsUpgrade": revision > 1,
            "Revision": revision,
        },
        "Chart": {
            "Name": chart_meta.get("name"),
            "Version": chart_meta.get("version"),
            "AppVersion": chart_meta.get("appVersion"),
            "Description": chart_meta.get("description"),
        },
    }
    r = Renderer(defines)
    result = []
    for rel, nodes in parsed:
        out = []
        r.run(nodes, top, [{"$": top}], out)
        text = "".join(out)
        if text.strip():
            result.append((rel, text))
    return result


def main(argv):
    ap = argparse.ArgumentParser(description="Render a chart of deploy/helm (test aid, not Helm).")
    ap.add_argument("chart")
    ap.add_argument("--values-json", required=True)
    ap.add_argument("--chart-json", required=True)
    ap.add_argument("--name", default="koreo")
    ap.add_argument("--namespace", default="koreo-system")
    ap.add_argument("-f", dest="overrides", action="append", default=[])
    ap.add_argument("--set", dest="sets", action="append", default=[])
    a = ap.parse_args(argv)
    try:
        with open(a.values_json) as fh:
            values = json.load(fh) or {}
        with open(a.chart_json) as fh:
            meta = json.load(fh) or {}
        for o in a.overrides:
            with open(o) as fh:
                values = deep_merge(values, json.load(fh) or {})
        for s in a.sets:
            values = deep_merge(values, parse_set(s))
        docs = render_chart(a.chart, values, meta, a.name, a.namespace)
    except (TemplateError, OSError, ValueError) as e:
        print("helm_render: %s" % e, file=sys.stderr)
        return 1
    for rel, text in docs:
        sys.stdout.write("---\n# Source: %s\n%s\n" % (rel, text.strip("\n")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
