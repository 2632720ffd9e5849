package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpGetCheck passes when url answers 200.
func httpGetCheck(url string, transport http.RoundTripper) healthCheck {
	client := &http.Client{Transport: transport, Timeout: 5 * time.Second}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: %s answered %d: %s", errNotReady, url, resp.StatusCode, body)
		}
		return nil
	}
}

// insecureLoopbackTransport talks to the scheduler's and controller
// manager's health endpoints, which serve self-signed certificates generated
// at their start; they listen on loopback only.
func insecureLoopbackTransport() http.RoundTripper {
	return &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback health probe of a self-signed component
}
