// Command goreflect runs internal/reflector's Main on its own, so
// bench/reflector/bench.sh can compare it with reflect.c before the
// `netlab reflect` subcommand exists.
package main

import (
	"os"

	"github.com/netlab-dev/netlab/internal/reflector"
)

func main() {
	os.Exit(reflector.Main(os.Args[1:], os.Stdout, os.Stderr))
}
