package topology

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a topology file, with the place it stands so an
// editor can jump to it. Errors are data: the parser collects every one it
// finds and returns them together as an ErrorList.
type Error struct {
	File string
	Pos  Pos    // Line 0: the problem has no place (for example, the file is empty); Col 0: line only
	Path string // dotted key path, such as namespaces.blue.interfaces.veth1.addresses[0]; empty for syntax errors
	Msg  string
}

// Error renders the error as file:line:col: path: message, the form compilers
// use, so terminals and editors make it a link.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Pos.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Pos.Line)
		if e.Pos.Col > 0 {
			fmt.Fprintf(&b, ":%d", e.Pos.Col)
		}
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every problem found in a topology file, sorted by position.
// Parse returns one when the file is invalid, so a user fixes all problems
// in one round; callers find it with errors.As.
type ErrorList []*Error

// Error renders one error per line.
func (l ErrorList) Error() string {
	lines := make([]string, len(l))
	for i, e := range l {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find a single *Error inside the list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// sortAndDedup orders the list by position and drops a second error for the
// same place and path: one message per spot is easier to act on than two
// rules tripping over the same value.
func (l ErrorList) sortAndDedup() ErrorList {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.File, b.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Col, b.Pos.Col),
			cmp.Compare(a.Path, b.Path),
		)
	})
	out := l[:0]
	for _, e := range l {
		if n := len(out); n > 0 {
			p := out[n-1]
			if p.File == e.File && p.Pos == e.Pos && p.Path == e.Path {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}
