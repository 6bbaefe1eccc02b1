#!/bin/sh
# Regenerates the pictures of docs/layouts.md with `vm show` (run from the repository root).
set -e
d=docs/img
vm show "(4,8):(8,1)" -o $d/layout_row_major.png
vm show "(4,(8,2)):(16,(1,8))" -o $d/layout_hierarchical.png
vm show mma_m16n8k16_a -o $d/mma_m16n8k16_a.png --title "mma.m16n8k16 A (16x16 f16): local(1,2) * spatial(8,4,order=(1,0)) * local(2,2)"
vm show mma_m16n8k16_b -o $d/mma_m16n8k16_b.png --title "mma.m16n8k16 B (16x8): local(2,1) * spatial(4,8) * local(2,1)"
vm show mma_m16n8k16_c -o $d/mma_m16n8k16_c.png --title "mma.m16n8k16 C/D (16x8 f32): local(1,2) * spatial(8,4,order=(1,0)) * local(2,1)"
vm show "((2,4),8):((32,1),4) -> (4,16)" -o $d/int3_tile.png --title "int3[4,16]: local(1,8) * spatial(4,2,order=(1,0)), 8 int3 = 24 bits per thread"
vm show "((2,4),3):((12,1),4) -> (4,6)" -o $d/int3_as_uint8.png --title "the same bits as uint8[4,6]: local(1,3) * spatial(4,2,order=(1,0))"
vm show "(8,8):(8,1) @128b" --shared -o $d/smem_rows_plain.png --title "(8,8):(8,1) @128b: 16-byte chunks of 128-byte rows (colour = bank)"
vm show "Sw<3,4,3> o (8,8):(8,1) @128b" -o $d/smem_rows_swizzled.png --title "Sw<3,4,3> o (8,8):(8,1) @128b (colour = bank)"
vm show "Sw<2,4,3> o (16,32):(32,1) @16b" -o $d/smem_f16_swizzled.png
