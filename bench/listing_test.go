package main

import (
	"reflect"
	"testing"
)

// The listing report's plan verdict reads auto_explain's text (PostgreSQL 15): a scan of the
// table, or a sort of more than a page, is what a listing page must never do.

const probePlan = `duration: 0.011 ms  plan:
Query Text: select x.* from storage.objects x where x.bucket_id = $1 order by x.name collate "C" limit 1
Limit  (cost=0.43..3.64 rows=1 width=474) (actual time=0.010..0.010 rows=1 loops=1)
  Buffers: shared hit=4
  ->  Index Scan using bucketid_objname on objects x  (cost=0.43..99437.58 rows=30985 width=474) (actual time=0.009..0.009 rows=1 loops=1)
        Index Cond: ((bucket_id = $1) AND ((name)::text >= $25))
        Buffers: shared hit=4`

const smallSortPlan = `duration: 0.008 ms  plan:
Query Text: select x.* from storage.objects x order by case when _asc then x.name collate "C" end
Sort  (cost=8.46..8.46 rows=1 width=506) (actual time=0.007..0.007 rows=1 loops=1)
  Sort Key: (CASE WHEN $19 THEN (name)::text ELSE NULL::text END) COLLATE "C"
  Sort Method: quicksort  Memory: 25kB
  ->  Index Scan using objects_bucket_list_key on objects x  (cost=0.43..8.45 rows=1 width=506) (actual time=0.003..0.004 rows=1 loops=1)`

const bucketSortPlan = `Limit  (cost=1.00..2.00 rows=101 width=8) (actual time=300.1..300.2 rows=101 loops=1)
  ->  Sort  (cost=1.00..2.00 rows=1000000 width=8) (actual time=300.1..300.1 rows=1000000 loops=1)
        ->  Seq Scan on objects x  (cost=0.00..1.00 rows=1000000 width=8) (actual time=0.01..100.0 rows=1000000 loops=1)`

func TestPlanProblems(t *testing.T) {
	t.Parallel()
	cases := []struct {
		plan  string
		want  []string
		small int
	}{
		{probePlan, nil, 0},
		{smallSortPlan, nil, 1},
		{bucketSortPlan, []string{"Seq Scan", "Sort of more than a page"}, 0},
		{"Sort  (cost=1.00..2.00 rows=10 width=8)", []string{"Sort of more than a page"}, 0}, // no ANALYZE: unknown size
	}
	for _, c := range cases {
		if got := planProblems(c.plan); !reflect.DeepEqual(got, c.want) {
			t.Errorf("planProblems = %v, want %v for:\n%s", got, c.want, c.plan)
		}
		if got := smallSorts(c.plan); got != c.small {
			t.Errorf("smallSorts = %d, want %d for:\n%s", got, c.small, c.plan)
		}
	}
}
