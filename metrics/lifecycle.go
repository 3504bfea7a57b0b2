package metrics

import "github.com/pgstorage/storage/lifecycle"

// CollectorRun records what one run of the collector did, and the work it left
// (lifecycle.Collector.Observe; backlog nil: unknown, the gauges keep their last values).
func (r *Registry) CollectorRun(st lifecycle.Stats, err error, backlog *lifecycle.Backlog) {
	if r.off {
		return
	}
	if backlog != nil {
		r.queued.Set(float64(backlog.Queued))
		r.due.Set(float64(backlog.Due))
		r.oldestQueued.Set(backlog.Oldest.Seconds())
		r.emptyJobs.Set(float64(backlog.EmptyJobs))
	}
	switch {
	case err != nil:
		r.collectorRuns.WithLabelValues("failed").Inc()
	case !st.Leader:
		r.collectorRuns.WithLabelValues("skipped").Inc()
		return
	default:
		r.collectorRuns.WithLabelValues("led").Inc()
	}
	// A failed run still did what it counted before it failed.
	r.blobsFreed.Add(float64(st.Deleted))
	r.bytesFreed.Add(float64(st.FreedBytes))
	r.variantsFreed.Add(float64(st.Variants))
	r.deleteFailures.Add(float64(st.Failed))
	r.uploadsExpired.Add(float64(st.Expired))
	r.leftoversRemoved.Add(float64(st.Leftovers))
	r.emptyRowsDeleted.Add(float64(st.EmptyDeleted))
	r.emptyJobsCompleted.Add(float64(st.EmptyDone))
}
