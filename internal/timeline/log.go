package timeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Results of a step, as the event log writes them.
const (
	// Done: the step changed the lab (Actions actions applied).
	Done = "done"
	// UpToDate: the lab was already as the step wants it.
	UpToDate = "up to date"
	// Skipped: a later step due at the same moment set the same things
	// (Superseded), so this one was not carried out.
	Skipped = "skipped"
	// Failed: the engine refused or failed the change (Error says why);
	// the timeline goes on.
	Failed = "failed"
)

// StampLayout is how the event log writes times: RFC 3339 in UTC with
// milliseconds.
const StampLayout = "2006-01-02T15:04:05.000Z07:00"

// Entry is one line of a timeline's event log: a step, when it was
// planned, when the runner began it and when it was done, and how it went.
type Entry struct {
	Step       int    `json:"step"`
	Event      int    `json:"event"`
	Occurrence int    `json:"occurrence"`
	Undo       bool   `json:"undo,omitempty"`
	Action     string `json:"action"`
	// Planned is the timeline's start plus the step's time; Started when
	// the runner called the engine (it then waits for the lab's lock);
	// Finished when the change was applied.
	Planned  time.Time `json:"-"`
	Started  time.Time `json:"-"`
	Finished time.Time `json:"-"`
	Result   string    `json:"result"`
	// Actions counts the plan's actions the step applied.
	Actions int    `json:"actions"`
	Error   string `json:"error,omitempty"`
}

// Late is how long after its planned time the step was started.
func (e Entry) Late() time.Duration { return e.Started.Sub(e.Planned) }

// Took is how long the engine took to carry the step out, the wait for
// the lab's lock included.
func (e Entry) Took() time.Duration { return e.Finished.Sub(e.Started) }

// Off is how far from its planned time the step's change was in place
// (Finished - Planned): what a test that watches the network sees.
func (e Entry) Off() time.Duration { return e.Finished.Sub(e.Planned) }

// entryJSON is an entry as the log writes it: times as stamps, and the
// delays in milliseconds (to 0.01) for the eye.
type entryJSON struct {
	entryFields
	Planned  string  `json:"planned"`
	Started  string  `json:"started"`
	Finished string  `json:"finished"`
	LateMS   float64 `json:"late_ms"`
	TookMS   float64 `json:"took_ms"`
}

type entryFields Entry

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(StampLayout)
}

// MarshalJSON writes the entry as one line of the log.
func (e Entry) MarshalJSON() ([]byte, error) {
	return json.Marshal(entryJSON{entryFields: entryFields(e), Planned: stamp(e.Planned), Started: stamp(e.Started), Finished: stamp(e.Finished),
		LateMS: ms(e.Late()), TookMS: ms(e.Took())})
}

// UnmarshalJSON reads a line of the log. The stamps hold milliseconds; the
// delays in milliseconds give the times back to 10 µs.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var j entryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*e = Entry(j.entryFields)
	for _, t := range []struct {
		s  string
		to *time.Time
	}{{j.Planned, &e.Planned}, {j.Started, &e.Started}, {j.Finished, &e.Finished}} {
		if t.s == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.s)
		if err != nil {
			return fmt.Errorf("event log: %w", err)
		}
		*t.to = v
	}
	// The stamps are rounded to the millisecond: the delays are finer.
	if !e.Planned.IsZero() && !e.Started.IsZero() {
		e.Started = e.Planned.Add(time.Duration(j.LateMS * 1e6))
	}
	if !e.Started.IsZero() && !e.Finished.IsZero() {
		e.Finished = e.Started.Add(time.Duration(j.TookMS * 1e6))
	}
	return nil
}

// Line is the entry as one line of the event log, with its newline.
func (e Entry) Line() []byte {
	b, _ := json.Marshal(e) // nothing in an Entry fails to marshal
	return append(b, '\n')
}

// Text is the entry as the runner's log writes it for a person.
func (e Entry) Text() string {
	what := fmt.Sprintf("step %d: %s (event %d", e.Step, e.Action, e.Event)
	if e.Occurrence > 0 || e.Undo {
		what += fmt.Sprintf(", time %d", e.Occurrence+1)
	}
	if e.Undo {
		what += ", undone"
	}
	what += ")"
	switch e.Result {
	case Skipped:
		return fmt.Sprintf("%s %s: skipped: a later step due at once sets the same", stamp(e.Started), what)
	case Failed:
		return fmt.Sprintf("%s %s: failed after %s: %s", stamp(e.Started), what, e.Took().Round(time.Millisecond/10), e.Error)
	}
	return fmt.Sprintf("%s %s: %s (%d actions) in %s, planned %s, started %s late", stamp(e.Started), what, e.Result, e.Actions,
		e.Took().Round(time.Millisecond/10), stamp(e.Planned), e.Late().Round(time.Millisecond/10))
}

// ParseLog reads an event log: one entry per line. A last line cut short
// (a runner killed while writing it) is left out; any other bad line is an
// error.
func ParseLog(b []byte) ([]Entry, error) {
	var out []Entry
	lines := bytes.Split(b, []byte("\n"))
	for i, l := range lines {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(l, &e); err != nil {
			if i == len(lines)-1 {
				break // no newline yet: written in part
			}
			return out, fmt.Errorf("event log line %d: %w", i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}

// Next is the step a runner resumes at, given its event log: one past the
// last step logged (a step done but not logged when the runner died is
// carried out again; each step sets a state, so twice is once).
func Next(log []Entry) int {
	if len(log) == 0 {
		return 0
	}
	return log[len(log)-1].Step + 1
}
