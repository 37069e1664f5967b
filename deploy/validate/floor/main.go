// Command mlsdm-kustomize-floor renders kustomizations with the kustomize code that kubectl 1.29
// compiles in (the oldest kubectl the manifests support), and checks that it
// produces the same objects as the current kustomize did.
//
//	mlsdm-kustomize-floor -compare DIR TARGET...
//
// go.mod pins sigs.k8s.io/kustomize/api and kyaml to the exact pseudo-versions
// of kubectl 1.29's go.mod, so `kubectl kustomize` on that release runs this
// same code. DIR holds the current renderer's output (deploy/validate -out):
// each target must render here without error (older kustomize panicked on
// several `$patch: delete` documents in one file) and yield equal objects,
// compared by identity and content, not by formatting or order.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/kio"
)

// objects parses a YAML stream into generic objects keyed by identity.
func objects(stream []byte) (map[string]any, error) {
	nodes, err := (&kio.ByteReader{Reader: bytes.NewReader(stream), OmitReaderAnnotations: true}).Read()
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(nodes))
	for _, node := range nodes {
		raw, err := node.MarshalJSON()
		if err != nil {
			return nil, err
		}
		var obj any
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
		id := fmt.Sprintf("%s/%s %s/%s", node.GetApiVersion(), node.GetKind(), node.GetNamespace(), node.GetName())
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("%s appears twice", id)
		}
		out[id] = obj
	}
	return out, nil
}

func render(target string) (stream []byte, err error) {
	// An old kustomize panicking on an input is exactly what this guards
	// against: report it as this target's failure, keep checking the others.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("kustomize panicked: %v", r)
		}
	}()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resources, err := k.Run(filesys.MakeFsOnDisk(), target)
	if err != nil {
		return nil, err
	}
	return resources.AsYaml()
}

// outName must agree with deploy/validate's naming of its -out files.
func outName(target string) string {
	clean := filepath.ToSlash(filepath.Clean(target))
	clean = strings.TrimSuffix(clean, filepath.Ext(clean))
	return strings.ReplaceAll(strings.Trim(clean, "./"), "/", "_") + ".yaml"
}

func compare(target, dir string) []string {
	mine, err := render(target)
	if err != nil {
		return []string{err.Error()}
	}
	current, err := os.ReadFile(filepath.Join(dir, outName(target)))
	if err != nil {
		return []string{"no current rendering to compare with: " + err.Error()}
	}
	old, err := objects(mine)
	if err != nil {
		return []string{"floor output: " + err.Error()}
	}
	now, err := objects(current)
	if err != nil {
		return []string{"current output: " + err.Error()}
	}
	var problems []string
	ids := make([]string, 0, len(old)+len(now))
	for id := range old {
		ids = append(ids, id)
	}
	for id := range now {
		if _, ok := old[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		a, inOld := old[id]
		b, inNow := now[id]
		switch {
		case !inOld:
			problems = append(problems, id+": only the current kustomize renders it")
		case !inNow:
			problems = append(problems, id+": only the floor kustomize renders it")
		case !reflect.DeepEqual(a, b):
			problems = append(problems, id+": differs between the floor and the current kustomize")
		}
	}
	return problems
}

func main() {
	dir := flag.String("compare", "", "directory of the current renderer's output (required)")
	flag.Parse()
	if *dir == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: mlsdm-kustomize-floor -compare DIR TARGET... (kustomization directories)")
		os.Exit(2)
	}
	failed := 0
	for _, target := range flag.Args() {
		problems := compare(target, *dir)
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "FAIL %s (kubectl 1.29 kustomize): %s\n", target, p)
		}
		if len(problems) > 0 {
			failed++
			continue
		}
		fmt.Printf("ok   %s (kubectl 1.29 kustomize: same objects)\n", target)
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d targets differ or fail on the kubectl 1.29 floor\n", failed, flag.NArg())
		os.Exit(1)
	}
}
