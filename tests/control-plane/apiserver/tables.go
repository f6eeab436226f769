package main

// Server-side tables (what `kubectl get` prints) for the kinds people look at during the demo,
// with the familiar columns of a cluster. Other kinds print NAME and CREATED AT.

import (
	"context"
	"fmt"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
)

// column is one printed column: its header and how to compute a cell from an object.
type column struct {
	name string
	cell func(runtime.Object) interface{}
}

// columnTable prints NAME, the given columns, then AGE.
type columnTable []column

func (t columnTable) ConvertToTable(_ context.Context, object runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	table := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{{Name: "Name", Type: "string", Format: "name"}}}
	for _, c := range t {
		table.ColumnDefinitions = append(table.ColumnDefinitions, metav1.TableColumnDefinition{Name: c.name, Type: "string"})
	}
	table.ColumnDefinitions = append(table.ColumnDefinitions, metav1.TableColumnDefinition{Name: "Age", Type: "string"})

	var items []runtime.Object
	if meta.IsListType(object) {
		var err error
		if items, err = meta.ExtractList(object); err != nil {
			return nil, err
		}
		if list, err := meta.ListAccessor(object); err == nil {
			table.ResourceVersion = list.GetResourceVersion()
			table.Continue = list.GetContinue()
			table.RemainingItemCount = list.GetRemainingItemCount()
		}
	} else {
		items = []runtime.Object{object}
	}
	for _, item := range items {
		m, err := meta.Accessor(item)
		if err != nil {
			return nil, err
		}
		cells := []interface{}{m.GetName()}
		for _, c := range t {
			cells = append(cells, c.cell(item))
		}
		cells = append(cells, age(m.GetCreationTimestamp().Time))
		table.Rows = append(table.Rows, metav1.TableRow{Cells: cells, Object: runtime.RawExtension{Object: item}})
	}
	return table, nil
}

func age(t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(time.Since(t))
}

var namespaceTable = columnTable{
	{"Status", func(o runtime.Object) interface{} { return string(o.(*corev1.Namespace).Status.Phase) }},
}

// Nothing runs pods here, so a Deployment shows 0 ready, exactly as it is.
var deploymentTable = columnTable{
	{"Ready", func(o runtime.Object) interface{} {
		d := o.(*appsv1.Deployment)
		return fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, replicas(d))
	}},
	{"Up-to-date", func(o runtime.Object) interface{} { return o.(*appsv1.Deployment).Status.UpdatedReplicas }},
	{"Available", func(o runtime.Object) interface{} { return o.(*appsv1.Deployment).Status.AvailableReplicas }},
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

// No IP allocation here: CLUSTER-IP shows what the spec asked for, or <none>.
var serviceTable = columnTable{
	{"Type", func(o runtime.Object) interface{} { return string(o.(*corev1.Service).Spec.Type) }},
	{"Cluster-IP", func(o runtime.Object) interface{} {
		if ip := o.(*corev1.Service).Spec.ClusterIP; ip != "" {
			return ip
		}
		return "<none>"
	}},
	{"Ports", func(o runtime.Object) interface{} {
		var ports []string
		for _, p := range o.(*corev1.Service).Spec.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
		}
		if len(ports) == 0 {
			return "<none>"
		}
		return strings.Join(ports, ",")
	}},
}

var leaseTable = columnTable{
	{"Holder", func(o runtime.Object) interface{} {
		if h := o.(*coordinationv1.Lease).Spec.HolderIdentity; h != nil {
			return *h
		}
		return ""
	}},
}
