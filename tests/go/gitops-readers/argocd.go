// The `argocd` subcommands: Argo CD's own sync and comparison of an Application's manifests with
// the live objects of a cluster, as its application controller runs them, without the controller's
// caches, Redis and repo-server (the manifests are given as rendered YAML, as the repo-server would
// hand them over).
//
// What is Argo CD's code: the sync (gitops-engine's sync context with the options the controller
// passes), resource tracking, the diff (util/argo/diff.StateDiffs with the controller's diff
// config: normalizers, ignoreDifferences, legacy three-way or server-side diff) and health
// (gitops-engine's health with the Lua customizations of argocd-cm). What is ours: reading the
// Application and manifests from files, fetching the live objects, and printing the verdict.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/diff"
	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/sync"
	synccommon "github.com/argoproj/argo-cd/gitops-engine/v3/pkg/sync/common"
	resourceutil "github.com/argoproj/argo-cd/gitops-engine/v3/pkg/sync/resource"
	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/utils/kube"
	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/utils/tracing"
	"github.com/argoproj/argo-cd/v3/common"
	appv1 "github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/argo"
	argodiff "github.com/argoproj/argo-cd/v3/util/argo/diff"
	"github.com/argoproj/argo-cd/v3/util/argo/normalizers"
	argokube "github.com/argoproj/argo-cd/v3/util/kube"
	logutils "github.com/argoproj/argo-cd/v3/util/log"
	argolua "github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// The application controller's defaults: the tracking annotation (Argo CD 3's default method) and
// the label key of the label method.
const (
	appLabelKey    = common.LabelKeyAppInstance
	trackingMethod = appv1.TrackingMethodAnnotation
)

// How long `argocd sync` calls the sync context again (each call is one controller reconcile)
// before it gives up on an operation that does not complete.
const syncTimeout = 90 * time.Second

// session is one Application against one cluster.
type session struct {
	app       *appv1.Application
	manifests []*unstructured.Unstructured
	overrides map[string]appv1.ResourceOverride
	config    *rest.Config
	dynamic   dynamic.Interface
	mapper    meta.RESTMapper
	log       logr.Logger
}

func argocdMain(args []string) {
	if len(args) < 1 || (args[0] != "sync" && args[0] != "compare") {
		fail(2, "usage: gitops-readers argocd sync|compare -kubeconfig FILE -application FILE -manifests FILE [-health-lua FILE]")
	}
	verb := args[0]
	flags := flag.NewFlagSet("argocd "+verb, flag.ExitOnError)
	kubeconfig := flags.String("kubeconfig", "", "the cluster's kubeconfig")
	application := flags.String("application", "", "the Argo CD Application (YAML or JSON)")
	manifests := flags.String("manifests", "", "the Application's rendered manifests (multi-document YAML), as in git")
	healthLua := flags.String("health-lua", "", "health script registered for every PoolStatisticsWatch kind in the manifests")
	_ = flags.Parse(args[1:])
	if *kubeconfig == "" || *application == "" || *manifests == "" {
		fail(2, "argocd "+verb+": -kubeconfig, -application and -manifests are required")
	}
	s, err := newSession(*kubeconfig, *application, *manifests, *healthLua)
	if err != nil {
		fail(1, err.Error())
	}
	ctx := context.Background()
	var verdict any
	if verb == "sync" {
		verdict = s.sync(ctx)
	} else {
		verdict = s.compare(ctx)
	}
	if err := json.NewEncoder(os.Stdout).Encode(verdict); err != nil {
		fail(1, err.Error())
	}
}

func fail(code int, message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(code)
}

func newSession(kubeconfig, applicationFile, manifestsFile, healthLuaFile string) (*session, error) {
	app := &appv1.Application{}
	raw, err := os.ReadFile(applicationFile)
	if err != nil {
		return nil, err
	}
	if err := yaml.UnmarshalStrict(raw, app); err != nil {
		return nil, fmt.Errorf("%s is not an Argo CD Application: %w", applicationFile, err)
	}
	raw, err = os.ReadFile(manifestsFile)
	if err != nil {
		return nil, err
	}
	manifests, err := kube.SplitYAML(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", manifestsFile, err)
	}
	overrides := map[string]appv1.ResourceOverride{}
	if healthLuaFile != "" {
		script, err := os.ReadFile(healthLuaFile)
		if err != nil {
			return nil, err
		}
		// As argocd-cm's resource.customizations.health.<group>_<kind>, for each group a
		// watch kind of the manifests has (a test may serve the CRD under a group of its own).
		for _, m := range manifests {
			if m.GetKind() == "PoolStatisticsWatch" {
				overrides[argolua.GetConfigMapKey(m.GroupVersionKind())] = appv1.ResourceOverride{HealthLua: string(script)}
			}
		}
	}
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	dynamicClient, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	logger := logrus.New()
	logger.SetOutput(os.Stderr)
	logger.SetLevel(logrus.WarnLevel)
	return &session{
		app:       app,
		manifests: manifests,
		overrides: overrides,
		config:    config,
		dynamic:   dynamicClient,
		mapper:    restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco)),
		log:       logutils.NewLogrusLogger(logger),
	}, nil
}

// IsNamespaced answers for kube.ResourceInfoProvider, from the API server's discovery.
func (s *session) IsNamespaced(gk schema.GroupKind) (bool, error) {
	mapping, err := s.mapper.RESTMapping(gk)
	if err != nil {
		return false, err
	}
	return mapping.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// targets are the manifests as the controller hands them to sync and diff: in the destination
// namespace when namespaced and without one, and carrying the tracking annotation.
func (s *session) targets() ([]*unstructured.Unstructured, error) {
	tracking := argo.NewResourceTracking()
	namespace := s.app.Spec.Destination.Namespace
	var targets []*unstructured.Unstructured
	for _, m := range s.manifests {
		target := m.DeepCopy()
		namespaced := kube.IsNamespacedOrUnknown(s, target.GroupVersionKind().GroupKind())
		if !namespaced {
			target.SetNamespace("")
		} else if target.GetNamespace() == "" {
			target.SetNamespace(namespace)
		}
		if err := tracking.SetAppInstance(target, appLabelKey, s.app.InstanceName(s.app.Namespace), namespace, trackingMethod, ""); err != nil {
			return nil, err
		}
		targets = append(targets, target)
	}
	return targets, nil
}

// live fetches the live object of each target (absent ones, also of kinds the API server does not
// serve yet, are left out) as Argo CD's cluster cache holds them: whole, status and all.
func (s *session) live(ctx context.Context, targets []*unstructured.Unstructured) (map[kube.ResourceKey]*unstructured.Unstructured, error) {
	s.mapper.(*restmapper.DeferredDiscoveryRESTMapper).Reset()
	lives := map[kube.ResourceKey]*unstructured.Unstructured{}
	for _, target := range targets {
		gvk := target.GroupVersionKind()
		mapping, err := s.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var resource dynamic.ResourceInterface = s.dynamic.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			resource = s.dynamic.Resource(mapping.Resource).Namespace(target.GetNamespace())
		}
		live, err := resource.Get(ctx, target.GetName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		lives[kube.GetResourceKey(live)] = live
	}
	return lives, nil
}

func (s *session) reconcile(ctx context.Context) (sync.ReconciliationResult, error) {
	targets, err := s.targets()
	if err != nil {
		return sync.ReconciliationResult{}, err
	}
	lives, err := s.live(ctx, targets)
	if err != nil {
		return sync.ReconciliationResult{}, err
	}
	return sync.Reconcile(targets, lives, s.app.Spec.Destination.Namespace, s), nil
}

// syncVerdict is what an automated sync operation of the Application ended with.
type syncVerdict struct {
	Phase     string         `json:"phase"`
	Message   string         `json:"message"`
	Resources []syncResource `json:"resources"`
}

type syncResource struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func (s *session) syncOptions() appv1.SyncOptions {
	if s.app.Spec.SyncPolicy == nil {
		return nil
	}
	return s.app.Spec.SyncPolicy.SyncOptions
}

// sync runs one sync operation as the application controller's automated sync does (no prune, no
// dry run, no force), calling the sync context again each second as the controller's reconcile
// loop does, until the operation completes.
func (s *session) sync(ctx context.Context) syncVerdict {
	reconciliation, err := s.reconcile(ctx)
	if err != nil {
		return syncVerdict{Phase: string(synccommon.OperationError), Message: err.Error()}
	}
	options := s.syncOptions()
	kubectl := &kube.KubectlCmd{Log: s.log, Tracer: tracing.NopTracer{}}
	opts := []sync.SyncOpt{
		sync.WithLogr(s.log),
		sync.WithHealthOverride(argolua.ResourceHealthOverrides(s.overrides)),
		sync.WithOperationSettings(false, false, false, false),
		sync.WithManifestValidation(!options.HasOption(synccommon.SyncOptionsDisableValidation)),
		sync.WithPruneLast(options.HasOption(synccommon.SyncOptionPruneLast)),
		sync.WithReplace(options.HasOption(synccommon.SyncOptionReplace)),
		sync.WithServerSideApply(options.HasOption(synccommon.SyncOptionServerSideApply)),
		sync.WithServerSideApplyManager(common.ArgoCDSSAManager),
		sync.WithClientSideApplyMigration(!options.HasOption(synccommon.SyncOptionDisableClientSideApplyMigration), synccommon.DefaultClientSideApplyMigrationManager),
		sync.WithSkipDryRunOnMissingResource(options.HasOption(synccommon.SyncOptionSkipDryRunOnMissingResource)),
	}
	syncContext, cleanup, err := sync.NewSyncContext("HEAD", reconciliation, s.config, s.config, kubectl, s.app.Spec.Destination.Namespace, opts...)
	if err != nil {
		return syncVerdict{Phase: string(synccommon.OperationError), Message: err.Error()}
	}
	defer cleanup()
	deadline := time.Now().Add(syncTimeout)
	for {
		syncContext.Sync(ctx)
		phase, message, results := syncContext.GetState()
		if phase.Completed() || time.Now().After(deadline) {
			verdict := syncVerdict{Phase: string(phase), Message: message, Resources: []syncResource{}}
			for _, r := range results {
				verdict.Resources = append(verdict.Resources, syncResource{
					Kind: r.ResourceKey.Kind, Name: r.ResourceKey.Name, Status: string(r.Status), Message: r.Message,
				})
			}
			return verdict
		}
		time.Sleep(time.Second)
	}
}

// comparison is the Application's sync status and its resources' as Argo CD shows them.
type comparison struct {
	// Synced, OutOfSync, or Unknown when the comparison failed (Error says why).
	Sync           string            `json:"sync"`
	Error          string            `json:"error,omitempty"`
	ServerSideDiff bool              `json:"serverSideDiff"`
	Resources      []resourceVerdict `json:"resources"`
}

type resourceVerdict struct {
	Group         string `json:"group"`
	Kind          string `json:"kind"`
	Namespace     string `json:"namespace"`
	Name          string `json:"name"`
	Status        string `json:"status"`
	Health        string `json:"health"`
	HealthMessage string `json:"healthMessage"`
	// The two sides Argo CD's diff view shows for an OutOfSync resource.
	NormalizedLive json.RawMessage `json:"normalizedLive,omitempty"`
	PredictedLive  json.RawMessage `json:"predictedLive,omitempty"`
}

// serverSideDiff is the controller's choice of diff (controller/state.go, shouldUseServerSideDiff,
// with the controller-wide flag off): the compare option, else implied by ServerSideApply.
func (s *session) serverSideDiff() bool {
	if resourceutil.HasAnnotationOption(s.app, common.AnnotationCompareOptions, "ServerSideDiff=false") {
		return false
	}
	return resourceutil.HasAnnotationOption(s.app, common.AnnotationCompareOptions, "ServerSideDiff=true") ||
		s.syncOptions().HasOption(synccommon.SyncOptionServerSideApply)
}

// compare is the controller's CompareAppState for one Application with no diff cache: Argo CD's
// StateDiffs with the diff config the controller builds, then each resource's sync status as the
// controller derives it and its health. The argocd-cm compare options are the defaults but for
// one: status is compared too (`ignoreResourceStatusField: none`; the default `all` adds an
// ignoreDifferences of /status for every kind), so "the operator's status never makes a watch
// OutOfSync" holds without that help.
func (s *session) compare(ctx context.Context) comparison {
	verdict := comparison{Sync: string(appv1.SyncStatusCodeUnknown), ServerSideDiff: s.serverSideDiff(), Resources: []resourceVerdict{}}
	reconciliation, err := s.reconcile(ctx)
	if err != nil {
		verdict.Error = err.Error()
		return verdict
	}
	kubectl := &kube.KubectlCmd{Log: s.log, Tracer: tracing.NopTracer{}}
	_, gvkParser, err := kubectl.LoadOpenAPISchema(s.config)
	if err != nil {
		verdict.Error = fmt.Sprintf("loading the API server's OpenAPI schema: %v", err)
		return verdict
	}
	builder := argodiff.NewDiffConfigBuilder().
		WithDiffSettings(s.app.Spec.IgnoreDifferences, s.overrides, false, normalizers.IgnoreNormalizerOpts{}).
		WithTracking(appLabelKey, string(trackingMethod)).
		WithNoCache().
		WithGVKParser(gvkParser).
		WithManager(common.ArgoCDSSAManager).
		WithServerSideDiff(verdict.ServerSideDiff)
	if resourceutil.HasAnnotationOption(s.app, common.AnnotationCompareOptions, "IncludeMutationWebhook=true") {
		builder.WithIgnoreMutationWebhook(false)
	}
	if verdict.ServerSideDiff {
		applier, cleanup, err := argokube.ManageServerSideDiffDryRuns(s.config, nil)
		if err != nil {
			verdict.Error = err.Error()
			return verdict
		}
		defer cleanup()
		builder.WithServerSideDryRunner(diff.NewK8sServerSideDryRunner(applier))
	}
	diffConfig, err := builder.Build()
	if err != nil {
		verdict.Error = err.Error()
		return verdict
	}
	results, err := argodiff.StateDiffs(ctx, reconciliation.Live, reconciliation.Target, diffConfig)
	if err != nil {
		verdict.Error = "Failed to compare desired state to live state: " + err.Error()
		return verdict
	}
	if len(results.Diffs) != len(reconciliation.Target) {
		verdict.Error = fmt.Sprintf("%d diffs for %d resources", len(results.Diffs), len(reconciliation.Target))
		return verdict
	}
	verdict.Sync = string(appv1.SyncStatusCodeSynced)
	for i, target := range reconciliation.Target {
		live := reconciliation.Live[i]
		result := results.Diffs[i]
		resource := resourceVerdict{
			Group: target.GroupVersionKind().Group, Kind: target.GetKind(),
			Namespace: target.GetNamespace(), Name: target.GetName(),
			Status: string(appv1.SyncStatusCodeSynced),
		}
		// As the controller: different, or missing on one side, is OutOfSync.
		if result.Modified || live == nil {
			resource.Status = string(appv1.SyncStatusCodeOutOfSync)
			verdict.Sync = string(appv1.SyncStatusCodeOutOfSync)
			resource.NormalizedLive = json.RawMessage(result.NormalizedLive)
			resource.PredictedLive = json.RawMessage(result.PredictedLive)
		}
		if live == nil {
			resource.Health = string(health.HealthStatusMissing)
		} else if status, err := health.GetResourceHealth(live, argolua.ResourceHealthOverrides(s.overrides)); err != nil {
			resource.Health = string(health.HealthStatusUnknown)
			resource.HealthMessage = err.Error()
		} else if status != nil {
			resource.Health = string(status.Status)
			resource.HealthMessage = status.Message
		}
		verdict.Resources = append(verdict.Resources, resource)
	}
	return verdict
}
