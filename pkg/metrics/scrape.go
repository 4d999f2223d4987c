package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// acceptHeader asks for OpenMetrics first, then the text format, as
// Prometheus does; both are parsed by Prometheus's own parsers.
const acceptHeader = "application/openmetrics-text;version=1.0.0;q=0.6,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

// ErrBodyTooLarge is returned when a target's body exceeds the size limit.
var ErrBodyTooLarge = errors.New("body exceeds size limit")

// scrapeError carries a bounded reason label for the errors counter.
type scrapeError struct {
	reason string
	err    error
}

func (e *scrapeError) Error() string { return e.err.Error() }
func (e *scrapeError) Unwrap() error { return e.err }

func reasonOf(err error) string {
	var se *scrapeError
	if errors.As(err, &se) {
		return se.reason
	}
	return "other"
}

// Scrape reasons, the values of the reason label.
const (
	reasonTimeout    = "timeout"
	reasonHTTP       = "http"
	reasonStatus     = "status"
	reasonTooLarge   = "body_too_large"
	reasonParse      = "parse"
	reasonCredential = "credentials"
)

// errScrapeCancelled is a scrape cut short because the exporter is
// stopping: not the target's failure, and not counted as one.
var errScrapeCancelled = errors.New("scrape cancelled: the exporter is stopping")

// cutShort is why a scrape whose ctx ended failed: the exporter stopping
// (errScrapeCancelled), else the target's timeout.
func cutShort(ctx context.Context, timedOut error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return errScrapeCancelled
	}
	return &scrapeError{reasonTimeout, timedOut}
}

// fetch GETs the target's metrics into buf, honouring ctx, the target's
// timeout and the size limit. The bearer token is read from its file on
// every scrape (tokens rotate) and never appears in errors or logs.
func fetch(ctx context.Context, client *http.Client, t *Target, limit int64, buf *bytes.Buffer) (contentType string, err error) {
	if t.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, t.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.URL, nil)
	if err != nil {
		return "", &scrapeError{reasonHTTP, fmt.Errorf("building request: %w", err)}
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("User-Agent", "infercast-exporter")
	if t.Timeout > 0 {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", fmt.Sprintf("%g", t.Timeout.Seconds()))
	}
	if t.BearerTokenFile != "" {
		tok, err := os.ReadFile(t.BearerTokenFile)
		if err != nil {
			// The path is configuration, not a secret; the content is.
			return "", &scrapeError{reasonCredential, fmt.Errorf("reading bearer token file %s: %w", t.BearerTokenFile, errors.Unwrap(err))}
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", cutShort(ctx, fmt.Errorf("scrape timed out after %s", t.Timeout))
		}
		return "", &scrapeError{reasonHTTP, err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return "", &scrapeError{reasonStatus, fmt.Errorf("server returned HTTP status %s", resp.Status)}
	}
	buf.Reset()
	n, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return "", cutShort(ctx, fmt.Errorf("reading body timed out after %s (%d bytes read)", t.Timeout, n))
		}
		return "", &scrapeError{reasonHTTP, fmt.Errorf("reading body: %w", err)}
	}
	if n > limit {
		buf.Reset()
		return "", &scrapeError{reasonTooLarge, fmt.Errorf("%w of %d bytes; raise global.body_size_limit_bytes if this is expected", ErrBodyTooLarge, limit)}
	}
	return resp.Header.Get("Content-Type"), nil
}

// defaultHTTPClient has no overall timeout (the per-target context bounds
// each scrape) and a transport sized for many targets.
func defaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 4
	tr.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: tr}
}
