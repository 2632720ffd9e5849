// Command chartdocs writes the documentation of a Helm chart's values from
// the comments of its values.yaml (make generate): the chart's README.md,
// from its README.md.gotmpl, and the table between the markers
// "<!-- chart-values:start -->" and "<!-- chart-values:end -->" of every
// file named on the command line.
//
//	go run ./hack/chartdocs -chart charts/kube-eip README.md
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"sigs.k8s.io/yaml"
)

// Markers of the generated table in a file written by hand.
const (
	startMarker = "<!-- chart-values:start -->"
	endMarker   = "<!-- chart-values:end -->"
)

func main() {
	chart := flag.String("chart", "charts/kube-eip", "the chart's directory")
	flag.Usage = func() {
		_, _ = fmt.Fprintf(flag.CommandLine.Output(), "usage: chartdocs [-chart dir] [file with markers...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*chart, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "chartdocs:", err)
		os.Exit(1)
	}
}

func run(chart string, files []string) error {
	data, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		return err
	}
	values, err := parseValues(data)
	if err != nil {
		return fmt.Errorf("%s/values.yaml: %w", chart, err)
	}
	tbl := table(values)
	readme, err := chartReadme(chart, tbl)
	if err != nil {
		return err
	}
	if err := writeIfChanged(filepath.Join(chart, "README.md"), readme); err != nil {
		return err
	}
	var errs []error
	for _, f := range files {
		errs = append(errs, replaceBetweenMarkers(f, tbl))
	}
	return errors.Join(errs...)
}

// chartMeta is what the README's template may say of Chart.yaml.
type chartMeta struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	AppVersion  string `json:"appVersion"`
	Description string `json:"description"`
}

// chartReadme renders the chart's README.md.gotmpl with the chart's
// metadata (.Chart) and the table of values (.Values).
func chartReadme(chart, tbl string) ([]byte, error) {
	data, err := os.ReadFile(filepath.Join(chart, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	var meta chartMeta
	if err := yaml.Unmarshal(data, &meta); err != nil {
		return nil, fmt.Errorf("%s/Chart.yaml: %w", chart, err)
	}
	path := filepath.Join(chart, "README.md.gotmpl")
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New(filepath.Base(path)).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, map[string]any{"Chart": meta, "Values": tbl}); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out.Bytes(), nil
}

// replaceBetweenMarkers puts tbl between the markers of path, which must
// hold each once, in order.
func replaceBetweenMarkers(path, tbl string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := betweenMarkers(string(data), tbl)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return writeIfChanged(path, []byte(out))
}

func betweenMarkers(text, tbl string) (string, error) {
	if strings.Count(text, startMarker) != 1 || strings.Count(text, endMarker) != 1 {
		return "", fmt.Errorf("want %s and %s once each", startMarker, endMarker)
	}
	before, rest, _ := strings.Cut(text, startMarker)
	_, after, ok := strings.Cut(rest, endMarker)
	if !ok {
		return "", fmt.Errorf("%s comes before %s", endMarker, startMarker)
	}
	return before + startMarker + "\n" + tbl + endMarker + after, nil
}

// writeIfChanged leaves a current file alone.
func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	return os.WriteFile(path, data, 0o644)
}
