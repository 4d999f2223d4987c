package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A small swagger document with what the real one has: a kind with a
// group-version-kind, $refs, IntOrString, Quantity, a recursive type, and a
// property called "description".
const swagger = `{
 "definitions": {
  "io.k8s.api.apps.v1.Deployment": {
   "description": "A Deployment.",
   "type": "object",
   "x-kubernetes-group-version-kind": [{"group": "apps", "kind": "Deployment", "version": "v1"}],
   "properties": {
    "apiVersion": {"type": "string"},
    "kind": {"type": "string"},
    "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
    "spec": {"$ref": "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"}
   }
  },
  "io.k8s.api.apps.v1.DeploymentSpec": {
   "type": "object",
   "properties": {
    "replicas": {"type": "integer", "format": "int32"},
    "maxSurge": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
    "memory": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.api.resource.Quantity"},
    "description": {"type": "string", "description": "a field named description"},
    "tree": {"$ref": "#/definitions/io.example.Tree"}
   }
  },
  "io.example.Tree": {
   "type": "object",
   "properties": {"children": {"type": "array", "items": {"$ref": "#/definitions/io.example.Tree"}}}
  },
  "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta": {
   "type": "object",
   "properties": {"name": {"type": "string"}, "labels": {"type": "object", "additionalProperties": {"type": "string"}}}
  },
  "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {"type": "string", "format": "int-or-string"},
  "io.k8s.apimachinery.pkg.api.resource.Quantity": {"type": "string"},
  "io.k8s.api.core.v1.Pod": {
   "type": "object",
   "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
   "properties": {"spec": {"type": "object"}}
  }
 }
}`

const crd = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
spec:
  group: keda.sh
  names: {kind: ScaledObject}
  versions:
    - name: v1alpha1
      served: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [scaleTargetRef]
              properties:
                scaleTargetRef:
                  type: object
                  properties: {name: {type: string}}
                fallback:
                  type: object
                  nullable: true
                  properties: {replicas: {type: integer}}
                advanced:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
                  properties: {known: {type: string}}
                target:
                  x-kubernetes-int-or-string: true
`

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func at(v any, path ...string) any {
	for _, p := range path {
		m, _ := v.(map[string]any)
		v = m[p]
	}
	return v
}

func TestConvert(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	args := []string{
		"-openapi", write(t, dir, "openapi.json", swagger),
		"-crd", write(t, dir, "crd.yaml", crd),
		"-kinds", write(t, dir, "kinds.txt", "# kinds\napps/v1 Deployment\nv1 Pod\nkeda.sh/v1alpha1 ScaledObject\n"),
		"-out", out,
	}
	if err := run(args, io.Discard); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.json"))
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if got := strings.Join(names, " "); got != "deployment-apps-v1.json pod-v1.json scaledobject-keda-v1alpha1.json" {
		t.Fatalf("files %q: want kubeconform's {kind}{-group}-{version}.json names", got)
	}

	d := load(t, filepath.Join(out, "deployment-apps-v1.json"))
	spec := at(d, "properties", "spec")
	for _, tc := range []struct {
		what string
		got  any
		want any
	}{
		{"top level closed", d["additionalProperties"], false},
		{"$ref inlined and closed", at(spec, "additionalProperties"), false},
		{"apiVersion pinned", at(d, "properties", "apiVersion", "enum"), []any{"apps/v1"}},
		{"kind pinned", at(d, "properties", "kind", "enum"), []any{"Deployment"}},
		{"IntOrString", at(spec, "properties", "maxSurge", "oneOf"), []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}},
		{"Quantity", at(spec, "properties", "memory", "oneOf"), []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}},
		{"a property named description kept", at(spec, "properties", "description", "type"), "string"},
		{"descriptions dropped", d["description"], nil},
		{"recursion cut to an open object", at(spec, "properties", "tree", "properties", "children", "items"), map[string]any{"type": "object"}},
		{"metadata map values stay open", at(d, "properties", "metadata", "properties", "labels", "additionalProperties"), map[string]any{"type": "string"}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.what, tc.got, tc.want)
		}
	}

	so := load(t, filepath.Join(out, "scaledobject-keda-v1alpha1.json"))
	sospec := at(so, "properties", "spec")
	for _, tc := range []struct {
		what string
		got  any
		want any
	}{
		{"CRD object closed", at(sospec, "additionalProperties"), false},
		{"required kept", at(sospec, "required"), []any{"scaleTargetRef"}},
		{"nullable", at(sospec, "properties", "fallback", "type"), []any{"object", "null"}},
		{"preserve-unknown-fields stays open", at(sospec, "properties", "advanced", "additionalProperties"), nil},
		{"x-kubernetes-int-or-string", at(sospec, "properties", "target", "oneOf"), []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}},
		{"CRD kind pinned", at(so, "properties", "kind", "enum"), []any{"ScaledObject"}},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.what, tc.got, tc.want)
		}
	}
}

func TestConvertErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		args  func() []string
		error string
	}{
		{"kind not found", func() []string {
			return []string{"-openapi", write(t, dir, "o.json", swagger), "-kinds", write(t, dir, "k.txt", "apps/v1 StatefulSet\n"), "-out", dir}
		}, "no schema found for: apps/v1 StatefulSet"},
		{"bad kinds line", func() []string {
			return []string{"-openapi", write(t, dir, "o.json", swagger), "-kinds", write(t, dir, "k.txt", "apps/v1\n"), "-out", dir}
		}, `want "apiVersion Kind"`},
		{"not OpenAPI", func() []string {
			return []string{"-openapi", write(t, dir, "o.json", `{"swagger": "2.0"}`), "-kinds", write(t, dir, "k.txt", "v1 Pod\n"), "-out", dir}
		}, "no definitions"},
		{"dangling ref", func() []string {
			bad := strings.Replace(swagger, `"#/definitions/io.k8s.api.apps.v1.DeploymentSpec"`, `"#/definitions/Nope"`, 1)
			return []string{"-openapi", write(t, dir, "o.json", bad), "-kinds", write(t, dir, "k.txt", "apps/v1 Deployment\n"), "-out", dir}
		}, `dangling $ref "#/definitions/Nope"`},
		{"not a CRD", func() []string {
			return []string{"-crd", write(t, dir, "c.yaml", "kind: ConfigMap\n"), "-kinds", write(t, dir, "k.txt", "v1 Pod\n"), "-out", dir}
		}, "want CustomResourceDefinition"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(tc.args(), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.error) {
				t.Errorf("error %v, want one containing %q", err, tc.error)
			}
		})
	}
}
