package supervise

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeLog writes content to a fresh file and returns its path.
func writeLog(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "svc.log")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLogMatches(t *testing.T) {
	const earlier = "ready from an earlier run\n"
	huge := strings.Repeat("x", 100<<10) // past the scanner's first buffer
	tests := []struct {
		name    string
		content string
		from    int64
		expr    string
		want    bool
		why     string // part of what it says
	}{
		{"a line after the offset", earlier + "booting\nready on :80\n", int64(len(earlier)), `^ready on :\d+$`, true, "log: ready on :80"},
		{"a line before the offset does not count", earlier + "booting\n", int64(len(earlier)), `^ready`, false, `no line of the log matches "^ready" yet`},
		{"the same line from the start", earlier + "booting\n", 0, `^ready`, true, "log: " + strings.TrimSpace(earlier)},
		{"offset past the end", earlier, 1 << 20, `ready`, false, "no line"},
		{"empty log", "", 0, `.`, false, "no line"},
		{"last line without a newline", "booting\nready", 0, `^ready$`, true, "log: ready"},
		{"a long line before the match", huge + "\nready\n", 0, `^ready$`, true, "log: ready"},
		{"a match in a long line", huge + "ready\n", 0, `ready$`, true, "log: x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, why := logMatches(writeLog(t, tt.content), tt.from, tt.expr)
			if ok != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("logMatches = %v, %.80q; want %v, %q", ok, why, tt.want, tt.why)
			}
		})
	}
}

func TestLogMatchesErrors(t *testing.T) {
	path := writeLog(t, "ready\n")
	if ok, why := logMatches(path, 0, `ready(`); ok || !strings.Contains(why, "missing closing )") {
		t.Errorf("a bad regexp: %v, %q", ok, why)
	}
	missing := filepath.Join(t.TempDir(), "none.log")
	if ok, why := logMatches(missing, 0, `ready`); ok || !strings.Contains(why, "no such file") {
		t.Errorf("a missing log: %v, %q", ok, why)
	}
}

// A line longer than the scanner takes (1 MiB: a program's binary dump, a
// progress bar redrawn with \r) must not hide the lines after it.
func TestLogMatchesAfterAnOverlongLine(t *testing.T) {
	path := writeLog(t, strings.Repeat("\rprogress 42%", 200<<10)+"\nready\n")
	if ok, why := logMatches(path, 0, `^ready$`); !ok {
		t.Errorf("the line after a 2.6 MB line is not seen: %q", why)
	}
}

func TestEachLine(t *testing.T) {
	long := strings.Repeat("a", 100<<10)
	tests := []struct {
		name, in string
		limit    int
		want     []string
	}{
		{"lines", "a\nb\n", 10, []string{"a", "b"}},
		{"no final newline", "a\nb", 10, []string{"a", "b"}},
		{"empty lines", "\n\na\n", 10, []string{"", "", "a"}},
		{"crlf", "a\r\nb\r\n", 10, []string{"a", "b"}},
		{"empty", "", 10, nil},
		{"cut to the limit", "abcdef\nxy\n", 4, []string{"abcd", "xy"}},
		{"longer than the reader's buffer", long + "\nz\n", 1 << 20, []string{long, "z"}},
		{"longer than the limit and the buffer", long + long + "\nz", 1000, []string{long[:1000], "z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := eachLine(strings.NewReader(tt.in), tt.limit, func(line string) bool {
				got = append(got, line)
				return true
			})
			if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("eachLine = %.60q, %v; want %.60q", got, err, tt.want)
			}
		})
	}
	n := 0
	eachLine(strings.NewReader("a\nb\nc\n"), 10, func(string) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("eachLine went on after fn said stop: %d calls", n)
	}
}

func TestTail(t *testing.T) {
	var many strings.Builder
	for i := range 20000 { // ~200 KB: past the 64 KiB Tail reads
		fmt.Fprintf(&many, "line %d\n", i)
	}
	huge := strings.Repeat("y", 200<<10)
	tests := []struct {
		name    string
		content string
		n       int
		want    string
	}{
		{"last n lines", "a\nb\nc\nd\ne\n", 3, "its log ends:\n  c\n  d\n  e"},
		{"fewer lines than n", "a\nb\n", 20, "its log ends:\n  a\n  b"},
		{"exactly n", "a\nb\n", 2, "its log ends:\n  a\n  b"},
		{"no trailing newline", "a\nb\nc", 2, "its log ends:\n  b\n  c"},
		{"empty lines count", "a\n\n\n", 2, "its log ends:\n  \n  "},
		{"empty file", "", 20, "(the log is empty)"},
		{"a long log", many.String(), 3, "its log ends:\n  line 19997\n  line 19998\n  line 19999"},
		{"a huge line, then two", huge + "\nexited\nbye\n", 2, "its log ends:\n  exited\n  bye"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Tail(writeLog(t, tt.content), tt.n); got != tt.want {
				t.Errorf("Tail = %.200q, want %q", got, tt.want)
			}
		})
	}
}

// A log that is one huge line gives its end, not all of it, nor nothing.
func TestTailHugeLine(t *testing.T) {
	got := Tail(writeLog(t, strings.Repeat("z", 300<<10)+"END"), 20)
	if !strings.HasSuffix(got, "zzzEND") || len(got) > 65<<10 {
		t.Errorf("Tail of a 300 KB line: %d bytes ending %q", len(got), got[max(0, len(got)-20):])
	}
}

func TestTailMissing(t *testing.T) {
	if got := Tail(filepath.Join(t.TempDir(), "none.log"), 20); got != "(no log)" {
		t.Errorf("Tail of a missing log = %q", got)
	}
}
