package fakenode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// token is a service-account token the Kubelet requested for a projected
// volume, and when to ask for a new one.
type token struct {
	value     string
	refreshAt time.Time
}

// tokenRefresh is when the kubelet asks for a new token: at 80% of its
// life, or after a day, whichever comes first.
func tokenRefresh(issued, expires time.Time) time.Time {
	return issued.Add(min(expires.Sub(issued)*8/10, 24*time.Hour))
}

// syncVolumes writes the pod's volumes that its running containers mount
// as they should read now, records their host directories in st.volumes,
// and returns when a token in them is due for refresh (0: none is).
// Unchanged files are left alone; changed ones are swapped in atomically
// (the ..data link), as the kubelet does, so that a reader sees the old
// files or the new, never half of each.
func (k *Kubelet) syncVolumes(ctx context.Context, pod *corev1.Pod, st *podState) (time.Duration, error) {
	needed := map[string]bool{}
	for _, cs := range []struct {
		containers []corev1.Container
		runs       []*containerRun
	}{{pod.Spec.InitContainers, st.inits}, {pod.Spec.Containers, st.containers}} {
		for i := range cs.containers {
			if !cs.runs[i].real {
				continue
			}
			for _, m := range cs.containers[i].VolumeMounts {
				needed[m.Name] = true
			}
		}
	}
	if st.volumes == nil {
		st.volumes = map[string]string{}
	}
	var refresh time.Duration
	for _, v := range pod.Spec.Volumes {
		if !needed[v.Name] {
			continue
		}
		dir := filepath.Join(st.dir, volumesDir, v.Name)
		var files map[string]fileData
		var err error
		switch src := v.VolumeSource; {
		case src.EmptyDir != nil:
			// Writable by whoever the containers run as, like the kubelet's.
			if err := os.MkdirAll(dir, 0o777); err != nil {
				return 0, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				return 0, fmt.Errorf("volume %s: %w", v.Name, err)
			}
			st.volumes[v.Name] = dir
			continue
		case src.DownwardAPI != nil:
			files, err = downwardFiles(pod, src.DownwardAPI)
		case src.Secret != nil:
			files, err = k.secretFiles(pod.Namespace, src.Secret.SecretName, src.Secret.Items, src.Secret.DefaultMode, src.Secret.Optional)
		case src.ConfigMap != nil:
			files, err = k.configMapFiles(pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.DefaultMode, src.ConfigMap.Optional)
		case src.Projected != nil:
			var due time.Duration
			files, due, err = k.projectedFiles(ctx, pod, st, v.Name, src.Projected)
			refresh = minPositive(refresh, due)
		default:
			err = fmt.Errorf("only emptyDir, secret, configMap, downwardAPI and projected volumes are supported by the fake kubelet")
		}
		if err != nil {
			k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedMount", "MountVolume.SetUp failed for volume %q : %v", v.Name, err)
			return 0, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		if err := (atomicWriter{dir: dir}).write(files); err != nil {
			return 0, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		st.volumes[v.Name] = dir
	}
	return refresh, nil
}

// keyFiles renders the keys of a Secret or ConfigMap as files: every key,
// or only the items asked for, under the item's path and mode.
func keyFiles(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, what string) (map[string]fileData, error) {
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		m, err := fileMode(*defaultMode)
		if err != nil {
			return nil, fmt.Errorf("defaultMode: %w", err)
		}
		mode = m
	}
	files := map[string]fileData{}
	if len(items) == 0 {
		for key, v := range data {
			files[key] = fileData{data: v, mode: mode}
		}
		return files, nil
	}
	for _, item := range items {
		v, ok := data[item.Key]
		if !ok {
			return nil, fmt.Errorf("configured to use key %s of %s, which it does not have", item.Key, what)
		}
		m := mode
		if item.Mode != nil {
			var err error
			if m, err = fileMode(*item.Mode); err != nil {
				return nil, fmt.Errorf("item %q: %w", item.Path, err)
			}
		}
		files[item.Path] = fileData{data: v, mode: m}
	}
	return files, nil
}

func (k *Kubelet) secretFiles(namespace, name string, items []corev1.KeyToPath, mode *int32, optional *bool) (map[string]fileData, error) {
	s, err := k.secret(namespace, name)
	if apierrors.IsNotFound(err) && isTrue(optional) {
		return map[string]fileData{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %q: %w", name, err)
	}
	return keyFiles(s.Data, items, mode, "Secret "+namespace+"/"+name)
}

func (k *Kubelet) configMapFiles(namespace, name string, items []corev1.KeyToPath, mode *int32, optional *bool) (map[string]fileData, error) {
	cm, err := k.configMap(namespace, name)
	if apierrors.IsNotFound(err) && isTrue(optional) {
		return map[string]fileData{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("configmap %q: %w", name, err)
	}
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for key, v := range cm.Data {
		data[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		data[key] = v
	}
	return keyFiles(data, items, mode, "ConfigMap "+namespace+"/"+name)
}

// projectedFiles renders a projected volume: the admission-injected
// kube-api-access volume (a token, ca.crt, the namespace) and the like.
func (k *Kubelet) projectedFiles(ctx context.Context, pod *corev1.Pod, st *podState, volume string, src *corev1.ProjectedVolumeSource) (map[string]fileData, time.Duration, error) {
	files := map[string]fileData{}
	add := func(more map[string]fileData) {
		for p, f := range more {
			files[p] = f
		}
	}
	var mode *int32
	if src.DefaultMode != nil {
		mode = src.DefaultMode
	}
	var refresh time.Duration
	for i, s := range src.Sources {
		switch {
		case s.ServiceAccountToken != nil:
			tok, due, err := k.serviceAccountToken(ctx, pod, st, fmt.Sprintf("%s/%d", volume, i), s.ServiceAccountToken)
			if err != nil {
				return nil, 0, err
			}
			m := os.FileMode(0o644)
			if mode != nil {
				var err error
				if m, err = fileMode(*mode); err != nil {
					return nil, 0, err
				}
			}
			files[s.ServiceAccountToken.Path] = fileData{data: []byte(tok), mode: m}
			refresh = minPositive(refresh, due)
		case s.Secret != nil:
			more, err := k.secretFiles(pod.Namespace, s.Secret.Name, s.Secret.Items, mode, s.Secret.Optional)
			if err != nil {
				return nil, 0, err
			}
			add(more)
		case s.ConfigMap != nil:
			more, err := k.configMapFiles(pod.Namespace, s.ConfigMap.Name, s.ConfigMap.Items, mode, s.ConfigMap.Optional)
			if err != nil {
				return nil, 0, err
			}
			add(more)
		case s.DownwardAPI != nil:
			more, err := downwardFiles(pod, &corev1.DownwardAPIVolumeSource{Items: s.DownwardAPI.Items, DefaultMode: mode})
			if err != nil {
				return nil, 0, err
			}
			add(more)
		default:
			return nil, 0, fmt.Errorf("only serviceAccountToken, secret, configMap and downwardAPI projections are supported")
		}
	}
	return files, refresh, nil
}

// serviceAccountToken is the pod's token for one projection, requested
// through the TokenRequest API and bound to the pod, as the kubelet's, and
// renewed when it is due.
func (k *Kubelet) serviceAccountToken(ctx context.Context, pod *corev1.Pod, st *podState, key string, src *corev1.ServiceAccountTokenProjection) (string, time.Duration, error) {
	if st.tokens == nil {
		st.tokens = map[string]*token{}
	}
	now := time.Now()
	if t := st.tokens[key]; t != nil && now.Before(t.refreshAt) {
		return t.value, t.refreshAt.Sub(now), nil
	}
	sa := pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(ptr.Deref(src.ExpirationSeconds, 3600)),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
	}}
	if src.Audience != "" {
		req.Spec.Audiences = []string{src.Audience}
	}
	resp, err := k.client.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("requesting a token of service account %s: %w", sa, err)
	}
	t := &token{value: resp.Status.Token, refreshAt: tokenRefresh(now, resp.Status.ExpirationTimestamp.Time)}
	st.tokens[key] = t
	return t.value, t.refreshAt.Sub(now), nil
}

// podsUsing lists the pods whose mounted volumes or env read a Secret or
// ConfigMap, so that a change reaches their files.
func (k *Kubelet) podsUsing(namespace string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for key, st := range k.state {
		if ns, _, _ := strings.Cut(key, "/"); ns == namespace && st.runsSomething {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}
