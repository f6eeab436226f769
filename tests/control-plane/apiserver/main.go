// Command poolwatch-test-apiserver is a small, real Kubernetes API server for poolwatch's tests and
// demo. It is upstream Kubernetes code (k8s.io/apiextensions-apiserver and k8s.io/apiserver) wired
// together with relaxed options:
//
//   - CustomResourceDefinitions with the full upstream machinery (structural schemas, CEL rules,
//     defaults, printer columns, status subresource, server-side apply, watch);
//   - a handful of built-in kinds served storage-only through the generic registry (see builtin.go);
//   - TLS with a client-certificate CA; every certificate the CA signed is a user, and every user may
//     do everything (RBAC objects are stored, never evaluated);
//   - one admission plugin, NamespaceLifecycle, so writes into a missing namespace fail as in a cluster;
//   - discovery (legacy and aggregated), OpenAPI v2/v3 and an audit log.
//
// There are no controllers: nothing garbage-collects, nothing runs pods, Deployments never roll out.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/trace/noop"

	corev1 "k8s.io/api/core/v1"
	apiextensionsapiserver "k8s.io/apiextensions-apiserver/pkg/apiserver"
	apiextensionsoptions "k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	apiextensionsopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/admission/plugin/namespace/lifecycle"
	"k8s.io/apiserver/pkg/authentication/group"
	"k8s.io/apiserver/pkg/authentication/request/x509"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/apiserver/pkg/util/proxy"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/kube-openapi/pkg/common"

	generatedopenapi "poolwatch/controlplane/apiserver/openapi"
)

// flags are deliberately few: the start script owns ports, files and certificates.
type flags struct {
	etcdServers string
	bindPort    int
	certDir     string
	auditPolicy string
	auditLog    string
}

func main() {
	var f flags
	klog.InitFlags(nil)
	flag.StringVar(&f.etcdServers, "etcd-servers", "http://127.0.0.1:2379", "etcd client URL")
	flag.IntVar(&f.bindPort, "secure-port", 6443, "HTTPS port on 127.0.0.1")
	flag.StringVar(&f.certDir, "cert-dir", "", "directory holding ca.crt, server.crt and server.key")
	flag.StringVar(&f.auditPolicy, "audit-policy-file", "", "audit policy file (empty: no audit log)")
	flag.StringVar(&f.auditLog, "audit-log-path", "", "audit log file, JSON lines")
	flag.Parse()

	ctx := genericapiserver.SetupSignalContext()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "poolwatch-test-apiserver:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, f flags) error {
	config, err := buildConfig(f)
	if err != nil {
		return err
	}
	completed := config.Complete()
	// apiextensions-apiserver switches discovery off because in a cluster kube-aggregator serves it.
	// Here it is the only server, so kubectl, helm and kube-rs need it on.
	completed.GenericConfig.EnableDiscovery = true

	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return fmt.Errorf("creating the server: %w", err)
	}
	generic := server.GenericAPIServer
	if err := installBuiltins(generic, config.GenericConfig.RESTOptionsGetter); err != nil {
		return fmt.Errorf("installing built-in kinds: %w", err)
	}
	if err := publishCRDGroups(generic, server.Informers.Apiextensions().V1().CustomResourceDefinitions()); err != nil {
		return err
	}
	generic.AddPostStartHookOrDie("poolwatch-bootstrap-namespaces", bootstrapNamespaces)

	return generic.PrepareRun().RunWithContext(ctx)
}

func buildConfig(f flags) (*apiextensionsapiserver.Config, error) {
	if f.certDir == "" {
		return nil, fmt.Errorf("--cert-dir is required")
	}
	config := genericapiserver.NewRecommendedConfig(apiextensionsapiserver.Codecs)

	// Version, feature gates and the usual timeouts, as kube-apiserver would set them.
	runOptions := genericoptions.NewServerRunOptions()
	runOptions.AdvertiseAddress = net.ParseIP("127.0.0.1")
	if err := runOptions.ComponentGlobalsRegistry.Set(); err != nil {
		return nil, err
	}
	if err := runOptions.ApplyTo(&config.Config); err != nil {
		return nil, err
	}
	// The apiextensions group's own versions (apiextensions.k8s.io/v1 and v1beta1).
	config.MergedResourceConfig = apiextensionsapiserver.DefaultAPIResourceConfigSource()

	// Serving: our certificate on 127.0.0.1, plus the loopback client that the server's own
	// controllers (CRD naming, establishing, namespace informer) use to talk to itself.
	serving := genericoptions.NewSecureServingOptions()
	serving.BindAddress = net.ParseIP("127.0.0.1")
	serving.BindPort = f.bindPort
	serving.ServerCert.CertKey.CertFile = filepath.Join(f.certDir, "server.crt")
	serving.ServerCert.CertKey.KeyFile = filepath.Join(f.certDir, "server.key")
	if err := serving.WithLoopback().ApplyTo(&config.SecureServing, &config.LoopbackClientConfig); err != nil {
		return nil, err
	}
	config.ClientConfig = config.LoopbackClientConfig

	// Authentication: client certificates signed by our CA, user = CN, groups = O. Authorization:
	// allow every authenticated request. Anonymous requests are refused (no authenticator matches).
	clientCA, err := dynamiccertificates.NewDynamicCAContentFromFile("client-ca", filepath.Join(f.certDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	if err := config.Authentication.ApplyClientCert(clientCA, config.SecureServing); err != nil {
		return nil, err
	}
	config.Authentication.Authenticator = group.NewAuthenticatedGroupAdder(
		x509.NewDynamic(clientCA.VerifyOptions, x509.CommonNameUserConversion))
	config.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()
	genericapiserver.AuthorizeClientBearerToken(config.LoopbackClientConfig, &config.Authentication, &config.Authorization)

	// Storage: one etcd, JSON-encoded, one storage factory for the built-in kinds and the CRD
	// objects themselves; custom resources get their own getter, as in kube-apiserver.
	etcdOptions := genericoptions.NewEtcdOptions(storagebackend.NewDefaultConfig("/registry", nil))
	etcdOptions.StorageConfig.Transport.ServerList = []string{f.etcdServers}
	etcdOptions.DefaultStorageMediaType = "application/json"
	storageFactory := serverstorage.NewDefaultStorageFactory(
		etcdOptions.StorageConfig, "application/json", codecs,
		newResourceEncoding(), enabledResources(), nil)
	// core/v1 Events and events.k8s.io/v1 Events are one resource in two shapes, as in kube-apiserver.
	storageFactory.AddCohabitatingResources(corev1.Resource("events"), eventsResource)
	if err := etcdOptions.ApplyWithStorageFactoryTo(storageFactory, &config.Config); err != nil {
		return nil, err
	}

	// Audit log: JSON lines, written synchronously so a test can read a request's line right after.
	if f.auditLog != "" {
		audit := genericoptions.NewAuditOptions()
		audit.PolicyFile = f.auditPolicy
		audit.LogOptions.Path = f.auditLog
		audit.LogOptions.Format = "json"
		audit.LogOptions.BatchOptions.Mode = "blocking"
		if err := audit.ApplyTo(&config.Config); err != nil {
			return nil, err
		}
	}

	// Informers and clients over the loopback connection, for the admission plugin and the
	// service resolver.
	kubeClient, err := kubernetes.NewForConfig(config.LoopbackClientConfig)
	if err != nil {
		return nil, err
	}
	dynamicClient, err := dynamic.NewForConfig(config.LoopbackClientConfig)
	if err != nil {
		return nil, err
	}
	config.SharedInformerFactory = informers.NewSharedInformerFactory(kubeClient, 10*time.Minute)

	// Admission: only NamespaceLifecycle (no webhooks, no policies).
	admission := genericoptions.NewAdmissionOptions()
	admission.RecommendedPluginOrder = []string{lifecycle.PluginName}
	if err := admission.ApplyTo(&config.Config, config.SharedInformerFactory, kubeClient, dynamicClient,
		config.FeatureGate, config.EffectiveVersion); err != nil {
		return nil, err
	}

	// OpenAPI: the apiextensions models plus the k8s.io/api models generated at build time. They give
	// /openapi/v2, /openapi/v3 and, more importantly, the exact type converter that server-side apply
	// needs to merge lists as a real cluster does.
	definitions := func(ref common.ReferenceCallback) map[string]common.OpenAPIDefinition {
		all := apiextensionsopenapi.GetOpenAPIDefinitions(ref)
		for name, def := range generatedopenapi.GetOpenAPIDefinitions(ref) {
			all[name] = def
		}
		return all
	}
	namer := openapinamer.NewDefinitionNamer(externalScheme, apiextensionsapiserver.Scheme)
	config.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(definitions, namer)
	config.OpenAPIConfig.Info.Title = "Kubernetes"
	config.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(definitions, namer)
	config.OpenAPIV3Config.Info.Title = "Kubernetes"

	// No priority-and-fairness (FlowControl stays nil: plain max-in-flight limits apply).
	config.FlowControl = nil

	return &apiextensionsapiserver.Config{
		GenericConfig: config,
		ExtraConfig: apiextensionsapiserver.ExtraConfig{
			CRDRESTOptionsGetter: apiextensionsoptions.NewCRDRESTOptionsGetter(*etcdOptions, config.ResourceTransformers, config.StorageObjectCountTracker),
			ServiceResolver:      serviceResolver{config.SharedInformerFactory.Core().V1().Services().Lister()},
			AuthResolverWrapper:  webhook.NewDefaultAuthenticationInfoResolverWrapper(nil, nil, config.LoopbackClientConfig, noop.NewTracerProvider()),
			MasterCount:          1,
		},
	}, nil
}

// serviceResolver lets CRD conversion webhooks name a Service, as in kube-apiserver.
type serviceResolver struct{ services corelisters.ServiceLister }

func (r serviceResolver) ResolveEndpoint(namespace, name string, port int32) (*url.URL, error) {
	return proxy.ResolveCluster(r.services, namespace, name, port)
}

// bootstrapNamespaces creates the namespaces every cluster has. The server reports ready only once
// this hook has returned, so clients never see a cluster without `default`.
func bootstrapNamespaces(hook genericapiserver.PostStartHookContext) error {
	client, err := kubernetes.NewForConfig(hook.LoopbackClientConfig)
	if err != nil {
		return err
	}
	for _, name := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem, metav1.NamespacePublic} {
		err := wait.PollUntilContextTimeout(hook, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
			_, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
			if err == nil || apierrors.IsAlreadyExists(err) {
				return true, nil
			}
			klog.V(2).InfoS("retrying namespace bootstrap", "namespace", name, "err", err)
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("creating namespace %q: %w", name, err)
		}
	}
	return nil
}
