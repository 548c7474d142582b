// Command goreflect runs internal/reflector's Main on its own (what `netlab
// reflect` runs), so bench/reflector/bench.sh can build the reflector of any
// revision, without cgo, and compare it with reflect.c.
package main

import (
	"os"

	"github.com/netlab-dev/netlab/internal/reflector"
)

func main() {
	os.Exit(reflector.Main(os.Args[1:], os.Stdout, os.Stderr))
}
