package events

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Event is one row of storage.events, as the dispatcher sends it.
type Event struct {
	ID        int64
	Type      string
	BucketID  string
	Name      string
	Payload   json.RawMessage
	CreatedAt time.Time
	Attempts  int
}

// Tenant names this storage in every webhook (the reference's tenant object).
type Tenant struct {
	Ref  string `json:"ref"`  // PROJECT_REF
	Host string `json:"host"` // the public host, when known
}

// EventIDHeader carries the event's id (storage.events.id) in every webhook request: the same
// event sent twice (at-least-once delivery) has the same id.
const EventIDHeader = "X-Storage-Event-Id"

// webhookBody is the reference's webhook request body.
type webhookBody struct {
	Type   string       `json:"type"` // always "Webhook"
	Event  webhookEvent `json:"event"`
	SentAt string       `json:"sentAt"`
	Tenant Tenant       `json:"tenant"`
}

type webhookEvent struct {
	Version   string          `json:"$version"`
	Type      string          `json:"type"`
	Payload   json.RawMessage `json:"payload"`
	ApplyTime int64           `json:"applyTime"` // ms since the epoch, when the change's transaction started
}

// jsTime is JavaScript's Date.prototype.toISOString, the reference's sentAt.
const jsTime = "2006-01-02T15:04:05.000Z"

// post sends e once: nil after a 2xx, else why not.
func (d *Dispatcher) post(ctx context.Context, e Event) error {
	body, err := json.Marshal(webhookBody{
		Type:   "Webhook",
		Event:  webhookEvent{Version: "v1", Type: e.Type, Payload: e.Payload, ApplyTime: e.CreatedAt.UnixMilli()},
		SentAt: time.Now().UTC().Format(jsTime),
		Tenant: d.cfg.Tenant,
	})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(EventIDHeader, fmt.Sprint(e.ID))
	if d.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+d.cfg.APIKey)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read a little of the answer so the connection can be reused; receivers answer briefly.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// newClient is the webhook's HTTP client: no overall timeout (each attempt's context has its
// deadline), keep-alive connections for every lane, and no redirects (a 3xx is not an
// acceptance: the event is retried, and the operator sees the status in last_error).
func newClient(lanes int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = lanes
	return &http.Client{
		Transport:     t,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
