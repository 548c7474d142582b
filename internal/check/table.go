package check

import (
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Table renders results as the aligned text `netlab check` prints:
//
//	#  FROM  TO                CHECK   WANT  GOT  RESULT  DETAIL
//	1  blue  red (10.0.0.2)    ping    yes   yes  PASS    2/2 replies, 0.05 ms
//	2  blue  10.0.0.254        tcp/22  no    no   PASS    timeout after 2s
//	2 passed, 0 failed
//
// "#" is Index+1, the expectation's position in the file counted from 1. TO
// shows the resolved address after a name. GOT is "error" when the probe
// could not run (then it fails, whatever WANT says).
func Table(results []Result) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "#\tFROM\tTO\tCHECK\tWANT\tGOT\tRESULT\tDETAIL")
	passed := 0
	for _, r := range results {
		verdict := "FAIL"
		if r.Pass {
			verdict = "PASS"
			passed++
		}
		got := yesNo(r.Got)
		if r.Err != nil {
			got = "error"
		}
		// The last column is not tab-terminated, so tabwriter does not pad it.
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Index+1, r.From, target(r.Probe), check(r.Probe), yesNo(r.Want), got, verdict, oneLine(r.Detail))
	}
	w.Flush()
	fmt.Fprintf(&b, "%d passed, %d failed\n", passed, len(results)-passed)
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// target is To, with the address it resolved to when To is a name.
func target(p Probe) string {
	if !p.Addr.IsValid() {
		return p.To
	}
	a := p.Addr.String()
	if p.To == "" || p.To == a {
		return a
	}
	return p.To + " (" + a + ")"
}

// check is "ping", "tcp/22", "udp/53".
func check(p Probe) string {
	if p.Kind == TCP || p.Kind == UDP {
		return string(p.Kind) + "/" + strconv.Itoa(p.Port)
	}
	return string(p.Kind)
}

// oneLine keeps a multi-line error from breaking the table.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
