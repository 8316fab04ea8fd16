package conntrack

// prefetch2 asks the processor to start loading the cache lines at a and b.
// A prefetch never faults and retires at once, unlike a load, which would
// hold up the instructions behind it until its miss is served.
//
//go:noescape
func prefetch2(a, b uintptr)

// prefetchFlow asks for the cache lines of the Flow at p (160 bytes: three
// lines whatever its alignment in its size class).
//
//go:noescape
func prefetchFlow(p uintptr)

const havePrefetch = true
