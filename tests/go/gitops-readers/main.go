// Command gitops-readers reads Kubernetes objects as JSON, one per line on stdin, and prints
// for each, one JSON line on stdout, what kstatus (the library Flux, kpt and `kubectl wait`-style
// tools use) and Argo CD's resource health evaluation make of it. The Argo CD health script is the
// Lua file given as the only argument, registered as a resource customization for the object's
// group and kind, exactly as the argocd-cm key `resource.customizations.health.<group>_<kind>` does.
//
// `gitops-readers argocd sync|compare` runs Argo CD's sync and comparison of an Application
// against a cluster (argocd.go).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"

	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	argolua "github.com/argoproj/argo-cd/v3/util/lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

type reading struct {
	Kstatus verdict `json:"kstatus"`
	ArgoCD  verdict `json:"argocd"`
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "argocd" {
		argocdMain(os.Args[2:])
		return
	}
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gitops-readers HEALTH_LUA_FILE < objects.jsonl\n       gitops-readers argocd sync|compare ...")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 1<<20), 16<<20)
	out := json.NewEncoder(os.Stdout)
	for scanner.Scan() {
		reading, err := read(scanner.Bytes(), string(script))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := out.Encode(reading); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func read(line []byte, script string) (reading, error) {
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(line); err != nil {
		return reading{}, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	computed, err := status.Compute(object)
	if err != nil {
		return reading{}, fmt.Errorf("kstatus: %w", err)
	}
	gvk := object.GroupVersionKind()
	overrides := argolua.ResourceHealthOverrides{
		argolua.GetConfigMapKey(gvk): appv1.ResourceOverride{HealthLua: script},
	}
	health, err := overrides.GetResourceHealth(object)
	if err != nil {
		return reading{}, fmt.Errorf("argo cd health: %w", err)
	}
	if health == nil {
		return reading{}, fmt.Errorf("argo cd found no health check for %s", argolua.GetConfigMapKey(gvk))
	}
	return reading{
		Kstatus: verdict{Status: computed.Status.String(), Message: computed.Message},
		ArgoCD:  verdict{Status: string(health.Status), Message: health.Message},
	}, nil
}
