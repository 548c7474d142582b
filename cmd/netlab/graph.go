package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/netlab-dev/netlab/internal/graph"
)

// graph: netlab graph FILE|LAB [--format dot|mermaid|svg|png] [-o FILE]
// draws the lab: namespaces, bridges, links with interface names and
// addresses, marked NAT.
func (a *app) graph(args []string) int {
	fs := a.flags("graph", "FILE|LAB [--format dot|mermaid|svg|png] [-o FILE]")
	prefix := prefixFlag(fs)
	format := fs.String("format", "dot", "dot, mermaid (need nothing), svg or png (need Graphviz)")
	out := fs.String("o", "", "write to this file instead of standard output")
	pos, code, ok := positional(fs, args, 1, 1)
	if !ok {
		return code
	}
	if a.sandbox != "" && !isFileArg(pos[0]) {
		return a.enter("graph", args)
	}
	lab, code := a.labOrFile("graph", pos[0], *prefix)
	if lab == nil {
		return code
	}
	opts := graph.Options{Marks: map[string][]string{}}
	for _, ns := range lab.AllNamespaces() {
		if len(ns.NAT) > 0 {
			opts.Marks[ns.Name] = append(opts.Marks[ns.Name], "NAT")
		}
	}
	var data []byte
	switch *format {
	case "dot":
		data = []byte(graph.DOT(lab, opts))
	case "mermaid":
		data = []byte(graph.Mermaid(lab, opts))
	case "svg", "png":
		var err error
		data, err = graph.Render(graph.DOT(lab, opts), *format)
		if errors.Is(err, graph.ErrNoGraphviz) {
			fmt.Fprintf(a.stderr, "netlab: graph: %v\n", err)
			return exitRuntime
		}
		if err != nil {
			return a.fail("graph", err)
		}
	default:
		fmt.Fprintf(a.stderr, "netlab: graph: unknown format %q (want dot, mermaid, svg or png)\n", *format)
		return exitUsage
	}
	if *out == "" {
		a.stdout.Write(data)
		return exitOK
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		return a.fail("graph", err)
	}
	return exitOK
}
