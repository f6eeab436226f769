package main

// apiextensions-apiserver serves /apis/<group> and /apis/<group>/<version> for CRDs and feeds the
// aggregated discovery document, but the legacy /apis group list is kube-aggregator's job in a
// cluster. kube-rs's Discovery (and older kubectl) read that list, so we add each CRD group to it
// once one of its CRDs is Established, and drop it when its last CRD goes.

import (
	"sort"

	apiextensionshelpers "k8s.io/apiextensions-apiserver/pkg/apihelpers"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	crdinformers "k8s.io/apiextensions-apiserver/pkg/client/informers/externalversions/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

func publishCRDGroups(server *genericapiserver.GenericAPIServer, informer crdinformers.CustomResourceDefinitionInformer) error {
	lister := informer.Lister()
	resync := func(obj interface{}) {
		if tombstone, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = tombstone.Obj
		}
		crd, ok := obj.(*apiextensionsv1.CustomResourceDefinition)
		if !ok {
			return
		}
		group := crd.Spec.Group
		all, err := lister.List(labels.Everything())
		if err != nil {
			klog.ErrorS(err, "listing CRDs for discovery")
			return
		}
		served := map[string]bool{}
		for _, c := range all {
			if c.Spec.Group != group || !apiextensionshelpers.IsCRDConditionTrue(c, apiextensionsv1.Established) {
				continue
			}
			for _, v := range c.Spec.Versions {
				if v.Served {
					served[v.Name] = true
				}
			}
		}
		if len(served) == 0 {
			server.DiscoveryGroupManager.RemoveGroup(group)
			return
		}
		versions := make([]string, 0, len(served))
		for v := range served {
			versions = append(versions, v)
		}
		// Kubernetes' version order: v2 > v1 > v1beta2 > v1beta1 > v1alpha1 > anything else.
		sort.Slice(versions, func(i, j int) bool {
			return version.CompareKubeAwareVersionStrings(versions[i], versions[j]) > 0
		})
		apiGroup := metav1.APIGroup{Name: group}
		for _, v := range versions {
			apiGroup.Versions = append(apiGroup.Versions, metav1.GroupVersionForDiscovery{GroupVersion: group + "/" + v, Version: v})
		}
		apiGroup.PreferredVersion = apiGroup.Versions[0]
		server.DiscoveryGroupManager.AddGroup(apiGroup)
	}
	_, err := informer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    resync,
		UpdateFunc: func(_, obj interface{}) { resync(obj) },
		DeleteFunc: resync,
	})
	return err
}
