package fakenode

import (
	"cmp"
	"context"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// envVars are a container's variables in the order the kubelet sets them.
type envVars struct {
	order  []string
	values map[string]string
}

func (e *envVars) set(name, value string) {
	if e.values == nil {
		e.values = map[string]string{}
	}
	if _, seen := e.values[name]; !seen {
		e.order = append(e.order, name)
	}
	e.values[name] = value
}

func (e *envVars) lookup(name string) (string, bool) {
	v, ok := e.values[name]
	return v, ok
}

// list renders the variables as KEY=value, each through rewrite.
func (e *envVars) list(rewrite func(string) string) []string {
	out := make([]string, 0, len(e.order))
	for _, name := range e.order {
		out = append(out, name+"="+rewrite(e.values[name]))
	}
	return out
}

// resolveEnv works out a container's own variables as the kubelet does:
// envFrom first, then env in order, each value able to refer to the ones
// before it with $(NAME); values from the pod's fields, Secrets and
// ConfigMaps of its namespace. A missing key or object fails the start
// unless the reference is optional.
func (k *Kubelet) resolveEnv(pod *corev1.Pod, c *corev1.Container, podIP, hostIP string, base *envVars) (*envVars, error) {
	vars := base
	if vars == nil {
		vars = &envVars{}
	}
	for _, from := range c.EnvFrom {
		var data map[string]string
		var optional *bool
		switch {
		case from.ConfigMapRef != nil:
			optional = from.ConfigMapRef.Optional
			cm, err := k.configMap(pod.Namespace, from.ConfigMapRef.Name)
			if err != nil && (!apierrors.IsNotFound(err) || !isTrue(optional)) {
				return nil, fmt.Errorf("envFrom configmap %q: %w", from.ConfigMapRef.Name, err)
			}
			if cm != nil {
				data = cm.Data
			}
		case from.SecretRef != nil:
			optional = from.SecretRef.Optional
			s, err := k.secret(pod.Namespace, from.SecretRef.Name)
			if err != nil && (!apierrors.IsNotFound(err) || !isTrue(optional)) {
				return nil, fmt.Errorf("envFrom secret %q: %w", from.SecretRef.Name, err)
			}
			if s != nil {
				data = map[string]string{}
				for key, v := range s.Data {
					data[key] = string(v)
				}
			}
		}
		for key, v := range data {
			vars.set(from.Prefix+key, v)
		}
	}
	for _, e := range c.Env {
		value := expand(e.Value, vars.lookup)
		if src := e.ValueFrom; src != nil {
			var err error
			var found bool
			if value, found, err = k.envSource(pod, src, podIP, hostIP); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			if !found {
				continue // an optional reference to nothing sets no variable
			}
		}
		vars.set(e.Name, value)
	}
	return vars, nil
}

// envSource is the value of one valueFrom; found is false for an
// optional reference to a missing object or key.
func (k *Kubelet) envSource(pod *corev1.Pod, src *corev1.EnvVarSource, podIP, hostIP string) (value string, found bool, err error) {
	switch {
	case src.FieldRef != nil:
		v, err := fieldValue(pod, src.FieldRef.FieldPath, podIP, hostIP)
		return v, err == nil, err
	case src.SecretKeyRef != nil:
		ref := src.SecretKeyRef
		s, err := k.secret(pod.Namespace, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q: %w", ref.Name, err)
		}
		v, ok := s.Data[ref.Key]
		if !ok && !isTrue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), ok, nil
	case src.ConfigMapKeyRef != nil:
		ref := src.ConfigMapKeyRef
		cm, err := k.configMap(pod.Namespace, ref.Name)
		if err != nil {
			if apierrors.IsNotFound(err) && isTrue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q: %w", ref.Name, err)
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !isTrue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, ok, nil
	}
	return "", false, fmt.Errorf("only fieldRef, secretKeyRef and configMapKeyRef sources are supported")
}

func isTrue(b *bool) bool { return b != nil && *b }

// containerEnv is the whole environment of a container of an image: the
// image's, then what the kubelet adds (HOSTNAME, where the API server is),
// then the container's own.
func (k *Kubelet) containerEnv(pod *corev1.Pod, c *corev1.Container, podIP, hostIP string, imageEnv []string) ([]string, func(string) (string, bool), error) {
	base := &envVars{}
	for _, kv := range imageEnv {
		name, value, _ := strings.Cut(kv, "=")
		base.set(name, value)
	}
	base.set("HOSTNAME", cmp.Or(pod.Spec.Hostname, pod.Name))
	api := k.opts.APIServer
	base.set("KUBERNETES_SERVICE_HOST", api.Addr().String())
	base.set("KUBERNETES_SERVICE_PORT", strconv.Itoa(int(api.Port())))
	base.set("KUBERNETES_SERVICE_PORT_HTTPS", strconv.Itoa(int(api.Port())))
	vars, err := k.resolveEnv(pod, c, podIP, hostIP, base)
	if err != nil {
		return nil, nil, err
	}
	return vars.list(func(s string) string { return s }), vars.lookup, nil
}

// secret reads a Secret from the cache when the Kubelet keeps one (it does
// for pods of images), else from the API server.
func (k *Kubelet) secret(namespace, name string) (*corev1.Secret, error) {
	if k.secrets != nil {
		return k.secrets.Secrets(namespace).Get(name)
	}
	return k.client.CoreV1().Secrets(namespace).Get(context.TODO(), name, metav1.GetOptions{})
}

// configMap reads a ConfigMap the same way.
func (k *Kubelet) configMap(namespace, name string) (*corev1.ConfigMap, error) {
	if k.configMaps != nil {
		return k.configMaps.ConfigMaps(namespace).Get(name)
	}
	return k.client.CoreV1().ConfigMaps(namespace).Get(context.TODO(), name, metav1.GetOptions{})
}
