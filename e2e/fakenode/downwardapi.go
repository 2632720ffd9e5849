package fakenode

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// volumesDir holds a pod's materialized volumes, one directory each.
const volumesDir = "volumes"

// fieldValue resolves a fieldRef the way the kubelet does for env vars and
// downward-API files.
func fieldValue(pod *corev1.Pod, path, podIP, hostIP string) (string, error) {
	if key, ok := subscript(path, "metadata.labels"); ok {
		return pod.Labels[key], nil
	}
	if key, ok := subscript(path, "metadata.annotations"); ok {
		return pod.Annotations[key], nil
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	case "status.hostIP", "status.hostIPs":
		return hostIP, nil
	}
	return "", fmt.Errorf("unsupported fieldPath %q", path)
}

// subscript parses prefix['key'].
func subscript(path, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(path, prefix+"['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(rest, "']")
}

// formatMap renders labels or annotations as the kubelet writes them into
// a downward-API file: sorted key="value" lines, values Go-quoted.
func formatMap(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	lines := make([]string, len(keys))
	for i, k := range keys {
		lines[i] = fmt.Sprintf("%s=%q", k, m[k])
	}
	return strings.Join(lines, "\n")
}

// downwardFiles renders the files of a downwardAPI volume.
func downwardFiles(pod *corev1.Pod, src *corev1.DownwardAPIVolumeSource) (map[string]fileData, error) {
	defaultMode := os.FileMode(0o644)
	if src.DefaultMode != nil {
		m, err := fileMode(*src.DefaultMode)
		if err != nil {
			return nil, fmt.Errorf("defaultMode: %w", err)
		}
		defaultMode = m
	}
	files := make(map[string]fileData, len(src.Items))
	for _, item := range src.Items {
		if item.FieldRef == nil {
			return nil, fmt.Errorf("item %q: only fieldRef items are supported", item.Path)
		}
		value, err := fieldValue(pod, item.FieldRef.FieldPath, "", "")
		if err != nil {
			return nil, fmt.Errorf("item %q: %w", item.Path, err)
		}
		mode := defaultMode
		if item.Mode != nil {
			if mode, err = fileMode(*item.Mode); err != nil {
				return nil, fmt.Errorf("item %q: %w", item.Path, err)
			}
		}
		files[item.Path] = fileData{data: []byte(value), mode: mode}
	}
	return files, nil
}

// fileMode checks a mode from the API, which validation bounds to 0777.
func fileMode(m int32) (os.FileMode, error) {
	if m < 0 || m > 0o777 {
		return 0, fmt.Errorf("mode %#o is outside 0-0777", m)
	}
	return os.FileMode(m), nil
}
