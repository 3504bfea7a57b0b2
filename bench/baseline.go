package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The comparison with an earlier run (-baseline, BENCH_BASELINE for make bench): a report of
// the same program, read back from its Markdown. Only ratios within one run mean much on a
// shared machine, so each side keeps its own ceilings, shown beside each other.

// reportTables is what a comparison reads of a report: its header lines, and the rows of its
// ceilings and "where the time goes" tables by their first cell.
type reportTables struct {
	date, software string
	ceilings       [][]string // in report order, cells without the first
	ceilingNames   []string
	costs          map[string][]string // workload → cells of "where the time goes"
	costOrder      []string
}

// parseReport reads the tables of a report rendered by markdown().
func parseReport(md string) reportTables {
	t := reportTables{costs: map[string][]string{}}
	section := ""
	for _, line := range strings.Split(md, "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		case strings.HasPrefix(line, "- date: "):
			t.date = strings.TrimPrefix(line, "- date: ")
		case strings.HasPrefix(line, "- software: "):
			t.software = strings.TrimPrefix(line, "- software: ")
		case strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "|---"):
			cells := strings.Split(strings.Trim(line, "|"), " | ")
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			if len(cells) < 2 || cells[0] == "ceiling" || cells[0] == "workload" {
				continue
			}
			switch {
			case strings.HasPrefix(section, "Ceilings"):
				t.ceilingNames = append(t.ceilingNames, cells[0])
				t.ceilings = append(t.ceilings, cells[1:])
			case section == "Where the time goes":
				if _, dup := t.costs[cells[0]]; !dup {
					t.costOrder = append(t.costOrder, cells[0])
				}
				t.costs[cells[0]] = cells[1:]
			}
		}
	}
	return t
}

// number reads a cell such as "7,448" or "98.8" (false: not a number).
func number(cell string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.ReplaceAll(cell, ",", ""), 64)
	return f, err == nil
}

// compareSection renders the comparison of the report after with the earlier one before
// (read from path): per small-request workload, the rate and the CPU one request costs on each
// side (server, PostgreSQL, load generator) in both runs, then both runs' ceilings.
func compareSection(path, before, after string) string {
	b, a := parseReport(before), parseReport(after)
	var s strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&s, format, args...) }
	p("\n## Against the baseline\n\n")
	p("Baseline: %s (%s; %s). Each run is compared with its own ceilings below: on a shared machine only ratios within one run are comparable.\n\n",
		path, b.date, b.software)
	p("| workload | req/s before → after | server µs/req before → after | PostgreSQL µs/req before → after | load generator µs/req before → after | all CPU µs/req before → after |\n")
	p("|---|---:|---:|---:|---:|---:|\n")
	for _, w := range a.costOrder {
		ac, bc := a.costs[w], b.costs[w]
		if bc == nil || len(ac) < 4 || len(bc) < 4 {
			p("| %s | not in the baseline | | | | |\n", w)
			continue
		}
		pair := func(i int) string { return bc[i] + " → " + ac[i] }
		total := func(c []string) string {
			sum := 0.0
			for _, v := range c[1:4] {
				f, ok := number(v)
				if !ok {
					return "?"
				}
				sum += f
			}
			return micros(sum)
		}
		p("| %s | %s | %s | %s | %s | %s → %s |\n", w, pair(0), pair(1), pair(2), pair(3), total(bc), total(ac))
	}
	p("\n| ceiling | before | after |\n|---|---:|---:|\n")
	for i, name := range a.ceilingNames {
		before := "not in the baseline"
		for j, bn := range b.ceilingNames {
			if bn == name && len(b.ceilings[j]) > 0 {
				before = b.ceilings[j][0]
			}
		}
		after := ""
		if len(a.ceilings[i]) > 0 {
			after = a.ceilings[i][0]
		}
		p("| %s | %s | %s |\n", name, before, after)
	}
	return s.String()
}

// readBaseline reads the baseline report at path ("" : none).
func readBaseline(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("baseline: %w", err)
	}
	if !strings.Contains(string(b), "\n## Where the time goes\n") {
		return "", fmt.Errorf("baseline %s: not a report of this benchmark (no \"Where the time goes\" table)", path)
	}
	return string(b), nil
}
