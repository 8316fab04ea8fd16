//go:build !amd64

package conntrack

func prefetch2(a, b uintptr) {}

func prefetchFlow(p uintptr) {}

const havePrefetch = false
