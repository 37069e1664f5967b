// Command validate renders kustomizations and decodes every object they produce
// strictly into the typed Go structs of k8s.io/api, istio.io/client-go and
// CloudNativePG's API (github.com/cloudnative-pg/cloudnative-pg/api/v1).
//
// Nothing is fetched at run time: the schemas are the Go types compiled in, so a
// misspelt or misplaced field fails the decode instead of being dropped on apply.
//
//	validate [-out DIR] TARGET...
//
// A TARGET is a directory holding a kustomization.yaml (rendered with the
// kustomize API, the same code as `kustomize build`) or a plain YAML file
// (validated as it is, e.g. an example an operator copies by hand). With -out,
// each rendered target is written to DIR/<target path with / replaced by _>.yaml
// for the cross-reference tests.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"

	cnpgv1 "github.com/cloudnative-pg/cloudnative-pg/api/v1"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istiosecurityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	sjson "sigs.k8s.io/json"
)

func newScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, autoscalingv2.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme,
		istionetworkingv1.AddToScheme, istiosecurityv1.AddToScheme,
		cnpgv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// render returns the YAML stream of a target: kustomize output for a directory,
// the file's bytes for a file.
func render(target string) ([]byte, error) {
	info, err := os.Stat(target)
	if err != nil {
		return nil, err
	}
	if !info.IsDir() {
		return os.ReadFile(target)
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), target)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	return resources.AsYaml()
}

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// checkObject decodes one object; every problem found is returned, not just the first.
func checkObject(s *runtime.Scheme, doc []byte) (string, []string) {
	var h header
	if err := json.Unmarshal(doc, &h); err != nil {
		return "?", []string{err.Error()}
	}
	id := fmt.Sprintf("%s/%s %q", h.APIVersion, h.Kind, h.Metadata.Name)
	var problems []string
	gvk := schema.FromAPIVersionAndKind(h.APIVersion, h.Kind)
	obj, err := s.New(gvk)
	if err != nil {
		return id, []string{"no schema for this apiVersion/kind compiled in: " + err.Error()}
	}
	// sigs.k8s.io/json is the decoder the API server uses: case-sensitive field
	// names, and unknown or duplicate fields reported as strict errors.
	strict, err := sjson.UnmarshalStrict(doc, obj, sjson.DisallowUnknownFields, sjson.DisallowDuplicateFields)
	if err != nil {
		problems = append(problems, err.Error())
	}
	for _, e := range strict {
		problems = append(problems, e.Error())
	}
	// Istio's generated UnmarshalJSON accepts unknown fields, so its spec is
	// decoded again with protojson, which rejects them.
	if spec := reflect.ValueOf(obj).Elem().FieldByName("Spec"); spec.IsValid() && spec.CanAddr() {
		if msg, ok := spec.Addr().Interface().(proto.Message); ok && len(h.Spec) > 0 {
			if err := protojson.Unmarshal(h.Spec, msg); err != nil {
				problems = append(problems, "spec: "+err.Error())
			}
		}
	}
	if h.Metadata.Name == "" {
		problems = append(problems, "metadata.name is empty")
	}
	for _, msg := range validation.IsDNS1123Subdomain(h.Metadata.Name) {
		problems = append(problems, "metadata.name: "+msg)
	}
	for k, v := range h.Metadata.Labels {
		for _, msg := range validation.IsQualifiedName(k) {
			problems = append(problems, fmt.Sprintf("label key %q: %s", k, msg))
		}
		for _, msg := range validation.IsValidLabelValue(v) {
			problems = append(problems, fmt.Sprintf("label %q value %q: %s", k, v, msg))
		}
	}
	return id, problems
}

func outName(target string) string {
	clean := filepath.ToSlash(filepath.Clean(target))
	clean = strings.TrimSuffix(clean, filepath.Ext(clean))
	return strings.ReplaceAll(strings.Trim(clean, "./"), "/", "_") + ".yaml"
}

func run(targets []string, outDir string) int {
	s, err := newScheme()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scheme:", err)
		return 2
	}
	failed := 0
	for _, target := range targets {
		stream, err := render(target)
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", target, err)
			failed++
			continue
		}
		nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(stream), OmitReaderAnnotations: true}).Read()
		if err != nil {
			fmt.Fprintf(os.Stderr, "FAIL %s: yaml: %v\n", target, err)
			failed++
			continue
		}
		if len(nodes) == 0 {
			fmt.Fprintf(os.Stderr, "FAIL %s: no objects\n", target)
			failed++
			continue
		}
		bad := 0
		for _, node := range nodes {
			doc, err := node.MarshalJSON()
			if err != nil {
				fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", target, err)
				bad++
				continue
			}
			id, problems := checkObject(s, doc)
			for _, p := range problems {
				fmt.Fprintf(os.Stderr, "FAIL %s: %s: %s\n", target, id, p)
			}
			if len(problems) > 0 {
				bad++
			}
		}
		if bad > 0 {
			failed++
			continue
		}
		fmt.Printf("ok   %s (%d objects)\n", target, len(nodes))
		if outDir != "" {
			if err := os.WriteFile(filepath.Join(outDir, outName(target)), stream, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "write:", err)
				return 2
			}
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d targets failed validation\n", failed, len(targets))
		return 1
	}
	return 0
}

func main() {
	outDir := flag.String("out", "", "write each rendered target into this directory")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: validate [-out DIR] TARGET... (kustomization dirs or YAML files)")
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(run(flag.Args(), *outDir))
}
