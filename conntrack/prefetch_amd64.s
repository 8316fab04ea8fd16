#include "textflag.h"

// func prefetchLines(a *uintptr, n, lines int)
TEXT ·prefetchLines(SB), NOSPLIT|NOFRAME, $0-24
	MOVQ a+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ lines+16(FP), DX
	TESTQ CX, CX
	JLE done
	CMPQ DX, $1
	JEQ one
loop3:
	MOVQ (SI), AX
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 128(AX)
	ADDQ $8, SI
	DECQ CX
	JNZ loop3
	RET
one:
	MOVQ (SI), AX
	PREFETCHT0 (AX)
	ADDQ $8, SI
	DECQ CX
	JNZ one
done:
	RET
