package graph

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// ErrNoGraphviz is returned by Render when Graphviz's dot is not installed.
var ErrNoGraphviz = errors.New("graphviz is not installed: install it (apt-get install graphviz) to render svg or png; --format dot and --format mermaid need nothing")

// dotCommand is the Graphviz program Render runs; tests replace it.
var dotCommand = "dot"

// Render lays out DOT output (from DOT) with Graphviz and returns the image
// in format, "svg" or "png". It is the package's only contact with the
// machine.
//
// Equivalent to: `dot -T$format`.
func Render(dot string, format string) ([]byte, error) {
	if format != "svg" && format != "png" {
		return nil, fmt.Errorf("render: unknown format %q (want svg or png)", format)
	}
	path, err := exec.LookPath(dotCommand)
	if err != nil {
		return nil, ErrNoGraphviz
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(path, "-T"+format)
	cmd.Stdin = strings.NewReader(dot)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("dot -T%s: %w: %s", format, err, strings.TrimSpace(stderr.String()))
	}
	return out.Bytes(), nil
}
