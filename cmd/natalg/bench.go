package main

import (
	"fmt"
	"io"
)

// cmdBench implements "natalg bench"; the harness lives in package bench.
func cmdBench(args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "natalg bench: not built yet")
	return 2
}
