package metrics

import (
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Pool exports a pgx pool's statistics under pool=name, read from stat at each scrape (pgxpool
// keeps them; the request path pays nothing).
func (r *Registry) Pool(name string, stat func() *pgxpool.Stat) {
	if r.off {
		return
	}
	r.pools.mu.Lock()
	defer r.pools.mu.Unlock()
	r.pools.pools = append(r.pools.pools, namedPool{name, stat})
}

var (
	poolConns = prometheus.NewDesc("storage_db_pool_connections",
		"Connections of a database pool, by state: in_use (acquired by a request), idle, constructing.",
		[]string{"pool", "state"}, nil)
	poolMax = prometheus.NewDesc("storage_db_pool_max_connections",
		"The most connections a database pool opens (DATABASE_POOL_SIZE for the main pool).", []string{"pool"}, nil)
	poolAcquires = prometheus.NewDesc("storage_db_pool_acquires_total",
		"Connections acquired from a database pool.", []string{"pool"}, nil)
	poolWaits = prometheus.NewDesc("storage_db_pool_acquire_waits_total",
		"Acquires that had to wait for a connection (none was idle).", []string{"pool"}, nil)
	poolWaitTime = prometheus.NewDesc("storage_db_pool_acquire_wait_seconds_total",
		"Time acquires spent waiting for a connection, summed.", []string{"pool"}, nil)
	poolCanceled = prometheus.NewDesc("storage_db_pool_acquires_canceled_total",
		"Acquires given up before a connection came (the request's time was up, DATABASE_POOL_ACQUIRE_TIMEOUT).",
		[]string{"pool"}, nil)
)

// poolCollector collects every pool: one collector, as the metrics of all pools share their
// descriptions.
type poolCollector struct {
	mu    sync.Mutex
	pools []namedPool
}

type namedPool struct {
	name string
	stat func() *pgxpool.Stat
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolConns, poolMax, poolAcquires, poolWaits, poolWaitTime, poolCanceled} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	pools := c.pools
	c.mu.Unlock()
	for _, p := range pools {
		s := p.stat()
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(s.AcquiredConns()), p.name, "in_use")
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(s.IdleConns()), p.name, "idle")
		ch <- prometheus.MustNewConstMetric(poolConns, prometheus.GaugeValue, float64(s.ConstructingConns()), p.name, "constructing")
		ch <- prometheus.MustNewConstMetric(poolMax, prometheus.GaugeValue, float64(s.MaxConns()), p.name)
		ch <- prometheus.MustNewConstMetric(poolAcquires, prometheus.CounterValue, float64(s.AcquireCount()), p.name)
		ch <- prometheus.MustNewConstMetric(poolWaits, prometheus.CounterValue, float64(s.EmptyAcquireCount()), p.name)
		ch <- prometheus.MustNewConstMetric(poolWaitTime, prometheus.CounterValue, s.EmptyAcquireWaitTime().Seconds(), p.name)
		ch <- prometheus.MustNewConstMetric(poolCanceled, prometheus.CounterValue, float64(s.CanceledAcquireCount()), p.name)
	}
}
