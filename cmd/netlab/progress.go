package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/netlab-dev/netlab/internal/engine"
)

// terminalWidth returns the width of the terminal f is, or 0 when f is not a
// terminal (CI, a pipe, a file).
func terminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 80
	}
	return int(ws.Col)
}

// liveLine shows progress on one terminal line: "[ 12/39] ip -n blue ...",
// rewritten in place; clear removes it.
type liveLine struct {
	w     io.Writer
	width int
}

func (l *liveLine) show(ev engine.Event) {
	line := fmt.Sprintf("[%3d/%d] %s", ev.Done, ev.Total, firstLine(ev.Action))
	if len(line) > l.width-1 {
		line = line[:l.width-1]
	}
	fmt.Fprintf(l.w, "\r\033[K%s", line)
}

func (l *liveLine) clear() { fmt.Fprint(l.w, "\r\033[K") }

func firstLine(s string) string {
	for i, r := range s {
		if r == '\n' {
			return s[:i] + " ..."
		}
	}
	return s
}

// jsonEvents writes one JSON object per line.
type jsonEvents struct{ enc *json.Encoder }

func newJSONEvents(w io.Writer) *jsonEvents {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // commands hold &&
	return &jsonEvents{enc: enc}
}

func (j *jsonEvents) write(v any) { _ = j.enc.Encode(v) }
