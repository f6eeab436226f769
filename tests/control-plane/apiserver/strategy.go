package main

// One small strategy serves every built-in kind. kube-apiserver has a strategy per kind with full
// validation and defaulting from k8s.io/kubernetes, which Debian does not package; the behaviour a
// client can observe that matters for poolwatch is kept here:
//
//   - namespaced or cluster-scoped, with the kind's name rules;
//   - metadata.generation starts at 1 and grows when .spec changes;
//   - with a status subresource, the main resource ignores .status and /status ignores .spec
//     (also declared as reset fields, so server-side apply managers don't own the ignored half);
//   - a few defaults that clients print or rely on (see kind.defaults in builtin.go).

import (
	"context"
	"reflect"

	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apiserver/pkg/storage/names"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
)

type strategy struct {
	runtime.ObjectTyper
	names.NameGenerator
	kind *kind
}

// statusStrategy is the strategy of the /status subresource: only .status may change.
type statusStrategy struct{ *strategy }

func newStrategy(k *kind) *strategy {
	return &strategy{ObjectTyper: scheme, NameGenerator: names.SimpleNameGenerator, kind: k}
}

func (s *strategy) NamespaceScoped() bool          { return s.kind.namespaced }
func (s *strategy) AllowCreateOnUpdate() bool      { return false }
func (s *strategy) AllowUnconditionalUpdate() bool { return true }
func (s *strategy) Canonicalize(runtime.Object)    {}

func (s *strategy) PrepareForCreate(_ context.Context, obj runtime.Object) {
	if s.kind.status {
		setField(obj, "Status", reflect.Zero(structField(obj, "Status").Type()))
	}
	if structField(obj, "Spec").IsValid() {
		mustAccessor(obj).SetGeneration(1)
	}
	if s.kind.defaults != nil {
		s.kind.defaults(obj)
	}
}

func (s *strategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if s.kind.status {
		setField(obj, "Status", structField(old, "Status"))
	}
	if spec := structField(obj, "Spec"); spec.IsValid() {
		generation := mustAccessor(old).GetGeneration()
		if !apiequality.Semantic.DeepEqual(spec.Interface(), structField(old, "Spec").Interface()) {
			generation++
		}
		mustAccessor(obj).SetGeneration(generation)
	}
	// Defaults apply on every write, as decoding does in kube-apiserver.
	if s.kind.defaults != nil {
		s.kind.defaults(obj)
	}
}

func (s *strategy) Validate(_ context.Context, obj runtime.Object) field.ErrorList {
	return validation.ValidateObjectMetaAccessor(mustAccessor(obj), s.kind.namespaced, s.kind.nameRule, field.NewPath("metadata"))
}

func (s *strategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateObjectMetaAccessorUpdate(mustAccessor(obj), mustAccessor(old), field.NewPath("metadata"))
}

func (s *strategy) WarningsOnCreate(context.Context, runtime.Object) []string { return nil }
func (s *strategy) WarningsOnUpdate(context.Context, runtime.Object, runtime.Object) []string {
	return nil
}

// GetResetFields tells server-side apply which fields this endpoint throws away.
func (s *strategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	if !s.kind.status {
		return nil
	}
	return s.kind.resetFields("status")
}

func (s statusStrategy) PrepareForUpdate(_ context.Context, obj, old runtime.Object) {
	if spec := structField(obj, "Spec"); spec.IsValid() {
		setField(obj, "Spec", structField(old, "Spec"))
	}
}

func (s statusStrategy) ValidateUpdate(_ context.Context, obj, old runtime.Object) field.ErrorList {
	return validation.ValidateObjectMetaAccessorUpdate(mustAccessor(obj), mustAccessor(old), field.NewPath("metadata"))
}

func (s statusStrategy) GetResetFields() map[fieldpath.APIVersion]*fieldpath.Set {
	return s.kind.resetFields("spec")
}

// resetFields names one top-level field for every served version of the kind.
func (k *kind) resetFields(top string) map[fieldpath.APIVersion]*fieldpath.Set {
	return map[fieldpath.APIVersion]*fieldpath.Set{
		fieldpath.APIVersion(k.gv.String()): fieldpath.NewSet(fieldpath.MakePathOrDie(top)),
	}
}

// structField returns a struct field of a pointer-to-struct object, or an invalid Value if there is none.
func structField(obj runtime.Object, name string) reflect.Value {
	return reflect.ValueOf(obj).Elem().FieldByName(name)
}

func setField(obj runtime.Object, name string, value reflect.Value) {
	if f := structField(obj, name); f.IsValid() {
		f.Set(value)
	}
}

func mustAccessor(obj runtime.Object) metav1.Object {
	accessor, err := meta.Accessor(obj)
	if err != nil {
		panic(err) // every kind served here has ObjectMeta
	}
	return accessor
}
