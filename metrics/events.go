package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgstorage/storage/events"
)

// Events exports the event dispatcher's statistics, read from stats at each scrape.
func (r *Registry) Events(stats func() events.Stats) {
	if r.off {
		return
	}
	r.reg.MustRegister(eventsCollector(stats))
}

var (
	eventsDelivered = prometheus.NewDesc("storage_events_delivered_total",
		"Events this server delivered to WEBHOOK_URL (2xx).", nil, nil)
	eventsFailed = prometheus.NewDesc("storage_events_delivery_failures_total",
		"Webhook attempts of this server that failed (non-2xx, network error, timeout); each is retried.", nil, nil)
	eventsLeader = prometheus.NewDesc("storage_events_leader",
		"1 while this server delivers the events (holds the dispatcher's lease), else 0.", nil, nil)
	eventsBacklog = prometheus.NewDesc("storage_events_backlog",
		"Events not delivered yet, at the last count (every 15 s; only with WEBHOOK_URL).", nil, nil)
	eventsOldest = prometheus.NewDesc("storage_events_oldest_undelivered_age_seconds",
		"Age of the oldest undelivered event at the last count (only with WEBHOOK_URL).", nil, nil)
)

type eventsCollector func() events.Stats

func (eventsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{eventsDelivered, eventsFailed, eventsLeader, eventsBacklog, eventsOldest} {
		ch <- d
	}
}

func (f eventsCollector) Collect(ch chan<- prometheus.Metric) {
	st := f()
	leader := 0.0
	if st.Leader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(eventsDelivered, prometheus.CounterValue, float64(st.Delivered))
	ch <- prometheus.MustNewConstMetric(eventsFailed, prometheus.CounterValue, float64(st.FailedAttempts))
	ch <- prometheus.MustNewConstMetric(eventsLeader, prometheus.GaugeValue, leader)
	if st.Backlog >= 0 { // counted only with a webhook
		ch <- prometheus.MustNewConstMetric(eventsBacklog, prometheus.GaugeValue, float64(st.Backlog))
		ch <- prometheus.MustNewConstMetric(eventsOldest, prometheus.GaugeValue, st.OldestUndelivered.Seconds())
	}
}
