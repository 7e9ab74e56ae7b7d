#!/usr/bin/env python3
"""tests/deploy/test_helm_render.py: unit tests of helm_render.py, the test
aid that renders deploy/helm charts (not Helm).  Each construct of the
documented template subset gives the output Helm gives for it, and what is
outside the subset or wrong fails with a message saying where."""
import json
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import helm_render as hr  # noqa: E402


def render(src, values=None, defines_src="", release="rel", namespace="ns"):
    defines = {}
    if defines_src:
        hr.parse(hr.lex(defines_src, "_helpers.tpl"), "_helpers.tpl", defines)
    nodes = hr.parse(hr.lex(src, "t.yaml"), "t.yaml", defines)
    top = {
        "Values": values or {},
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": "c", "Version": "1.2.3", "AppVersion": "0.1.0"},
    }
    out = []
    hr.Renderer(defines).run(nodes, top, [{"$": top}], out)
    return "".join(out)


class Basics(unittest.TestCase):
    def test_text_and_fields(self):
        self.assertEqual(render("a: {{ .Values.x }}", {"x": 3}), "a: 3")
        self.assertEqual(render("{{ .Release.Name }}/{{ .Release.Namespace }}"), "rel/ns")
        self.assertEqual(render("{{ .Chart.Name }}-{{ .Chart.Version }}"), "c-1.2.3")
        self.assertEqual(render("{{ .Values.a.b.c }}", {"a": {"b": {"c": "deep"}}}), "deep")

    def test_missing_key_is_empty_but_field_of_missing_fails(self):
        self.assertEqual(render("[{{ .Values.nope }}]"), "[]")
        with self.assertRaisesRegex(hr.TemplateError, r"t.yaml:1: nil pointer evaluating .Values.nope.x"):
            render("{{ .Values.nope.x }}")

    def test_trim_markers(self):
        self.assertEqual(render("a  \n  {{- 1 }}  \n b"), "a1  \n b")
        self.assertEqual(render("a {{ 1 -}}  \n\n b"), "a 1b")
        self.assertEqual(render("x\n{{- /* gone */ -}}\ny"), "xy")
        self.assertEqual(render("x{{/* c */}}y"), "xy")

    def test_string_literals_with_braces(self):
        self.assertEqual(render('{{ "}}" }}'), "}}")
        self.assertEqual(render("{{ `raw\\n` }}"), "raw\\n")
        self.assertEqual(render('{{ "a\\tb" }}'), "a\tb")

    def test_booleans_numbers_nil(self):
        self.assertEqual(render("{{ true }} {{ false }} {{ 12 }} {{ 1.5 }} [{{ nil }}]"), "true false 12 1.5 []")


class Control(unittest.TestCase):
    def test_if_else_if_else(self):
        t = "{{ if eq .Values.m 1 }}one{{ else if eq .Values.m 2 }}two{{ else }}many{{ end }}"
        self.assertEqual(render(t, {"m": 1}), "one")
        self.assertEqual(render(t, {"m": 2}), "two")
        self.assertEqual(render(t, {"m": 7}), "many")

    def test_truthiness_is_gos(self):
        for v, want in [(0, "F"), ("", "F"), ([], "F"), ({}, "F"), (None, "F"), (False, "F"),
                        (1, "T"), ("x", "T"), ([0], "T"), ({"a": 1}, "T"), (True, "T")]:
            self.assertEqual(render("{{ if .Values.v }}T{{ else }}F{{ end }}", {"v": v}), want, v)

    def test_with_sets_dot_and_else(self):
        t = "{{ with .Values.img }}{{ .repo }}:{{ .tag }}{{ else }}none{{ end }}"
        self.assertEqual(render(t, {"img": {"repo": "r", "tag": "t"}}), "r:t")
        self.assertEqual(render(t, {}), "none")

    def test_dollar_reaches_the_root_inside_with_and_range(self):
        t = "{{ with .Values.a }}{{ $.Release.Name }}{{ end }}"
        self.assertEqual(render(t, {"a": 1}), "rel")
        t = "{{ range .Values.l }}{{ $.Values.p }}{{ . }},{{ end }}"
        self.assertEqual(render(t, {"l": [1, 2], "p": "-"}), "-1,-2,")

    def test_range_list_map_vars_and_else(self):
        self.assertEqual(render("{{ range $i, $v := .Values.l }}{{ $i }}={{ $v }};{{ end }}",
                                {"l": ["a", "b"]}), "0=a;1=b;")
        self.assertEqual(render("{{ range $k, $v := .Values.m }}{{ $k }}={{ $v }};{{ end }}",
                                {"m": {"z": 1, "a": 2}}), "a=2;z=1;")
        self.assertEqual(render("{{ range .Values.l }}x{{ else }}empty{{ end }}", {"l": []}), "empty")
        self.assertEqual(render("{{ range .Values.missing }}x{{ end }}"), "")

    def test_variables_and_scopes(self):
        self.assertEqual(render("{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}"), "2")
        self.assertEqual(render("{{ $x := .Values.a }}{{ $x.b }}", {"a": {"b": "ok"}}), "ok")
        with self.assertRaisesRegex(hr.TemplateError, "undefined variable \\$y"):
            render("{{ if true }}{{ $y := 1 }}{{ end }}{{ $y }}")

    def test_define_include_template(self):
        d = '{{- define "c.name" -}}{{ .Release.Name }}-x{{- end }}' \
            '{{ define "c.labels" }}app: {{ include "c.name" . }}{{ end }}'
        self.assertEqual(render('n: {{ include "c.name" . }}', defines_src=d), "n: rel-x")
        self.assertEqual(render('{{ template "c.labels" . }}', defines_src=d), "app: rel-x")
        self.assertEqual(render('{{ include "c.labels" . | nindent 2 }}', defines_src=d), "\n  app: rel-x")
        with self.assertRaisesRegex(hr.TemplateError, "no template 'nope'"):
            render('{{ include "nope" . }}')

    def test_recursion_is_stopped(self):
        d = '{{ define "r" }}{{ include "r" . }}{{ end }}'
        with self.assertRaisesRegex(hr.TemplateError, "nested too deeply"):
            render('{{ include "r" . }}', defines_src=d)

    def test_unbalanced_blocks(self):
        with self.assertRaisesRegex(hr.TemplateError, "missing {{end}}"):
            render("{{ if true }}x")
        with self.assertRaisesRegex(hr.TemplateError, "t.yaml:2: unexpected {{end}}"):
            render("x\n{{ end }}")
        with self.assertRaisesRegex(hr.TemplateError, "t.yaml:1: unclosed action"):
            render("{{ .Values.x ")


class Functions(unittest.TestCase):
    def test_default(self):
        self.assertEqual(render('{{ .Values.a | default "d" }}', {}), "d")
        self.assertEqual(render('{{ .Values.a | default "d" }}', {"a": "v"}), "v")
        self.assertEqual(render('{{ default "d" .Values.a }}', {"a": ""}), "d")
        self.assertEqual(render("{{ .Values.a | default 5 }}", {"a": 0}), "5")

    def test_quote(self):
        self.assertEqual(render("{{ .Values.a | quote }}", {"a": 'x"y'}), '"x\\"y"')
        self.assertEqual(render("{{ .Values.a | quote }}", {"a": 8080}), '"8080"')
        self.assertEqual(render("{{ .Values.a | quote }}", {"a": True}), '"true"')
        self.assertEqual(render("{{ .Values.a | squote }}", {"a": "x"}), "'x'")

    def test_toyaml_nindent_round_trip(self):
        v = {"b": [1, "two", {"k": "v", "n": None}], "a": {"x": True, "y": "3"}, "e": {}, "l": [],
             "s": "a: b", "m": "line1\nline2", "bool_str": "yes", "num_str": "0.5", "neg": -1}
        out = render("root:{{ toYaml .Values | nindent 2 }}", v)
        self.assertEqual(out.splitlines()[1], "  a:")  # keys sorted like Helm
        self.assertIn('  bool_str: "yes"', out)
        self.assertIn('  num_str: "0.5"', out)
        self.assertIn("  e: {}", out)
        # the output is YAML that reads back as the same value
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
            fh.write(out)
        try:
            back = yaml_to_value(fh.name)
        finally:
            os.unlink(fh.name)
        if back is not None:
            self.assertEqual(back, [{"root": v}])

    def test_printf_and_strings(self):
        self.assertEqual(render('{{ printf "%s-%d %q %v%%" "a" 3 "q" true }}'), 'a-3 "q" true%')
        with self.assertRaisesRegex(hr.TemplateError, "printf: %d of a str"):
            render('{{ printf "%d" "x" }}')
        self.assertEqual(render('{{ "abcdef" | trunc 3 }}'), "abc")
        self.assertEqual(render('{{ "name-" | trimSuffix "-" }}'), "name")
        self.assertEqual(render('{{ "v1.2" | trimPrefix "v" }}'), "1.2")
        self.assertEqual(render('{{ "a.b" | replace "." "-" | upper }}'), "A-B")
        self.assertEqual(render('{{ "x" | b64enc }}'), "eA==")
        self.assertEqual(render("{{ indent 2 \"a\\nb\" }}"), "  a\n  b")

    def test_required(self):
        self.assertEqual(render('{{ required "need x" .Values.x }}', {"x": "ok"}), "ok")
        with self.assertRaisesRegex(hr.TemplateError, "t.yaml:1: required: need x"):
            render('{{ required "need x" .Values.x }}')

    def test_logic_and_comparisons(self):
        self.assertEqual(render("{{ and 1 0 }} {{ or 0 \"\" 3 }} {{ not 0 }}"), "0 3 true")
        self.assertEqual(render('{{ eq "a" "b" "a" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ ge 1 2 }}'),
                         "true true true false")
        self.assertEqual(render("{{ eq 1 true }}"), "false")
        self.assertEqual(render("{{ if and .Values.a (not .Values.b) }}y{{ end }}", {"a": 1}), "y")

    def test_collections(self):
        self.assertEqual(render("{{ hasKey .Values \"a\" }} {{ empty .Values.l }} {{ len .Values.l }}",
                                {"a": None, "l": []}), "true true 0")
        self.assertEqual(render('{{ toJson (dict "b" 1 "a" (list 1 2)) }}'), '{"a":[1,2],"b":1}')
        self.assertEqual(render('{{ (dict "a" (dict "b" "c")).a.b }}'), "c")

    def test_outside_the_subset_is_refused(self):
        with self.assertRaisesRegex(hr.TemplateError, "function 'lookup' is outside the supported subset"):
            render('{{ lookup "v1" "Secret" "ns" "n" }}')
        with self.assertRaisesRegex(hr.TemplateError, "block is outside"):
            render('{{ block "x" . }}{{ end }}')
        with self.assertRaisesRegex(hr.TemplateError, "can't give arguments to a non-function"):
            render("{{ .Values.a 1 }}", {"a": 1})


class Charts(unittest.TestCase):
    def test_set_and_merge(self):
        self.assertEqual(hr.parse_set("a.b=true"), {"a": {"b": True}})
        self.assertEqual(hr.parse_set("a=12"), {"a": 12})
        self.assertEqual(hr.parse_set("a=x=y"), {"a": "x=y"})
        self.assertEqual(hr.deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": 3}, "l": [2]}),
                         {"a": {"b": 3, "c": 2}, "l": [2]})

    def test_chart_rendering_skips_helpers_and_empty_output(self):
        with tempfile.TemporaryDirectory() as d:
            os.mkdir(os.path.join(d, "templates"))
            files = {
                "_helpers.tpl": '{{ define "n" }}{{ .Release.Name }}-{{ .Chart.Name }}{{ end }}',
                "a.yaml": "kind: A\nname: {{ include \"n\" . }}\n",
                "b.yaml": "{{ if .Values.b }}kind: B{{ end }}\n",
                "NOTES.txt": "{{ nonsense",
            }
            for f, s in files.items():
                with open(os.path.join(d, "templates", f), "w") as fh:
                    fh.write(s)
            out = hr.render_chart(d, {"b": False}, {"name": "ch"}, "r", "ns")
            self.assertEqual(out, [("ch/templates/a.yaml", "kind: A\nname: r-ch\n")])
            out = hr.render_chart(d, {"b": True}, {"name": "ch"}, "r", "ns")
            self.assertEqual([f for f, _ in out], ["ch/templates/a.yaml", "ch/templates/b.yaml"])


def yaml_to_value(path):
    """Read YAML back with the project's loader (deploy_yaml); None without it."""
    tool = os.environ.get("DEPLOY_YAML")
    if not tool:
        return None
    import subprocess

    r = subprocess.run([tool, "json", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("deploy_yaml: " + r.stderr)
    return [e["doc"] for e in json.loads(r.stdout)]


if __name__ == "__main__":
    unittest.main(verbosity=1)
