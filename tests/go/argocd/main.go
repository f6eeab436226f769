// One binary for the Argo CD programs `make test-gitops` runs (tests/argocd): its application
// controller, its repo-server, and the git ask-pass helper the repo-server hands to git. Like
// Argo CD's own image, it picks the program by the name it is called by, or by
// ARGOCD_BINARY_NAME, so one link of Argo CD's code serves all three.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	gitaskpass "github.com/argoproj/argo-cd/v3/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	// Kubernetes' client logs through klog: send it to Argo CD's logger, as Argo CD's main does.
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	// Argo CD's own main first calls grpc.DisableSRVLookups, which panics with the gRPC (1.84)
	// that Argo CD 3.6.2 requires: that release has SRV lookups off already, so it is left out.
	name := filepath.Base(os.Args[0])
	if override := os.Getenv("ARGOCD_BINARY_NAME"); override != "" {
		name = override
	}
	var command *cobra.Command
	switch name {
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	case common.CommandGitAskPass:
		command = gitaskpass.NewCommand()
	default:
		fmt.Fprintf(os.Stderr, "argocd: called as %q; call as %s, %s or %s (or set ARGOCD_BINARY_NAME)\n",
			name, common.CommandApplicationController, common.CommandRepoServer, common.CommandGitAskPass)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
