package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A chart author documents a value by the comment above it; sections need
// none, and the table shows each value's key, type and default.
func TestValuesAreReadFromTheirComments(t *testing.T) {
	values, err := parseValues([]byte(`# The file's own comment, which documents nothing.

# -- (string) **Required.** The cluster's
# name.
clusterName: ""
image:
  # -- Image repository.
  repository: ghcr.io/kube-eip/kube-eip
  # A note for maintainers, above the marker.
  # -- Pull policy | with a pipe.
  pullPolicy: IfNotPresent
# -- Requests, as one value.
resources:
  requests:
    cpu: 100m
# -- Replicas.
replicas: 2
# -- Labels.
labels: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []value{
		{Key: "clusterName", Type: "string", Default: `""`, Description: "**Required.** The cluster's name."},
		{Key: "image.repository", Type: "string", Default: `"ghcr.io/kube-eip/kube-eip"`, Description: "Image repository."},
		{Key: "image.pullPolicy", Type: "string", Default: `"IfNotPresent"`, Description: "Pull policy | with a pipe."},
		{Key: "resources", Type: "object", Default: `{"requests":{"cpu":"100m"}}`, Description: "Requests, as one value."},
		{Key: "replicas", Type: "int", Default: "2", Description: "Replicas."},
		{Key: "labels", Type: "object", Default: "{}", Description: "Labels."},
	}
	if len(values) != len(want) {
		t.Fatalf("got %d values %+v, want %d", len(values), values, len(want))
	}
	for i := range want {
		if values[i] != want[i] {
			t.Errorf("value %d = %+v, want %+v", i, values[i], want[i])
		}
	}
	tbl := table(values)
	for _, row := range []string{
		"| `image.pullPolicy` | string | `\"IfNotPresent\"` | Pull policy \\| with a pipe. |",
		"| `resources` | object | `{\"requests\":{\"cpu\":\"100m\"}}` | Requests, as one value. |",
	} {
		if !strings.Contains(tbl, row+"\n") {
			t.Errorf("table lacks the row %s:\n%s", row, tbl)
		}
	}
}

// A value without its comment fails the generation, naming it: make
// generate keeps every value documented.
func TestAnUndocumentedValueIsAnError(t *testing.T) {
	_, err := parseValues([]byte(`image:
  # -- Documented.
  repository: x
  tag: ""

# -- Separated from its key by a blank line, so not its comment.

replicas: 2
`))
	if err == nil {
		t.Fatal("undocumented values accepted")
	}
	for _, key := range []string{"image.tag", "replicas"} {
		if !strings.Contains(err.Error(), key+" has no") {
			t.Errorf("error %q does not name %s", err, key)
		}
	}
	if strings.Contains(err.Error(), "image.repository") {
		t.Errorf("error %q names a documented value", err)
	}
}

// The table replaces what stands between the markers, and only that; a
// file without them is refused rather than left as it was.
func TestTableGoesBetweenTheMarkers(t *testing.T) {
	in := "# Title\n\n" + startMarker + "\nold table\n" + endMarker + "\n\nAfter.\n"
	got, err := betweenMarkers(in, "| new |\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := "# Title\n\n" + startMarker + "\n| new |\n" + endMarker + "\n\nAfter.\n"; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	again, err := betweenMarkers(got, "| new |\n")
	if err != nil || again != got {
		t.Errorf("a second run changed the file: %q, %v", again, err)
	}
	for _, bad := range []string{"no markers\n", endMarker + "\n" + startMarker + "\n", startMarker + startMarker + endMarker} {
		if _, err := betweenMarkers(bad, "x"); err == nil {
			t.Errorf("markers of %q accepted", bad)
		}
	}
}

// The chart's README is its template with the table, and the chart's own
// values.yaml documents every value.
func TestRunWritesTheChartReadmeAndTheMarkedFiles(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "chart")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"Chart.yaml":       "apiVersion: v2\nname: demo\nversion: 0.1.0\nappVersion: v1\ndescription: A demo.\n",
		"values.yaml":      "# -- Replicas.\nreplicas: 2\n",
		"README.md.gotmpl": "# {{ .Chart.Name }} {{ .Chart.AppVersion }}\n\n{{ .Chart.Description }}\n\n{{ .Values }}",
		"../doc.md":        "Intro.\n" + startMarker + endMarker + "\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	doc := filepath.Join(root, "doc.md")
	if err := run(dir, []string{doc}); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := "| `replicas` | int | `2` | Replicas. |\n"
	if want := "# demo v1\n\nA demo.\n\n| Key | Type | Default | Description |\n|-----|------|---------|-------------|\n" + row; string(readme) != want {
		t.Errorf("README.md:\n%s\nwant\n%s", readme, want)
	}
	marked, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(marked), row+endMarker) {
		t.Errorf("doc.md:\n%s", marked)
	}

	if _, err := parseValues(mustRead(t, "../../charts/kube-eip/values.yaml")); err != nil {
		t.Errorf("charts/kube-eip/values.yaml: %v", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
