package topology

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Trace is a Mahimahi packet-delivery trace (mm-link's format): one entry a
// line, a whole number of milliseconds from the trace's start at which one
// MTU-sized packet may leave the link; an entry written twice is two
// packets in that millisecond. Entries never go back in time, and the
// trace repeats with the period of its last entry. Blank lines and lines
// starting with # are skipped (Mahimahi's own traces have neither).
type Trace struct {
	Name string   // the path as the lab file (or netlab impair) gave it
	Sum  string   // a hash of the entries: which trace this is
	MS   []uint32 // the entries, in order
}

// Ref is how an impairment names the trace.
func (t *Trace) Ref() TraceRef { return TraceRef{Name: t.Name, Sum: t.Sum} }

// TraceRef names a trace in an impairment: its name (the path as given)
// and the hash of its entries, which is what is compared.
type TraceRef struct {
	Name string `json:"name,omitempty"`
	Sum  string `json:"sum,omitempty"`
}

// IsZero says whether no trace is named.
func (r TraceRef) IsZero() bool { return r == TraceRef{} }

// MaxTraceEntries bounds a trace: a minute of a 1 Gb/s link.
const MaxTraceEntries = 5_000_000

// TraceError is a line of a trace file that is not an entry.
type TraceError struct {
	File string
	Line int
	Msg  string
}

func (e *TraceError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// ParseTrace reads a trace named name from data, saying at which line an
// entry is wrong.
func ParseTrace(name string, data []byte) (*Trace, error) {
	t := &Trace{Name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		v, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, &TraceError{File: name, Line: line, Msg: fmt.Sprintf("%q is not a whole number of milliseconds", s)}
		}
		if n := len(t.MS); n > 0 && uint32(v) < t.MS[n-1] {
			return nil, &TraceError{File: name, Line: line, Msg: fmt.Sprintf("%d ms is before the entry above it (%d ms): a trace goes forward in time", v, t.MS[n-1])}
		}
		if len(t.MS) == MaxTraceEntries {
			return nil, &TraceError{File: name, Line: line, Msg: fmt.Sprintf("more than %d entries", MaxTraceEntries)}
		}
		t.MS = append(t.MS, uint32(v))
	}
	if err := sc.Err(); err != nil {
		return nil, &TraceError{File: name, Line: line + 1, Msg: err.Error()}
	}
	if len(t.MS) == 0 {
		return nil, &TraceError{File: name, Msg: "no entries: a trace holds one millisecond a line"}
	}
	if t.MS[len(t.MS)-1] == 0 {
		return nil, &TraceError{File: name, Line: line, Msg: "the last entry is 0 ms: the trace repeats with the period of its last entry, which must be at least 1 ms"}
	}
	t.Sum = traceSum(t.MS)
	return t, nil
}

// traceSum hashes the entries (not the text: comments and spacing do not
// make another trace).
func traceSum(ms []uint32) string {
	h := sha256.New()
	var b [4]byte
	for _, v := range ms {
		binary.LittleEndian.PutUint32(b[:], v)
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// LoadTrace reads and parses a trace file.
func LoadTrace(path string) (*Trace, error) {
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return nil, err
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fileKind(fi.Mode()))
	case fi.Size() > MaxFileSize*16:
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxFileSize*16)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTrace(path, b)
}

// Rate is the trace's mean capacity in bits per second when each entry
// delivers mtu bytes.
func (t *Trace) Rate(mtu int) float64 {
	return float64(len(t.MS)) * float64(mtu) * 8 / (float64(t.MS[len(t.MS)-1]) / 1000)
}

// readTraces reads the trace files the lab's impairments name, relative to
// dir (the lab file's directory), into lab.Traces, and gives each
// impairment (and impair event of a timeline) the trace's hash. A file that
// cannot be read or parsed is an error at the place that names it.
func readTraces(lab *Lab, dir string) ErrorList {
	var errs ErrorList
	for _, im := range lab.Impairments {
		if im.Trace.Name == "" || im.Trace.Sum != "" {
			continue
		}
		at := im.FieldPos["trace"]
		t, err := LoadTrace(filepath.Join(dir, im.Trace.Name))
		if err != nil {
			errs = append(errs, &Error{File: lab.File, Pos: at, Path: im.Path + ".trace", Msg: traceMsg(err)})
			continue
		}
		t.Name = im.Trace.Name
		im.Trace.Sum = t.Sum
		if lab.Traces == nil {
			lab.Traces = map[string]*Trace{}
		}
		lab.Traces[t.Sum] = t
	}
	// The timelines' impair events: their traces (theirs, or the file's
	// their interfaces kept) are read as the file's.
	byName := map[string]string{}
	for _, t := range lab.Traces {
		byName[t.Name] = t.Sum
	}
	for _, tl := range lab.Timelines {
		for _, ev := range tl.Events {
			for i := range ev.Impair {
				ii := &ev.Impair[i]
				ref := &ii.Impair.Trace
				if ref.Name == "" || ref.Sum != "" {
					continue
				}
				if sum, ok := byName[ref.Name]; ok {
					ref.Sum = sum
					continue
				}
				at := ii.Pos
				if at == (Pos{}) {
					at = ev.Place(EventImpair)
				}
				t, err := LoadTrace(filepath.Join(dir, ref.Name))
				if err != nil {
					errs = append(errs, &Error{File: lab.File, Pos: at, Path: join(join(ev.Path, EventImpair), ii.Interface) + ".trace", Msg: traceMsg(err)})
					continue
				}
				t.Name = ref.Name
				ref.Sum = t.Sum
				if lab.Traces == nil {
					lab.Traces = map[string]*Trace{}
				}
				lab.Traces[t.Sum], byName[t.Name] = t, t.Sum
			}
		}
	}
	return errs
}

// traceMsg says why a trace file could not be read, for an error at the
// place that names it.
func traceMsg(err error) string {
	var te *TraceError
	if errors.As(err, &te) {
		return "trace " + te.Error()
	}
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		return fmt.Sprintf("cannot read trace %s: %v", pe.Path, pe.Err)
	}
	return err.Error()
}
