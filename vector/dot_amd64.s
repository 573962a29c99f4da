#include "textflag.h"

// func dotAVX2(a, b *float32, n int) float32
//
// Four 8-wide FMA accumulators over blocks of 32 floats, then blocks of 8,
// a horizontal sum, and a scalar tail.
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ a+0(FP), SI
	MOVQ b+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

loop32:
	CMPQ CX, $32
	JL   loop8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  loop32

loop8:
	CMPQ CX, $8
	JL   reduce
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  loop8

reduce:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0

tail:
	CMPQ CX, $0
	JE   done
	VMOVSS (SI), X1
	VFMADD231SS (DI), X1, X0
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  tail

done:
	VZEROUPPER
	MOVSS X0, ret+24(FP)
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv() (eax, edx uint32)
TEXT ·xgetbv(SB), NOSPLIT, $0-8
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	MOVL DX, edx+4(FP)
	RET

// func dotBatchAVX2(q *float32, vs *[]float32, n, dim int, out *float32)
//
// out[i] = dot(q, vs[i]) for i < n, each vs[i] of length dim. Every cache
// line of the vectors up to floatAhead ahead (prefetch.go) is prefetched
// before the first is multiplied, and then, while one vector is multiplied,
// the one floatAhead after it, so that the memory latency of a graph
// walk's random accesses overlaps the arithmetic and several misses are in
// flight at once.
TEXT ·dotBatchAVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), R8
	MOVQ vs+8(FP), R9
	MOVQ n+16(FP), R10
	MOVQ dim+24(FP), R11
	MOVQ out+32(FP), R12
	MOVQ R11, R13
	SHLQ $2, R13 // bytes per vector
	MOVQ $1, BX

fahead:
	CMPQ BX, R10
	JGE  next
	CMPQ BX, ·floatAhead(SB)
	JGE  next
	MOVQ BX, DX
	IMULQ $24, DX
	MOVQ (R9)(DX*1), DX
	XORQ AX, AX

faheadline:
	PREFETCHT0 (DX)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R13
	JL   faheadline
	INCQ BX
	JMP  fahead

next:
	CMPQ R10, $0
	JE   batchdone
	MOVQ (R9), DI
	MOVQ ·floatAhead(SB), DX
	CMPQ R10, DX
	JLE  compute
	IMULQ $24, DX
	MOVQ (R9)(DX*1), DX
	XORQ AX, AX

prefetch:
	PREFETCHT0 (DX)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R13
	JL   prefetch

compute:
	MOVQ R8, SI
	MOVQ R11, CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

bloop32:
	CMPQ CX, $32
	JL   bloop8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  bloop32

bloop8:
	CMPQ CX, $8
	JL   breduce
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  bloop8

breduce:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0

btail:
	CMPQ CX, $0
	JE   bstore
	VMOVSS (SI), X1
	VFMADD231SS (DI), X1, X0
	ADDQ $4, SI
	ADDQ $4, DI
	DECQ CX
	JMP  btail

bstore:
	MOVSS X0, (R12)
	ADDQ $4, R12
	ADDQ $24, R9
	DECQ R10
	JMP  next

batchdone:
	VZEROUPPER
	RET

// func dotBatchInt8AVX2(q *int8, vs *[]int8, n, dim int, out *int32)
//
// out[i] = dot(q, vs[i]) for i < n: q and each vs[i] hold dim int8, dim a
// multiple of 16, and no component of vs[i] is -128 (quantize's range is
// ±127). Thirty-two components at a time: VPMADDUBSW multiplies unsigned
// by signed bytes, so it is given |q| (VPABSB) and v with q's signs
// (VPSIGNB: v where q > 0, -v where q < 0, 0 where q = 0), whose products
// are q's and v's; it adds them in pairs into int16, at most 2*128*127 =
// 32,512 in magnitude, so never saturated, and VPMADDWD by ones adds
// those pairs into int32 sums. Every sum is exact: the results are those
// of the portable kernel, bit for bit. Vectors are prefetched
// int8Ahead ahead of the one multiplied (prefetch.go; the first int8Ahead-1
// before the first), so that the memory latency of a graph walk's random
// accesses, several times the arithmetic of one vector, overlaps it and
// many misses are in flight at once.
TEXT ·dotBatchInt8AVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), R8
	MOVQ vs+8(FP), R9
	MOVQ n+16(FP), R10
	MOVQ dim+24(FP), R11
	MOVQ out+32(FP), R12
	MOVL $0x00010001, AX
	VMOVD AX, X15
	VPBROADCASTD X15, Y15 // sixteen int16 ones
	MOVQ ·int8Ahead(SB), R13
	MOVQ $1, BX

jahead:
	CMPQ BX, R10
	JGE  jnext
	CMPQ BX, R13
	JGE  jnext
	MOVQ BX, DX
	IMULQ $24, DX
	MOVQ (R9)(DX*1), DX
	XORQ AX, AX

jaheadline:
	PREFETCHT0 (DX)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R11
	JL   jaheadline
	INCQ BX
	JMP  jahead

jnext:
	CMPQ R10, $0
	JE   jdone
	MOVQ (R9), DI
	CMPQ R10, R13
	JLE  jcompute
	MOVQ R13, DX
	IMULQ $24, DX
	MOVQ (R9)(DX*1), DX
	XORQ AX, AX

jprefetch:
	PREFETCHT0 (DX)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R11
	JL   jprefetch

jcompute:
	MOVQ R8, SI
	MOVQ R11, CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1

jloop64:
	CMPQ CX, $64
	JL   jloop32
	VMOVDQU (SI), Y2
	VMOVDQU 32(SI), Y3
	VPABSB Y2, Y4
	VPABSB Y3, Y5
	VMOVDQU (DI), Y6
	VMOVDQU 32(DI), Y7
	VPSIGNB Y2, Y6, Y6
	VPSIGNB Y3, Y7, Y7
	VPMADDUBSW Y6, Y4, Y6
	VPMADDUBSW Y7, Y5, Y7
	VPMADDWD Y15, Y6, Y6
	VPMADDWD Y15, Y7, Y7
	VPADDD Y6, Y0, Y0
	VPADDD Y7, Y1, Y1
	ADDQ $64, DI
	ADDQ $64, SI
	SUBQ $64, CX
	JMP  jloop64

jloop32:
	CMPQ CX, $32
	JL   jloop16
	VMOVDQU (SI), Y2
	VPABSB Y2, Y4
	VMOVDQU (DI), Y6
	VPSIGNB Y2, Y6, Y6
	VPMADDUBSW Y6, Y4, Y6
	VPMADDWD Y15, Y6, Y6
	VPADDD Y6, Y0, Y0
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $32, CX

jloop16:
	CMPQ CX, $16
	JL   jreduce
	VMOVDQU (SI), X2 // the upper halves of Y2 and Y6 are zeroed
	VPABSB Y2, Y4
	VMOVDQU (DI), X6
	VPSIGNB Y2, Y6, Y6
	VPMADDUBSW Y6, Y4, Y6
	VPMADDWD Y15, Y6, Y6
	VPADDD Y6, Y1, Y1

jreduce:
	VPADDD Y1, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDD X1, X0, X0
	VPSHUFD $0xb1, X0, X1
	VPADDD X1, X0, X0
	VMOVD X0, (R12)
	ADDQ $4, R12
	ADDQ $24, R9
	DECQ R10
	JMP  jnext

jdone:
	VZEROUPPER
	RET

// func prefetchLines(p unsafe.Pointer, n int)
//
// Prefetches the n cache lines from p on: a hint, which never faults,
// even past the end of an allocation.
TEXT ·prefetchLines(SB), NOSPLIT, $0-16
	MOVQ p+0(FP), AX
	MOVQ n+8(FP), CX

pfloop:
	CMPQ CX, $0
	JLE  pfdone
	PREFETCHT0 (AX)
	ADDQ $64, AX
	DECQ CX
	JMP  pfloop

pfdone:
	RET
