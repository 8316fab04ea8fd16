package conntrack

// prefetchLines asks the processor to start loading lines (1 or 3) consecutive
// 64-byte cache lines from each of the n addresses at a. A prefetch never
// faults and does not wait for its data, unlike a load, which would hold up
// the instructions behind it until its miss is served. The loop is in
// assembly because the compiler has no prefetch a package can use.
//
//go:noescape
func prefetchLines(a *uintptr, n, lines int)

const havePrefetch = true
