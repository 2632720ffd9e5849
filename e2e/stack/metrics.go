package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// BinderMetrics returns the binder's /metrics page.
func (s *Stack) BinderMetrics(ctx context.Context) (string, error) {
	page, err := getPage(ctx, http.DefaultClient, s.BinderMetricsURL)
	if err != nil {
		return "", fmt.Errorf("reading the binder's metrics: %w", err)
	}
	return page, nil
}

// WebhookMetrics returns the webhook's /metrics page, served over TLS
// beside admission.
func (s *Stack) WebhookMetrics(ctx context.Context) (string, error) {
	page, err := getPage(ctx, s.webhookClient, s.WebhookURL+"/metrics")
	if err != nil {
		return "", fmt.Errorf("reading the webhook's metrics: %w", err)
	}
	return page, nil
}

func getPage(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s answered %s", url, resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	return string(body), nil
}

// SumSamples adds up the samples of metric name in a Prometheus text page
// whose labels contain every one of match (`code="OK"`, say): one series,
// or the total over several.
func SumSamples(page, name string, match ...string) float64 {
	total := 0.0
	for _, line := range strings.Split(page, "\n") {
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || rest[0] != ' ' && rest[0] != '{' {
			continue
		}
		i := strings.LastIndexByte(rest, ' ')
		labels := rest[:i]
		if !containsAll(labels, match) {
			continue
		}
		if v, err := strconv.ParseFloat(rest[i+1:], 64); err == nil {
			total += v
		}
	}
	return total
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
