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
// out[i] = dot(q, vs[i]) for i < n, each vs[i] of length dim. While one
// vector is multiplied, every cache line of the next one is prefetched, so
// that the memory latency of a graph walk's random accesses overlaps the
// arithmetic.
TEXT ·dotBatchAVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), R8
	MOVQ vs+8(FP), R9
	MOVQ n+16(FP), R10
	MOVQ dim+24(FP), R11
	MOVQ out+32(FP), R12
	MOVQ R11, R13
	SHLQ $2, R13 // bytes per vector

next:
	CMPQ R10, $0
	JE   batchdone
	MOVQ (R9), DI
	CMPQ R10, $1
	JE   compute
	MOVQ 24(R9), DX
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

// func dotBatchInt8AVX2(q *int16, vs *[]int8, n, dim int, out *int32)
//
// out[i] = dot(q, vs[i]) for i < n: q holds dim int16, each vs[i] dim
// int8, dim a multiple of 16. Sixteen components at a time are widened to
// int16 (VPMOVSXBW) and multiplied in pairs into int32 sums (VPMADDWD);
// |q|, |v| <= 127 keeps every sum far from overflowing. The next vector is
// prefetched while one is multiplied, as in dotBatchAVX2.
TEXT ·dotBatchInt8AVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), R8
	MOVQ vs+8(FP), R9
	MOVQ n+16(FP), R10
	MOVQ dim+24(FP), R11
	MOVQ out+32(FP), R12

inext:
	CMPQ R10, $0
	JE   idone
	MOVQ (R9), DI
	CMPQ R10, $1
	JE   icompute
	MOVQ 24(R9), DX
	XORQ AX, AX

iprefetch:
	PREFETCHT0 (DX)(AX*1)
	ADDQ $64, AX
	CMPQ AX, R11
	JL   iprefetch

icompute:
	MOVQ R8, SI
	MOVQ R11, CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1

iloop32:
	CMPQ CX, $32
	JL   iloop16
	VPMOVSXBW (DI), Y4
	VPMOVSXBW 16(DI), Y5
	VPMADDWD (SI), Y4, Y4
	VPMADDWD 32(SI), Y5, Y5
	VPADDD Y4, Y0, Y0
	VPADDD Y5, Y1, Y1
	ADDQ $32, DI
	ADDQ $64, SI
	SUBQ $32, CX
	JMP  iloop32

iloop16:
	CMPQ CX, $16
	JL   ireduce
	VPMOVSXBW (DI), Y4
	VPMADDWD (SI), Y4, Y4
	VPADDD Y4, Y0, Y0

ireduce:
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
	JMP  inext

idone:
	VZEROUPPER
	RET

// func dotBatchInt8x8AVX2(q *int8, vs *[]int8, n, dim int, out *int32)
//
// As dotBatchInt8AVX2 with an int8 q, widened on the fly: for the
// neighbour-selection heuristic, whose query changes at every call.
TEXT ·dotBatchInt8x8AVX2(SB), NOSPLIT, $0-40
	MOVQ q+0(FP), R8
	MOVQ vs+8(FP), R9
	MOVQ n+16(FP), R10
	MOVQ dim+24(FP), R11
	MOVQ out+32(FP), R12

jnext:
	CMPQ R10, $0
	JE   jdone
	MOVQ (R9), DI
	CMPQ R10, $1
	JE   jcompute
	MOVQ 24(R9), DX
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

jloop32:
	CMPQ CX, $32
	JL   jloop16
	VPMOVSXBW (SI), Y4
	VPMOVSXBW 16(SI), Y5
	VPMOVSXBW (DI), Y6
	VPMOVSXBW 16(DI), Y7
	VPMADDWD Y6, Y4, Y4
	VPMADDWD Y7, Y5, Y5
	VPADDD Y4, Y0, Y0
	VPADDD Y5, Y1, Y1
	ADDQ $32, DI
	ADDQ $32, SI
	SUBQ $32, CX
	JMP  jloop32

jloop16:
	CMPQ CX, $16
	JL   jreduce
	VPMOVSXBW (SI), Y4
	VPMOVSXBW (DI), Y6
	VPMADDWD Y6, Y4, Y4
	VPADDD Y4, Y0, Y0

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
