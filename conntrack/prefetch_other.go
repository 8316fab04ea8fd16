//go:build !amd64

package conntrack

func prefetchLines(a *uintptr, n, lines int) {}

const havePrefetch = false
