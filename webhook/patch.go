package webhook

import (
	"maps"
	"slices"

	"github.com/go-openapi/jsonpointer"
	jsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// patchOps returns the JSON patch from orig to mutated, for exactly the
// fields Inject and the handler touch. Diffing whole pods (what
// admission.PatchResponseFromRaw does) costs more than the rest of a review
// together; the webhook knows what it changed.
func patchOps(orig, mutated *corev1.Pod) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	ops = mapOps(ops, "/metadata/labels", orig.Labels, mutated.Labels)
	ops = mapOps(ops, "/metadata/annotations", orig.Annotations, mutated.Annotations)
	ops = appendOps(ops, "/metadata/finalizers", orig.Finalizers, mutated.Finalizers)
	ops = prependOps(ops, "/spec/initContainers", orig.Spec.InitContainers, mutated.Spec.InitContainers)
	ops = appendOps(ops, "/spec/volumes", orig.Spec.Volumes, mutated.Spec.Volumes)
	ops = appendOps(ops, "/spec/readinessGates", orig.Spec.ReadinessGates, mutated.Spec.ReadinessGates)
	return ops
}

func mapOps(ops []jsonpatch.JsonPatchOperation, path string, orig, cur map[string]string) []jsonpatch.JsonPatchOperation {
	if len(orig) == 0 {
		if len(cur) > 0 {
			ops = append(ops, jsonpatch.NewOperation("add", path, cur))
		}
		return ops
	}
	for _, k := range slices.Sorted(maps.Keys(orig)) {
		if _, ok := cur[k]; !ok {
			ops = append(ops, jsonpatch.NewOperation("remove", path+"/"+jsonpointer.Escape(k), nil))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		if v, ok := orig[k]; !ok || v != cur[k] {
			ops = append(ops, jsonpatch.NewOperation("add", path+"/"+jsonpointer.Escape(k), cur[k]))
		}
	}
	return ops
}

// prependOps covers items inserted at the front, as the wait container is.
func prependOps[T any](ops []jsonpatch.JsonPatchOperation, path string, orig, cur []T) []jsonpatch.JsonPatchOperation {
	if len(orig) == 0 {
		if len(cur) > 0 {
			ops = append(ops, jsonpatch.NewOperation("add", path, cur))
		}
		return ops
	}
	for i := len(cur) - len(orig) - 1; i >= 0; i-- {
		ops = append(ops, jsonpatch.NewOperation("add", path+"/0", cur[i]))
	}
	return ops
}

// appendOps covers items added at the end.
func appendOps[T any](ops []jsonpatch.JsonPatchOperation, path string, orig, cur []T) []jsonpatch.JsonPatchOperation {
	if len(orig) == 0 {
		if len(cur) > 0 {
			ops = append(ops, jsonpatch.NewOperation("add", path, cur))
		}
		return ops
	}
	for _, item := range cur[len(orig):] {
		ops = append(ops, jsonpatch.NewOperation("add", path+"/-", item))
	}
	return ops
}
