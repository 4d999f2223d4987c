package batchctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxBody bounds what the actuators read from a server.
const maxBody = 4 << 20

// doJSON sends body (nil for none) as JSON and decodes a 2xx JSON reply
// into out (nil to discard). Non-2xx replies become errors carrying the
// server's "error" message when it sends one (Triton does).
func doJSON(ctx context.Context, c *http.Client, method, url string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("%s %s: reading reply: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		msg := strings.TrimSpace(string(data))
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		if len(msg) > 512 {
			msg = msg[:512] + "…"
		}
		return &statusError{Code: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s: %s", method, url, resp.Status, msg)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding reply: %w", method, url, err)
	}
	return nil
}

// statusError is a server's non-2xx reply: the server answered, and said no.
type statusError struct {
	Code int
	msg  string
}

func (e *statusError) Error() string { return e.msg }

// refused says err is a server's 4xx reply: it understood the request and
// refused it, having changed nothing.
func refused(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Code/100 == 4
}
