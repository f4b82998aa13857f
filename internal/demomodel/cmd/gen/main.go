// Command gen writes the test model directories of testdata/models:
//
//	go run ./internal/demomodel/cmd/gen -out testdata/models
//
// The output is deterministic, so regenerating changes nothing unless the
// generator changed.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/modelslot/modelslot/internal/demomodel"
)

func main() {
	out := flag.String("out", "testdata/models", "directory to write the model directories into")
	flag.Parse()
	for _, v := range demomodel.Variants {
		if err := demomodel.Write(*out, v); err != nil {
			fmt.Fprintf(os.Stderr, "gen: model %s: %v\n", v.Name, err)
			os.Exit(1)
		}
	}
}
