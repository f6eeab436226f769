package main

// Built-in kinds, served storage-only through the real generic registry (etcd, watch cache,
// resourceVersions, field managers, label selectors, tables, the lot), one generic strategy each.
//
// kube-apiserver converts every request to an internal type from k8s.io/kubernetes. That package is
// not available, so each group's external v1 types are registered a second time as the group's
// internal version: conversion between the two is the identity. The only real conversion is
// events.k8s.io/v1 <-> core/v1 Event (events.go), because both share one storage.

import (
	"context"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsinstall "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/install"
	"k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apiserver/pkg/registry/generic"
	genericregistry "k8s.io/apiserver/pkg/registry/generic/registry"
	"k8s.io/apiserver/pkg/registry/rest"
	genericapiserver "k8s.io/apiserver/pkg/server"
	serverstorage "k8s.io/apiserver/pkg/server/storage"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

var (
	// scheme serves and stores the built-in kinds and the CRD objects themselves.
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
	// externalScheme knows only the external versions; it names the OpenAPI models, whose
	// x-kubernetes-group-version-kind must not mention the internal versions.
	externalScheme = runtime.NewScheme()

	eventsResource = eventsv1.Resource("events")
)

// kind describes one served resource.
type kind struct {
	gv         schema.GroupVersion
	resource   string
	object     runtime.Object // a pointer to the (external) Go type
	list       runtime.Object
	namespaced bool
	status     bool // has a /status subresource
	shortNames []string
	categories []string
	nameRule   validation.ValidateNameFunc
	defaults   func(runtime.Object) // applied on create and update
	table      rest.TableConvertor  // nil: NAME and CREATED AT
}

var (
	core       = corev1.SchemeGroupVersion
	subdomain  = validation.NameIsDNSSubdomain
	dnsLabel   = validation.NameIsDNSLabel
	rbacName   = validation.ValidateNameFunc(path.ValidatePathSegmentName)
	everything = []string{"all"}
)

var kinds = []*kind{
	{gv: core, resource: "namespaces", object: &corev1.Namespace{}, list: &corev1.NamespaceList{}, status: true, shortNames: []string{"ns"}, nameRule: dnsLabel, table: namespaceTable, defaults: func(o runtime.Object) {
		o.(*corev1.Namespace).Status.Phase = corev1.NamespaceActive
	}},
	{gv: core, resource: "secrets", object: &corev1.Secret{}, list: &corev1.SecretList{}, namespaced: true, nameRule: subdomain, defaults: defaultSecret},
	{gv: core, resource: "configmaps", object: &corev1.ConfigMap{}, list: &corev1.ConfigMapList{}, namespaced: true, shortNames: []string{"cm"}, nameRule: subdomain},
	{gv: core, resource: "serviceaccounts", object: &corev1.ServiceAccount{}, list: &corev1.ServiceAccountList{}, namespaced: true, shortNames: []string{"sa"}, nameRule: subdomain},
	{gv: core, resource: "services", object: &corev1.Service{}, list: &corev1.ServiceList{}, namespaced: true, status: true, shortNames: []string{"svc"}, categories: everything, nameRule: validation.NameIsDNS1035Label, table: serviceTable, defaults: defaultService},
	{gv: core, resource: "events", object: &corev1.Event{}, list: &corev1.EventList{}, namespaced: true, shortNames: []string{"ev"}, nameRule: subdomain, table: eventTable{}},
	{gv: eventsv1.SchemeGroupVersion, resource: "events", object: &corev1.Event{}, list: &corev1.EventList{}, namespaced: true, nameRule: subdomain},
	{gv: coordinationv1.SchemeGroupVersion, resource: "leases", object: &coordinationv1.Lease{}, list: &coordinationv1.LeaseList{}, namespaced: true, nameRule: subdomain, table: leaseTable},
	{gv: appsv1.SchemeGroupVersion, resource: "deployments", object: &appsv1.Deployment{}, list: &appsv1.DeploymentList{}, namespaced: true, status: true, shortNames: []string{"deploy"}, categories: everything, nameRule: subdomain, table: deploymentTable, defaults: defaultDeployment},
	{gv: rbacv1.SchemeGroupVersion, resource: "clusterroles", object: &rbacv1.ClusterRole{}, list: &rbacv1.ClusterRoleList{}, nameRule: rbacName},
	{gv: rbacv1.SchemeGroupVersion, resource: "clusterrolebindings", object: &rbacv1.ClusterRoleBinding{}, list: &rbacv1.ClusterRoleBindingList{}, nameRule: rbacName},
	{gv: rbacv1.SchemeGroupVersion, resource: "roles", object: &rbacv1.Role{}, list: &rbacv1.RoleList{}, namespaced: true, nameRule: rbacName},
	{gv: rbacv1.SchemeGroupVersion, resource: "rolebindings", object: &rbacv1.RoleBinding{}, list: &rbacv1.RoleBindingList{}, namespaced: true, nameRule: rbacName},
	{gv: policyv1.SchemeGroupVersion, resource: "poddisruptionbudgets", object: &policyv1.PodDisruptionBudget{}, list: &policyv1.PodDisruptionBudgetList{}, namespaced: true, status: true, shortNames: []string{"pdb"}, nameRule: subdomain},
	{gv: networkingv1.SchemeGroupVersion, resource: "networkpolicies", object: &networkingv1.NetworkPolicy{}, list: &networkingv1.NetworkPolicyList{}, namespaced: true, shortNames: []string{"netpol"}, nameRule: subdomain},
}

// defaultSecret does what kube-apiserver's conversion does: stringData is write-only and is
// merged into data (its values win), so readers only ever see data.
func defaultSecret(o runtime.Object) {
	s := o.(*corev1.Secret)
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
	if len(s.StringData) > 0 {
		if s.Data == nil {
			s.Data = map[string][]byte{}
		}
		for key, value := range s.StringData {
			s.Data[key] = []byte(value)
		}
		s.StringData = nil
	}
}

func init() {
	apiextensionsinstall.Install(scheme)

	// Discovery and status types live outside any group, as in kube-apiserver.
	unversioned := schema.GroupVersion{Version: "v1"}
	for _, s := range []*runtime.Scheme{scheme, externalScheme} {
		s.AddUnversionedTypes(unversioned, &metav1.Status{}, &metav1.APIVersions{}, &metav1.APIGroupList{}, &metav1.APIGroup{}, &metav1.APIResourceList{})
	}

	for _, k := range kinds {
		internal := schema.GroupVersion{Group: k.gv.Group, Version: runtime.APIVersionInternal}
		if k.gv == eventsv1.SchemeGroupVersion {
			// The external shape is eventsv1.Event; the internal one is core's (events.go).
			scheme.AddKnownTypes(k.gv, &eventsv1.Event{}, &eventsv1.EventList{})
			externalScheme.AddKnownTypes(k.gv, &eventsv1.Event{}, &eventsv1.EventList{})
		} else {
			scheme.AddKnownTypes(k.gv, k.object, k.list)
			externalScheme.AddKnownTypes(k.gv, k.object, k.list)
		}
		scheme.AddKnownTypes(internal, k.object, k.list)
		metav1.AddToGroupVersion(scheme, k.gv)
		metav1.AddToGroupVersion(externalScheme, k.gv)
		if err := scheme.SetVersionPriority(k.gv); err != nil {
			panic(err)
		}
	}
	if err := addEventConversions(scheme); err != nil {
		panic(err)
	}
}

// newResourceEncoding stores every kind in its only external version; events.k8s.io Events are
// stored as core/v1 Events (the two cohabit, see buildConfig).
func newResourceEncoding() *serverstorage.DefaultResourceEncodingConfig {
	encoding := serverstorage.NewDefaultResourceEncodingConfig(scheme)
	encoding.SetResourceEncoding(eventsResource, core, schema.GroupVersion{Group: eventsv1.GroupName, Version: runtime.APIVersionInternal})
	return encoding
}

// enabledResources tells the storage factory which groups exist (it uses this to pick the storage
// location of cohabiting resources).
func enabledResources() *serverstorage.ResourceConfig {
	config := serverstorage.NewResourceConfig()
	for _, k := range kinds {
		config.EnableVersions(k.gv)
	}
	return config
}

// installBuiltins serves every kind: core/v1 under /api, the groups under /apis.
func installBuiltins(server *genericapiserver.GenericAPIServer, optsGetter generic.RESTOptionsGetter) error {
	groups := map[string]*genericapiserver.APIGroupInfo{}
	var order []string
	for _, k := range kinds {
		info, ok := groups[k.gv.Group]
		if !ok {
			i := genericapiserver.NewDefaultAPIGroupInfo(k.gv.Group, scheme, metav1.ParameterCodec, codecs)
			info = &i
			groups[k.gv.Group] = info
			order = append(order, k.gv.Group)
		}
		storage, err := newStorage(k, optsGetter)
		if err != nil {
			return err
		}
		resources := info.VersionedResourcesStorageMap[k.gv.Version]
		if resources == nil {
			resources = map[string]rest.Storage{}
			info.VersionedResourcesStorageMap[k.gv.Version] = resources
		}
		for name, s := range storage {
			resources[name] = s
		}
	}
	if err := server.InstallLegacyAPIGroup(genericapiserver.DefaultLegacyAPIPrefix, groups[""]); err != nil {
		return err
	}
	var named []*genericapiserver.APIGroupInfo
	for _, group := range order {
		if group != "" {
			named = append(named, groups[group])
		}
	}
	return server.InstallAPIGroups(named...)
}

// store is the REST storage of one kind: the generic registry plus what discovery shows of it.
type store struct {
	*genericregistry.Store
	kind *kind
}

func (s *store) ShortNames() []string { return s.kind.shortNames }
func (s *store) Categories() []string { return s.kind.categories }

// statusStore serves /status: get and update (and so patch and apply) of the same object.
type statusStore struct{ store *genericregistry.Store }

func (s *statusStore) New() runtime.Object { return s.store.New() }
func (s *statusStore) Destroy()            {}
func (s *statusStore) Get(ctx context.Context, name string, options *metav1.GetOptions) (runtime.Object, error) {
	return s.store.Get(ctx, name, options)
}
func (s *statusStore) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc,
	updateValidation rest.ValidateObjectUpdateFunc, _ bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	// Subresources never create their parent.
	return s.store.Update(ctx, name, objInfo, createValidation, updateValidation, false, options)
}
func (s *statusStore) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return s.store.GetResetFields()
}
func (s *statusStore) ConvertToTable(ctx context.Context, object runtime.Object, tableOptions runtime.Object) (*metav1.Table, error) {
	return s.store.ConvertToTable(ctx, object, tableOptions)
}

func newStorage(k *kind, optsGetter generic.RESTOptionsGetter) (map[string]rest.Storage, error) {
	resource := k.gv.WithResource(k.resource).GroupResource()
	kindName := reflect.TypeOf(k.object).Elem().Name()
	strategy := newStrategy(k)
	table := k.table
	if table == nil {
		table = rest.NewDefaultTableConvertor(resource)
	}
	s := &genericregistry.Store{
		NewFunc:                   func() runtime.Object { return newOf(k.object) },
		NewListFunc:               func() runtime.Object { return newOf(k.list) },
		DefaultQualifiedResource:  resource,
		SingularQualifiedResource: k.gv.WithResource(strings.ToLower(kindName)).GroupResource(),
		CreateStrategy:            strategy,
		UpdateStrategy:            strategy,
		DeleteStrategy:            strategy,
		ResetFieldsStrategy:       strategy,
		TableConvertor:            table,
	}
	if err := s.CompleteWithOptions(&generic.StoreOptions{RESTOptions: optsGetter}); err != nil {
		return nil, err
	}
	result := map[string]rest.Storage{k.resource: &store{Store: s, kind: k}}
	if k.status {
		status := *s
		status.UpdateStrategy = statusStrategy{strategy}
		status.ResetFieldsStrategy = statusStrategy{strategy}
		result[k.resource+"/status"] = &statusStore{store: &status}
	}
	return result, nil
}

func newOf(example runtime.Object) runtime.Object {
	return reflect.New(reflect.TypeOf(example).Elem()).Interface().(runtime.Object)
}

// defaultService fills what every Service in a cluster has, so printed output looks familiar.
func defaultService(o runtime.Object) {
	spec := &o.(*corev1.Service).Spec
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	for i := range spec.Ports {
		port := &spec.Ports[i]
		if port.Protocol == "" {
			port.Protocol = corev1.ProtocolTCP
		}
		if port.TargetPort == (intstr.IntOrString{}) {
			port.TargetPort = intstr.FromInt32(port.Port)
		}
	}
}

// defaultDeployment applies the apps/v1 defaults that tools commonly read back.
func defaultDeployment(o runtime.Object) {
	spec := &o.(*appsv1.Deployment).Spec
	if spec.Replicas == nil {
		spec.Replicas = ptr.To[int32](1)
	}
	if spec.RevisionHistoryLimit == nil {
		spec.RevisionHistoryLimit = ptr.To[int32](10)
	}
	if spec.ProgressDeadlineSeconds == nil {
		spec.ProgressDeadlineSeconds = ptr.To[int32](600)
	}
	if spec.Strategy.Type == "" {
		spec.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if spec.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType && spec.Strategy.RollingUpdate == nil {
		quarter := intstr.FromString("25%")
		spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: &quarter, MaxUnavailable: &quarter}
	}
}
