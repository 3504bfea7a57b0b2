package metrics

import "github.com/pgstorage/storage/lifecycle"

// CollectorRun records what one run of the collector did (lifecycle.Collector.Observe).
func (r *Registry) CollectorRun(st lifecycle.Stats, err error) {
	if r.off {
		return
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
	r.variantsFreed.Add(float64(st.Variants))
	r.deleteFailures.Add(float64(st.Failed))
	r.uploadsExpired.Add(float64(st.Expired))
	r.leftoversRemoved.Add(float64(st.Leftovers))
	r.emptyRowsDeleted.Add(float64(st.EmptyDeleted))
	r.emptyJobsCompleted.Add(float64(st.EmptyDone))
}
