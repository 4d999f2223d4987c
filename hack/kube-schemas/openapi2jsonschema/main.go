// Command openapi2jsonschema turns a kube-apiserver's /openapi/v2 document
// and CustomResourceDefinition files into the standalone, strict JSON
// schemas kubeconform reads offline, one file per kind, named as kubeconform's
// '{{ .ResourceKind }}{{ .KindSuffix }}.json' template expects.
//
// It does what yannh/kubeconform's openapi2jsonschema.py does, in Go:
// inline every $ref (standalone), add additionalProperties: false wherever
// an object lists its properties (strict), pin apiVersion and kind, and
// translate the Kubernetes extensions JSON Schema does not know
// (int-or-string, Quantity, preserve-unknown-fields, nullable). Descriptions
// are dropped: they validate nothing and are most of the bytes.
//
//	openapi2jsonschema -openapi openapi-v2.json -crd a.yaml -crd b.yaml \
//	    -kinds kinds.txt -out DIR
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "openapi2jsonschema:", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("openapi2jsonschema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	openapi := fs.String("openapi", "", "a kube-apiserver's /openapi/v2 document (JSON)")
	var crds stringList
	fs.Var(&crds, "crd", "a CustomResourceDefinition YAML file (repeatable; multi-document files allowed)")
	kindsFile := fs.String("kinds", "", `file of "apiVersion Kind" lines to emit (# comments); every line must be found`)
	out := fs.String("out", "", "output directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *kindsFile == "" {
		return errors.New("-out and -kinds are required")
	}
	want, err := readKinds(*kindsFile)
	if err != nil {
		return err
	}
	schemas := map[gvk]map[string]any{}
	if *openapi != "" {
		b, err := os.ReadFile(*openapi)
		if err != nil {
			return err
		}
		if err := fromOpenAPIv2(b, want, schemas); err != nil {
			return fmt.Errorf("%s: %w", *openapi, err)
		}
	}
	for _, f := range crds {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := fromCRDs(b, want, schemas); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	var missing []string
	for k := range want {
		if _, ok := schemas[k]; !ok {
			missing = append(missing, k.String())
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("no schema found for: %s", strings.Join(missing, ", "))
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for k, s := range schemas {
		b, err := json.MarshalIndent(s, "", " ")
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if err := os.WriteFile(filepath.Join(*out, k.fileName()), append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// gvk is one kind at one API version; group is empty for the core group.
type gvk struct{ group, version, kind string }

func (k gvk) apiVersion() string {
	if k.group == "" {
		return k.version
	}
	return k.group + "/" + k.version
}

func (k gvk) String() string { return k.apiVersion() + " " + k.kind }

// fileName follows kubeconform's registry: lower-case kind, then "-" and the
// group's first DNS label (if any), then "-" and the version.
func (k gvk) fileName() string {
	suffix := ""
	if k.group != "" {
		suffix = "-" + strings.ToLower(strings.Split(k.group, ".")[0])
	}
	return strings.ToLower(k.kind) + suffix + "-" + strings.ToLower(k.version) + ".json"
}

func parseAPIVersion(apiVersion, kind string) gvk {
	group, version, ok := strings.Cut(apiVersion, "/")
	if !ok {
		group, version = "", apiVersion
	}
	return gvk{group: group, version: version, kind: kind}
}

func readKinds(path string) (map[gvk]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	want := map[gvk]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"apiVersion Kind\", got %q", path, n, sc.Text())
		}
		want[parseAPIVersion(fields[0], fields[1])] = true
	}
	return want, sc.Err()
}

// fromOpenAPIv2 adds the wanted kinds of a swagger 2.0 document.
func fromOpenAPIv2(doc []byte, want map[gvk]bool, into map[gvk]map[string]any) error {
	var swagger struct {
		Definitions map[string]map[string]any `json:"definitions"`
	}
	if err := json.Unmarshal(doc, &swagger); err != nil {
		return fmt.Errorf("not an OpenAPI v2 document: %w", err)
	}
	if len(swagger.Definitions) == 0 {
		return errors.New("no definitions: not an OpenAPI v2 document")
	}
	for name, def := range swagger.Definitions {
		gvks, _ := def["x-kubernetes-group-version-kind"].([]any)
		for _, g := range gvks {
			m, _ := g.(map[string]any)
			k := gvk{group: str(m["group"]), version: str(m["version"]), kind: str(m["kind"])}
			if !want[k] {
				continue
			}
			r := resolver{defs: swagger.Definitions, visiting: map[string]bool{}}
			s, err := r.inline(def, name)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			into[k] = finish(s, k)
		}
	}
	return nil
}

// resolver inlines "#/definitions/..." references.
type resolver struct {
	defs     map[string]map[string]any
	visiting map[string]bool
}

func (r *resolver) inline(v any, path string) (map[string]any, error) {
	out, err := r.schema(v, path)
	if err != nil {
		return nil, err
	}
	m, _ := out.(map[string]any)
	return m, nil
}

// named holds the keywords whose value maps names to schemas; their keys
// are property names, never keywords (a property may be called
// "description" or "nullable").
var named = map[string]bool{"properties": true, "patternProperties": true, "definitions": true, "dependencies": true}

// schema walks one schema node: keywords in, $refs inlined, extensions
// translated.
func (r *resolver) schema(v any, path string) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		if ref, ok := t["$ref"].(string); ok {
			name, ok := strings.CutPrefix(ref, "#/definitions/")
			if !ok {
				return nil, fmt.Errorf("%s: unsupported $ref %q", path, ref)
			}
			def, ok := r.defs[name]
			if !ok {
				return nil, fmt.Errorf("%s: dangling $ref %q", path, ref)
			}
			if special, ok := wellKnown(name); ok {
				return special, nil
			}
			if r.visiting[name] {
				// A recursive type (JSONSchemaProps): a standalone schema
				// cannot expand it, so this level accepts any object.
				return map[string]any{"type": "object"}, nil
			}
			r.visiting[name] = true
			defer delete(r.visiting, name)
			return r.schema(def, name)
		}
		out := make(map[string]any, len(t))
		for k, val := range t {
			switch {
			case k == "description" || k == "x-kubernetes-group-version-kind":
				continue
			case named[k]:
				m, _ := val.(map[string]any)
				props := make(map[string]any, len(m))
				for name, sub := range m {
					w, err := r.schema(sub, path+"."+name)
					if err != nil {
						return nil, err
					}
					props[name] = w
				}
				out[k] = props
			case k == "enum" || k == "default" || k == "example" || k == "required":
				out[k] = val // values, not schemas
			default:
				w, err := r.schema(val, path+"."+k)
				if err != nil {
					return nil, err
				}
				out[k] = w
			}
		}
		return translate(out), nil
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			w, err := r.schema(val, fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return nil, err
			}
			out[i] = w
		}
		return out, nil
	default:
		return v, nil
	}
}

// wellKnown are the apimachinery types whose OpenAPI v2 form says "string"
// while YAML manifests legitimately hold numbers too.
func wellKnown(name string) (map[string]any, bool) {
	switch name {
	case "io.k8s.apimachinery.pkg.util.intstr.IntOrString":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}}, true
	case "io.k8s.apimachinery.pkg.api.resource.Quantity":
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}}, true
	}
	return nil, false
}

// translate rewrites one schema node's Kubernetes extensions into JSON Schema.
func translate(s map[string]any) map[string]any {
	if s["x-kubernetes-int-or-string"] == true || s["format"] == "int-or-string" {
		delete(s, "type")
		delete(s, "format")
		s["oneOf"] = []any{map[string]any{"type": "string"}, map[string]any{"type": "integer"}}
	}
	if s["nullable"] == true {
		if t, ok := s["type"].(string); ok {
			s["type"] = []any{t, "null"}
		}
	}
	if _, ok := s["nullable"].(bool); ok {
		delete(s, "nullable")
	}
	return s
}

// strict closes every object that lists its properties, unless it says it
// keeps unknown fields.
func strict(v any) {
	switch t := v.(type) {
	case map[string]any:
		_, hasProps := t["properties"]
		_, hasAdditional := t["additionalProperties"]
		if hasProps && !hasAdditional && t["x-kubernetes-preserve-unknown-fields"] != true {
			t["additionalProperties"] = false
		}
		for k, val := range t {
			switch {
			case named[k]:
				m, _ := val.(map[string]any)
				for _, sub := range m {
					strict(sub)
				}
			case k == "enum" || k == "default" || k == "example" || k == "required":
			default:
				strict(val)
			}
		}
	case []any:
		for _, val := range t {
			strict(val)
		}
	}
}

// finish pins apiVersion and kind and makes the schema strict.
func finish(s map[string]any, k gvk) map[string]any {
	if s == nil {
		s = map[string]any{}
	}
	props, _ := s["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
		s["properties"] = props
	}
	props["apiVersion"] = map[string]any{"type": "string", "enum": []any{k.apiVersion()}}
	props["kind"] = map[string]any{"type": "string", "enum": []any{k.kind}}
	// metadata of a CRD schema is usually just "type: object".
	if md, _ := props["metadata"].(map[string]any); md == nil || md["properties"] == nil {
		props["metadata"] = map[string]any{"type": "object"}
	}
	strict(s)
	s["$schema"] = "http://json-schema.org/draft-07/schema#"
	return s
}

// fromCRDs adds the wanted kinds of one or more CustomResourceDefinitions.
func fromCRDs(doc []byte, want map[gvk]bool, into map[gvk]map[string]any) error {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	for {
		var crd struct {
			Kind string `yaml:"kind"`
			Spec struct {
				Group string `yaml:"group"`
				Names struct {
					Kind string `yaml:"kind"`
				} `yaml:"names"`
				Versions []struct {
					Name   string `yaml:"name"`
					Served bool   `yaml:"served"`
					Schema struct {
						OpenAPIV3Schema map[string]any `yaml:"openAPIV3Schema"`
					} `yaml:"schema"`
				} `yaml:"versions"`
			} `yaml:"spec"`
		}
		err := dec.Decode(&crd)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if crd.Kind == "" {
			continue // empty document
		}
		if crd.Kind != "CustomResourceDefinition" {
			return fmt.Errorf("kind %q, want CustomResourceDefinition", crd.Kind)
		}
		for _, v := range crd.Spec.Versions {
			k := gvk{group: crd.Spec.Group, version: v.Name, kind: crd.Spec.Names.Kind}
			if !want[k] || !v.Served {
				continue
			}
			if v.Schema.OpenAPIV3Schema == nil {
				return fmt.Errorf("%s: no openAPIV3Schema", k)
			}
			r := resolver{visiting: map[string]bool{}}
			s, err := r.inline(v.Schema.OpenAPIV3Schema, k.String())
			if err != nil {
				return err
			}
			into[k] = finish(s, k)
		}
	}
}

func str(v any) string { s, _ := v.(string); return s }
